"""Proposing graphs: order invariance, strategies, DAG enforcement, hybrid with data, errors."""

from __future__ import annotations

import json
import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal import CausalError, ProposedGraph, orient_pair, propose_graph
from causal.graph import to_dag
from causal.judge import JudgeResult
from causal.ask import pair_prompt

PAIR = re.compile(r"^A\. changing (.+) causes a change in (.+)\.$", re.M)
TARGET = re.compile(r"is a direct cause of (.+?)\? ")
OPTION = re.compile(r"^([A-Z])\. (.+)$", re.M)


class Oracle:
    """A scripted backend that knows the true graph; ``bias`` adds a preference for option A
    (a position bias, as small models have) and ``noise`` perturbs answers deterministically."""

    name, model = "oracle", "truth"

    def __init__(self, edges, bias=0.0, strength=0.9):
        self.g = nx.DiGraph(edges)
        self.bias, self.strength = bias, strength
        self.prompts: list[str] = []

    def choose(self, prompt, options):
        self.prompts.append(prompt)
        m = PAIR.search(prompt)
        s = self.strength
        if m:
            x, y = m.group(1), m.group(2)
            if self.g.has_edge(x, y):
                p = [s, 1 - s, 0.0]
            elif self.g.has_edge(y, x):
                p = [1 - s, s, 0.0]
            else:
                p = [0.05, 0.05, 0.9]
            p = np.array(p[: len(options)]) + 1e-9
        else:
            target = TARGET.search(prompt).group(1)
            opts = dict(OPTION.findall(prompt))
            p = np.array([1.0 if self.g.has_edge(opts[o], target) else 0.05 for o in options[:-1]] + [0.3])
        p[0] += self.bias
        p = p / p.sum()
        return int(np.argmax(p)), p


CHAIN = [("smoking", "tar deposits"), ("tar deposits", "lung cancer")]
# a judge measured (by hand here) as near perfect: calibrated confidence up to 0.99
SURE = JudgeResult(llm="oracle:truth", accuracy=1.0, ci_low=0.99, ci_high=1.0, n=108)
COIN = JudgeResult(llm="oracle:truth", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=108)


def test_orient_pair_order_invariant_and_debiased():
    llm = Oracle(CHAIN, bias=0.5)
    assert orient_pair("smoking", "tar deposits", llm=llm) == orient_pair("tar deposits", "smoking", llm=llm)
    cause, effect, conf = orient_pair("tar deposits", "smoking", llm=llm)
    assert (cause, effect) == ("smoking", "tar deposits") and 0.5 <= conf <= 1
    # both orders were asked
    assert any("A. changing smoking causes" in p for p in llm.prompts)
    assert any("A. changing tar deposits causes" in p for p in llm.prompts)


def test_orient_pair_order_invariant_on_a_real_model(tiny_lm):
    a = orient_pair("altitude", "temperature", llm=tiny_lm)
    b = orient_pair("temperature", "altitude", llm=tiny_lm)
    assert a == b and 0.5 <= a[2] <= 1
    with pytest.raises(CausalError):
        orient_pair("x", "x", llm=tiny_lm)


def test_prompt_matches_kiciman():
    p = pair_prompt("a", "b", {"a": "the first", "b": "the second"})
    assert "Which cause-and-effect relationship is more likely?" in p
    assert "A. changing a causes a change in b." in p and "B. changing b causes a change in a." in p
    assert "- a: the first" in p


@pytest.mark.parametrize("strategy", ["pairwise", "ordering"])
def test_strategies_recover_truth(strategy):
    truth = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e")]
    llm = Oracle(truth, bias=0.3)
    res = propose_graph(list("edcba"), llm=llm, strategy=strategy, progress=False, judge=SURE)
    assert set(res.graph.edges) == set(truth)
    assert nx.is_directed_acyclic_graph(res.graph)
    for _, _, d in res.graph.edges(data=True):
        assert 0 <= d["confidence"] <= 1 and d["evidence"]
    assert res.queries == len(llm.prompts)
    if strategy == "pairwise":
        assert res.queries == 2 * 10
    else:
        assert res.queries < 2 * 10 + 2 * 5


def test_ordering_is_cheaper_on_larger_sets():
    names = [f"v{i:02d}" for i in range(16)]
    truth = [(names[i], names[i + 1]) for i in range(15)]
    res = propose_graph(names, llm=Oracle(truth), progress=False, judge=SURE)  # auto -> ordering above 12
    assert res.strategy == "ordering"
    assert set(res.graph.edges) == set(truth)
    assert res.queries < 2 * 16 * 15 / 2 / 2


