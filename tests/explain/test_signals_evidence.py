"""Evidence per answer sentence (issue 16) on a tiny random model, against a brute-force removal loop."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

from explain.attribution.sources import sentence_spans
from explain.signals import Calibration, Evidence, SignalReport, signals
from explain.signals.calibration import Case
from explain.signals.evidence import (
    EVIDENCE_NATS, conflicts, content_words, context_sentences, evidence_scores, names_and_numbers,
    sentence_conflicts, sentence_evidence,
)
from explain.signals.report import SentenceSignals
from test_signals import words_only

QUESTION = "Who built the bridge?"
CONTEXT = "The town lies on a river. Its bridge was built in 1874 by Mira Olsen. It is 412 metres long."
ANSWER = "Mira Olsen built it. It is long."


def _brute_force(lm, prompt, context, response):
    """log p(answer token | full context) - log p(token | context without sentence k), one row at a time."""
    resp = lm.encode(response, special=False)
    full = lm.continuation_logprobs([lm.prompt_ids(prompt, chat=True, context=context)[0]], [resp])[0]
    rows = []
    for a, b in sentence_spans(context):
        rest = context[:a] + context[b:]
        ids = lm.prompt_ids(prompt, chat=True, context=rest if rest.strip() else None)[0]
        rows.append(full - lm.continuation_logprobs([ids], [resp])[0])
    return np.array(rows, dtype=np.float64)


def test_evidence_is_exact_leave_one_out(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False)
    expect = _brute_force(tiny_lm, QUESTION, CONTEXT, ANSWER)
    assert rep.context_sentences == ["The town lies on a river.", "Its bridge was built in 1874 by Mira Olsen.",
                                     "It is 412 metres long."]
    np.testing.assert_allclose(rep.token_evidence, expect, atol=1e-4)
    assert len(rep.sentences) == 2
    # by words: "Mira Olsen built it." is stated by context sentence 2, "It is long." by sentence 3
    by_words = {0: [1], 1: [2]}
    for k_sent, sent in enumerate(rep.sentences):
        words = words_only(rep.tokens[sent.start:sent.end])  # the closing "." is not part of the claim
        support = expect[:, sent.start:sent.end][:, words].sum(axis=1)
        listed = [k for k in np.argsort(-support) if support[k] >= EVIDENCE_NATS][:3]
        assert [e.source for e in sent.evidence if e.basis == "removal"] == listed
        assert [e.source for e in sent.evidence if e.basis == "words"] == [k for k in by_words[k_sent] if k not in listed]
        assert sent.conflicts == []
        for e in sent.evidence:
            assert e.score == pytest.approx(support[e.source], abs=1e-3)
            assert CONTEXT[e.start:e.end].strip() == e.text == rep.context_sentences[e.source]
        best = int(np.argmax(support))
        assert sent.scores["unsupported"] == pytest.approx(math.exp(-max(0.0, support[best])), abs=1e-4)
        assert sent.scores["contradicted"] == pytest.approx(max(0.0, -expect[best, sent.start:sent.end][words].min()),
                                                            abs=1e-4)
    # the answer's evidence scores are its worst sentence's
    for key in ("unsupported", "contradicted", "unseen_names"):
        assert rep.scores[key] == max(s.scores[key] for s in rep.sentences)


def test_evidence_costs_one_batched_pass_and_can_be_turned_off(tiny_lm):
    on = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False)
    off = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False, evidence=False)
    assert on.cost["forward_passes"] == off.cost["forward_passes"] + 1
    assert off.context_sentences == [] and off.token_evidence is None
    assert all(s.evidence == [] for s in off.sentences)
    assert not {"unsupported", "contradicted", "unseen_names"} & set(off.scores)
    assert "supports this" not in off.summary()
    np.testing.assert_array_equal(on.token_logprob, off.token_logprob)


def test_surrounding_whitespace_does_not_change_the_risk(tiny_lm):
    case = Case(features=["ungrounded_max", "unsupported", "mean_neg_logprob"], coefficients=[0.5, 1.0, 0.3],
                intercept=0.0, mean=[0.5, 0.5, 3.0], scale=[1.0, 0.3, 1.0])
    cal = Calibration(model="tiny", cases={"context": case})
    base = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, calibration=cal, progress=False)
    padded = signals(tiny_lm, f"  {QUESTION}\n", response=f"\n{ANSWER}\n", context=f"{CONTEXT}\n\n",
                     calibration=cal, progress=False)
    assert base.risk is not None and padded.risk == base.risk
    assert padded.scores == base.scores and padded.response == ANSWER


def test_evidence_round_trips_and_reads_in_words(tiny_lm):
    evil = "<script>alert(1)</script> The bridge is old."
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=evil, progress=False)
    back = SignalReport.from_json(rep.to_json())
    assert back.to_dict() == rep.to_dict()
    assert back.context_sentences == rep.context_sentences
    assert [[vars(e) for e in s.evidence] for s in back.sentences] == [[vars(e) for e in s.evidence] for s in rep.sentences]
    data = json.loads(rep.to_json())
    assert "unsupported" in data["score_docs"] and "context_sentences" in data
    page = rep._repr_html_()
    assert "<script>" not in page
    # a sentence with no evidence says so in words; one with evidence names its best sentence
    rep.sentences[0].evidence = []
    rep.sentences[1].evidence = [Evidence(0, "<b>old</b>", 0, 10, 2.0)]
    text = rep.summary()
    assert "nothing in the context supports this" in text and 'context sentence 1, "<b>old</b>" (2.00 nats)' in text
    assert "<b>old</b>" not in rep.html() and "&lt;b&gt;old&lt;/b&gt;" in rep.html()


def test_evidence_scores_by_hand():
    # 2 context sentences x 4 answer tokens; answer sentences are tokens [0, 2) and [2, 4)
    deltas = np.array([[3.0, 2.0, 0.2, 0.0],
                       [0.0, -1.5, 1.0, -2.0]])
    s = evidence_scores(deltas, [(0, 2), (2, 4)], ["Mira", " Olsen.", " In", " 1847."], "Mira Olsen built it in 1874.")
    assert s[0] == {"unsupported": pytest.approx(math.exp(-5.0)), "contradicted": 0.0, "unseen_names": 0.0,
                    "unseen_words": 0.0, "conflict": 0.0}
    # sentence 2: best is context sentence 0 (0.2 > -1.0); it lowers no token; "1847" is not in the context
    # (it shares no other word with the context, so it is unseen, not a conflict)
    assert s[1] == {"unsupported": pytest.approx(math.exp(-0.2)), "contradicted": 0.0, "unseen_names": 1.0,
                    "unseen_words": 1.0, "conflict": 0.0}
    s = evidence_scores(np.array([[4.0, -3.0]]), [(0, 2)], ["A", " b"], "A c.")
    assert s[0]["contradicted"] == 3.0 and s[0]["unsupported"] == pytest.approx(math.exp(-1.0))
    assert names_and_numbers("Dr Ada Lee met him on 3 May 1999.") == ["dr", "ada", "lee", "3", "may", "1999"]
    assert names_and_numbers("Ten.") == ["ten"] and names_and_numbers("The town is big.") == []
    assert names_and_numbers("paris.") == []



def test_a_closing_period_is_not_part_of_the_claim():
    # " Paris" is supported by 2.0 nats; the "." after it is 4.0 nats less likely with the passage
    deltas = np.array([[2.0, -4.0]])
    s = evidence_scores(deltas, [(0, 2)], [" Paris", "."], "Paris is the capital of France.")
    assert s[0]["unsupported"] == pytest.approx(math.exp(-2.0)) and s[0]["contradicted"] == 0.0
    ev = sentence_evidence(deltas, [(0, 2)], "Paris is the capital of France.", [(0, 31)], [" Paris", "."])
    assert ev[0][0].score == pytest.approx(2.0) and ev[0][0].basis == "removal"
    # an answer of punctuation only keeps every token
    s = evidence_scores(np.array([[1.0, -0.5]]), [(0, 2)], ["?", "!"], "Yes.")
    assert s[0]["unsupported"] == pytest.approx(math.exp(-0.5)) and s[0]["contradicted"] == 0.5
    # the signals roll up the same way, for the answer and for each sentence
    from explain.signals.registry import SignalContext, compute_signals, sentence_scores

    lp = np.log([0.5, 0.01, 0.25, 0.02])
    tokens = [" Paris", ".", " Yes", "\n"]
    ctx = SignalContext(tokens=tokens, token_ids=[1, 2, 3, 4], token_logprob=lp, token_entropy=np.zeros(4),
                        token_margin=np.ones(4), token_top1=np.ones(4))
    values, scores = compute_signals(ctx, names=["neg_logprob"])
    assert scores["max_neg_logprob"] == pytest.approx(math.log(4.0))
    assert scores["mean_neg_logprob"] == pytest.approx((math.log(2.0) + math.log(4.0)) / 2)
    per = sentence_scores(values, [(0, 2), (2, 4)], tokens)
    assert per[0]["max_neg_logprob"] == pytest.approx(math.log(2.0))
    assert per[1]["max_neg_logprob"] == pytest.approx(math.log(4.0))

def test_long_context_uses_screened_top_k(tiny_lm, monkeypatch):
    api = importlib.import_module("explain.signals.api")
    monkeypatch.setattr(api, "LONG_CONTEXT_TOKENS", 5)
    monkeypatch.setattr(api, "TOP_K", 2)
    monkeypatch.setattr(importlib.import_module("explain.signals.evidence"), "TOP_K", 2)
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False)
    expect = _brute_force(tiny_lm, QUESTION, CONTEXT, ANSWER)
    exact = ~np.isnan(rep.token_evidence).all(axis=1)
    # the screen computes at least the top 2 exactly (the hierarchical screen also every sentence it searched)
    assert 2 <= exact.sum() and np.isnan(rep.token_evidence[~exact]).all()
    np.testing.assert_allclose(rep.token_evidence[exact], expect[exact], atol=1e-4)
    listed = {e.source for s in rep.sentences for e in s.evidence}
    assert listed <= set(np.flatnonzero(exact))  # only exactly computed sentences are evidence
    assert any(f"exact leave-one-out for the {int(exact.sum())} of 3" in n for n in rep.notes)
    assert SignalReport.from_json(rep.to_json()).to_dict() == rep.to_dict()


CONFLICT_CONTEXT = "The town lies on the Anos river. The bridge was built in 1874 by Mira Olsen."


@pytest.mark.parametrize("sentence, expected", [
    # a number swapped inside the same statement: 1 of its 1 names/numbers differs
    ("The bridge was built in 1847.", (1, ["1847"], 1.0)),
    # another person in the same statement: 2 of its 3 names/numbers differ
    ("Tomas Brandt built the bridge in 1874.", (1, ["Tomas", "Brandt"], 2 / 3)),
    # the same facts in other words, and a fact from the other sentence: no conflict
    ("Mira Olsen built it in 1874.", None),
    ("It lies on the Anos.", None),
    # a new name that shares no word with any context sentence is unseen, not a conflict
    ("Tomas Brandt.", None),
])
def test_conflicts_by_hand(sentence, expected):
    texts, spans = context_sentences(CONFLICT_CONTEXT)
    found = conflicts(sentence, texts)
    tokens = [sentence]
    scored = evidence_scores(np.zeros((len(texts), 1)), [(0, 1)], tokens, CONFLICT_CONTEXT)[0]
    listed = sentence_conflicts(None, [(0, 1)], tokens, CONFLICT_CONTEXT, spans)[0]
    if expected is None:
        assert found is None and scored["conflict"] == 0.0 and listed == []
        return
    source, differs, share = expected
    assert found == (source, differs)
    assert scored["conflict"] == pytest.approx(share)
    assert [(e.source, e.basis, e.differs, e.text) for e in listed] == [
        (source, "conflict", differs, "The bridge was built in 1874 by Mira Olsen.")]


def test_unseen_words_by_hand():
    ctx = "The town is known for its paper market."
    # "wool" is in neither the context nor the question: 1 of town/known/wool/market (stems) is unseen
    s = evidence_scores(np.zeros((1, 1)), [(0, 1)], ["The town is known for its wool market."], ctx,
                        prompt="What is the town known for?")[0]
    assert s["unseen_words"] == pytest.approx(1 / 4)
    # a word from the question is not unseen
    s = evidence_scores(np.zeros((1, 1)), [(0, 1)], ["Its paper fair."], ctx, prompt="Is there a paper fair?")[0]
    assert s["unseen_words"] == 0.0
    assert content_words("The bridges were directed") == ["bridg", "direc"]


def test_evidence_by_words_when_removal_changes_little():
    ctx = "Paris is the capital of France. It is on the Seine."
    texts, spans = context_sentences(ctx)
    flat = np.array([[0.1], [0.0]])  # removing either sentence changes the answer little
    [paris] = sentence_evidence(flat, [(0, 1)], ctx, spans, ["Paris."])
    assert [(e.source, e.basis) for e in paris] == [(0, "words")]
    # a name the context does not hold is never evidence by words; without tokens only removal counts
    assert sentence_evidence(flat, [(0, 1)], ctx, spans, ["Berlin."]) == [[]]
    assert sentence_evidence(flat, [(0, 1)], ctx, spans) == [[]]
    # the sentence that states the answer's number comes before one whose removal costs more
    legs = "Spiders are not insects. A spider has eight legs."
    _, leg_spans = context_sentences(legs)
    [eight] = sentence_evidence(np.array([[2.7], [-3.0]]), [(0, 1)], legs, leg_spans, ["Eight."])
    assert [(e.source, e.basis) for e in eight] == [(1, "words"), (0, "removal")]
    # a conflicting sentence is not evidence even when its removal costs a lot
    strong = np.array([[3.0], [0.0]])
    [swapped] = sentence_evidence(strong, [(0, 1)], ctx, spans, ["Lyon is the capital of France."])
    assert swapped == []
    words = SentenceSignals("Paris.", 0, 1, verdict="supported", evidence=paris).evidence_text()
    assert words.startswith('best evidence: context sentence 1, "Paris is the capital of France."')
    assert "the model may know it already" in words
    wrong = SentenceSignals("Berlin.", 0, 1, verdict="likely hallucinated", evidence=paris).evidence_text()
    assert wrong.startswith("not supported by the context") and "best evidence" not in wrong


def test_old_evidence_dicts_still_load():
    old = {"text": "A.", "start": 0, "end": 1, "scores": {}, "risk": 0.2, "verdict": "supported",
           "evidence": [{"source": 0, "text": "A b.", "start": 0, "end": 4, "score": 1.5}]}
    sent = SentenceSignals.from_dict(old)
    assert sent.conflicts == [] and sent.evidence[0].basis == "removal" and sent.evidence[0].differs == []
    assert SentenceSignals.from_dict(sent.to_dict()) == sent


def test_conflict_is_found_by_what_the_sentence_says_about_its_names():
    # "founded" picks the founding sentence, not the mayor's sentence that shares both names
    texts = ["Its mayor, Nadia Ferrant, was elected in 2001.", "Tirwenos was founded in 1300 by Greta Olsen."]
    assert conflicts("Nadia Ferrant founded the town.", texts) == (1, ["Nadia", "Ferrant"])
    assert conflicts("Nadia Ferrant is the mayor.", texts) is None
    assert conflicts("Greta Olsen founded the town.", texts) is None
