"""explain.audit: rows equal direct signals()/attribute() calls, ids, bad input, resume rules, summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from explain import WhylmError, attribute, signals
from explain.audit.api import AuditSummary, audit, risk_histogram, summarise
from explain.audit.records import read_records, record_id
from explain.audit.store import PartStore

RECORDS = [
    {"id": "plain", "prompt": "The capital of France is", "response": " Paris"},
    {"id": "ctx", "prompt": "What colour is the sky?", "context": "the sky is blue.", "response": " blue."},
    {"prompt": "The quick brown fox", "response": " jumps over the lazy dog."},
]


def one_line_error(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def check_rows_equal_direct_calls(lm, records, out, method, seed):
    """Every row of an audit equals signals() (and attribute()) called directly on its record."""
    summary = audit(records, lm, out=out, attribute=method, seed=seed, progress=False)
    assert (summary.records, summary.processed, summary.errors) == (len(records), len(records), 0)
    df = pd.read_parquet(out).set_index("id")
    assert sorted(df.index) == sorted(r.get("id") or record_id(r) for r in records)
    for rec in records:
        row = df.loc[rec.get("id") or record_id(rec)]
        rep = signals(lm, rec["prompt"], response=rec["response"], context=rec.get("context"),
                      seed=seed, progress=False)
        for name, value in rep.scores.items():
            assert row[f"score.{name}"] == pytest.approx(value, abs=1e-5), name
        if rec.get("context") is None:
            assert math.isnan(row["score.ungrounded_max"])  # the column exists, null without a context
        risk = getattr(rep, "risk", None)
        assert pd.isna(row["risk"]) if risk is None else row["risk"] == pytest.approx(risk, abs=1e-5)
        assert row["verdict"] == getattr(rep, "verdict", None) or (pd.isna(row["verdict"])
                                                                    and getattr(rep, "verdict", None) is None)
        assert json.loads(row["report"])["tokens"] == rep.tokens
        assert row["seed"] == seed and row["model"] == lm.name
        assert row["response"] == rep.response == rec["response"].strip() and not row["generated"]
        if method:
            prompt = {"context": rec["context"], "question": rec["prompt"]} if rec.get("context") else rec["prompt"]
            res = attribute(lm, prompt, target=rep.response, method=method, chat=True, progress=False)
            np.testing.assert_allclose(json.loads(row["attribution"])["seq_attr"], res.seq_attr, atol=1e-5)
            assert [f for f, _ in json.loads(row["top_features"])] == [f for f, _ in res.top_features(5)]
            assert row["method"] == method
        else:
            assert pd.isna(row["attribution"]) and pd.isna(row["top_features"])
    return df


def test_rows_equal_direct_signals(tiny_lm, tmp_path):
    check_rows_equal_direct_calls(tiny_lm, [RECORDS[0], RECORDS[2]], tmp_path / "a.parquet", None, 3)


def test_rows_equal_direct_signals_and_attribution_with_context(tiny_lm, tmp_path):
    df = check_rows_equal_direct_calls(tiny_lm, [RECORDS[1]], tmp_path / "a.parquet", "ablation", 0)
    assert json.loads(df.loc["ctx", "attribution"])["input_tokens"] == ["context", "question"]


@pytest.mark.slow
def test_rows_equal_direct_calls_on_the_embedded_model(embedded_lm, tmp_path):
    check_rows_equal_direct_calls(embedded_lm, RECORDS[:2], tmp_path / "a.parquet", None, 1)


def test_missing_response_is_generated_and_bad_records_get_their_error(tiny_lm, tmp_path):
    long_prompt = " ".join(["Paris"] * 400)  # longer than the tiny model's 256 positions
    recs = [{"id": "gen", "prompt": "The capital of Italy is"}, {"id": "num", "prompt": 3},
            {"id": "none", "response": "x"}, {"id": "long", "prompt": long_prompt, "response": " x"}]
    audit(recs, tiny_lm, out=tmp_path / "o", progress=False, max_new_tokens=6)
    df = pd.read_parquet(tmp_path / "o").set_index("id")
    rep = signals(tiny_lm, "The capital of Italy is", max_new_tokens=6, progress=False)
    assert df.loc["gen", "generated"] and df.loc["gen", "response"] == rep.response
    assert df.loc["gen", "score.mean_neg_logprob"] == pytest.approx(rep.scores["mean_neg_logprob"], abs=1e-5)
    assert df.loc["num", "error"] == "the record's 'prompt' is a int, not text"
    assert df.loc["none", "error"] == "the record has no 'prompt'"
    assert "long" in df.loc["long", "error"] or "token" in df.loc["long", "error"]
    assert pd.isna(df.loc["gen", "error"])


def test_ids_are_stable_and_duplicates_stop_in_one_line():
    assert record_id({"prompt": "a", "response": "b"}) == record_id({"response": "b", "prompt": "a", "x": 1})
    assert record_id({"prompt": "a", "response": "b"}) != record_id({"prompt": "a", "context": "b"})
    with pytest.raises(WhylmError) as e:
        read_records([{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}])
    assert one_line_error(e) == f"duplicate id '{record_id({'prompt': 'a'})}' in the records (items 1 and 3): ids must be unique"


def test_files_jsonl_csv_parquet_and_malformed_lines(tmp_path):
    good = tmp_path / "r.jsonl"
    good.write_text('{"id": 1, "prompt": "a"}\n\n{"prompt": "b", "context": "c"}\n')
    assert [r["id"] for r in read_records(good)] == ["1", record_id({"prompt": "b", "context": "c"})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": oops}\n{"prompt": "d"}\n')
    with pytest.raises(WhylmError) as e:
        read_records(bad)
    assert one_line_error(e).startswith("bad.jsonl line 3 is not valid JSON")
    arr = tmp_path / "arr.jsonl"
    arr.write_text('{"prompt": "a"}\n[1, 2]\n')
    with pytest.raises(WhylmError, match="line 2 is a JSON list"):
        read_records(arr)
    csv = tmp_path / "r.csv"
    csv.write_text('id,prompt,response\nx,"hi, there",\ny,b,c,extra\n')
    with pytest.raises(WhylmError, match="r.csv line 3 has a different number of fields"):
        read_records(csv)
    csv.write_text('id,prompt,response\nx,"hi, there",\ny,b,c\n')
    assert read_records(csv)[0] == {"id": "x", "prompt": "hi, there", "response": None, "context": None}
    pq_path = tmp_path / "r.parquet"
    pd.DataFrame({"prompt": ["a", "b"], "response": ["r", None]}).to_parquet(pq_path)
    assert [r["response"] for r in read_records(pq_path)] == ["r", None]
    with pytest.raises(WhylmError, match="does not exist"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(WhylmError, match="unknown format"):
        read_records(good.with_suffix(".txt").write_text("x") and good.with_suffix(".txt"))


def test_resume_skips_done_ids_and_refuses_other_settings(tiny_lm, tmp_path):
    out = tmp_path / "a.parquet"
    first = audit(RECORDS[:2], tiny_lm, out=out, progress=False, chunk_size=1)
    assert first.processed == 2 and len(list(out.glob("part-*.parquet"))) == 2
    again = audit(RECORDS, tiny_lm, out=out, progress=False)
    assert (again.skipped, again.processed, again.records) == (2, 1, 3)
    ids = pd.read_parquet(out)["id"].tolist()
    assert len(ids) == len(set(ids)) == 3
    for kwargs, key in (({"seed": 1}, "seed"), ({"attribute": "ablation"}, "method"),
                        ({"signals": False, "attribute": "ablation"}, "signals")):
        with pytest.raises(WhylmError) as e:
            audit(RECORDS, tiny_lm, out=out, progress=False, **kwargs)
        assert f"was made with {key}=" in one_line_error(e)
    with pytest.raises(WhylmError, match="already holds 3 committed part"):
        audit(RECORDS, tiny_lm, out=out, progress=False, resume=False)
    assert summarise(out).records == 3


def test_half_written_chunk_is_ignored_and_cleaned(tmp_path):
    store = PartStore(tmp_path / "o")
    store.open({"seed": 0}, ["mean_neg_logprob"], resume=True)
    store.commit([{"id": "a", "prompt": "p"}])
    store.close()  # one writer at a time: the next store below takes the folder over
    (tmp_path / "o" / ".tmp-part-000001-dead.parquet").write_bytes(b"PAR1 half a file")
    assert pd.read_parquet(tmp_path / "o")["id"].tolist() == ["a"]  # readers skip it
    again = PartStore(tmp_path / "o")
    again.open({"seed": 0}, ["mean_neg_logprob"], resume=True)
    assert not list((tmp_path / "o").glob(".tmp-*")) and again.done_ids() == {"a"}
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(WhylmError, match="is an existing file"):
        PartStore(tmp_path / "file.parquet").open({}, [], resume=True)


def test_bad_arguments_are_one_line(tiny_lm, tmp_path):
    for kwargs, match in (({"engine": "gpu"}, "unknown engine 'gpu'"),
                          ({"attribute": "magic"}, "unknown attribution method 'magic'"),
                          ({"signals": False}, "nothing to audit"),
                          ({"engine": "local", "workers": 2}, "the local engine runs 1 worker"),
                          ({"engine": "processes", "workers": 0}, "workers must be a positive integer"),
                          ({"max_seconds": 1e-9}, "over the")):
        with pytest.raises(WhylmError, match=match):
            audit(RECORDS, tiny_lm, out=tmp_path / "x", progress=False, **kwargs)
    with pytest.raises(WhylmError, match="got one dict"):
        audit(RECORDS[0], tiny_lm, out=tmp_path / "y")


def test_summary_roundtrip_escaped_html_and_histogram(tiny_lm, tmp_path):
    xss = "<img src=x onerror=alert(1)>"
    s = audit([{"id": xss, "prompt": "The capital of France is", "response": " Paris"}], tiny_lm,
              out=tmp_path / "s", progress=False)
    assert AuditSummary.from_json(s.to_json()) == s
    assert xss not in s._repr_html_() and "&lt;img" in s._repr_html_()
    assert s.by_verdict and sum(s.by_verdict.values()) == 1 and s.slowest[0]["id"] == xss
    fig = s.figure()
    assert fig.data[0].type == "histogram" and len(fig.data[0].x) == 1
    assert "risk" in risk_histogram(pd.DataFrame({"risk": [0.2, 0.7]})).layout.title.text


def test_cli_audit_prints_estimate_and_summary(tiny_dir, tmp_path, capsys):
    from dashboard.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(RECORDS[0]) + "\n")
    out = tmp_path / "cli.parquet"
    assert main(["audit", str(src), "--out", str(out), "--model", tiny_dir, "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "estimate: audit of 1 records" in cap.err
    assert "audit of 1 records" in cap.out and "throughput" in cap.out and "errors" in cap.out
    assert pd.read_parquet(out)["id"].tolist() == ["plain"]
    assert main(["audit", str(src), "--out", str(out), "--model", tiny_dir, "--seed", "5"]) == 2
    assert "was made with seed=0" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt":\n')
    assert main(["audit", str(bad), "--out", str(tmp_path / "b"), "--model", tiny_dir]) == 2
    assert "bad.jsonl line 2 is not valid JSON" in capsys.readouterr().err


def test_cli_help_has_an_example(capsys):
    from dashboard.cli import main

    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "whylm audit outputs.jsonl --out audit.parquet" in capsys.readouterr().out
