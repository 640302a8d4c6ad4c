"""Every script in examples/ runs in the tests: on the tiny model here, as a real process on the
embedded model in the ``slow`` tests."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# script -> the tests that run it (fast on the tiny model, slow on the embedded one)
COVERED = {
    "causal_pipeline.py": ("test_causal_pipeline_on_the_tiny_model", "test_causal_pipeline_script"),
    "evaluation_loop.py": ("test_evaluation_loop_on_the_tiny_model", "test_evaluation_loop_audits_and_resumes"),
    "signals_rag_check.py": ("test_signals_rag_check_on_the_tiny_model", "test_signals_rag_check_script"),
    "rag_sentence_attribution.py": ("test_rag_sentence_attribution_on_the_tiny_model",
                                    "test_rag_sentence_attribution_script"),
}


def test_every_example_is_run_by_a_test() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(COVERED), f"examples without a test: {sorted(scripts - set(COVERED))}"
    for names in COVERED.values():
        for name in names:
            assert callable(globals().get(name)), name


def _script(path: Path, args: list[str], tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run an example as a user would: ``python examples/X.py ARGS`` from the repo root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "WHYLM_LOG_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, str(path), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ols_slope(df, outcome: str, regressors: list[str]) -> float:
    """The first regressor's coefficient by least squares (an independent effect estimate)."""
    x = np.column_stack([np.ones(len(df))] + [df[c].to_numpy() for c in regressors])
    coef, *_ = np.linalg.lstsq(x, df[outcome].to_numpy(), rcond=None)
    return float(coef[1])


# ------------------------------------------------------------------------------- causal_pipeline
def _check_causal_output(out: str, module: dict) -> None:
    """The printed check and effect agree with numbers computed here from the example's data."""
    data = module["simulated_data"]()
    rate = re.search(r"(\d+)/(\d+) = ([0-9.]+)% of the implied independences", out)
    assert rate, out
    assert float(rate.group(3)) == pytest.approx(100 * int(rate.group(1)) / int(rate.group(2)), abs=0.05)
    effect = re.search(r"effect of smoking on cancer: (-?[0-9.]+) \(backdoor\.linear_regression, "
                       r"adjusting for ([^)]*)\)", out)
    if "no directed path from smoking to cancer" in out:
        return  # the proposed graph implies no effect (the embedded model's graph may say so)
    assert effect, out
    adjust = [] if effect.group(2) == "nothing" else [c.strip() for c in effect.group(2).split(",")]
    # an independent least-squares fit with the adjustment set the graph implies
    expected = _ols_slope(data, "cancer", ["smoking", *adjust])
    assert float(effect.group(1)) == pytest.approx(expected, abs=0.01), (effect.group(0), expected)


def test_causal_pipeline_on_the_tiny_model(tiny_lm, monkeypatch, capsys) -> None:
    import causal.llm

    monkeypatch.setattr(causal.llm, "default_backend", lambda: causal.llm.LocalBackend(tiny_lm))
    module = runpy.run_path(str(EXAMPLES / "causal_pipeline.py"))
    monkeypatch.setattr(sys, "argv", ["causal_pipeline.py"])
    assert module["main"]() == 0
    out = capsys.readouterr().out
    _check_causal_output(out, module)
    verdict = re.search(r"What the check found: the data (REJECT|do not reject) the proposed graph", out)
    assert verdict and (verdict.group(1) == "REJECT") == ("\nREJECTED by" in out), out


@pytest.mark.slow
def test_causal_pipeline_script(tmp_path) -> None:
    proc = _script(EXAMPLES / "causal_pipeline.py", [], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]  # a rejected graph is a finding, not a failure
    assert "What the check found: the data " in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
    _check_causal_output(proc.stdout, runpy.run_path(str(EXAMPLES / "causal_pipeline.py")))


# ------------------------------------------------------------------------------- evaluation_loop
def _pairs(tmp_path: Path, n: int = 2) -> tuple[Path, Path, list[dict]]:
    pairs = tmp_path / "pairs.jsonl"
    items = [json.loads(x) for x in (EXAMPLES / "data/eval_pairs.jsonl").read_text().splitlines()[:n]]
    pairs.write_text("".join(json.dumps(it) + "\n" for it in items))
    return pairs, tmp_path / "out.jsonl", items