def test_cycles_are_broken_and_recorded():
    edges = [("a", "b", {"confidence": 0.9}), ("b", "c", {"confidence": 0.8}), ("c", "a", {"confidence": 0.6})]
    g, dropped = to_dag(edges, ["a", "b", "c"])
    assert nx.is_directed_acyclic_graph(g) and [(u, v) for u, v, _ in dropped] == [("c", "a")]

    class Cyclic(Oracle):  # answers a -> b, b -> c, c -> a: a cycle from pairwise answers
        def __init__(self):
            super().__init__([("a", "b"), ("b", "c"), ("c", "a")])

    res = propose_graph(["a", "b", "c"], llm=Cyclic(), strategy="pairwise", progress=False, judge=SURE)
    assert nx.is_directed_acyclic_graph(res.graph) and len(res.dropped) == 1
    assert res.graph.number_of_edges() == 2


def _linear_data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.8 * a + rng.normal(size=n)
    c = 0.8 * a + rng.normal(size=n)
    d = 0.7 * b + 0.7 * c + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d})


def test_hybrid_uses_data_skeleton_and_llm_orientation():
    df = _linear_data()
    truth = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    wrong_llm = Oracle(truth + [("a", "d")])  # the LLM believes a direct a -> d edge too
    res = propose_graph(["a", "b", "c", "d"], llm=wrong_llm, data=df, progress=False, judge=SURE)
    assert res.strategy == "hybrid"
    assert set(res.graph.edges) == set(truth)
    assert res.queries <= 2 * 4
    # pairwise + data: the LLM's a -> d edge is removed as independent given {b, c}, and flagged
    res2 = propose_graph(["a", "b", "c", "d"], llm=wrong_llm, data=df, strategy="pairwise", progress=False,
                          judge=SURE)
    assert set(res2.graph.edges) == set(truth)
    assert [(u, v) for u, v, _ in res2.flagged] == [("a", "d")]
    assert set(res2.flagged[0][2]["separating_set"]) == {"b", "c"}


def test_column_mismatch_names_closest():
    df = _linear_data(50)
    with pytest.raises(CausalError, match="did you mean 'b'"):
        propose_graph(["a", "B"], llm=Oracle([]), data=df, progress=False)
    df2 = df.rename(columns={"a": "Smoking"})
    with pytest.raises(CausalError, match="'smoking' is not a column of the data; did you mean 'Smoking'"):
        propose_graph(["smoking", "b"], llm=Oracle([]), data=df2, progress=False)


def test_bad_inputs():
    with pytest.raises(CausalError, match="at least two"):
        propose_graph(["a"], llm=Oracle([]))
    with pytest.raises(CausalError, match="named twice"):
        propose_graph(["a", "a"], llm=Oracle([]))
    with pytest.raises(CausalError, match="unknown strategy"):
        propose_graph(["a", "b"], llm=Oracle([]), strategy="magic")
    with pytest.raises(CausalError, match="unknown variable 'smokng'"):
        propose_graph(["smoking", "cancer"], llm=Oracle([]), descriptions={"smokng": "x"})
    df = _linear_data(50)
    df.loc[3, "a"] = np.nan
    with pytest.raises(CausalError, match="missing values"):
        propose_graph(["a", "b"], llm=Oracle([]), data=df)


def test_serialisation_and_figure():
    res = propose_graph(["smoking", "tar deposits", "lung cancer"], llm=Oracle(CHAIN), progress=False, judge=SURE)
    back = ProposedGraph.from_json(res.to_json())
    assert set(back.graph.edges) == set(res.graph.edges) and back.queries == res.queries
    assert back.graph.edges["smoking", "tar deposits"]["confidence"] == pytest.approx(
        res.graph.edges["smoking", "tar deposits"]["confidence"])
    gml = res.to_gml()
    g = nx.parse_gml(gml)
    assert set(g.edges) == set(res.graph.edges)
    fig = res.figure()
    assert sum(1 for a in fig.layout.annotations if a.showarrow) == 2
    assert "smoking -> tar deposits" in res.summary()
    json.loads(res.to_json())


# --------------------------------------------------------------------------- result contract
def _full_proposal():
    g = nx.DiGraph()
    g.add_nodes_from(["a", "b", "c", "d"])
    g.add_edge("a", "b", confidence=0.9, evidence="llm")
    return ProposedGraph(
        graph=g,
        undecided=[("b", "c", {"p": 0.5, "p_raw": 0.93, "evidence": "llm"})],
        dropped=[("b", "a", {"confidence": 0.6, "reason": "would close a cycle"})],
        flagged=[("c", "d", {"confidence": 0.8, "p_value": float("nan"), "separating_set": ["a"]})],
        queries=7, strategy="pairwise", llm="oracle:truth", seconds=float("inf"), judge=COIN, threshold=0.75,
    )


