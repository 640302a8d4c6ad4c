"""Every bad input a user can type, through the API and the command line, in one table.

Each row asserts that the error is a :class:`explain.errors.WhylmError` (API) or exit status 2
with ``error: <one line>`` (CLI), that the message names the problem (a specific substring), and
that no traceback is printed. CLI rows run ``dashboard.cli.main(argv)`` in this process; two rows
run the real ``whylm`` entry point in a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from explain.errors import WhylmError

import fake_machine  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Row:
    """One bad input: ``api`` (a call), ``cli`` (argv in-process) or ``process`` (argv, real process)."""

    kind: str
    what: Any  # Callable[[env], Any] for api; Callable[[env], list] for cli / process
    message: str
    not_started: bool = False  # the CLI must refuse before loading a model


def api(call: Callable[[SimpleNamespace], Any], message: str) -> Row:
    return Row("api", call, message)


def cli(argv: Callable[[SimpleNamespace], list], message: str, not_started: bool = False) -> Row:
    return Row("cli", argv, message, not_started)


def process(argv: Callable[[SimpleNamespace], list], message: str) -> Row:
    return Row("process", argv, message, True)


def _attribute(*args, **kwargs):
    from explain import attribute

    return attribute(*args, **kwargs)


def _signals(*args, **kwargs):
    from explain import signals

    return signals(*args, **kwargs)


def _openai(url: str, model: str):
    from causal.llm import OpenAIBackend

    return OpenAIBackend(url, model, cache=False, max_retries=0)


def _llm_answer(handler, body, rec) -> None:
    """An OpenAI-compatible server that answers 200 with what the model name asks for."""
    from llm_server import answer, send

    good = answer("A", [("A", -0.1), ("B", -2.5)])
    bodies = {
        "logprob-1000": answer("A", [("A", 1000.0), ("B", -2.5)]),
        "choices-dict": {"choices": {"0": good["choices"][0]}},
        "choices-int": {"choices": 3},
        "choices-strings": {"choices": ["A"]},
        "message-string": {"choices": [{"index": 0, "message": "A", "finish_reason": "stop"}]},
    }
    send(handler, 200, bodies.get(body.get("model"), good))


def _causal(name: str) -> Callable:
    import causal

    return getattr(causal, name)


ROWS: dict[str, Any] = {
    # ------------------------------------------------------------------ API
    "api-empty-prompt": api(lambda e: _attribute(e.lm, "", target=" b"), "prompt is empty"),
    "api-empty-target": api(lambda e: _attribute(e.lm, "a", target=""), "target is empty"),
    "api-over-long": api(lambda e: _attribute(e.lm, "word " * 400, target=" b"),
                         "longer than the model's context of 256 tokens"),
    "api-unknown-method": api(lambda e: _attribute(e.lm, "a", target=" b", method="nope"),
                              "unknown method 'nope'"),
    "api-unknown-model": api(lambda e: __import__("explain").LanguageModel.load("/no/such/model"),
                             "unknown model path '/no/such/model'"),
    "api-signals-empty": api(lambda e: _signals(e.lm, "", response=" x"), "prompt is empty"),
    "api-malformed-csv": api(lambda e: __import__("causal.data").data.load_csv(e.bad_csv),
                             "cannot read CSV"),
    "api-cyclic-graph": api(lambda e: _causal("check_graph")(e.cycle, e.df),
                            "graph has a cycle: z -> x -> y -> z"),
    "api-name-mismatch": api(lambda e: _causal("check_graph")(nx.DiGraph([("z", "X")]), e.df),
                             "graph node 'X' is not a column of the data; did you mean 'x'?"),
    "api-effect-unknown-treatment": api(
        lambda e: _causal("estimate_effect")(e.chain, e.df, "q", "y"),
        "treatment 'q' is not a node of the graph"),
    "api-one-variable": api(lambda e: _causal("propose_graph")(["a"], llm=e.lm),
                            "need at least two variables"),
    "api-variable-twice": api(lambda e: _causal("propose_graph")(["a", "a"], llm=e.lm),
                              "variables named twice"),
    "api-graph-text": api(lambda e: __import__("causal.graph").graph.parse_graph("a -> "),
                          "graph line 1 is not 'a -> b'"),
    "api-dashboard-server-path": api(
        lambda e: __import__("dashboard.models").models.load_model("/etc/shadow"),
        "is not one of this dashboard's model folders"),
    "api-store-kind": api(lambda e: __import__("dashboard.store").store.AuditStore(":memory:")
                          .save("other", {}, {}), "unknown run kind 'other'"),
    # ------------------------------------------------------------------ corrupt local files
    **{f"api-calibration-{name}": api(
        lambda e, name=name: _signals(e.lm, "Who wrote Hamlet?", response=" Dickens.", calibration=e.cal[name]),
        message) for name, message in {
            "nan-coefficient": "nan-coefficient.json': calibration case 'context': coefficients[0] is nan",
            "inf-coefficient": "inf-coefficient.json': calibration case 'context': coefficients[0] is inf",
            "huge-coefficient": "calibration case 'context': coefficients[0] is 1e+308",
            "nan-intercept": "calibration case 'context': intercept is nan",
            "string-intercept": "calibration case 'context': intercept is 'high'",
            "zero-scale": "calibration case 'context': a scale is <= 0",
            "nested": "nested.json' is not valid JSON (RecursionError)",
            "bad-thresholds": "calibration thresholds must be two numbers",
        }.items()},
    "cli-calibration-nan-coefficient": cli(
        lambda e: ["signals", "Who wrote Hamlet?", "--response", " Dickens.", "--model", e.tiny,
                   "--calibration", e.cal["nan-coefficient"]], "coefficients[0] is nan"),
    "cli-calibration-nested": cli(
        lambda e: ["signals", "Who wrote Hamlet?", "--response", " Dickens.", "--model", e.tiny,
                   "--calibration", e.cal["nested"]], "is not valid JSON (RecursionError)"),
    "api-budget-nan-estimate": api(
        lambda e: __import__("explain.budget").budget.check_budget(
            __import__("explain.budget").budget.Cost("a run", seconds=float("nan")), None),
        "the cost estimate is nan seconds, not a duration"),
    "api-budget-negative-estimate": api(
        lambda e: __import__("explain.budget").budget.check_budget(
            __import__("explain.budget").budget.Cost("a run", seconds=-2013028.0), None),
        "the cost estimate is -2013028.0 seconds, not a duration"),
    # ------------------------------------------------------------------ other input
    "api-max-new-tokens-0": api(lambda e: _attribute(e.lm, "hi there", max_new_tokens=0),
                                "max_new_tokens must be a whole number >= 1, got 0"),
    "api-max-new-tokens-negative": api(lambda e: _attribute(e.lm, "hi there", max_new_tokens=-3),
                                       "max_new_tokens must be a whole number >= 1, got -3"),
    "api-generate-max-new-tokens-0": api(lambda e: e.lm.generate(e.lm.encode("hi"), max_new_tokens=0),
                                         "max_new_tokens must be a whole number >= 1, got 0"),
    "api-signals-temperature-0": api(lambda e: _signals(e.lm, "Who wrote Hamlet?", n_samples=2, temperature=0),
                                     "temperature must be a number > 0 for sampling"),
    "api-generate-temperature-negative": api(
        lambda e: e.lm.generate(e.lm.encode("hi"), max_new_tokens=2, do_sample=True, temperature=-1.0),
        "temperature must be a number > 0 for sampling"),
    "api-lone-surrogate-attribute": api(lambda e: _attribute(e.lm, "caf\ud800 au lait", target=" x"),
                                        "holds a lone surrogate '\\ud800'"),
    "api-lone-surrogate-target": api(lambda e: _attribute(e.lm, "cafe", target=" x\ud800"),
                                     "holds a lone surrogate '\\ud800'"),
    "api-lone-surrogate-chat": api(lambda e: _attribute(e.lm, "caf\ud800", target=" x", chat=True),
                                   "holds a lone surrogate '\\ud800'"),
    "api-lone-surrogate-signals": api(lambda e: _signals(e.lm, "q\ud800?", response=" a"),
                                      "holds a lone surrogate '\\ud800'"),
    "api-lone-surrogate-generate": api(lambda e: e.lm.generate(e.lm.encode("\ud800"), max_new_tokens=2),
                                       "holds a lone surrogate '\\ud800'"),
    **{f"api-llm-{model}": api(lambda e, model=model: _openai(e.llm_url, model).choose("Q?", ["A", "B"]), message)
       for model, message in {
           "logprob-1000": "holds a log-probability of 1000 for 'A'",
           "choices-dict": "answered 'choices' as a dict, not a list of objects",
           "choices-int": "answered 'choices' as a int, not a list of objects",
           "choices-strings": "answered 'choices' as a list of str",
           "message-string": "answered a 'message' that is a str, not an object",
       }.items()},
    "cli-llm-logprob-1000": cli(lambda e: ["causal", "propose", "x", "y", "--llm-url", e.llm_url,
                                           "--llm-model", "logprob-1000"], "log-probability of 1000"),
    "cli-llm-choices-dict": cli(lambda e: ["causal", "propose", "x", "y", "--llm-url", e.llm_url,
                                           "--llm-model", "choices-dict"], "answered 'choices' as a dict"),
    # ------------------------------------------------------------------ CLI, in this process
    "cli-invalid-utf8": cli(lambda e: ["explain", "caf\udce9", "--target", " x", "--model", e.tiny],
                            "argument 2 is not valid UTF-8 text (b'caf\\xe9')", not_started=True),
    "cli-json-folder": cli(lambda e: ["explain", "hi", "--target", " x", "--model", e.tiny,
                                      "--json", e.folder], "is a folder: give a file name",
                           not_started=True),
    "cli-html-missing-folder": cli(
        lambda e: ["explain", "hi", "--target", " x", "--model", e.tiny, "--html",
                   str(Path(e.folder) / "nope" / "r.html")], "nope does not exist", not_started=True),
    "cli-json-under-a-file": cli(
        lambda e: ["signals", "q", "--response", " a", "--model", e.tiny, "--json",
                   str(Path(e.text) / "r.json")], "is not a folder", not_started=True),
    "cli-json-read-only-folder": pytest.param(
        cli(lambda e: ["explain", "hi", "--target", " x", "--model", e.tiny, "--json",
                       str(Path(e.read_only) / "r.json")], "cannot be written: Permission denied",
            not_started=True),
        marks=pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")),
    "cli-context-file-folder": cli(
        lambda e: ["signals", "q", "--context-file", e.folder, "--model", e.tiny],
        "is a folder, not a text file", not_started=True),
    "cli-context-file-missing": cli(
        lambda e: ["signals", "q", "--context-file", str(Path(e.folder) / "none.txt"), "--model", e.tiny],
        "none.txt' does not exist", not_started=True),
    "cli-context-file-not-utf8": cli(
        lambda e: ["signals", "q", "--context-file", e.latin1, "--model", e.tiny],
        "is not UTF-8 text", not_started=True),
    "cli-empty-prompt": cli(lambda e: ["explain", "", "--target", " x", "--model", e.tiny],
                            "prompt is empty"),
    "cli-unknown-model": cli(lambda e: ["explain", "hi", "--model", "/no/such/model/here"],
                             "unknown model path"),
    "cli-unknown-method": cli(lambda e: ["explain", "hi", "--method", "nope"],
                              "invalid choice: 'nope'", not_started=True),
    "cli-malformed-csv": cli(lambda e: ["causal", "check", e.chain_file, e.bad_csv], "cannot read CSV"),
    "cli-cyclic-graph": cli(lambda e: ["causal", "check", e.cycle_file, e.csv], "graph has a cycle"),
    "cli-name-mismatch": cli(lambda e: ["causal", "effect", e.chain_file, e.csv, "--treatment", "X",
                                        "--outcome", "y"], "did you mean 'x'"),
    "cli-causal-json-folder": cli(lambda e: ["causal", "check", e.chain_file, e.csv, "--json", e.folder],
                                  "--json", not_started=True),
    "cli-dashboard-port": cli(lambda e: ["dashboard", "--port", "70000"], "port 70000 is out of range"),
    "cli-dashboard-model-not-a-folder": cli(lambda e: ["dashboard", "--model", "/etc/shadow"],
                                            "--model /etc/shadow: no such folder"),
    # ------------------------------------------------------------------ CLI, a real process
    "process-invalid-utf8": pytest.param(
        process(lambda e: ["explain", b"caf\xe9 au lait"], "argument 2 is not valid UTF-8 text"),
        marks=pytest.mark.slow),
    "process-json-folder": pytest.param(
        process(lambda e: ["causal", "check", e.chain_file, e.csv, "--json", e.folder],
                "is a folder: give a file name"),
        marks=pytest.mark.slow),
}


@pytest.fixture(scope="module")
def llm_url():
    from llm_server import serve

    with serve(_llm_answer) as (url, _):
        yield url


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_lm, tiny_dir, llm_url) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("bad-input")
    rng = np.random.default_rng(0)
    z = rng.normal(size=300)
    df = pd.DataFrame({"z": z, "x": z + rng.normal(size=300), "y": z + rng.normal(size=300)})
    csv = tmp / "data.csv"
    df.to_csv(csv, index=False)
    (tmp / "bad.csv").write_text('a,b\n1,"2\n')
    (tmp / "chain.txt").write_text("z -> x\nx -> y\n")
    (tmp / "cycle.txt").write_text("z -> x\nx -> y\ny -> z\n")
    (tmp / "text.txt").write_text("a file, not a folder")
    (tmp / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    cal = {}
    good = {"features": ["ungrounded_max"], "coefficients": [1.0], "intercept": 0.0, "mean": [0.0], "scale": [1.0]}
    for name, change in {"nan-coefficient": {"coefficients": [float("nan")]},
                         "inf-coefficient": {"coefficients": [float("inf")]},
                         "huge-coefficient": {"coefficients": [1e308]}, "nan-intercept": {"intercept": float("nan")},
                         "string-intercept": {"intercept": "high"}, "zero-scale": {"scale": [0.0]},
                         "bad-thresholds": {}}.items():
        doc = {"model": "tiny-llama", "cases": {"context": {**good, **change}}}
        if name == "bad-thresholds":
            doc["thresholds"] = [0.9, 0.1]
        (tmp / f"{name}.json").write_text(json.dumps(doc))  # NaN/Infinity as Python's json writes them
        cal[name] = str(tmp / f"{name}.json")
    (tmp / "nested.json").write_text('{"cases": ' + "[" * 100_000 + "]" * 100_000 + "}")
    cal["nested"] = str(tmp / "nested.json")
    folder = tmp / "a-folder"
    folder.mkdir()
    read_only = tmp / "read-only"
    read_only.mkdir(mode=0o500)
    return SimpleNamespace(
        lm=tiny_lm, tiny=tiny_dir, df=df, csv=str(csv), bad_csv=str(tmp / "bad.csv"),
        chain=nx.DiGraph([("z", "x"), ("x", "y")]), cycle=nx.DiGraph([("z", "x"), ("x", "y"), ("y", "z")]),
        chain_file=str(tmp / "chain.txt"), cycle_file=str(tmp / "cycle.txt"),
        text=str(tmp / "text.txt"), latin1=str(tmp / "latin1.txt"), folder=str(folder),
        read_only=str(read_only), cal=cal, llm_url=llm_url,
    )


def _run_cli(argv: list) -> tuple[int, str, str]:
    from dashboard.cli import main

    try:
        return main(argv), "", ""
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code), "", ""


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_bad_input_is_one_line_naming_the_problem(row: Row, env, capsys, tmp_path) -> None:
    if row.kind == "api":
        with pytest.raises(WhylmError) as info:
            row.what(env)
        message = str(info.value)
        assert "\n" not in message.strip(), message
        assert row.message in message, message
        return
    argv = row.what(env)
    if row.kind == "cli":
        code, _, _ = _run_cli(argv)
        captured = capsys.readouterr()
        out, err = captured.out, captured.err
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "dashboard.cli", *argv], cwd=ROOT, capture_output=True,
            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "WHYLM_LOG_DIR": str(tmp_path)},
        )
        code, out, err = proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    assert code == 2, (code, err)
    assert "Traceback" not in out + err and "internal error" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(("error: ", "usage: ", "whylm")) and row.message in last, err
    if row.not_started:
        assert "loading" not in err, f"the work started before the input was refused: {err}"
    assert not list(Path(env.folder).iterdir()), "a file was written into the output folder"


# ---------------------------------------------------------------------- the speed file
# A speed file a user (or a crash, or another tool) left with values no machine measures: each is
# measured again (a warning names the file), the estimate stays a real duration, the budget guard
# stays on, and nothing unreadable is written back.
NAN = float("nan")
SPEED_ENTRIES: dict[str, dict] = {
    "per-position-nan": {"per_position": NAN},
    "per-position-negative": {"per_position": -1e-4},
    "per-position-zero": {"per_position": 0.0},
    "per-position-1e30": {"per_position": 1e30},
    "per-position-string": {"per_position": "fast"},
    "per-pass-nan": {"per_pass": NAN},
    "per-pair-negative": {"per_pair": -1.0},
    "scale-1e-9": {"scales": {"ablation": 1e-9}},
    "scale-negative": {"scales": {"ablation": -1.0}},
    "scale-nan": {"scales": {"ablation": NAN}},
    "scale-string": {"scales": {"ablation": "x"}},
    "scales-a-list": {"scales": [1, 2]},
}
PROMPT = "word " * 60


@pytest.fixture()
def fresh_speed(tmp_path, monkeypatch, tiny_lm):
    from explain.budget import _SPEEDS, _speed_key, speed

    path = tmp_path / "speed.json"
    monkeypatch.setenv("WHYLM_SPEED_CACHE", str(path))
    fake_machine.install(monkeypatch)  # probes timed on a known machine: the honest estimate is exact
    key = _speed_key(tiny_lm)
    _SPEEDS.pop(key, None)
    speed(tiny_lm)
    entry = json.loads(path.read_text())[key[0]]
    from explain import estimate_cost

    honest = estimate_cost(tiny_lm, PROMPT, " b").seconds
    _SPEEDS.pop(key, None)
    yield SimpleNamespace(path=path, key=key, entry=entry, honest=honest)
    _SPEEDS.pop(key, None)


def _check_speed_outcome(tiny_lm, fresh) -> None:
    from explain import attribute, estimate_cost
    from explain.errors import ExplainError

    seconds = estimate_cost(tiny_lm, PROMPT, " b").seconds
    assert math.isfinite(seconds) and seconds > 0, seconds
    assert seconds == pytest.approx(fresh.honest, rel=1e-6)  # measured again, as on a fresh machine
    with pytest.raises(ExplainError, match="over the"):  # the guard is not switched off
        attribute(tiny_lm, PROMPT, " b", max_seconds=seconds / 100)
    stored = json.loads(fresh.path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} written back"))
    from explain.budget import parse_speed

    assert parse_speed(stored[fresh.key[0]])[0] is not None


@pytest.mark.parametrize("change", list(SPEED_ENTRIES.values()), ids=list(SPEED_ENTRIES))
def test_a_corrupt_speed_entry_is_measured_again(change, tiny_lm, fresh_speed) -> None:
    fresh_speed.path.write_text(json.dumps({fresh_speed.key[0]: {**fresh_speed.entry, **change},
                                            "another|model": {"per_position": NAN}}))
    with pytest.warns(UserWarning, match=f"speed file '{fresh_speed.path}'"):
        _check_speed_outcome(tiny_lm, fresh_speed)
    assert "another|model" not in json.loads(fresh_speed.path.read_text())


@pytest.mark.parametrize("text", ['{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "not json", "[1, 2]", "",
                                  '{"KEY": [1, 2]}'], ids=["nested", "not-json", "a-list", "empty", "entry-a-list"])
def test_an_unreadable_speed_file_is_measured_again(text, tiny_lm, fresh_speed) -> None:
    import warnings

    fresh_speed.path.write_text(text.replace("KEY", fresh_speed.key[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_speed_outcome(tiny_lm, fresh_speed)


# ---------------------------------------------------------------------- other input
@pytest.mark.parametrize("value", [NAN, float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_a_signal_returning_non_finite_values_is_dropped_with_a_note(value, tiny_lm) -> None:
    from explain import register_signal, signals
    from explain.signals.registry import unregister_signal

    @register_signal("broken_values", aggregate="max")
    def broken_values(ctx):
        return [value] * len(ctx.tokens)

    try:
        rep = signals(tiny_lm, "Who wrote Hamlet?", response=" Shakespeare.")
    finally:
        unregister_signal("broken_values")
    assert "max_broken_values" not in rep.scores
    assert all(math.isfinite(v) for v in rep.scores.values())
    assert any("'broken_values'" in n and "max_broken_values" in n and "not finite" in n for n in rep.notes), rep.notes


def test_a_custom_reducer_that_raises_is_one_line_naming_the_signal(tiny_lm) -> None:
    from explain import register_signal, signals
    from explain.signals.registry import unregister_signal

    def bad_reducer(values):
        raise ZeroDivisionError("division by zero\nsecond line")

    @register_signal("bad_reducer", aggregate={"bad_score": bad_reducer})
    def sig(ctx):
        return [1.0] * len(ctx.tokens)

    try:
        rep = signals(tiny_lm, "Who wrote Hamlet?", response=" Shakespeare.")
        notes = [n for n in rep.notes if "'bad_reducer'" in n]
        assert notes and "bad_score" in notes[0] and "ZeroDivisionError" in notes[0] and "\n" not in notes[0]
        assert "bad_score" not in rep.scores
    finally:
        unregister_signal("bad_reducer")


@pytest.mark.parametrize("resolved, loopback", [(["203.0.113.7"], False), (["127.0.0.1", "203.0.113.7"], False),
                                                (["127.0.0.1", "::1"], True), (None, False)],
                         ids=["public", "mixed", "loopback", "unresolvable"])
def test_a_localhost_name_is_loopback_only_if_it_resolves_there(resolved, loopback, monkeypatch) -> None:
    import socket

    from causal.errors import CausalError
    from causal.llm.keys import is_loopback, key_env_for

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if resolved is None:
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in resolved]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert is_loopback("evil.localhost") is loopback
    if loopback:
        assert key_env_for("http://evil.localhost:8000/v1", "LAB_KEY") == "LAB_KEY"
    else:
        with pytest.raises(CausalError, match="refusing to send the key in \\$LAB_KEY over plain http to evil.localhost"):
            key_env_for("http://evil.localhost:8000/v1", "LAB_KEY")
    assert is_loopback("127.0.0.1") and not is_loopback("10.0.0.1")  # addresses are never looked up
