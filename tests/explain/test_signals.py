"""Fast tests of hallucination signals on a tiny random model (no downloads, no MiniLM)."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch

from explain.signals.consistency import (
    JudgeError,
    LLMJudge,
    call_judge,
    cluster,
    discrete_semantic_entropy,
    semantic_entropy,
)
from explain.attribution.sources import sentence_spans, split_sources, token_sentence_spans
from explain.errors import ExplainError
from explain.signals import (
    SignalReport,
    draw_samples,
    grounding_scores,
    signals,
)

# `explain.signals` the attribute is the function (re-exported by explain/__init__); get the modules.
signals_mod = importlib.import_module("explain.signals")
consistency_mod = importlib.import_module("explain.signals.consistency")

QUESTION = "What colour is the sky?"
CONTEXT = "Context: the sky is blue."
ANSWER = "The sky is blue. It is big."


def words_only(tokens) -> np.ndarray:
    """Which tokens hold a letter or a digit (every token when none does): the ones scores roll up over."""
    keep = np.array([any(ch.isalnum() for ch in t) for t in tokens], dtype=bool)
    return keep if keep.any() else np.ones(len(tokens), dtype=bool)


def fake_embed(texts):
    """Deterministic bag-of-characters unit vectors: equal texts get similarity 1."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for ch in t.lower():
            out[i, ord(ch) % 64] += 1.0
        out[i] /= max(1e-6, float(np.linalg.norm(out[i])))
    return out


@pytest.fixture
def no_minilm(monkeypatch):
    monkeypatch.setattr(consistency_mod, "embed", fake_embed)


def test_token_signals_match_one_teacher_forced_pass(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, progress=False)
    ids = tiny_lm.prompt_ids(QUESTION, chat=True)[0]
    resp = tiny_lm.encode(ANSWER, special=False)
    (lp, full), = tiny_lm.continuation_logprobs([ids], [resp], full=True)
    assert rep.token_ids == resp and len(rep.tokens) == len(resp)
    np.testing.assert_allclose(rep.token_logprob, lp, atol=1e-5)
    p = full.exp()
    top2 = p.topk(2, dim=-1).values
    np.testing.assert_allclose(rep.token_margin, (top2[:, 0] - top2[:, 1]).numpy(), atol=1e-5)
    np.testing.assert_allclose(rep.token_entropy, -(p * full).sum(-1).numpy(), atol=1e-4)
    assert np.all(rep.token_entropy >= 0) and np.all(rep.token_entropy <= math.log(full.shape[-1]) + 1e-4)
    assert np.all((rep.token_margin >= 0) & (rep.token_margin <= 1))
    words = words_only(rep.tokens)
    assert not words.all()  # the closing "." is left out of the roll-up
    assert rep.scores["mean_neg_logprob"] == pytest.approx(-float(lp[words].mean()), abs=1e-5)
    assert rep.scores["max_neg_logprob"] == pytest.approx(-float(lp[words].min()), abs=1e-5)
    assert rep.cost["forward_passes"] == 1  # the token signals need no second pass
    assert rep.token_context_contrast is None and not rep.generated


def test_generated_answer_uses_generation_pass_scores(tiny_lm):
    rep = signals(tiny_lm, QUESTION, max_new_tokens=6, progress=False)
    gen = tiny_lm.generate(tiny_lm.prompt_ids(QUESTION, chat=True)[0], max_new_tokens=6)
    assert rep.generated and rep.token_ids == gen.sequences[0]
    expect = gen.logprobs[0].gather(-1, torch.tensor(gen.sequences[0])[:, None])[:, 0].numpy()
    np.testing.assert_allclose(rep.token_logprob, expect, atol=1e-5)
    # one forward per generated step (plus the step that produced end-of-sequence, if any), no rescoring
    assert rep.cost["forward_passes"] <= 6