def test_round_trip_is_exact_with_nan_and_inf():
    res = _full_proposal()
    text = res.to_json()
    assert "NaN" not in text and "Infinity" not in text
    back = ProposedGraph.from_json(text)
    assert back.to_dict() == res.to_dict()
    assert ProposedGraph.from_dict(json.loads(text)).to_json() == text
    assert back.undecided == [("b", "c", {"p": 0.5, "p_raw": 0.93, "evidence": "llm"})]
    assert np.isnan(back.flagged[0][2]["p_value"]) and back.flagged[0][2]["separating_set"] == ["a"]
    assert back.judge.accuracy == 0.53 and back.judge.ci_low == 0.43
    # a proposal saved before `undecided` existed still loads
    old = {k: v for k, v in res.to_dict().items() if k not in ("undecided", "judge", "threshold")}
    assert ProposedGraph.from_dict(old).undecided == []
    with pytest.raises(CausalError, match="not a proposed-graph JSON"):
        ProposedGraph.from_json('{"nodes": ["a"]}')


def test_summary_and_html_state_the_judge_and_undecided():
    res = _full_proposal()
    text = res.summary()
    assert "1 committed edges and 1 undecided pairs" in text
    assert "orients 53% [43, 62] of benchmark pairs right" in text and "its arrows are guesses" in text
    assert "undecided b - c" in text
    uncal = ProposedGraph(nx.DiGraph([("a", "b")]))
    assert "not calibrated" in uncal.summary()


def test_names_are_escaped_in_figure_and_html():
    evil = '<a href="http://evil.example">click</a>'
    g = nx.DiGraph()
    g.add_edge(evil, "b", confidence=0.8, evidence="x")
    res = ProposedGraph(graph=g, undecided=[("b", "<b>c</b>", {"p": 0.5})], llm="x:<i>m</i>", judge=COIN)
    fig = res.figure()
    blob = fig.to_json()
    assert "<a href" not in blob and "<b>c</b>" not in blob and "<i>m</i>" not in blob
    labels = [a.text for a in fig.layout.annotations if not a.showarrow]
    assert "&lt;a href=&quot;http://evil.example&quot;&gt;click&lt;/a&gt;" in labels
    assert "&lt;b&gt;c&lt;/b&gt;" in labels
    hovers = [a.hovertext for a in fig.layout.annotations if a.showarrow]
    assert hovers == ["&lt;a href=&quot;http://evil.example&quot;&gt;click&lt;/a&gt; → b: confidence 0.80"]
    html_view = res._repr_html_()
    assert "<a href" not in html_view and "&lt;a href" in html_view


def test_figure_draws_undecided_dashed_with_legend_and_arrows_clear_of_labels():
    from causal.plot import BOX_HALF_HEIGHT, CHAR_PX

    res = _full_proposal()
    fig = res.figure()
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == 1  # only the committed a -> b; the undecided b - c is no arrow
    dashed = [t for t in fig.data if t.mode == "lines" and t.line.dash == "dash" and not t.showlegend]
    assert len(dashed) == 1 and "undecided" in dashed[0].hovertext
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["committed edge (darker: more confident)",
                      "undecided pair: the judge cannot tell the direction"]
    assert "its arrows are guesses" in fig.layout.title.text
    # a -> b is vertical here: the arrowhead stops outside b's label box (half height 12 px)
    (arrow,) = arrows
    assert arrow.standoff > BOX_HALF_HEIGHT and arrow.startstandoff > BOX_HALF_HEIGHT
    # a horizontal arrow stops beyond half the label's width
    from causal.plot import graph_figure

    wide = graph_figure(nx.DiGraph([("left", "a rather long right label")]), title="t")
    (h,) = [a for a in wide.layout.annotations if a.showarrow]
    assert h.standoff > BOX_HALF_HEIGHT
    labels = [a for a in wide.layout.annotations if not a.showarrow]
    assert all(a.bgcolor == "white" for a in labels)
    assert wide.layout.annotations[-1].text in ("left", "a rather long right label")  # labels on top
    assert CHAR_PX > 0


