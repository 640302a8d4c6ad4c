"""suggest_confounders and critique_graph: a replayed capable judge finds the planted confounder,
a judge at chance suggests nothing and says why; cost guard, cache, input errors, result contract."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from causal import (ConfounderSuggestions, GraphCritique, critique_graph, evaluate_judge, suggest_confounders)
from causal.ask import pair_prompt
from causal.errors import CausalError
from causal.judge import JudgeResult, tuebingen_pairs
from causal.llm import AnswerCache, ReplayBackend

COIN = JudgeResult(llm="replay:dict", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=106)

# the world the replayed judge knows: genes confound smoking -> lung cancer; tar mediates; a hospital
# visit is a collider; shoe size is unrelated
WORLD = [("genes", "smoking"), ("genes", "lung cancer"), ("smoking", "lung cancer"), ("smoking", "tar"),
         ("tar", "lung cancer"), ("smoking", "hospital visit"), ("lung cancer", "hospital visit")]
CANDIDATES = ["shoe size", "tar", "genes", "hospital visit"]


def _world_answers(edges, names) -> dict:
    """Recorded answers to every 3-option pair question over ``names``: the true direction, or C."""
    g = nx.DiGraph(edges)
    out = {}
    for x in names:
        for y in names:
            if x != y:
                out[pair_prompt(x, y, none_option=True)] = "A" if g.has_edge(x, y) else "B" if g.has_edge(y, x) else "C"
    return out


def _tuebingen_answers() -> dict:
    """A capable judge: every Tübingen pair answered right, in both orders."""
    out = {}
    for row in tuebingen_pairs().itertuples(index=False):
        cause, effect = (row.var1, row.var2) if row.ground_truth == "R" else (row.var2, row.var1)
        out[pair_prompt(cause, effect)] = "A"
        out[pair_prompt(effect, cause)] = "B"
    return out


def _capable() -> ReplayBackend:
    names = ["smoking", "lung cancer", *CANDIDATES]
    return ReplayBackend({**_tuebingen_answers(), **_world_answers(WORLD, names)})


def test_replayed_capable_judge_returns_the_planted_confounder():
    llm = _capable()
    seen = []
    s = suggest_confounders("smoking", "lung cancer", CANDIDATES, llm=llm, on_estimate=seen.append)
    # the judge was measured now, on the replay's own Tübingen answers (not a figure set by hand)
    assert s.judge.source == "measured" and s.judge.accuracy == 1.0 and not s.judge.is_guessing
    assert seen[0].passes == 2 * 106 + 4 * len(CANDIDATES)
    assert [c["name"] for c in s.confounders] == ["genes"]
    # skill = 2 * Wilson lower bound(106/106) - 1; calibrated P(genes -> x) = 0.5 + skill / 2 each
    lo = evaluate_judge(llm).ci_low
    assert s.confounders[0]["confidence"] == pytest.approx((0.5 + (2 * lo - 1) / 2) ** 2)
    roles = {c["name"]: c["role"] for c in s.others}
    assert roles == {"tar": "mediator", "hospital visit": "collider", "shoe size": "not linked to both"}
    assert s.undecided == [] and s.reason == ""
    text = s.summary()
    assert "genes: causes both" in text and "tar: mediator (do not adjust for it)" in text


def test_a_judge_at_chance_suggests_nothing_and_says_why():
    s = suggest_confounders("smoking", "lung cancer", CANDIDATES, llm=_capable(), judge=COIN)
    assert s.confounders == [] and s.others[0]["role"] == "not linked to both"
    assert {c["name"] for c in s.undecided} == {"genes", "tar", "hospital visit"}
    assert all(c["p_causes_treatment"] == 0.5 for c in s.undecided)
    assert s.reason.startswith("the judge is at chance (this model orients 53% [43, 62]")
    assert "none suggested: the judge is at chance" in s.summary()


def test_tiny_model_with_its_chance_record_suggests_nothing(tiny_lm):
    s = suggest_confounders("smoking", "lung cancer", ["genes"], llm=tiny_lm, judge=COIN)
    assert s.confounders == [] and s.reason.startswith("the judge is at chance") and s.queries == 4


@pytest.mark.slow
def test_embedded_model_suggests_nothing_with_a_reason(embedded_lm):
    s = suggest_confounders("smoking", "lung cancer", ["genes"], llm=embedded_lm)  # 4 questions
    assert s.judge is not None and s.judge.source == "shipped" and s.judge.is_guessing
    assert s.confounders == [] and s.reason.startswith("the judge is at chance") and s.queries == 4
    assert "none suggested: the judge is at chance" in s.summary()
    c = critique_graph(nx.DiGraph([("smoking", "lung cancer")]), llm=embedded_lm)  # 2 questions
    assert c.doubtful == [] and c.missing_confounders == [] and c.reason.startswith("the judge is at chance")


def test_answers_come_from_the_cache_the_second_time():
    cache = AnswerCache(":memory:")
    llm = ReplayBackend(_world_answers(WORLD, ["smoking", "lung cancer", "genes"]), cache=cache)
    strong = JudgeResult(llm="replay:dict", accuracy=1.0, ci_low=0.97, ci_high=1.0, n=106)
    first = suggest_confounders("smoking", "lung cancer", ["genes"], llm=llm, judge=strong)
    second = suggest_confounders("smoking", "lung cancer", ["genes"], llm=llm, judge=strong)
    assert first.confounders == second.confounders and llm.calls == 8 and llm.uncached_calls == 4


def test_cost_guard_refuses_before_asking():
    from explain.errors import WhylmError

    class Remote(ReplayBackend):
        base_url = "http://127.0.0.1:1/v1"  # 1 s per question assumed

    llm = Remote({})
    with pytest.raises(WhylmError, match="400 questions"):
        suggest_confounders("t", "o", [f"c{i}" for i in range(100)], llm=llm, judge=COIN, max_seconds=60)
    with pytest.raises(WhylmError, match="questions"):
        critique_graph(nx.DiGraph([(f"v{i}", f"v{i + 1}") for i in range(40)]), llm=llm, judge=COIN, max_seconds=60)
    assert llm.calls == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(candidates=None), "name the candidate confounders"),
    (dict(candidates="genes"), "candidates must be a list of names"),
    (dict(candidates=["smoking"]), "candidate 'smoking' is the treatment"),
    (dict(candidates=["genes", "genes"]), "named twice"),
    (dict(candidates=["genes"], descriptions={"gene": "x"}), "unknown variable 'gene'; did you mean 'genes'?"),
    (dict(candidates=["genes"], threshold=0.4), "threshold must be a probability"),
    (dict(candidates=["genes"], judge=0.9), "judge must be None, False or a JudgeResult"),
])
def test_bad_input_is_one_line(kwargs, message):
    with pytest.raises(CausalError, match=message) as exc:
        suggest_confounders("smoking", "lung cancer", llm=ReplayBackend({}), **kwargs)
    assert "\n" not in str(exc.value)


class Reader:
    """Answers from the WORLD by reading the two names off option A (descriptions change prompts)."""

    name, model = "reader", "world"

    def __init__(self):
        self.g, self.prompts = nx.DiGraph(WORLD), []

    def choose(self, prompt, options):
        import numpy as np

        self.prompts.append(prompt)
        line = next(x for x in prompt.splitlines() if x.startswith("A. changing "))
        x, y = line[len("A. changing "):-1].split(" causes a change in ")
        p = np.eye(3)[0 if self.g.has_edge(x, y) else 1 if self.g.has_edge(y, x) else 2][: len(options)]
        return int(np.argmax(p)), p


def test_candidates_default_to_the_described_variables():
    llm = Reader()
    s = suggest_confounders("smoking", "lung cancer", llm=llm, judge=False,
                            descriptions={"genes": "inherited variants", "smoking": "cigarettes a day"})
    assert [c["name"] for c in s.confounders] == ["genes"] and s.judge is None
    assert "(uncalibrated: the judge's accuracy was not measured" in s.summary()
    assert all("- genes: inherited variants" in p for p in llm.prompts)


def test_result_contract_round_trips_and_escapes():
    s = suggest_confounders("smoking", "<b>cancer</b>", ["genes"], llm=ReplayBackend(
        _world_answers([("genes", "smoking"), ("genes", "<b>cancer</b>")], ["smoking", "<b>cancer</b>", "genes"])),
        judge=COIN)
    back = ConfounderSuggestions.from_json(s.to_json())
    assert back.to_dict() == s.to_dict() and json.loads(s.to_json())["reason"] == s.reason
    assert "<b>" not in s._repr_html_() and "&lt;b&gt;cancer" in s._repr_html_()
    c = critique_graph(nx.DiGraph([("smoking", "<b>cancer</b>")]), llm=ReplayBackend(
        _world_answers([("smoking", "<b>cancer</b>")], ["smoking", "<b>cancer</b>"])), judge=COIN)
    assert GraphCritique.from_json(c.to_json()).to_dict() == c.to_dict() and "<b>" not in c._repr_html_()
    with pytest.raises(CausalError, match="not a confounder-suggestions dict"):
        ConfounderSuggestions.from_dict({"outcome": "x"})


def test_critique_names_the_reversed_edge_and_the_missing_confounder():
    llm = _capable()
    given = nx.DiGraph([("lung cancer", "smoking"), ("smoking", "tar")])
    c = critique_graph(given, llm=llm, nodes=["genes"])
    assert [d["edge"] for d in c.doubtful] == [["lung cancer", "smoking"]]
    assert {(m["name"], tuple(m["edge"])) for m in c.missing_confounders} == {("genes", ("lung cancer", "smoking"))}
    assert c.queries == 4 * 3  # every pair of the 4 variables, both orders
    assert "doubtful lung cancer -> smoking: the judge says smoking -> lung cancer" in c.summary()
    # a correct graph with its confounder: nothing to report, and the reason says so
    right = nx.DiGraph([e for e in WORLD if "hospital" not in e[1] and "shoe" not in e[0]])
    ok = critique_graph(right, llm=llm)
    assert ok.doubtful == [] and ok.missing_confounders == []
    assert ok.reason == "the judge doubts no edge and names no missing confounder"
    coin = critique_graph(given, llm=llm, nodes=["genes"], judge=COIN)
    assert coin.doubtful == coin.missing_confounders == [] and coin.reason.startswith("the judge is at chance")
