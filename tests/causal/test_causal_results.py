"""GraphCheck and EffectEstimate follow the one result contract: exact JSON round trip (NaN and
infinities as null), summary, figure and an escaped notebook view."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal import CausalError, EffectEstimate, GraphCheck, check_graph, estimate_effect
from test_causal_check import _collider_data


def _data(n=800, seed=0):
    """The collider data of test_causal_check, with markup in a column name (escaping is checked)."""
    return _collider_data(n, seed).rename(columns={"z": "<b>z</b>"})


WRONG = nx.DiGraph([("x", "<b>z</b>"), ("<b>z</b>", "w"), ("x", "w")])  # x -> w spurious
WRONG.add_node("y")  # y -> z missing


@pytest.fixture(scope="module")
def chk() -> GraphCheck:
    return check_graph(WRONG, _data())


def test_graph_check_round_trip_is_exact(chk):
    assert chk.falsified and chk.violations and chk.untestable_edges is not None
    text = chk.to_json()
    back = GraphCheck.from_json(text)
    assert back == chk
    assert back.to_json() == text
    assert GraphCheck.from_dict(json.loads(json.dumps(chk.to_dict()))) == chk
    assert back.summary() == chk.summary() and back.verdict == chk.verdict
    assert json.loads(text)["summary"] == chk.summary()


def test_graph_check_nan_and_inf_become_null_and_come_back():
    chk = GraphCheck(falsified=False, dowhy_falsified=None, falsifiable=None, violation_rate=float("nan"),
                     n_tests=0, n_violations=0, alpha=0.05, excess_p_value=float("inf"),
                     permutation_p_value=None, strong_violations=0, nodes=["a", "b"], edges=[("a", "b")],
                     unsupported_edges=[("a", "b", float("nan"))])
    text = chk.to_json()
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text)
    assert d["violation_rate"] is None and d["excess_p_value"] is None
    back = GraphCheck.from_json(text)
    assert math.isnan(back.violation_rate) and math.isnan(back.unsupported_edges[0][2])
    assert back.to_json() == text


def test_graph_check_figure_colours_survive_the_round_trip(chk):
    def colours(fig):
        return sorted((a.hovertext, a.arrowcolor) for a in fig.layout.annotations if a.showarrow)

    fig = chk.figure()
    back = GraphCheck.from_json(chk.to_json()).figure()
    assert colours(fig) == colours(back)
    got = dict((h.split(":")[0], c) for h, c in colours(fig))
    assert got["x → w"] == "crimson"  # the spurious edge is drawn as unsupported
    assert got["&lt;b&gt;z&lt;/b&gt; → w"] == "seagreen"  # node names are escaped in hover text
    assert sum(1 for t in back.data if getattr(t, "line", None) is not None and t.line.dash == "dot") >= 1


def test_graph_check_html_is_escaped(chk):
    html = chk._repr_html_()
    assert "&lt;b&gt;z&lt;/b&gt;" in html and "<b>z</b>" not in html


def test_graph_check_from_bad_dict_is_one_line_error():
    with pytest.raises(CausalError, match="not a graph-check dict"):
        GraphCheck.from_dict({"falsified": True})


def test_effect_estimate_round_trip_is_exact():
    rng = np.random.default_rng(0)
    z = rng.normal(size=600)
    x = z + rng.normal(size=600)
    y = 2 * x - z + rng.normal(size=600)
    eff = estimate_effect(nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")]), pd.DataFrame({"z": z, "x": x, "y": y}),
                          "x", "y", simulations=3)
    text = eff.to_json()
    back = EffectEstimate.from_json(text)
    assert back.to_json() == text
    assert back.value == eff.value and back.adjustment_set == ["z"]
    assert back.summary() == eff.summary()
    for name, r in eff.refutations.items():
        for key in ("new_effect", "p_value"):
            a, b = r[key], back.refutations[name][key]
            assert (math.isnan(a) and math.isnan(b)) or a == b
        assert back.refutations[name]["passed"] == r["passed"]
    nan_eff = EffectEstimate(float("nan"), "<x>", "y", "m", "", [], {"placebo": {
        "new_effect": float("inf"), "p_value": float("nan"), "passed": False, "meaning": "m"}})
    t = nan_eff.to_json()
    assert "NaN" not in t and "Infinity" not in t
    b2 = EffectEstimate.from_json(t)
    assert math.isnan(b2.value) and math.isnan(b2.refutations["placebo"]["p_value"])
    assert "&lt;x&gt;" in nan_eff._repr_html_() and "<x>" not in nan_eff._repr_html_()
    with pytest.raises(CausalError, match="not an effect-estimate dict"):
        EffectEstimate.from_dict({"value": 1.0})
