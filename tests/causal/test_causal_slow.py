"""The causal pipeline on the embedded SmolLM2-135M (slow: loads the model)."""

from __future__ import annotations

import networkx as nx
import pytest

from causal import evaluate_judge, orient_pair, propose_graph
from causal.judge import known_judge
from causal.llm import LocalBackend

pytestmark = pytest.mark.slow


def test_orient_pair_embedded_is_order_invariant(embedded_lm):
    llm = LocalBackend(embedded_lm)
    a = orient_pair("altitude", "temperature", llm=llm)
    b = orient_pair("temperature", "altitude", llm=llm)
    assert a == b
    assert {a[0], a[1]} == {"altitude", "temperature"} and 0.5 <= a[2] <= 1
    assert llm.uncached_calls == 2  # the second call was answered from the cache


def test_readme_example_commits_no_wrong_arrow(embedded_lm):
    res = propose_graph(["smoking", "tar deposits", "lung cancer"], llm=embedded_lm, progress=False)
    assert nx.is_directed_acyclic_graph(res.graph) and res.queries == 6
    assert res.llm.startswith("local:")
    truth = {("smoking", "tar deposits"), ("tar deposits", "lung cancer"), ("smoking", "lung cancer")}
    assert set(res.graph.edges) <= truth  # no wrong arrow: the embedded judge is a coin, nothing is committed
    assert res.judge is not None and res.judge.source == "shipped" and res.judge.is_guessing
    assert "its arrows are guesses" in res.summary()
    for _, _, d in res.undecided:
        assert d["p"] == pytest.approx(0.5)


def test_shipped_figure_is_what_the_model_answers(embedded_lm):
    shipped = known_judge(LocalBackend(embedded_lm, cache=False))
    assert shipped is not None and shipped.source == "shipped"
    live = evaluate_judge(LocalBackend(embedded_lm, cache=False), n_pairs=4, seed=3, progress=False,
                          use_cache=False)
    by_pair = {a["pair"]: a for a in shipped.answers}
    for a in live.answers:
        assert a["p_var1_causes"] == pytest.approx(by_pair[a["pair"]]["p_var1_causes"], abs=1e-4)
        assert a["correct"] == by_pair[a["pair"]]["correct"]
