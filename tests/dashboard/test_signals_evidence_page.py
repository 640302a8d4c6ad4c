"""The Signals page and `whylm signals` show each answer sentence with its evidence (or that nothing in
the context supports it), scores by plain name, user text escaped, and a calibration picked from the
dashboard's own folders."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.cli import main  # noqa: E402
from explain.cli import signals_lines  # noqa: E402
from explain.evidence_view import score_range  # noqa: E402
from explain.signals import SCORE_DOCS, Evidence, SentenceSignals, SignalReport  # noqa: E402

XSS = "<img src=x onerror=alert(1)>"
CONTEXT = f"Mira Tesk founded Ulvar in 1931. The town sits on the {XSS} river. Its mayor is Ann Oke."
PAGE = "from dashboard.pages import signals_page\nsignals_page.render()\n"


def report() -> SignalReport:
    """A two-sentence answer: the first rests on context sentence 1, nothing supports the second."""
    first, second = "Ulvar was founded in 1931.", f" Its river is {XSS}."
    tokens = [first, second]
    ev = Evidence(source=0, text="Mira Tesk founded Ulvar in 1931.", start=0, end=32, score=2.75)
    return SignalReport(
        prompt=f"When was Ulvar founded? {XSS}", response=first + second, context=CONTEXT,
        tokens=tokens, token_ids=[1, 2], token_logprob=np.log(np.array([0.8, 0.1], np.float32)),
        token_entropy=np.ones(2, np.float32), token_margin=np.ones(2, np.float32),
        scores={"mean_neg_logprob": 1.26, "unsupported": 0.97, "ungrounded": 0.4},
        sentences=[SentenceSignals(first, 0, 1, risk=0.12, verdict="supported", evidence=[ev]),
                   SentenceSignals(second.strip(), 1, 2, risk=0.91, verdict="likely hallucinated", evidence=[])],
        context_sentences=["Mira Tesk founded Ulvar in 1931.", f"The town sits on the {XSS} river.",
                           "Its mayor is Ann Oke."],
        risk=0.91, verdict="likely hallucinated", risk_note="test calibration",
    )


def htmls(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WHYLM_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def shown(rep: SignalReport, data_dir: Path) -> AppTest:
    at = AppTest.from_string(PAGE, default_timeout=60)
    at.session_state["sg_state"] = {"inputs": {"prompt": rep.prompt}, "result": rep.to_dict(), "run_id": None}
    return at.run()


def test_picking_a_sentence_highlights_its_evidence_or_says_nothing_supports_it(data_dir):
    at = shown(report(), data_dir)
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key="sg_sentence")
    assert picker.options == ["1 · supported (risk 0.12) · Ulvar was founded in 1931.",
                              f"2 · likely hallucinated (risk 0.91) · Its river is {XSS}."]
    body = "".join(htmls(at))
    # sentence 1 is picked first: its evidence, the first 32 characters of the context, is marked
    assert '<mark class="whylm-evidence"' in body and ">Mira Tesk founded Ulvar in 1931.</mark>" in body
    assert "best is context sentence 1 (support 2.75 nats" in body
    assert "Sentence 1: nothing in the context supports this" not in body
    picker.set_value(1).run()
    body = "".join(htmls(at))
    assert "Sentence 2: nothing in the context supports this." in body and "<mark" not in body
    table = next(b for b in htmls(at) if "whylm-sentence-table" in b)
    assert "<td>Mira Tesk founded Ulvar in 1931.</td>" in table  # sentence 1's best evidence
    assert "<td>nothing in the context supports this</td>" in table  # sentence 2's
    # user and model text is escaped wherever it becomes HTML
    assert XSS not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_sentences_are_coloured_by_their_risk(data_dir):
    at = shown(report(), data_dir)
    body = next(b for b in htmls(at) if "whylm-sentences" in b)
    # risk 0.12 -> alpha 0.12 * 0.6, risk 0.91 -> 0.91 * 0.6 (white to red)
    assert "rgba(220, 38, 38, 0.072)" in body and "rgba(220, 38, 38, 0.546)" in body


ROW = re.compile(r'<tr title="([a-z_]+): [^"]*"><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>')


def score_rows(at: AppTest) -> list[tuple[str, str, str, float]]:
    """(key, plain name, range, value) of each row of the page's score table."""
    table = next(b for b in htmls(at) if "whylm-score-table" in b)
    return [(k, name, rng, float(v)) for k, name, rng, v in ROW.findall(table)]


def test_scores_have_plain_names_and_ranges_not_keys(data_dir):
    at = shown(report(), data_dir)
    assert score_rows(at) == [
        ("mean_neg_logprob", "surprise (-log p), average over tokens", "0 and up, nats", 1.26),
        ("unsupported", "no context sentence supports it", "0 to 1", 0.97),
        ("ungrounded", "context argues against it, average over tokens", "0 and up, nats", 0.4),
    ]


