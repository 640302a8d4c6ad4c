"""An audit's evidence columns, and the Audits page: a record's sentences with their evidence, plain
score names in a table that fits, "Open in Signals", and a calibration re-applied to the stored scores."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from explain import signals  # noqa: E402
from explain.audit.api import audit  # noqa: E402
from explain.signals import SCORE_DOCS  # noqa: E402

XSS = "<img src=x onerror=alert(1)>"
CONTEXT = f"Mira Tesk founded Ulvar in 1931. The town sits on the {XSS} river. Its mayor is Ann Oke."
RECORDS = [
    {"id": "ulvar", "prompt": "When was Ulvar founded?", "context": CONTEXT,
     "response": f"Ulvar was founded in 1931. Its river is {XSS}."},
    {"id": "mayor", "prompt": "Who is the mayor?", "context": CONTEXT, "response": "Ann Oke."},
    {"id": "plain", "prompt": "The capital of France is", "response": " Paris"},
]
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture
def audited(tmp_path, monkeypatch, tiny_lm) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("WHYLM_DATA_DIR", str(data))
    monkeypatch.delenv("WHYLM_MODEL", raising=False)
    audit(RECORDS, tiny_lm, out=data / "runs" / "ev.parquet", progress=False)
    return data


def test_evidence_columns_equal_a_direct_signals_call(tiny_lm, audited):
    df = pd.read_parquet(audited / "runs" / "ev.parquet").set_index("id")
    for rec in RECORDS:
        row = df.loc[rec["id"]]
        rep = signals(tiny_lm, rec["prompt"], response=rec["response"], context=rec.get("context"), progress=False)
        if rec.get("context") is None:
            assert pd.isna(row["evidence"]) and pd.isna(row["n_unsupported_sentences"])
            continue
        rows = json.loads(row["evidence"])
        assert [r["sentence"] for r in rows] == [s.text for s in rep.sentences]
        assert [r["verdict"] for r in rows] == [s.verdict for s in rep.sentences]
        for r, s in zip(rows, rep.sentences):
            assert [(e["source"], e["text"], e["start"], e["end"]) for e in r["evidence"]] == [
                (e.source, e.text, e.start, e.end) for e in s.evidence]
            assert [e["score"] for e in r["evidence"]] == pytest.approx([e.score for e in s.evidence], abs=1e-5)
            for e in r["evidence"]:  # start/end point at the evidence's text in the record's context
                assert CONTEXT[e["start"]:e["end"]].strip() == e["text"]
        assert row["n_unsupported_sentences"] == sum(not s.evidence or s.verdict == "likely hallucinated" for s in rep.sentences)


def open_record(audited: Path, rid: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    at.switch_page("pages/audits_page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="au_record").set_value(rid).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_record_shows_its_sentences_with_evidence_and_plain_scores(audited):
    at = open_record(audited, "ulvar")
    row = pd.read_parquet(audited / "runs" / "ev.parquet").set_index("id").loc["ulvar"]
    evidence = json.loads(row["evidence"])
    body = "".join(h.proto.body for h in at.get("html"))
    assert "whylm-sentences" in body and XSS not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    picker = at.selectbox(key="au_sentence")
    assert len(picker.options) == len(evidence) == 2
    for k, sent in enumerate(evidence):
        picker = at.selectbox(key="au_sentence").set_value(k)
        at.run()
        body = "".join(h.proto.body for h in at.get("html"))
        if sent["evidence"]:
            assert f"best is context sentence {sent['evidence'][0]['source'] + 1}" in body and "<mark" in body
        else:
            assert f"Sentence {k + 1}: nothing in the context supports this." in body and "<mark" not in body
    table = next(b for b in (h.proto.body for h in at.get("html")) if "whylm-score-table" in b)
    names = re.findall(r"<tr title=\"[^\"]*\"><td>([^<]*)</td>", table)
    assert len(names) >= 5 and not set(names) & set(SCORE_DOCS)  # plain names, no raw keys
    assert "no context sentence supports it" in names
    assert table.count("<th>") == 3  # three columns, not one per score key
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)  # no risk here: the histogram names its score plainly
    assert "(no calibrated risk in this audit)" in spec["layout"]["title"]["text"]
    assert "score." not in spec["layout"]["title"]["text"] + spec["layout"]["xaxis"]["title"]["text"]


def test_open_in_signals_shows_the_record_there(audited):
    at = open_record(audited, "mayor")
    at.button(key="au_open_signals").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Signals"
    assert at.text_area(key="sg_prompt").value == "Who is the mayor?"
    assert at.text_area(key="sg_context").value == CONTEXT
    assert at.text_area(key="sg_response").value == "Ann Oke."
    assert any("Record mayor of audit runs/ev.parquet" in c.value for c in at.caption)
    assert at.selectbox(key="sg_sentence").options  # the record's sentences, as on the Audits page
    # the calibration picker shows a choice (a None value would show the empty "Choose an option")
    assert at.selectbox(key="sg_calibration").value == "shipped"


def test_a_calibration_file_is_re_applied_to_the_stored_scores(audited):
    w, b = 0.5, -1.0
    case = {"features": ["mean_neg_logprob"], "coefficients": [w], "intercept": b, "mean": [0.0], "scale": [1.0]}
    (audited / "cal.json").write_text(json.dumps({"model": "tiny", "cases": {"context": case, "no_context": case}}))
    at = open_record(audited, "plain")
    box = at.selectbox(key="au_calibration")
    assert box.options == ["As audited (default)", "cal.json (for tiny)"]
    assert at.dataframe[0].value["risk"].isna().all()  # the tiny model ships no calibration
    box.set_value(str((audited / "cal.json").resolve())).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("id")
    stored = pd.read_parquet(audited / "runs" / "ev.parquet").set_index("id")
    for rid in table.index:
        x = stored.loc[rid, "score.mean_neg_logprob"]
        assert table.loc[rid, "risk"] == pytest.approx(1 / (1 + math.exp(-(b + w * x))), abs=1e-9)