def test_context_contrast_is_with_minus_without_in_one_pass(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False, context_share=False)
    resp = tiny_lm.encode(ANSWER, special=False)
    with_ctx = tiny_lm.continuation_logprobs([tiny_lm.prompt_ids(QUESTION, chat=True, context=CONTEXT)[0]], [resp])[0]
    without = tiny_lm.continuation_logprobs([tiny_lm.prompt_ids(QUESTION, chat=True)[0]], [resp])[0]
    np.testing.assert_allclose(rep.token_context_contrast, with_ctx - without, atol=1e-5)
    np.testing.assert_allclose(rep.token_logprob, with_ctx, atol=1e-5)
    assert rep.cost["forward_passes"] == 1  # both rows in one batch (a one-sentence context needs no removal row)
    words = words_only(rep.tokens)
    assert rep.scores["ungrounded"] == pytest.approx(float(np.mean(np.maximum(0, without - with_ctx)[words])), abs=1e-5)
    assert 0.0 <= rep.scores["ungrounded_fraction"] <= 1.0


def test_context_share_from_segment_attribution(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False, context_share=True)
    assert rep.token_context_share is not None, rep.notes
    assert rep.token_context_share.shape == (len(rep.tokens),)
    assert np.all((rep.token_context_share >= 0) & (rep.token_context_share <= 1))
    words = words_only(rep.tokens)
    assert rep.scores["context_unused"] == pytest.approx(1 - float(rep.token_context_share[words].mean()), abs=1e-6)


def test_plain_prompt_without_chat_template(tiny_lm):
    rep = signals(tiny_lm, "The sky is", response=" blue.", chat=False, progress=False)
    ids = tiny_lm.encode("The sky is")
    lp = tiny_lm.continuation_logprobs([ids], [tiny_lm.encode(" blue.", special=False)])[0]
    np.testing.assert_allclose(rep.token_logprob, lp, atol=1e-5)


def test_grounding_scores_orientation():
    unlikely = np.log([0.1, 0.1, 0.1])
    supported = grounding_scores(np.array([3.0, 2.0, 2.5]), unlikely)
    made_up = grounding_scores(np.array([0.1, -2.0, 0.0]), unlikely)
    for name in ("ungrounded", "ungrounded_max", "ungrounded_fraction"):
        assert made_up[name] > supported[name], name
        assert supported[name] >= 0.0  # no negative "not supported" values
    assert supported["ungrounded_fraction"] == 0.0 and made_up["ungrounded_fraction"] == 1.0
    # a copied span: tokens the model is already sure of with the context count as grounded
    copied = grounding_scores(np.array([4.0, 0.1, 0.0]), np.log([0.6, 0.95, 0.99]))
    assert copied == {"ungrounded": 0.0, "ungrounded_max": 0.0, "ungrounded_fraction": 0.0}


def test_sentences_cover_tokens_and_roll_up(tiny_lm):
    assert token_sentence_spans(["Paris", ".", " It", " is", " 3", ".", "5", " big", "."]) == [(0, 2), (2, 9)]
    assert token_sentence_spans(["a", "\n", "b"]) == [(0, 1), (1, 3)]
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False, context_share=False)
    spans = [(s.start, s.end) for s in rep.sentences]
    assert spans[0][0] == 0 and spans[-1][1] == len(rep.tokens)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert [s.text for s in rep.sentences] == ["The sky is blue.", "It is big."]
    s = rep.sentences[1]
    words = words_only(rep.tokens[s.start:s.end])
    assert s.scores["mean_neg_logprob"] == pytest.approx(-float(rep.token_logprob[s.start:s.end][words].mean()), abs=1e-5)
    expect = np.maximum(0, -rep.token_context_contrast[s.start:s.end][words].astype(float)).mean()
    assert s.scores["ungrounded"] == pytest.approx(float(expect), abs=1e-5)


