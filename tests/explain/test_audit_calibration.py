"""calibration= in audit() and `whylm audit --calibration`: a calibration file changes the risk column.

The expected risks are computed here by hand from the file's coefficients (the logistic formula
written out in the test), not by the calibration code under test.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dashboard.cli import main
from explain import WhylmError
from explain.audit.api import audit

RECORDS = [
    {"id": "paris", "prompt": "The capital of France is", "response": " Paris"},
    {"id": "fox", "prompt": "The quick brown fox", "response": " jumps over the lazy dog."},
]


def calibration_file(path, intercept: float, weight: float = 0.0, mean: float = 0.0, scale: float = 1.0):
    """A calibration (the file format `whylm signals calibrate` writes) over one score."""
    case = {"features": ["mean_neg_logprob"], "coefficients": [weight], "intercept": intercept,
            "mean": [mean], "scale": [scale]}
    path.write_text(json.dumps({"model": "tiny", "cases": {"no_context": case, "context": case}}))
    return path


def logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_a_calibration_file_sets_the_audit_risk(tiny_lm, tmp_path):
    # intercept 2, no weight: every record's risk is 1 / (1 + e^-2) = 0.8808, "likely hallucinated"
    cal = calibration_file(tmp_path / "forced.json", intercept=2.0)
    audit(RECORDS, tiny_lm, out=tmp_path / "forced", calibration=str(cal), progress=False)
    df = pd.read_parquet(tmp_path / "forced").set_index("id")
    assert df["risk"].tolist() == pytest.approx([0.8807970779778823] * 2, abs=1e-9)
    assert df["verdict"].tolist() == ["likely hallucinated"] * 2
    # without a calibration the tiny model gets no risk at all: the file is what changed the column
    audit(RECORDS, tiny_lm, out=tmp_path / "plain", progress=False)
    assert pd.read_parquet(tmp_path / "plain")["risk"].isna().all()


def test_the_calibration_weighs_each_records_score(tiny_lm, tmp_path):
    w, b, mean, scale = 1.5, -0.5, 4.0, 2.0
    cal = calibration_file(tmp_path / "weighted.json", intercept=b, weight=w, mean=mean, scale=scale)
    audit(RECORDS, tiny_lm, out=tmp_path / "w", calibration=cal, progress=False)
    df = pd.read_parquet(tmp_path / "w").set_index("id")
    for rid in ("paris", "fox"):
        x = df.loc[rid, "score.mean_neg_logprob"]
        assert df.loc[rid, "risk"] == pytest.approx(logistic(b + w * (x - mean) / scale), abs=1e-9)
        report = json.loads(df.loc[rid, "report"])
        assert report["risk"] == pytest.approx(df.loc[rid, "risk"], abs=1e-12)


def test_the_calibration_reaches_process_workers(tiny_dir, tmp_path):
    cal = calibration_file(tmp_path / "low.json", intercept=-3.0)  # 1 / (1 + e^3) = 0.0474, "supported"
    summary = audit(RECORDS, tiny_dir, out=tmp_path / "procs", engine="processes", workers=1,
                    calibration=cal, progress=False)
    assert summary.errors == 0 and summary.by_verdict == {"supported": 2}
    assert pd.read_parquet(tmp_path / "procs")["risk"].tolist() == pytest.approx([0.04742587317756678] * 2)


def test_resuming_with_another_calibration_is_refused(tiny_lm, tmp_path):
    out = tmp_path / "a"
    audit(RECORDS[:1], tiny_lm, out=out, calibration=calibration_file(tmp_path / "1.json", 2.0), progress=False)
    with pytest.raises(WhylmError, match="calibration_id") as info:
        audit(RECORDS, tiny_lm, out=out, calibration=calibration_file(tmp_path / "2.json", -2.0), progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("not json", "is not valid JSON"),
    ('{"cases": 3}', "not a whylm signals calibration"),
])
def test_a_bad_calibration_file_stops_the_audit_before_any_work(tiny_lm, tmp_path, content, message):
    path = tmp_path / "cal.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(WhylmError, match=message):
        audit(RECORDS, tiny_lm, out=tmp_path / "out", calibration=path, progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_audit_calibration_flag(tiny_dir, tmp_path, capsys):
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    cal = calibration_file(tmp_path / "cal.json", intercept=2.0)
    code = main(["audit", str(records), "--out", str(tmp_path / "out"), "--model", tiny_dir,
                 "--calibration", str(cal), "--no-progress"])
    assert code == 0
    assert "verdict: likely hallucinated" in capsys.readouterr().out
    code = main(["audit", str(records), "--out", str(tmp_path / "out2"), "--model", tiny_dir,
                 "--calibration", str(tmp_path / "missing.json"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == f"error: calibration file '{tmp_path / 'missing.json'}' does not exist"


def test_cli_audit_help_shows_the_calibration_example(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    assert "--calibration cal.json" in capsys.readouterr().out


@pytest.mark.slow
def test_the_calibration_reaches_ray_actors(tiny_dir, tmp_path):
    pytest.importorskip("ray.data")
    cal = calibration_file(tmp_path / "high.json", intercept=2.0)
    summary = audit(RECORDS, tiny_dir, out=tmp_path / "ray", engine="ray", workers=1, calibration=cal,
                    progress=False, engine_options={"cpus_per_worker": 1})
    assert summary.errors == 0 and summary.by_verdict == {"likely hallucinated": 2}
    assert pd.read_parquet(tmp_path / "ray")["risk"].tolist() == pytest.approx([0.8807970779778823] * 2)
