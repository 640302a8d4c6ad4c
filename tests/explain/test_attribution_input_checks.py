"""Bad input to attribute() and the model loader: one line naming the problem, nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from explain import ExplainError, attribute
from explain.attribution import default_baseline

PROMPT, TARGET = "The capital of France is", " Paris"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"baseline": 1.5}, r"baseline must be a token id \(an integer\), got 1.5"),
        ({"baseline": "abc"}, "baseline must be a token id .*'abc'"),
        ({"baseline": True}, "baseline must be a token id"),
        ({"batch_tokens": "x"}, "batch_tokens must be an integer >= 1, got 'x'"),
        ({"batch_tokens": 0}, "batch_tokens must be an integer >= 1"),
        ({"max_rows": 2.5}, "max_rows must be an integer"),
        ({"target": 5}, "target must be a string, not int"),
        ({"target": ["a"]}, "target must be a string, not list"),
        ({"max_seconds": "soon"}, "max_seconds must be a number"),
        ({"max_seconds": -1}, "max_seconds must be positive"),
        ({"sources": "chapters"}, "unknown sources 'chapters'"),
    ],
)
def test_bad_arguments_are_one_line_errors(tiny_lm, kwargs, message) -> None:
    call = {"target": TARGET, **kwargs}
    with pytest.raises(ExplainError, match=message) as err:
        attribute(tiny_lm, PROMPT, progress=False, **call)
    assert "\n" not in str(err.value)


def test_default_baseline_is_an_ordinary_token_recorded_in_the_result(tiny_lm) -> None:
    token_id, rule = default_baseline(tiny_lm)
    special = set(tiny_lm.tokenizer.all_special_ids)
    assert token_id not in special and 0 in special and "<|endoftext|>" in rule
    res = attribute(tiny_lm, PROMPT, TARGET, progress=False)
    assert res.info["baseline"] == token_id and res.info["baseline_rule"] == rule
    zero = attribute(tiny_lm, PROMPT, TARGET, baseline=0, progress=False)
    assert zero.info["baseline"] == 0 and zero.info["baseline_rule"] == "given"


def test_over_budget_run_is_refused_at_once_naming_the_cheaper_choice(tiny_lm, monkeypatch) -> None:
    from explain.attribution import registry

    ran = []
    real = registry.METHODS["ablation"]
    monkeypatch.setitem(registry.METHODS, "ablation", real.__class__(**{**real.__dict__, "fn": lambda *a, **k: ran.append(1)}))
    with pytest.raises(ExplainError, match=r'token-level ablation of \d+ tokens would take about') as err:
        attribute(tiny_lm, "The sky is blue. " * 10, " x", max_seconds=1e-4, progress=False)
    assert 'use sources="sentences"' in str(err.value) and "\n" not in str(err.value)
    assert not ran  # refused before the method started
    with pytest.raises(ExplainError, match=r"fewer permutations \(n_samples=2\)"):
        attribute(tiny_lm, "The sky is blue. " * 10, " x", method="shapley", n_samples=5, sources="sentences",
                  max_seconds=1e-4, progress=False)


def test_unknown_hub_id_fails_in_one_line_without_the_network(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "WHYLM_ALLOW_DOWNLOADS")}
    env["HF_HOME"] = str(tmp_path)  # an empty hub cache
    code = ("from explain import LanguageModel\n"
            "try:\n    LanguageModel.load('nobody-here/no-such-model-xyz')\n"
            "except Exception as e:\n    print(type(e).__name__, '|', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])  # the repo root
    line = out.stdout.strip()
    assert line.startswith("ExplainError | cannot load model 'nobody-here/no-such-model-xyz'"), out
    assert "WHYLM_ALLOW_DOWNLOADS=1" in line and "\n" not in line
    # it used to retry the network for about 50 s, printing 24 lines of retries
    assert "retry" not in out.stderr.lower() and "http" not in out.stderr.lower()
