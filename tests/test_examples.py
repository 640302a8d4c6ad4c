"""The evaluation-loop example audits a JSONL file into Parquet and resumes where it stopped."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_evaluation_loop_audits_and_resumes(tmp_path, capsys) -> None:
    pairs = tmp_path / "pairs.jsonl"
    lines = (ROOT / "examples/data/eval_pairs.jsonl").read_text().splitlines()[:3]
    pairs.write_text("\n".join(lines) + "\n" + json.dumps({"id": "bad", "prompt": "", "response": " x"}) + "\n")
    out = tmp_path / "audit.parquet"
    module = runpy.run_path(str(ROOT / "examples/evaluation_loop.py"))
    assert module["main"]([str(pairs), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 audited now (0 already done), 1 errors" in printed and "riskiest answers" in printed
    rows = pd.read_parquet(out).set_index("id")
    assert sorted(rows.index) == ["bad", "capital-fr", "capital-it", "water"]
    assert rows.loc["bad", "error"].startswith("prompt is empty")
    assert rows.loc["capital-it", "response"] == " Rome" and rows.loc["capital-it", "score.mean_neg_logprob"] > 0
    assert module["main"]([str(pairs), str(out)]) == 0  # a second run resumes: nothing left to do
    assert "0 audited now (4 already done)" in capsys.readouterr().out
