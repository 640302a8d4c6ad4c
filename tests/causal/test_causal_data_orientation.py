"""What the data can orient: Meek's rules against brute-force Markov equivalence, the proposal's
report of which undecided pairs the data orient or leave undecidable, and one data run after the
budget check."""

from __future__ import annotations

from itertools import combinations, product

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal import propose_graph
from causal.graph import ProposedGraph
from causal.judge import JudgeResult
from causal.pc import meek

COIN = JudgeResult(llm="fixed:x", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=108)


class Truthful:
    """Answers every forced choice with the true direction (no edge: option C) at ``strength``."""

    name, model = "truthful", "x"

    def __init__(self, edges, strength=0.9):
        self.g, self.s = nx.DiGraph(edges), strength

    def choose(self, prompt, options):
        line = next(x for x in prompt.splitlines() if x.startswith("A. changing "))
        x, y = line[len("A. changing "):-1].split(" causes a change in ")
        p = [self.s, 1 - self.s, 0.0] if self.g.has_edge(x, y) else [1 - self.s, self.s, 0.0] \
            if self.g.has_edge(y, x) else [0.05, 0.05, 0.9]
        p = np.array(p[: len(options)]) + 1e-9
        return int(np.argmax(p)), p / p.sum()


# --------------------------------------------------------------------------- Meek against brute force
def _v_structures(g: nx.DiGraph) -> set:
    return {(a, c, b) for c in g for a, b in combinations(sorted(g.predecessors(c)), 2)
            if not g.has_edge(a, b) and not g.has_edge(b, a)}


def _equivalent_orientations(dag: nx.DiGraph, required=()) -> set:
    """Brute force: every acyclic orientation of the skeleton with the same v-structures (and the
    required arrows); an edge is compelled iff all of them orient it alike."""
    edges = [tuple(sorted(e)) for e in dag.to_undirected().edges]
    target = _v_structures(dag)
    members = []
    for flips in product((False, True), repeat=len(edges)):
        g = nx.DiGraph()
        g.add_nodes_from(dag)
        g.add_edges_from((b, a) if f else (a, b) for (a, b), f in zip(edges, flips))
        if nx.is_directed_acyclic_graph(g) and _v_structures(g) == target and all(g.has_edge(*r) for r in required):
            members.append(set(g.edges))
    return set.intersection(*members)


def _random_dag(rng, n, p):
    nodes = [f"x{i}" for i in range(n)]
    order = rng.permutation(n)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for i, j in combinations(range(n), 2):
        if rng.random() < p:
            a, b = nodes[order[i]], nodes[order[j]]
            g.add_edge(a, b)
    return g


@pytest.mark.parametrize("seed", range(40))
def test_meek_finds_exactly_the_compelled_edges(seed):
    rng = np.random.default_rng(seed)
    dag = _random_dag(rng, n=int(rng.integers(3, 7)), p=0.5)
    if dag.number_of_edges() > 11:
        pytest.skip("too many edges for the brute force")
    v_edges = sorted({(a, c) for a, c, _ in _v_structures(dag)} | {(b, c) for _, c, b in _v_structures(dag)})
    rest = [e for e in dag.edges if e not in v_edges]
    # the CPDAG: v-structures, then Meek
    directed, undirected = meek(v_edges, rest)
    assert set(directed) == _equivalent_orientations(dag)
    assert {frozenset(e) for e in undirected} == {frozenset(e) for e in dag.edges} - {frozenset(e) for e in directed}
    # background knowledge (an LLM's arrow on an open pair): still exactly what every member consistent with it shares
    if undirected:
        req = next(e for e in dag.edges if frozenset(e) == frozenset(undirected[0]))
        directed2, _ = meek([*directed, req], undirected)
        assert set(directed2) == _equivalent_orientations(dag, required=[req])