# --------------------------------------------------------------------------- abstention
class Fixed:
    """Answers every two-option pair question about (x, y) with fixed P(A) per prompt order."""

    name, model = "fixed", "m"

    def __init__(self, p_x_first):
        self.p = p_x_first  # {(x, y): P(A | x named first)}

    def choose(self, prompt, options):
        x, y = PAIR.search(prompt).groups()
        pa = self.p[(x, y)]
        probs = np.array([pa, 1 - pa] + [0.0] * (len(options) - 2)) + 1e-12
        return int(np.argmax(probs)), probs / probs.sum()


def test_coin_judge_commits_nothing_and_cannot_reach_high_confidence():
    llm = Fixed({("rain", "wet"): 0.99, ("wet", "rain"): 0.01})
    res = propose_graph(["rain", "wet"], llm=llm, judge=COIN, progress=False)
    assert res.graph.number_of_edges() == 0
    assert len(res.undecided) == 1
    a, b, d = res.undecided[0]
    # the model says 0.99 (both orders agree); a coin-flip judge can only mean 0.5
    p_ab = d["p"] if (a, b) == ("rain", "wet") else 1 - d["p"]
    assert p_ab == pytest.approx(0.5) and d["p_raw"] == pytest.approx(0.99 if (a, b) == ("rain", "wet") else 0.01, abs=1e-6)
    assert res.judge.accuracy == 0.53 and res.judge.answers == []


def test_calibrated_confidence_and_threshold():
    # judge lower bound 0.9 -> skill 0.8: P = 0.5 + 0.8 (p - 0.5), computed here by hand
    judge = JudgeResult(llm="fixed:m", accuracy=0.95, ci_low=0.9, ci_high=0.98, n=108)
    # averaged P(rain -> wet) = (0.9 + (1 - 0.1)) / 2 = 0.9  -> 0.82: committed
    # averaged P(sun -> wet) = (0.8 + (1 - 0.2)) / 2 = 0.8   -> 0.74: undecided at 0.75
    llm = Fixed({("rain", "wet"): 0.9, ("wet", "rain"): 0.1, ("sun", "wet"): 0.8, ("wet", "sun"): 0.2,
                 ("rain", "sun"): 0.5, ("sun", "rain"): 0.5})

    def none_option_free(prompt, options):  # no C option mass: every pair has some edge
        return Fixed.choose(llm, prompt, options)

    res = propose_graph(["rain", "sun", "wet"], llm=llm, judge=judge, progress=False)
    assert list(res.graph.edges(data="confidence")) == [("rain", "wet", pytest.approx(0.82))]
    und = {(a, b): d["p"] for a, b, d in res.undecided}
    p_sun_wet = und.get(("sun", "wet"), None)
    assert p_sun_wet == pytest.approx(0.74)
    p_rain_sun = und.get(("rain", "sun"))
    assert p_rain_sun == pytest.approx(0.5)
    assert res.threshold == 0.75
    lower = propose_graph(["rain", "sun", "wet"], llm=llm, judge=judge, progress=False, threshold=0.7)
    assert set(lower.graph.edges) == {("rain", "wet"), ("sun", "wet")}
    for bad in (0.5, 1.5, "x"):
        with pytest.raises(CausalError, match="threshold must be"):
            propose_graph(["rain", "wet"], llm=llm, judge=judge, threshold=bad)


def test_uncalibrated_proposal_says_so():
    llm = Fixed({("rain", "wet"): 0.9, ("wet", "rain"): 0.1})
    res = propose_graph(["rain", "wet"], llm=llm, judge=False, progress=False)
    assert list(res.graph.edges) == [("rain", "wet")] and res.judge is None
    assert "not calibrated" in res.summary()
    with pytest.raises(CausalError, match="judge must be"):
        propose_graph(["rain", "wet"], llm=llm, judge=0.9)


def test_unmeasurable_backend_is_a_one_line_error():
    from causal.llm import ReplayBackend

    with pytest.raises(CausalError, match="cannot measure replay:dict as a judge.*judge=False"):
        propose_graph(["rain", "wet"], llm=ReplayBackend({}), progress=False)


@pytest.mark.parametrize("method", ["pc", "skeleton"])
def test_hybrid_keeps_data_orientation_and_abstains_on_the_rest(method):
    df = _linear_data()
    truth = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    llm = Oracle(truth)
    res = propose_graph(["a", "b", "c", "d"], llm=llm, data=df, progress=False, judge=COIN, data_method=method)
    # the collider b -> d <- c is the data's; a - b and a - c only the (coin) judge could orient
    assert set(res.graph.edges) == {("b", "d"), ("c", "d")}
    assert {frozenset((a, b)) for a, b, _ in res.undecided} == {frozenset("ab"), frozenset("ac")}
    assert all(d["evidence"].startswith("data:") for _, _, d in res.graph.edges(data=True))
    assert res.queries == 4  # only the two pairs the data leave open were asked, both orders


