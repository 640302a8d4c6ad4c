"""`whylm signals` from the command line."""

from __future__ import annotations

import json

import pytest

from dashboard.cli import main


def test_signals_scores_a_given_response_with_context(tiny_dir, tmp_path, capsys) -> None:
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("the sky is blue.")
    out, page = tmp_path / "s.json", tmp_path / "s.html"
    code = main(["signals", "what colour is the sky?", "--response", "<b>blue</b>", "--context-file", str(ctx),
                 "--model", str(tiny_dir), "--json", str(out), "--html", str(page), "--no-progress"])
    assert code == 0
    data = json.loads(out.read_text())
    assert {"mean_neg_logprob", "max_neg_logprob", "mean_entropy", "ungrounded"} <= set(data["scores"])
    assert "<b>" not in page.read_text()
    assert "mean_neg_logprob" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["signals", "q", "--response", ""], "error: "),
        (["signals", "q", "--context-file", "/no/such/file.txt"], "error: context file '/no/such/file.txt' does not exist"),
        (["signals", "q", "--n-samples", "-1"], "error: --n-samples must be 0 or more"),
    ],
)
def test_signals_errors_are_one_line(tiny_dir, capsys, argv, message) -> None:
    assert main(argv + ["--model", str(tiny_dir)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)

