"""The evaluation-loop example runs, writes JSON lines, and resumes where it stopped."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_evaluation_loop_is_resumable(tmp_path, monkeypatch) -> None:
    pairs = tmp_path / "pairs.jsonl"
    lines = (ROOT / "examples/data/eval_pairs.jsonl").read_text().splitlines()[:3]
    pairs.write_text("\n".join(lines) + "\n" + json.dumps({"id": "bad", "prompt": "", "response": " x"}) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"id": "capital-fr", "kept": True}) + "\n" + '{"id": "trunc')  # a crash mid-line
    module = runpy.run_path(str(ROOT / "examples/evaluation_loop.py"))
    assert module["main"]([str(pairs), str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()[1:]]
    assert [r["id"] for r in rows] == ["capital-it", "water", "bad"]
    assert rows[0]["output_tokens"] == [" Rome"] and len(rows[0]["token_attr"][0]) == len(rows[0]["input_tokens"])
    assert rows[2]["error"] == "prompt is empty"
    assert module["done_ids"](out) == {"capital-fr", "capital-it", "water", "bad"}