def test_pc_hybrid_propagates_the_llms_confident_arrow():
    rng = np.random.default_rng(1)
    a = rng.normal(size=2000)
    b = 0.9 * a + rng.normal(size=2000)
    c = 0.9 * b + rng.normal(size=2000)
    df = pd.DataFrame({"a": a, "b": b, "c": c})  # a chain: the data alone orient nothing
    llm = Fixed({("a", "b"): 0.99, ("b", "a"): 0.01, ("b", "c"): 0.5, ("c", "b"): 0.5})
    res = propose_graph(["a", "b", "c"], llm=llm, data=df, progress=False, judge=SURE)
    assert res.strategy == "hybrid"
    assert set(res.graph.edges) == {("a", "b"), ("b", "c")}
    assert "llm P(a->b)=0.99" in res.graph.edges["a", "b"]["evidence"]
    # b -> c was not the LLM's (it said 0.5): PC's rules oriented it from the committed a -> b
    assert res.graph.edges["b", "c"]["evidence"] == "data: oriented by PC with the LLM's arrows"
    assert res.undecided == []
    with pytest.raises(CausalError, match="unknown data_method"):
        propose_graph(["a", "b", "c"], llm=llm, data=df, judge=SURE, data_method="ges")


# --------------------------------------------------------------------------- cost guard and input
class Remote(Fixed):
    base_url = "http://127.0.0.1:1/v1"  # an HTTP backend: 1 s per question is assumed


def test_cost_guard_refuses_large_pairwise_and_names_ordering():
    from explain.errors import WhylmError

    names = [f"v{i}" for i in range(200)]
    with pytest.raises(WhylmError, match=r'39,800 questions.*use strategy="ordering" \(5,670 questions\)'):
        propose_graph(names, llm=Remote({}), strategy="pairwise", judge=SURE)
    with pytest.raises(WhylmError, match="5,670 questions"):
        propose_graph(names, llm=Remote({}), judge=SURE)  # ordering is over the default budget too
    seen = []
    res = propose_graph(["rain", "wet"], llm=Fixed({("rain", "wet"): 0.9, ("wet", "rain"): 0.1}), judge=SURE,
                        progress=False, on_estimate=seen.append)
    assert seen[0].passes == 2 == res.queries and "2 variables" in seen[0].what


def test_predicted_questions_bound_the_asked_ones():
    from causal.propose import count_questions

    for n in (5, 16, 25):
        names = [f"v{i:02d}" for i in range(n)]
        truth = [(names[i], names[i + 1]) for i in range(n - 1)]
        res = propose_graph(names, llm=Oracle(truth), strategy="ordering", progress=False, judge=SURE)
        assert res.queries <= count_questions(n, "ordering")
    res = propose_graph(names[:6], llm=Oracle(truth), strategy="pairwise", progress=False, judge=SURE)
    assert res.queries == count_questions(6, "pairwise") == 30


@pytest.mark.parametrize("bad", ["abc", b"abc", 3])
def test_variables_must_be_a_list(bad):
    with pytest.raises(CausalError, match="variables must be a list of names") as exc:
        propose_graph(bad, llm=Oracle([]))
    assert "\n" not in str(exc.value)


def test_check_drawing_has_a_legend_and_escaped_violations():
    from types import SimpleNamespace

    from causal.plot import graph_figure

    g = nx.DiGraph([("x", "z"), ("y", "z")])
    g.add_node("<w>")
    chk = SimpleNamespace(unsupported_edges=[("y", "z", {})], untestable_edges=[("x", "z")],
                          violations=[{"independent_of": "<w>", "node": "z", "statement": "<w> _||_ z", "p_value": 0.001}])
    fig = graph_figure(g, check=chk)
    assert [t.name for t in fig.data if t.showlegend] == [
        "supported by data", "unsupported by data", "dependence the graph misses (violated independence)"]
    colors = {a.hovertext.split(":")[0]: a.arrowcolor for a in fig.layout.annotations if a.showarrow}
    assert colors == {"x → z": "seagreen", "y → z": "crimson"}
    dotted = [t for t in fig.data if t.mode == "lines" and t.line.dash == "dot" and not t.showlegend]
    assert dotted[0].hovertext == "violated: &lt;w&gt; _||_ z (p=0.001)"
    assert "<w>" not in fig.to_json()
