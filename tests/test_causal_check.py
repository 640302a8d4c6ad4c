"""Checking graphs against data (DoWhy falsification + our report) and effect estimation."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal import CausalError, check_graph, estimate_effect
from causal.graph import compelled_edges
from causal.citests import FisherZ, chi2, fisher_z, skeleton


def _collider_data(n=1500, seed=0):
    # truth: x -> z <- y, z -> w
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=n)
    z = x + y + rng.normal(size=n)
    w = 0.8 * z + rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": y, "z": z, "w": w})


TRUE = nx.DiGraph([("x", "z"), ("y", "z"), ("z", "w")])


def test_fisher_z_matches_partial_correlation():
    df = _collider_data()
    t = FisherZ(df)
    f = t.frame
    assert t(f["x"].values, f["y"].values, None) > 0.01  # marginally independent
    assert t(f["x"].values, f["y"].values, f[["z"]].values) < 1e-6  # dependent given the collider
    assert abs(t(f["x"].values, f["w"].values, f[["z"]].values)
               - fisher_z(df.x.values, df.w.values, df[["z"]].values)) < 1e-9


def test_true_graph_passes():
    chk = check_graph(TRUE, _collider_data())
    assert not chk.falsified and chk.n_tests > 0
    assert chk.violation_rate <= 0.25 and not chk.unsupported_edges
    assert "not rejected" in chk.summary()
    assert set(chk.per_node["z"]["parents"]) == {"x", "y"}


def test_missing_edge_is_flagged_with_suggestion():
    wrong = nx.DiGraph([("x", "z"), ("y", "z")])
    wrong.add_node("w")  # z -> w missing
    chk = check_graph(wrong, _collider_data())
    assert chk.falsified and chk.strong_violations >= 1
    assert any(v["statement"].startswith(("w _||_ z", "z _||_ w")) for v in chk.violations)
    assert any("add edge" in s and "w" in s and "z" in s for s in chk.suggestions)
    assert "REJECTED" in chk.summary()
    from causal.plot import graph_figure

    fig = graph_figure(wrong, check=chk)  # violated dependences drawn as dotted red lines
    assert any(getattr(t, "line", None) is not None and t.line.dash == "dot" for t in fig.data)
    assert chk.to_dict()["falsified"] is True


def test_reversed_collider_is_flagged():
    wrong = nx.DiGraph([("z", "x"), ("z", "y"), ("z", "w")])  # collider turned into a fork
    chk = check_graph(wrong, _collider_data())
    assert chk.falsified
    assert any({v["node"], v["independent_of"]} == {"x", "y"} for v in chk.violations)


def test_spurious_edge_is_reported_unsupported():
    extra = TRUE.copy()
    extra.add_edge("x", "w")
    chk = check_graph(extra, _collider_data())
    assert ("x", "w") in [(u, v) for u, v, _ in chk.unsupported_edges]
    assert any(s.startswith("remove edge x -> w") for s in chk.suggestions)


def test_reversed_chain_is_reported_untestable():
    rng = np.random.default_rng(1)
    a = rng.normal(size=800)
    b = a + rng.normal(size=800)
    c = b + rng.normal(size=800)
    df = pd.DataFrame({"a": a, "b": b, "c": c})
    chk = check_graph(nx.DiGraph([("c", "b"), ("b", "a")]), df)
    # Markov equivalent to the truth: no test can see it, and the report says so
    assert set(chk.untestable_edges) == {("c", "b"), ("b", "a")}
    assert "cannot confirm their direction" in chk.summary()


def test_compelled_edges_hand_example():
    # a -> c <- b is a v-structure (compelled); c -> d follows by Meek rule 1; d -> e too.
    g = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("f", "a")])
    assert compelled_edges(g) == {("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")}


def test_chi2_on_discrete_data():
    rng = np.random.default_rng(0)
    n = 3000
    a = rng.integers(0, 3, n)
    b = (a + (rng.random(n) < 0.2)) % 3
    c = np.where(rng.random(n) < 0.8, b, rng.integers(0, 3, n))
    df = pd.DataFrame({"a": [f"l{v}" for v in a], "b": b, "c": c})
    assert chi2(df.a.values, df.c.values) < 1e-6
    assert chi2(df.a.values, df.c.values, df[["b"]].values) > 0.01
    chk = check_graph(nx.DiGraph([("a", "b"), ("b", "c")]), df, test="chi2")
    assert not chk.falsified
    chk2 = check_graph(nx.DiGraph([("a", "b"), ("a", "c")]), df, test="auto")
    assert chk2.falsified and chk2.test == "chi2"
    with pytest.raises(CausalError, match="not numeric.*chi2"):
        check_graph(nx.DiGraph([("a", "b")]), df, test="fisher_z")


def test_skeleton_and_colliders():
    g, sep, coll = skeleton(_collider_data(), alpha=0.01)
    assert {frozenset(e) for e in g.edges} == {frozenset(e) for e in TRUE.edges}
    assert coll == {("x", "z"), ("y", "z")}
    assert sep[frozenset(("x", "y"))] == ()


def test_check_errors():
    df = _collider_data(100)
    with pytest.raises(CausalError, match="cycle: x -> z -> x"):
        check_graph(nx.DiGraph([("x", "z"), ("z", "x")]), df)
    with pytest.raises(CausalError, match="'W' is not a column of the data; did you mean 'w'"):
        check_graph(nx.DiGraph([("x", "W")]), df)
    bad = df.copy()
    bad.loc[5, "z"] = np.nan
    with pytest.raises(CausalError, match="'z' has 1 missing"):
        check_graph(TRUE, bad)
    with pytest.raises(CausalError, match="rows"):
        check_graph(TRUE, df.head(5))
    with pytest.raises(CausalError, match="unknown test"):
        check_graph(TRUE, df, test="magic")


def _effect_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = 1.5 * z + rng.normal(size=n)
    y = 2.0 * x - 3.0 * z + rng.normal(size=n)
    return pd.DataFrame({"z": z, "x": x, "y": y})


def test_estimate_effect_with_refutations():
    g = nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")])
    eff = estimate_effect(g, _effect_data(), "x", "y", simulations=5)
    assert eff.value == pytest.approx(2.0, abs=0.1)
    assert eff.adjustment_set == ["z"]
    assert set(eff.refutations) == {"placebo", "random_common_cause", "data_subset"}
    assert eff.passed, eff.summary()
    assert "effect of x on y" in eff.summary()
    # the confounder ignored: the estimate is biased, which is why the graph matters
    naive = estimate_effect(nx.DiGraph([("x", "y")]), _effect_data()[["x", "y"]], "x", "y", refuters=())
    assert abs(naive.value - 2.0) > 0.5


def test_estimate_effect_errors():
    g = nx.DiGraph([("z", "x"), ("x", "y")])
    df = _effect_data()
    with pytest.raises(CausalError, match="treatment 'X' is not a node"):
        estimate_effect(g, df, "X", "y")
    with pytest.raises(CausalError, match="must differ"):
        estimate_effect(g, df, "x", "x")
    with pytest.raises(CausalError, match="cycle"):
        estimate_effect(nx.DiGraph([("x", "y"), ("y", "x")]), df, "x", "y")
    txt = df.assign(z=df.z.astype(str))
    with pytest.raises(CausalError, match="not numeric"):
        estimate_effect(g, txt, "x", "y")


def test_estimate_effect_without_directed_path_is_a_clear_error():
    g = nx.DiGraph([("z", "x"), ("z", "y")])  # x and y share a cause, x does not cause y
    with pytest.raises(CausalError, match="no directed path from 'x' to 'y'"):
        estimate_effect(g, _effect_data(), "x", "y")
