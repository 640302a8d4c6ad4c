"""`whylm causal ...` through a parser built here with causal.cli.add_parser."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from causal.cli import add_parser
from causal.errors import CausalError


def _parser():
    p = argparse.ArgumentParser(prog="whylm")
    sub = p.add_subparsers(dest="command")
    add_parser(sub)
    return p


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=800)
    x = 1.5 * z + rng.normal(size=800)
    y = 2.0 * x - 3.0 * z + rng.normal(size=800)
    csv = tmp_path / "data.csv"
    pd.DataFrame({"z": z, "x": x, "y": y}).to_csv(csv, index=False)
    good = tmp_path / "good.txt"
    good.write_text("z -> x\nz -> y\nx -> y\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("z -> x -> y\n")
    return tmp_path, csv, good, bad


def test_help_shows_examples(capsys):
    for argv in (["causal", "--help"], ["causal", "propose", "--help"], ["causal", "check", "--help"],
                 ["causal", "effect", "--help"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(argv)
        out = capsys.readouterr().out
        assert "example:" in out and "whylm causal" in out


def test_check_and_effect(files, capsys):
    tmp, csv, good, bad = files
    assert _run(["causal", "check", str(good), str(csv), "--json", str(tmp / "c.json")]) == 0
    assert json.loads((tmp / "c.json").read_text())["falsified"] is False
    assert _run(["causal", "check", str(bad), str(csv)]) == 1  # missing z -> y: rejected
    assert "REJECTED" in capsys.readouterr().out
    assert _run(["causal", "effect", str(good), str(csv), "--treatment", "x", "--outcome", "y",
                 "--json", str(tmp / "e.json")]) == 0
    assert abs(json.loads((tmp / "e.json").read_text())["value"] - 2.0) < 0.2


def test_propose_with_replay_backend(files, capsys):
    tmp, csv, _, _ = files
    from causal.ask import pair_prompt

    answers = {}
    for a, b in [("x", "y"), ("x", "z"), ("y", "z")]:
        for u, v in [(a, b), (b, a)]:
            truth = {("z", "x"), ("z", "y"), ("x", "y")}
            answers[pair_prompt(u, v, none_option=True)] = "A" if (u, v) in truth else "B"
    rec = tmp / "answers.json"
    rec.write_text(json.dumps(answers))
    out = tmp / "g.json"
    code = _run(["causal", "propose", "x", "y", "z", "--llm", f"replay:{rec}", "--out", str(out),
                 "--json", str(tmp / "full.json"), "--no-progress", "--no-judge"])
    assert code == 0
    from causal.graph import load_graph

    assert set(load_graph(out).edges) == {("z", "x"), ("z", "y"), ("x", "y")}
    gml = tmp / "g.gml"
    _run(["causal", "propose", "x", "y", "z", "--llm", f"replay:{rec}", "--out", str(gml), "--no-progress", "--no-judge"])
    assert set(load_graph(gml).edges) == {("z", "x"), ("z", "y"), ("x", "y")}
    # the check accepts the proposed graph file directly
    assert _run(["causal", "check", str(out), str(csv)]) == 0


def test_errors_are_causal_errors(files):
    tmp, csv, good, _ = files
    with pytest.raises(CausalError, match="graph file not found"):
        _run(["causal", "check", str(tmp / "nope.gml"), str(csv)])
    with pytest.raises(CausalError, match="data file not found"):
        _run(["causal", "check", str(good), str(tmp / "nope.csv")])
    with pytest.raises(CausalError, match="did you mean 'x'"):
        _run(["causal", "effect", str(good), str(csv), "--treatment", "X", "--outcome", "y"])
    with pytest.raises(CausalError, match="unknown LLM backend"):
        _run(["causal", "propose", "a", "b", "--llm", "nonsense", "--no-progress"])