def test_json_round_trip_is_strict_json(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False)
    text = rep.to_json()
    back = SignalReport.from_json(text)
    assert back.tokens == rep.tokens and back.scores == pytest.approx(rep.scores)
    np.testing.assert_allclose(back.token_context_contrast, rep.token_context_contrast, atol=1e-6)
    assert [s.text for s in back.sentences] == [s.text for s in rep.sentences]
    assert "mean_neg_logprob" in json.loads(text)["score_docs"]


def test_html_is_escaped_and_figure_has_rows(tiny_lm):
    evil = '<img src=x onerror=alert(1)> & "quotes"'
    rep = signals(tiny_lm, QUESTION, response=evil, context=CONTEXT, progress=False, context_share=False)
    page = rep.html()
    assert "<img" not in page and "&lt;img" in page
    assert "<img" not in rep.html(signal="ungrounded")
    fig = rep.figure()
    assert fig.data[0].type == "heatmap"
    assert list(rep.token_signals) == ["neg_logprob", "entropy", "ungrounded", "not_grounded"]
    assert len(fig.data[0].y) == 1 + len(rep.token_signals)  # risk, then one row per signal
    # absolute scale: -log p is drawn against 10 nats in every answer, not scaled per row
    np.testing.assert_allclose(fig.data[0].z[1], np.clip(-rep.token_logprob.astype(float) / 10.0, 0, 1), atol=1e-6)
    with pytest.raises(ExplainError):
        signals(tiny_lm, QUESTION, response="blue", progress=False).html(signal="ungrounded")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(response=""), "response is empty"),
        (dict(response="   "), "response is empty"),
        (dict(response="blue " * 400), "context window"),
        (dict(response="blue", context=""), "context is empty"),
        (dict(response="blue", n_samples=-1), "n_samples"),
        (dict(response="blue", sample_texts=["", " "]), "sample_texts"),
    ],
)
def test_bad_input_is_one_line_error(tiny_lm, kwargs, message):
    with pytest.raises(ExplainError, match=message) as info:
        signals(tiny_lm, QUESTION, progress=False, **kwargs)
    assert "\n" not in str(info.value)


def test_empty_prompt_is_an_error(tiny_lm):
    with pytest.raises(ExplainError, match="prompt is empty"):
        signals(tiny_lm, " ", response="blue", progress=False)


def test_given_samples_judge_and_clusters(tiny_lm, no_minilm):
    judge = lambda premise, hypothesis: 1.0 if premise.strip() == hypothesis.strip() else 0.0  # noqa: E731
    rep = signals(tiny_lm, QUESTION, response="blue", sample_texts=["blue", "blue", "red", "green"],
                  judge=judge, progress=False)
    assert rep.samples == ["blue", "blue", "red", "green"]
    assert rep.sample_clusters == [0, 0, 1, 2]
    assert rep.scores["inconsistency_judge"] == pytest.approx(0.5)
    assert rep.scores["discrete_semantic_entropy"] == pytest.approx(discrete_semantic_entropy([0, 0, 1, 2]))
    assert 0 <= rep.scores["semantic_entropy"] <= math.log(4) + 1e-9
    assert 0 <= rep.scores["inconsistency_embedding"] <= 2
    assert rep.cost["judge_calls"] > 0 and not rep.notes
    consistent = signals(tiny_lm, QUESTION, response="blue", sample_texts=["blue"] * 4, judge=judge, progress=False)
    assert consistent.scores["inconsistency_judge"] == 0.0
    assert consistent.scores["semantic_entropy"] == 0.0
    assert consistent.scores["inconsistency_embedding"] < rep.scores["inconsistency_embedding"]


@pytest.mark.parametrize("bad", [lambda p, h: 1 / 0, lambda p, h: float("nan"), lambda p, h: "yes", lambda p, h: 7.0])
def test_failing_judge_falls_back_to_embeddings(tiny_lm, no_minilm, bad):
    rep = signals(tiny_lm, QUESTION, response="blue", sample_texts=["blue", "red"], judge=bad, progress=False)
    assert "inconsistency_judge" not in rep.scores
    assert "inconsistency_embedding" in rep.scores and "semantic_entropy" in rep.scores
    assert any("fell back to embedding" in n for n in rep.notes)
    assert len(rep.sample_clusters) == 2