def test_evaluation_loop_on_the_tiny_model(tiny_lm, tiny_dir, tmp_path, capsys) -> None:
    import torch

    from explain.attribution.inputs import build_input

    pairs, _, items = _pairs(tmp_path)
    out = tmp_path / "audit"
    module = runpy.run_path(str(EXAMPLES / "evaluation_loop.py"))
    assert module["main"]([str(pairs), str(out), "--model", tiny_dir]) == 0
    rows = pd.read_parquet(out).set_index("id")
    assert sorted(rows.index) == sorted(it["id"] for it in items)
    for item in items:
        # an independent teacher-forced pass: one plain forward over the chat prompt + response
        inp = build_input(tiny_lm, item["prompt"], item["response"].strip(), chat=True)  # as signals() scores it
        ids = torch.tensor([list(inp.prompt_ids) + list(inp.target_ids)])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_lm.model(input_ids=ids).logits[0].double(), -1)
        n = len(inp.prompt_ids)
        want = -np.mean([logp[n - 1 + i, t].item() for i, t in enumerate(inp.target_ids)])
        assert rows.loc[item["id"], "score.mean_neg_logprob"] == pytest.approx(want, abs=1e-4)
    # a second run resumes: nothing is audited twice
    capsys.readouterr()
    assert module["main"]([str(pairs), str(out), "--model", tiny_dir]) == 0
    assert f"0 audited now ({len(items)} already done)" in capsys.readouterr().out
    assert len(pd.read_parquet(out)) == len(items)