def test_a_real_run_shows_evidence_and_no_negative_not_supported_value(data_dir, tiny_dir, monkeypatch):
    monkeypatch.setenv("WHYLM_MODEL_DIRS", tiny_dir)
    monkeypatch.delenv("WHYLM_MODEL", raising=False)
    at = AppTest.from_string(PAGE, default_timeout=90).run()
    at.selectbox(key="sg_model_choice").set_value(str(Path(tiny_dir).resolve())).run()
    at.text_area(key="sg_prompt").set_value("When was Ulvar founded?")
    at.text_area(key="sg_context").set_value(CONTEXT + "\n")
    at.text_area(key="sg_response").set_value(f"Ulvar was founded in 1931. Its river is {XSS}.")
    at.button(key="sg_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    result = SignalReport.from_dict(at.session_state["sg_state"]["result"])
    assert len(result.context_sentences) == 3 and len(result.sentences) == 2
    body = "".join(htmls(at))
    first = result.sentences[0]
    if first.evidence:  # whichever the tiny random model finds, the page shows the same
        assert "<mark" in body and f"best is context sentence {first.evidence[0].source + 1}" in body
    else:
        assert "Sentence 1: nothing in the context supports this." in body
    assert XSS not in body
    rows = score_rows(at)
    assert len(rows) >= 5
    for key, name, rng, value in rows:  # every shown score: a plain name, and a value inside its shown range
        assert name not in SCORE_DOCS and rng == score_range(key)
        if rng.startswith("0"):
            assert value >= 0, (name, value)
        if rng.startswith("0 to 1"):
            assert value <= 1, (name, value)


def cal_file(path: Path, intercept: float) -> Path:
    case = {"features": ["mean_neg_logprob"], "coefficients": [0.0], "intercept": intercept,
            "mean": [0.0], "scale": [1.0]}
    path.write_text(json.dumps({"model": "tiny", "cases": {"context": case, "no_context": case}}))
    return path


def test_the_calibration_picker_offers_files_under_the_data_folder_and_sets_the_risk(data_dir, tiny_dir,
                                                                                     monkeypatch, tmp_path):
    monkeypatch.setenv("WHYLM_MODEL_DIRS", tiny_dir)
    monkeypatch.delenv("WHYLM_MODEL", raising=False)
    cal = cal_file(data_dir / "forced.json", 2.0)
    cal_file(tmp_path / "outside.json", -2.0)  # not under a dashboard folder: never offered
    at = AppTest.from_string(PAGE, default_timeout=90).run()
    options = at.selectbox(key="sg_calibration").options
    assert options == ["The one shipped for the model (default)", "None: no risk", "forced.json (for tiny)"]
    at.selectbox(key="sg_model_choice").set_value(str(Path(tiny_dir).resolve())).run()
    at.text_area(key="sg_prompt").set_value("Who wrote it?")
    at.text_area(key="sg_response").set_value("Ann Oke wrote it.")
    at.button(key="sg_run").click().run()
    assert "No calibrated verdict" in "".join(htmls(at))  # the tiny model ships none
    at.selectbox(key="sg_calibration").set_value(str(cal.resolve())).run()
    at.button(key="sg_run").click().run()
    assert not at.exception and not at.error
    # intercept 2, no weight: risk = 1 / (1 + e^-2) = 0.88 whatever the answer
    assert at.session_state["sg_state"]["result"]["risk"] == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert "risk 0.88" in "".join(htmls(at))


def test_signals_lines_print_each_sentence_with_its_best_evidence():
    lines = signals_lines(report())
    assert lines[:6] == [
        f"response: Ulvar was founded in 1931. Its river is {XSS}.",
        "  verdict: likely hallucinated (risk 0.91 that the answer is not supported; supported < 0.3, "
        "likely hallucinated >= 0.7)",
        "  sentences:",
        '    1. "Ulvar was founded in 1931." supported (risk 0.12)',
        '       evidence: "Mira Tesk founded Ulvar in 1931." (context sentence 1, support 2.75 nats)',
        f'    2. "Its river is {XSS}." likely hallucinated (risk 0.91)',
    ]
    assert lines[6] == "       evidence: nothing in the context supports this"
    assert "    no context sentence supports it: 0.970 (range 0 to 1) [unsupported]" in lines


def test_cli_signals_with_a_context_file_prints_and_writes_evidence(tiny_dir, tmp_path, capsys):
    ctx = tmp_path / "ctx.txt"
    ctx.write_text(CONTEXT + "\n")
    out = tmp_path / "r.json"
    code = main(["signals", "When was Ulvar founded?", "--response", "Ulvar was founded in 1931. It is old.",
                 "--context-file", str(ctx), "--model", tiny_dir, "--json", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    data = json.loads(out.read_text())
    assert len(data["context_sentences"]) == 3
    at = printed.index("  sentences:")
    for k, sent in enumerate(data["sentences"]):
        assert printed[at + 1 + 2 * k].startswith(f'    {k + 1}. "{sent["text"]}" ')
        ev = sent["evidence"]
        head = f'       evidence: "{ev[0]["text"]}" (context sentence {ev[0]["source"] + 1}, ' if ev else ""
        if not ev:
            assert printed[at + 2 + 2 * k] == "       evidence: nothing in the context supports this"
        elif ev[0]["basis"] == "words":  # listed because it states the sentence, not by its removal
            assert printed[at + 2 + 2 * k].startswith(head + "states it in the same words")
            assert f'({ev[0]["score"]:.2f} nats)' in printed[at + 2 + 2 * k]
        else:
            assert printed[at + 2 + 2 * k] == head + f'support {ev[0]["score"]:.2f} nats)'
    assert not any(line.strip().startswith(("ungrounded", "mean_neg_logprob")) for line in printed)


def test_cli_signals_help_shows_a_context_file_example(capsys):
    with pytest.raises(SystemExit):
        main(["signals", "--help"])
    text = capsys.readouterr().out
    assert "--context-file passage.txt" in text and "nothing in the context supports this" in text