def test_meek_rule_three_by_hand():
    # a - c -> b <- d - a, a - b, c and d not adjacent: R3 orients a -> b
    directed, undirected = meek([("c", "b"), ("d", "b")], [("a", "c"), ("a", "d"), ("a", "b")])
    assert ("a", "b") in directed and {frozenset(e) for e in undirected} == {frozenset("ac"), frozenset("ad")}


# --------------------------------------------------------------------------- the proposal's report
def _collider_data(n=3000, seed=0):
    """a -> c <- b, c -> d (all compelled), e -> f (undecidable)."""
    rng = np.random.default_rng(seed)
    a, b, e = rng.normal(size=(3, n))
    c = 0.8 * a + 0.8 * b + rng.normal(size=n)
    d = 0.8 * c + rng.normal(size=n)
    f = 0.8 * e + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "e": e, "f": f})


TRUTH = [("a", "c"), ("b", "c"), ("c", "d"), ("e", "f")]


@pytest.mark.parametrize("method", ["pc", "skeleton"])
def test_pairwise_with_a_coin_judge_says_what_the_data_orient(method):
    res = propose_graph(list("abcdef"), llm=Truthful(TRUTH), data=_collider_data(), strategy="pairwise",
                        judge=COIN, progress=False, data_method=method)
    assert res.graph.number_of_edges() == 0  # a judge at chance commits nothing
    status = {frozenset((a, b)): d for a, b, d in res.data_orientation}
    assert set(status) == {frozenset(e) for e in TRUTH}
    for u, v in [("a", "c"), ("b", "c"), ("c", "d")]:
        assert status[frozenset((u, v))] == {"data": "oriented", "cause": u, "effect": v}
    assert status[frozenset("ef")] == {"data": "undecidable"}
    text = res.summary()
    assert "the data orient c -> d" in text and "e - f stays undecidable" in text or "f - e stays undecidable" in text
    back = ProposedGraph.from_json(res.to_json())
    assert back.data_orientation == res.data_orientation


def test_hybrid_commits_what_the_data_orient_and_reports_the_rest_undecidable():
    res = propose_graph(list("abcdef"), llm=Truthful(TRUTH), data=_collider_data(), judge=COIN, progress=False)
    assert set(res.graph.edges) == {("a", "c"), ("b", "c"), ("c", "d")}
    assert {o for _, _, o in res.graph.edges(data="origin")} == {"data"}
    assert [(frozenset((a, b)), d["data"]) for a, b, d in res.data_orientation] == [(frozenset("ef"), "undecidable")]
    assert res.queries == 2  # only e - f went to the LLM, both orders


def test_without_data_there_is_no_data_report():
    res = propose_graph(["a", "b"], llm=Truthful([("a", "b")]), judge=COIN, progress=False)
    assert res.data_orientation == [] and "data:" not in res.summary()


def test_budget_is_checked_before_the_data_step_and_the_data_run_once(monkeypatch):
    import causallearn.search.ConstraintBased.PC as pc_module

    from explain.errors import WhylmError

    calls = []
    real = pc_module.pc
    monkeypatch.setattr(pc_module, "pc", lambda *a, **k: calls.append(1) or real(*a, **k))

    class Slow(Truthful):
        base_url = "http://127.0.0.1:1/v1"  # an HTTP backend: 1 s per question assumed

    df = _collider_data(300)
    with pytest.raises(WhylmError, match="questions"):
        propose_graph(list("abcdef"), llm=Slow(TRUTH), data=df, judge=COIN, max_seconds=5)
    assert calls == []  # refused before any data work
    seen = []
    sure = JudgeResult(llm="fixed:x", accuracy=1.0, ci_low=0.99, ci_high=1.0, n=108)
    res = propose_graph(list("abcdef"), llm=Truthful(TRUTH), data=_collider_data(), judge=sure, progress=False,
                        on_estimate=lambda cost: seen.append(len(calls)))
    assert seen == [0] and len(calls) == 1  # announced before PC, and PC ran once
    assert ("e", "f") in res.graph.edges and res.graph.edges["e", "f"]["origin"] == "judge"
