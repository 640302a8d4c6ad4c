"""The signal registry, the report contract, the vocabulary and the cost guard (tiny random model)."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from explain import WhylmError, register_signal
from explain.errors import ExplainError
from explain.signals import SIGNALS, SignalReport, signals, unregister_signal
from explain.signals.consistency import JudgeError
from test_signals import words_only

QUESTION = "What colour is the sky?"
CONTEXT = "The sky is blue."
ANSWER = "The sky is blue. It is big."
consistency_mod = importlib.import_module("explain.signals.consistency")


@pytest.fixture
def double_surprise():
    """The custom signal of issue 8, registered for one test."""

    @register_signal("double_surprise", level="token", doc="twice the negative log-prob")
    def _double_surprise(ctx):          # ctx: tokens, token_logprob, token_entropy, ... of this response
        return -2 * ctx.token_logprob  # one value per response token

    yield "double_surprise"
    unregister_signal("double_surprise")


def test_custom_signal_reaches_report_json_and_html(tiny_lm, double_surprise):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, progress=False)
    # independent reference: the teacher-forced log-probs from the model API
    resp = tiny_lm.encode(ANSWER, special=False)
    lp = tiny_lm.continuation_logprobs([tiny_lm.prompt_ids(QUESTION, chat=True)[0]], [resp])[0]
    np.testing.assert_allclose(rep.token_signals["double_surprise"], -2 * lp, atol=1e-5)
    words = words_only(rep.tokens)  # scores roll up over the tokens that hold words, not the closing "."
    assert rep.scores["mean_double_surprise"] == pytest.approx(-2 * float(np.mean(lp[words])), abs=1e-5)
    sent = rep.sentences[1]
    assert sent.scores["mean_double_surprise"] == pytest.approx(
        -2 * float(np.mean(lp[sent.start:sent.end][words[sent.start:sent.end]])), abs=1e-5)
    data = json.loads(rep.to_json())
    np.testing.assert_allclose(data["token_signals"]["double_surprise"], -2 * lp, atol=1e-5)
    back = SignalReport.from_json(rep.to_json())
    np.testing.assert_array_equal(back.token_signals["double_surprise"], rep.token_signals["double_surprise"])
    page = rep.html(signal="double_surprise")
    assert "double_surprise" in page and page.count("whylm-tok") == len(rep.tokens)
    assert "double_surprise" in rep.views()


def test_builtin_signals_are_registered_the_same_way(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False, context_share=False)
    assert set(rep.token_signals) == {"neg_logprob", "entropy", "ungrounded", "not_grounded"}
    assert set(rep.token_signals) <= set(SIGNALS)
    np.testing.assert_allclose(rep.token_signals["neg_logprob"], -rep.token_logprob, atol=1e-6)
    c = rep.token_context_contrast.astype(float)
    np.testing.assert_allclose(rep.token_signals["ungrounded"], np.maximum(0, -c), atol=1e-6)
    words = words_only(rep.tokens)
    assert rep.scores["ungrounded_max"] == pytest.approx(max(0.0, -c[words].min()), abs=1e-6)
    unlikely = rep.token_logprob.astype(float) < np.log(0.5)
    assert rep.scores["ungrounded_fraction"] == pytest.approx(float(((c < 0.5) & unlikely)[words].mean()))


def test_round_trip_is_exact(tiny_lm, double_surprise):
    rep = signals(tiny_lm, QUESTION, response=ANSWER, context=CONTEXT, progress=False)
    back = SignalReport.from_json(rep.to_json())
    assert back.to_dict() == rep.to_dict()
    assert rep.token_context_share is None and back.token_context_share is None
    for name in ("token_logprob", "token_entropy", "token_margin", "token_context_contrast", "token_evidence"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rep, name))
        assert getattr(back, name).dtype == getattr(rep, name).dtype
    assert back.scores == rep.scores and back.tokens == rep.tokens
    assert SignalReport.from_dict(json.loads(json.dumps(rep.to_dict()))).to_json() == rep.to_json()


def test_a_failing_custom_signal_is_a_note_not_a_crash(tiny_lm):
    @register_signal("broken")
    def broken(ctx):
        return [1.0]  # wrong length

    try:
        rep = signals(tiny_lm, QUESTION, response=ANSWER, progress=False)
    finally:
        unregister_signal("broken")
    assert "broken" not in rep.token_signals
    assert any("broken" in n and "1 values" in n for n in rep.notes)


@pytest.mark.parametrize("bad", [dict(name="no spaces"), dict(name="ok", level="sentence"),
                                 dict(name="ok", aggregate={"x": "median"})])
def test_register_signal_rejects_bad_specs(bad):
    with pytest.raises(ExplainError):
        register_signal(**bad)


def test_repr_html_is_escaped(tiny_lm):
    rep = signals(tiny_lm, "<script>alert(1)</script>", response="<b>bold</b>", progress=False)
    view = rep._repr_html_()
    assert "<script>" not in view and "<b>bold" not in view and "&lt;b&gt;" in view
    assert "No calibrated verdict" in view and rep.summary().startswith("No calibrated verdict")


def test_sampling_leaves_the_global_random_state_alone(tiny_lm, monkeypatch):
    monkeypatch.setattr(consistency_mod, "embed", lambda texts: np.eye(len(texts), 8, dtype=np.float32))
    torch.manual_seed(123)
    np.random.seed(7)
    expected_t, expected_np = torch.rand(3), np.random.rand(2)
    torch.manual_seed(123)
    np.random.seed(7)
    a = signals(tiny_lm, QUESTION, response="blue", n_samples=3, max_new_tokens=4, seed=5, progress=False)
    assert torch.equal(torch.rand(3), expected_t) and np.array_equal(np.random.rand(2), expected_np)
    b = signals(tiny_lm, QUESTION, response="blue", n_samples=3, max_new_tokens=4, seed=5, progress=False)
    assert a.samples == b.samples  # seeded: the same samples whatever the caller's state


def test_a_million_samples_is_refused_at_once(tiny_lm, monkeypatch):
    monkeypatch.setattr(tiny_lm, "generate", lambda *a, **k: pytest.fail("must not start generating"))
    with pytest.raises(ExplainError) as info:
        signals(tiny_lm, QUESTION, response="blue", n_samples=10**6, progress=False)
    msg = str(info.value)
    assert "\n" not in msg and "1,000,000 samples" in msg and "n_samples=" in msg and "max_seconds" in msg
    fits = int(msg.split("n_samples=")[1].split(" ")[0])
    assert 1 <= fits < 10**6


def test_judge_error_is_a_whylm_error():
    assert issubclass(JudgeError, WhylmError) and not issubclass(JudgeError, RuntimeError)
