"""Graph metrics against hand-computed examples."""

from __future__ import annotations

import math

import networkx as nx
import pytest

from causal.metrics import compare_graphs, edge_scores, orientation_accuracy, shd

# truth: a->b, b->c, c->d, a->d   (4 edges)
TRUE = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
# prediction: a->b (correct), c->b (reversed), c->d (correct), b->d (extra); a-d missing
PRED = nx.DiGraph([("a", "b"), ("c", "b"), ("c", "d"), ("b", "d")])


def test_shd_hand_example():
    # missing {a,d}: 1; extra {b,d}: 1; reversed b-c: 1  =>  SHD = 3
    assert shd(TRUE, PRED) == 3
    assert shd(TRUE, TRUE) == 0
    # empty prediction: every true edge missing => 4
    assert shd(TRUE, nx.DiGraph()) == 4


def test_oriented_scores_hand_example():
    # oriented true positives: a->b, c->d = 2; predicted 4, true 4
    # precision = 2/4 = 0.5, recall = 2/4 = 0.5, F1 = 0.5
    s = edge_scores(TRUE, PRED, oriented=True)
    assert s == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_skeleton_scores_hand_example():
    # skeleton true positives: {a,b}, {b,c}, {c,d} = 3; predicted 4, true 4
    # precision = 3/4, recall = 3/4, F1 = 0.75
    s = edge_scores(TRUE, PRED, oriented=False)
    assert s == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75})


def test_orientation_accuracy_hand_example():
    # true edges found as pairs: a->b, b->c, c->d (a->d not found) ; correctly oriented: a->b, c->d
    # => 2/3
    assert orientation_accuracy(TRUE, PRED) == pytest.approx(2 / 3)
    assert math.isnan(orientation_accuracy(TRUE, nx.DiGraph()))


def test_unequal_sizes_hand_example():
    # truth x->y; prediction x->y, y->z, x->z: oriented P = 1/3, R = 1/1, F1 = 2*(1/3)/(4/3) = 0.5
    t = nx.DiGraph([("x", "y")])
    p = nx.DiGraph([("x", "y"), ("y", "z"), ("x", "z")])
    s = edge_scores(t, p)
    assert s == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5})
    # SHD: 2 extra edges => 2
    assert shd(t, p) == 2


def test_compare_graphs_bundle():
    m = compare_graphs(TRUE, PRED)
    assert m["shd"] == 3 and m["f1"] == pytest.approx(0.5) and m["skeleton_f1"] == pytest.approx(0.75)
    assert m["n_true"] == 4 and m["n_pred"] == 4
    # empty vs empty: nothing to find and nothing wrongly found => precision = recall = 1
    assert edge_scores(nx.DiGraph(), nx.DiGraph())["recall"] == 1.0
