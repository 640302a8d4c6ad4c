"""`whylm explain` from the command line: output files, escaping, one-line errors."""

from __future__ import annotations

import json

import pytest

from dashboard.cli import main


def test_explain_writes_json_and_escaped_html(tiny_dir, tmp_path, capsys) -> None:
    out, page = tmp_path / "r.json", tmp_path / "r.html"
    code = main(["explain", "<img src=x onerror=alert(1)> the sky", "--target", " is blue.", "--model",
                 str(tiny_dir), "--json", str(out), "--html", str(page), "--no-progress"])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["method"] == "ablation" and len(data["token_attr"]) == len(data["output_tokens"])
    html = page.read_text()
    assert "<img" not in html and "&lt;" in html
    assert "ablation on" in capsys.readouterr().out


def test_explain_json_to_stdout(tiny_dir, capsys) -> None:
    assert main(["explain", "The capital of France is", "--target", " Paris", "--model", str(tiny_dir),
                 "--json", "-", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == " Paris"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "", "--target", " x"], "error: prompt is empty"),
        (["explain", "hi", "--model", "/no/such/model/here"], "error: unknown model path"),
    ],
)
def test_explain_errors_are_one_line(tiny_dir, capsys, argv, message) -> None:
    if "--model" not in argv:
        argv = argv + ["--model", str(tiny_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message)


def test_help_shows_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    assert 'whylm explain "The capital of France is"' in capsys.readouterr().out


def test_explain_prints_the_estimate_and_runs_over_sentences(tiny_dir, capsys) -> None:
    assert main(["explain", "Sky is blue. Grass is green. The sun is hot.", "--target", " blue",
                 "--sources", "sentences", "--model", str(tiny_dir), "--json", "-", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "estimate: sentence-level ablation of" in captured.err and "(3 sources)" in captured.err
    data = json.loads(captured.out)
    assert data["input_tokens"] == ["Sky is blue.", "Grass is green.", "The sun is hot."]
    assert data["info"]["ablation"] == "removal"


def test_explain_over_budget_is_refused_before_running(tiny_dir, capsys) -> None:
    code = main(["explain", "the sky " * 40, "--target", " x", "--model", str(tiny_dir), "--max-seconds", "0.001",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("estimate: token-level ablation of") for line in err)
    assert err[-1].startswith("error: token-level ablation") and 'sources="sentences"' in err[-1]
