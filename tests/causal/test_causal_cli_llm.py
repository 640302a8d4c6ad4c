"""`whylm causal propose` LLM options: a URL and its model are separate options, a bare URL in --llm is
a one-line error, and keys reach a server only through --api-key-env."""

from __future__ import annotations

import pytest

from dashboard.cli import main
from llm_server import answer, send, serve

SECRET = "sk-cli-SECRET-abcdef0123456789"


def _answer_a(handler, body, rec):
    send(handler, 200, answer("A"))


def _run(argv, capsys):
    code = main(["causal", "propose", "x", "y", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["--llm", "http://127.0.0.1:9/v1"], "server URL without a model: give them separately (whylm: --llm-url URL --llm-model NAME"),
    (["--llm", "http://127.0.0.1:9/v1:qwen2.5:7b"], "--llm-url URL --llm-model NAME"),
    (["--llm-url", "http://127.0.0.1:9/v1"], "--llm-url needs --llm-model NAME"),
    (["--llm-model", "m"], "--llm-model goes with --llm-url"),
    (["--llm", "openai:m", "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"], "either --llm or --llm-url"),
    (["--llm-url", "http://example.com/v1", "--llm-model", "m", "--api-key-env", "MY_KEY"],
     "refusing to send the key in $MY_KEY over plain http to example.com"),
    (["--llm", "replay:x.json", "--api-key-env", "MY_KEY"], "replay backend takes no api_key_env"),
    (["--llm-url", "ftp://127.0.0.1/v1", "--llm-model", "m"], "server URL must look like http(s)://"),
])
def test_llm_option_errors_are_one_line(argv, message, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_llm_url_and_model_reach_the_server(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # must not be sent: the caller named no variable
    with serve(_answer_a) as (url, rec):
        code, out, err = _run(["--llm-url", url, "--llm-model", "qwen2.5:7b", "--strategy", "pairwise"], capsys)
    assert code == 0, err
    assert rec.requests and {r["model"] for r in rec.requests} == {"qwen2.5:7b"}
    assert all("authorization" not in h for h in rec.headers)


def test_api_key_env_sends_that_key_only(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-leak")
    monkeypatch.setenv("MY_SERVER_KEY", SECRET)
    with serve(_answer_a) as (url, rec):
        code, out, err = _run(["--llm-url", url, "--llm-model", "m", "--api-key-env", "MY_SERVER_KEY",
                               "--strategy", "pairwise"], capsys)
    assert code == 0, err
    assert {h["authorization"] for h in rec.headers} == {"Bearer " + SECRET}
    assert SECRET not in out + err