def test_drawn_samples_are_seeded_and_batched(tiny_lm, no_minilm, monkeypatch):
    a = signals(tiny_lm, QUESTION, response="blue", n_samples=3, max_new_tokens=5, seed=3, progress=False)
    b = signals(tiny_lm, QUESTION, response="blue", n_samples=3, max_new_tokens=5, seed=3, progress=False)
    assert len(a.samples) == 3 and a.samples == b.samples
    assert a.cost["forward_passes"] <= 1 + 5  # one scoring pass + one batched generation
    calls = []
    real = tiny_lm.generate
    monkeypatch.setattr(tiny_lm, "generate", lambda *args, **kw: calls.append(kw["samples"]) or real(*args, **kw))
    texts, lps = draw_samples(tiny_lm, tiny_lm.prompt_ids(QUESTION, chat=True)[0], 5, 4, seed=0, chunk=2)
    assert calls == [2, 2, 1] and len(texts) == 5 and len(lps) == 5
    assert all(lp <= 0 for lp in lps)


def test_semantic_entropy_values():
    assert semantic_entropy([0, 0, 0], [-1.0, -2.0, -3.0]) == 0.0
    assert semantic_entropy([0, 1], [-1.0, -1.0]) == pytest.approx(math.log(2))
    # a cluster of likelier samples weighs more than its count
    assert semantic_entropy([0, 1], [-0.1, -5.0]) < math.log(2)
    assert discrete_semantic_entropy([0, 1, 2, 3]) == pytest.approx(math.log(4))
    assert discrete_semantic_entropy([]) == 0.0


def test_cluster_bidirectional_entailment():
    # "Paris" entails "Paris, France"? not both ways: separate clusters.
    one_way = lambda p, h: 1.0 if h in p else 0.0  # noqa: E731
    assert cluster(["Paris, France", "Paris", "paris"], judge=one_way) == [0, 1, 1]
    with pytest.raises(JudgeError):
        cluster(["a", "b"], judge=lambda p, h: None)
    emb = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32)
    assert cluster(["x", "y", "z"], embeddings=emb) == [0, 0, 1]
    assert call_judge(lambda p, h: 1.0000001, "a", "b") == 1.0


def test_llm_judge_gives_a_probability(tiny_lm, no_minilm):
    judge = LLMJudge(tiny_lm)
    value = judge("The sky is blue.", "The sky is blue.")
    assert 0.0 <= value <= 1.0 and judge.calls == 1
    yes, no = tiny_lm.score_options(LLMJudge.PROMPT.format(premise="a", hypothesis="b"), ["Yes", "No"])
    assert judge("a", "b") == pytest.approx(1 / (1 + math.exp(float(no) - float(yes))), abs=1e-5)
    rep = signals(tiny_lm, QUESTION, response="blue", sample_texts=["blue", "red"], judge=judge, progress=False)
    assert "inconsistency_judge" in rep.scores and rep.cost["judge_calls"] >= 2


def test_one_sentence_splitter_for_sources_answers_and_contexts():
    """Answer sentences (token spans) and attribution sources cut a text at the same places."""
    text = "Dr. Smith went home. He paid $3.14 for tea.\nThen he slept!"
    tokens = ["Dr", ".", " Smith", " went", " home", ".", " He", " paid", " $", "3", ".", "14", " for",
              " tea", ".", "\n", "Then", " he", " slept", "!"]
    assert "".join(tokens) == text
    by_tokens = ["".join(tokens[a:b]) for a, b in token_sentence_spans(tokens)]
    by_sources = [p.text for p in split_sources(text, "sentences")]
    by_spans = [text[a:b] for a, b in sentence_spans(text)]
    assert by_tokens == by_sources == by_spans == ["Dr. Smith went home.", " He paid $3.14 for tea.", "\nThen he slept!"]
