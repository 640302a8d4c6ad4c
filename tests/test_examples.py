"""The evaluation-loop example runs, writes JSON lines, and resumes where it stopped."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
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


class _CoinLLM:
    """A deterministic causal backend that always picks the first option: asked both ways round,
    it is a coin, so the proposal's directions come from the data alone."""

    name = "coin"
    model = "first-option"

    def choose(self, prompt, options):
        probs = np.full(len(options), 0.1 / max(1, len(options) - 1))
        probs[0] = 0.9
        return 0, probs / probs.sum()

    def complete(self, prompt, max_tokens=64):
        return "A"


def test_causal_pipeline_runs_to_the_end(capsys) -> None:
    module = runpy.run_path(str(ROOT / "examples/causal_pipeline.py"))
    code = module["main"](["--rows", "600", "--simulations", "2"], llm=_CoinLLM())
    out = capsys.readouterr().out
    assert code in (0, 1), out
    assert ("REJECTED" in out) == (code == 1)
    assert "Check against the data:" in out and "Against the true graph: SHD" in out
    assert "For reference, along the true graph:" in out.strip().splitlines()[-1]
    has_path = "Effect along the proposed graph:" in out
    assert has_path != ("no directed path from smoking to cancer" in out)


def test_causal_pipeline_reports_a_graph_without_a_path(capsys) -> None:
    import networkx as nx

    module = runpy.run_path(str(ROOT / "examples/causal_pipeline.py"))
    data = module["simulated_data"](600)
    wrong = nx.DiGraph([("cancer", "tar"), ("tar", "smoking")])  # every arrow reversed, genotype left out
    wrong.add_node("genotype")
    assert module["report"](wrong, data, simulations=2) == 1
    out = capsys.readouterr().out
    assert "no directed path from smoking to cancer" in out and "REJECTED" in out
    ref = float(out.strip().splitlines()[-1].split("true graph: ")[1].split(" ")[0])
    assert abs(ref - 1.08) < 0.1  # the simulated truth, 1.2 * 0.9
    assert module["main"](["--llm", "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown LLM backend")


@pytest.mark.slow
def test_causal_pipeline_on_the_embedded_model(capsys) -> None:
    module = runpy.run_path(str(ROOT / "examples/causal_pipeline.py"))
    assert module["main"](["--rows", "1000", "--simulations", "2"]) in (0, 1)
    assert "For reference, along the true graph:" in capsys.readouterr().out


def test_causal_pipeline_llm_options_are_the_cli_ones(capsys) -> None:
    module = runpy.run_path(str(ROOT / "examples/causal_pipeline.py"))
    assert module["main"](["--llm-model", "m"]) == 2
    assert capsys.readouterr().err.startswith("error: --llm-model goes with --llm-url")
