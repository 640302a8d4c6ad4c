"""Calibrated risk and verdicts: the logistic fit against scikit-learn, metrics against hand/sklearn
values, risk read from a calibration, fitting from labelled examples (API and CLI), the shipped file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dashboard.cli import main
from explain.errors import ExplainError
from explain.signals import Calibration, calibrate_signals, load_calibration, signals, verdict
from explain.signals.calibration import SHIPPED, Case, fit_case, fit_logistic, model_slug
from explain.signals.metrics import accuracy, auroc_labels, brier, ece

QUESTION = "What colour is the sky?"
CONTEXT = "The sky is blue."


def test_logistic_fit_recovers_the_generating_model():
    # the reference is the logistic model the labels were drawn from, not the fitting code
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 3))
    y = (x @ [1.5, -2.0, 0.0] + 0.3 + rng.logistic(size=len(x)) > 0).astype(int)
    w, b = fit_logistic(x, y, l2=1e-6)
    np.testing.assert_allclose(w, [1.5, -2.0, 0.0], atol=0.08)
    assert b == pytest.approx(0.3, abs=0.06)


def test_fit_case_keeps_coefficients_non_negative():
    # "b" points the right way alone but only corrects "a" once both are in: it is dropped
    rng = np.random.default_rng(3)
    a = rng.normal(size=4000)
    b = a + 0.3 * rng.normal(size=4000)
    y = (2.0 * a - 1.0 * b + rng.logistic(size=4000) > 0).astype(int)
    case = fit_case(["a", "b"], np.c_[a, b], y)
    assert case.directions["b"] > 0.5 and case.features == ["a"] and case.coefficients[0] > 0


def test_metrics_match_independent_references():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    p[:10] = 0.5  # ties
    assert auroc_labels(p, y) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
    assert brier(p, y) == pytest.approx(sk.brier_score_loss(y, p), abs=1e-12)
    assert accuracy(p, y) == pytest.approx(sk.accuracy_score(y, (p >= 0.5).astype(int)))
    # ECE by hand: bins [0.1,0.2) holds 0.15 (label 0) and [0.9,1] holds 0.95, 0.95 (labels 1, 0)
    assert ece([0.15, 0.95, 0.95], [0, 1, 0]) == pytest.approx((0.15 + 2 * abs(0.5 - 0.95)) / 3)


def test_fit_case_drops_a_score_pointing_the_wrong_way():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(100), np.ones(100)].astype(int)
    good = y * 2.0 + rng.normal(size=200)
    wrong = -y * 1.0 + rng.normal(size=200)  # higher for the *supported* answers
    case = fit_case(["good", "wrong"], np.c_[good, wrong], y)
    assert case.features == ["good"] and case.directions["wrong"] < 0.5 < case.directions["good"]
    assert case.metrics["auroc"] > 0.8 and case.n == 200 and case.positives == 100
    with pytest.raises(ExplainError, match="at least 4"):
        fit_case(["good"], good[:5, None], y[:5])


def _hand_calibration() -> Calibration:
    ctx = Case(features=["ungrounded_max", "mean_neg_logprob"], coefficients=[1.2, -0.4], intercept=0.1,
               mean=[0.5, 3.0], scale=[2.0, 1.5], fitted_on="hand-made")
    return Calibration(model="tiny", cases={"context": ctx})


def test_risk_and_verdict_follow_the_calibration(tiny_lm, tmp_path):
    cal = _hand_calibration()
    path = cal.save(tmp_path / "cal.json")
    rep = signals(tiny_lm, QUESTION, response="The sky is blue. It is big.", context=CONTEXT,
                  calibration=str(path), progress=False, context_share=False)
    s = rep.scores
    z = 0.1 + 1.2 * (s["ungrounded_max"] - 0.5) / 2.0 - 0.4 * (s["mean_neg_logprob"] - 3.0) / 1.5
    sentence_risks = []
    for sent in rep.sentences:
        zs = 0.1 + 1.2 * (sent.scores["ungrounded_max"] - 0.5) / 2.0 - 0.4 * (sent.scores["mean_neg_logprob"] - 3.0) / 1.5
        assert sent.risk == pytest.approx(1 / (1 + math.exp(-zs)), abs=1e-9)
        sentence_risks.append(1 / (1 + math.exp(-zs)))
    # the answer is at least as risky as its riskiest sentence
    assert rep.risk == pytest.approx(max(1 / (1 + math.exp(-z)), *sentence_risks), abs=1e-9)
    assert rep.verdict == verdict(rep.risk) and rep.verdict in ("supported", "uncertain", "likely hallucinated")
    c, lp = rep.token_context_contrast.astype(float), rep.token_logprob.astype(float)
    zt = 0.1 + 1.2 * (np.maximum(0, -c) - 0.5) / 2.0 - 0.4 * (-lp - 3.0) / 1.5
    np.testing.assert_allclose(rep.token_risk(), 1 / (1 + np.exp(-zt)), atol=1e-6)
    assert "calibrated for tiny" in rep.risk_note
    # the no-context case is absent from this calibration: no risk, and a note that says why
    bare = signals(tiny_lm, QUESTION, response="blue", calibration=cal, progress=False)
    assert bare.risk is None and bare.verdict is None and "no case without a context" in bare.risk_note


def test_no_calibration_means_no_risk(tiny_lm):
    rep = signals(tiny_lm, QUESTION, response="blue", progress=False)
    assert rep.risk is None and rep.verdict is None and "no calibration ships" in rep.risk_note
    np.testing.assert_allclose(rep.token_risk(), 1 - np.exp(rep.token_logprob.astype(float)))
    assert signals(tiny_lm, QUESTION, response="blue", calibration=False, progress=False).risk is None


@pytest.mark.parametrize("content, message", [(None, "does not exist"), ("{", "not valid JSON"),
                                              ('{"cases": 3}', "not a whylm signals calibration")])
def test_bad_calibration_file_is_one_line(tiny_lm, tmp_path, content, message):
    path = tmp_path / "cal.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ExplainError, match=message) as info:
        signals(tiny_lm, QUESTION, response="blue", calibration=str(path), progress=False)
    assert "\n" not in str(info.value)


def _examples() -> list[dict]:
    """Grounded (label 0: the context states the answer) vs. unrelated answers (label 1)."""
    facts = [("The sky is blue.", "What colour is the sky?", "blue", "seventeen trains"),
             ("Grass is green.", "What colour is grass?", "green", "a purple engine"),
             ("Snow is white.", "What colour is snow?", "white", "loud copper"),
             ("The sun is hot.", "Is the sun hot?", "hot", "a slow violin"),
             ("Ice is cold.", "Is ice cold?", "cold", "nine rivers")]
    out = []
    for ctx, q, right, wrong in facts:
        out.append(dict(prompt=q, response=right, context=ctx, label=0))
        out.append(dict(prompt=q, response=wrong, context=ctx, label=1))
    return out


def test_calibrate_signals_fits_saves_and_is_used(tiny_lm, tmp_path):
    cal = calibrate_signals(tiny_lm, _examples(), progress=False, description="toy facts")
    assert set(cal.cases) == {"context"} and cal.model == tiny_lm.name
    case = cal.cases["context"]
    assert case.n == 10 and case.positives == 5 and case.fitted_on == "toy facts"
    assert all(case.directions[f] >= 0.5 for f in case.features)
    back = Calibration.from_json(cal.to_json())
    assert back.to_dict() == cal.to_dict()
    rep = signals(tiny_lm, "What colour is grass?", response="green", context="Grass is green.",
                  calibration=cal.save(tmp_path / "c.json"), progress=False, context_share=False)
    assert rep.risk == pytest.approx(cal.predict(rep.scores, True))
    with pytest.raises(ExplainError, match="label must be 1"):
        calibrate_signals(tiny_lm, [dict(prompt="q", response="a", label="yes")], progress=False)


def test_cli_signals_calibrate(tiny_dir, tmp_path, capsys):
    data = tmp_path / "labelled.jsonl"
    data.write_text("\n".join(json.dumps(e) for e in _examples()) + "\n")
    out = tmp_path / "cal.json"
    assert main(["signals", "calibrate", str(data), "--out", str(out), "--model", tiny_dir, "--no-progress"]) == 0
    cal, note = load_calibration(str(out))
    assert note == "" and cal.cases["context"].n == 10
    assert main(["signals", "calibrate", str(data), "--model", tiny_dir]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert main(["signals", "calibrate", str(tmp_path / "missing.jsonl"), "--out", str(out), "--model", tiny_dir]) == 2
    assert "does not exist" in capsys.readouterr().err.strip().splitlines()[-1]


def test_shipped_calibration_for_the_embedded_model():
    path = SHIPPED / f"{model_slug('SmolLM2-135M-Instruct')}.json"
    cal, note = load_calibration(None, "SmolLM2-135M-Instruct")
    assert path.is_file() and note == "" and cal is not None
    # without a context no score of the 135M model points the right way on HaluEval dev: no case,
    # and the file says why (so signals() answers risk=None with that reason, not a fake number)
    assert set(cal.cases) == {"context"}
    assert any(n.startswith("case skipped, no_context: no signal score separates") for n in cal.notes)
    for case in cal.cases.values():
        # fitted on more than one distribution: HaluEval's dev half and the fictional grounded cases'
        assert "HaluEval" in case.fitted_on and "grounded_cases" in case.fitted_on and "dev" in case.fitted_on
        assert case.n >= 100
        assert all(case.directions[f] >= 0.5 for f in case.features)  # wrong-way scores were dropped
        assert all(c >= 0 for c in case.coefficients)  # a higher score never lowers the risk
        assert {"auroc", "brier", "ece", "accuracy"} <= set(case.metrics)
    assert {"unsupported", "contradicted", "unseen_names"} & set(cal.cases["context"].features)
    assert cal.cases["context"].metrics["auroc"] > 0.85


def test_no_context_case_missing_gives_the_reason(tiny_lm):
    cal, _ = load_calibration(None, "SmolLM2-135M-Instruct")
    rep = signals(tiny_lm, QUESTION, response="blue", calibration=cal, progress=False)
    assert rep.risk is None and "no case without a context (no signal score separates" in rep.risk_note