@pytest.mark.slow
def test_evaluation_loop_audits_and_resumes(tmp_path, capsys) -> None:
    pairs = tmp_path / "pairs.jsonl"
    lines = (EXAMPLES / "data/eval_pairs.jsonl").read_text().splitlines()[:3]
    pairs.write_text("\n".join(lines) + "\n" + json.dumps({"id": "bad", "prompt": "", "response": " x"}) + "\n")
    out = tmp_path / "audit.parquet"
    module = runpy.run_path(str(ROOT / "examples/evaluation_loop.py"))
    assert module["main"]([str(pairs), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 audited now (0 already done), 1 errors" in printed and "riskiest answers" in printed
    rows = pd.read_parquet(out).set_index("id")
    assert sorted(rows.index) == ["bad", "capital-fr", "capital-it", "water"]
    assert rows.loc["bad", "error"].startswith("prompt is empty")
    assert rows.loc["capital-it", "response"] == "Rome" and rows.loc["capital-it", "score.mean_neg_logprob"] > 0
    assert module["main"]([str(pairs), str(out)]) == 0  # a second run resumes: nothing left to do
    assert "0 audited now (4 already done)" in capsys.readouterr().out


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
    assert code == 0, out  # the pipeline ran, whatever the check found
    assert "Check against the data:" in out and "Against the true graph: SHD" in out
    assert "For reference, along the true graph:" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("What the check found:") and ("REJECT" in last) == ("REJECTED" in out)
    has_path = "Effect along the proposed graph:" in out
    assert has_path != ("no directed path from smoking to cancer" in out)


def test_causal_pipeline_reports_a_graph_without_a_path(capsys) -> None:
    import networkx as nx

    module = runpy.run_path(str(ROOT / "examples/causal_pipeline.py"))
    data = module["simulated_data"](600)
    wrong = nx.DiGraph([("cancer", "tar"), ("tar", "smoking")])  # every arrow reversed, genotype left out
    wrong.add_node("genotype")
    assert module["report"](wrong, data, simulations=2).falsified
    out = capsys.readouterr().out
    assert "no directed path from smoking to cancer" in out and "REJECTED" in out
    line = next(x for x in out.splitlines() if x.startswith("For reference, along the true graph:"))
    ref = float(line.split("true graph: ")[1].split(" ")[0])
    assert abs(ref - 1.08) < 0.1  # the simulated truth, 1.2 * 0.9
    assert module["main"](["--llm", "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown LLM backend")


def test_causal_pipeline_llm_options_are_the_cli_ones(capsys) -> None:
    module = runpy.run_path(str(ROOT / "examples/causal_pipeline.py"))
    assert module["main"](["--llm-model", "m"]) == 2
    assert capsys.readouterr().err.startswith("error: --llm-model goes with --llm-url")


# ------------------------------------------------------------------------------- signals_rag_check
def test_signals_rag_check_on_the_tiny_model(tiny_dir, tmp_path, capsys) -> None:
    module = runpy.run_path(str(EXAMPLES / "signals_rag_check.py"))
    page = tmp_path / "rag.html"
    assert module["main"](["--model", tiny_dir, "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.count("no verdict (no calibration ships for model") == 3  # a tiny model has no calibration
    assert page.read_text().count('class="whylm-signals"') == 3


@pytest.mark.slow
def test_signals_rag_check_script(tmp_path) -> None:
    page = tmp_path / "r.html"
    proc = _script(EXAMPLES / "signals_rag_check.py", ["--html", str(page)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "(risk " in line]
    assert len(lines) == 3, proc.stdout
    risks = [float(line.split("(risk ")[1].split(")")[0]) for line in lines]
    assert risks[0] < risks[1], proc.stdout  # the made-up workshop in Rome is riskier than the right answer
    assert page.read_text().count('class="whylm-signals"') == 3


# ------------------------------------------------------------------------------- rag_sentence_attribution
def _removal_drop(lm, prompt: str, answer: str, sentence_span: tuple[int, int]) -> float:
    """Nats the answer loses when one sentence's tokens are removed: two plain teacher-forced passes."""
    from explain.attribution.inputs import build_input

    inp = build_input(lm, prompt, answer, sources=[sentence_span])
    gone = set(inp.features[0])
    kept = [t for p, t in enumerate(inp.prompt_ids) if p not in gone]
    full, without = lm.continuation_logprobs([list(inp.prompt_ids), kept], [inp.target_ids] * 2)
    return float(full.sum() - without.sum())


def _context_removal_drop(lm, sentences: list[str], question: str, answer: str, k: int) -> float:
    """Nats the answer loses when context sentence k is removed: two plain teacher-forced passes
    over the context (each sentence tokenised alone), the separator and the question."""
    from explain.model import with_context

    context = "".join(sentences)
    sep = with_context(question, context)[len(context):-len(question)]

    def ids(skip: int | None) -> list[int]:
        kept = [lm.encode(s, special=False) for i, s in enumerate(sentences) if i != skip]
        return sum(kept, []) + lm.encode(sep, special=False) + lm.encode(question, special=False)

    target = lm.encode(answer, special=False)
    full, without = lm.continuation_logprobs([ids(None), ids(k)], [target] * 2)
    return float(full.sum() - without.sum())


def test_rag_sentence_attribution_on_the_tiny_model(tiny_lm, tiny_dir, tmp_path, capsys) -> None:
    from explain.attribution import split_sources

    module = runpy.run_path(str(EXAMPLES / "rag_sentence_attribution.py"))
    page, doc = tmp_path / "s.html", tmp_path / "doc.txt"
    # the tiny model reads 256 tokens: a short document of its own
    doc.write_text("The red vault is 9051. The blue vault is 4172. Trains were late.")
    args = ["--model", tiny_dir, "--context", str(doc), "--question", "Blue vault?", "--answer", " 4172"]
    assert module["main"]([*args, "--top", "2", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("estimate: sentence-level ablation of"), out
    ranked = re.findall(r"^\s+(\d)\.\s+([+-]\d+\.\d+)  (.+)$", out, flags=re.M)
    assert [r[0] for r in ranked] == ["1", "2"], out
    # each printed score equals an independent removal of that sentence, and they are the top two
    question = module["build_question"]("Blue vault?")
    sentences = [p.text for p in split_sources(doc.read_text(), "sentences")]
    drops = {text.strip(): _context_removal_drop(tiny_lm, sentences, question, " 4172", k)
             for k, text in enumerate(sentences)}
    for _, nats, sentence in ranked:
        assert float(nats) == pytest.approx(drops[sentence], abs=5.1e-3)  # printed to 2 decimals
    assert float(ranked[0][1]) == pytest.approx(max(drops.values()), abs=5.1e-3)
    assert "question itself (kept apart)" in out
    assert "whylm" in page.read_text()
    assert module["main"](["--model", tiny_dir, "--context", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read --context" in capsys.readouterr().err


@pytest.mark.slow
def test_rag_sentence_attribution_script(tmp_path) -> None:
    proc = _script(EXAMPLES / "rag_sentence_attribution.py", [], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = re.search(r"^\s+1\.\s+[+-]\d+\.\d+  (.+)$", proc.stdout, flags=re.M)
    assert first and first.group(1) == "The code for the blue vault is 4172.", proc.stdout
