"""LLM backends: cache, replay, strict parsing, spec strings, and the HTTP backend end to end
against a real http.server on 127.0.0.1 answering from a script."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

from causal.errors import CausalError
from llm_server import answer, send, serve
from causal.llm import (
    AnswerCache, LocalBackend, OpenAIBackend, ReplayBackend, cache_path, get_backend, parse_choice,
)


# --------------------------------------------------------------------------- a scripted server
class Script:
    """Behaviours served in order (the last one repeats)."""

    def __init__(self, *steps):
        self.steps = list(steps)

    def next(self):
        return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]


@pytest.fixture
def server():
    script = Script(("text", "A"))

    def respond(handler, body, rec):
        kind, arg = script.next()
        if kind == "sleep":
            time.sleep(arg)
            kind, arg = "text", "A"
        if kind == "status":
            send(handler, arg, b'{"error": "boom"}')
        elif kind == "raw":
            send(handler, 200, arg.encode())
        elif kind == "logprobs":
            send(handler, 200, answer(arg[0][0], arg))
        elif kind == "nologprobs400" and body.get("logprobs"):
            send(handler, 400, b'{"error": "logprobs not supported"}')
        else:
            send(handler, 200, answer(arg))

    with serve(respond) as (url, rec):
        script.requests, script.headers = rec.requests, rec.headers
        yield url, script


def _backend(url, tmp_path, **kw):
    kw.setdefault("backoff", 0.01)
    return OpenAIBackend(url, "scripted-model", cache=AnswerCache(tmp_path / "c.sqlite"), **kw)


def test_http_logprobs_answer(server, tmp_path):
    url, script = server
    script.steps = [("logprobs", [("B", -0.1), ("A", -2.5), ("C", -9.0)])]
    idx, probs = _backend(url, tmp_path).choose("Q?", ["A", "B"])
    assert idx == 1 and probs[1] > 0.9 and abs(probs.sum() - 1) < 1e-9
    req = script.requests[0]
    assert req["model"] == "scripted-model" and req["logprobs"] is True and req["temperature"] == 0


def test_http_text_answer_strict_and_cached(server, tmp_path):
    url, script = server
    script.steps = [("text", " **B**.")]
    llm = _backend(url, tmp_path)
    assert llm.choose("Q?", ["A", "B"])[0] == 1
    assert llm.choose("Q?", ["A", "B"])[0] == 1  # second answer from the cache
    assert len(script.requests) == 1 and llm.uncached_calls == 1


def test_http_server_without_logprobs_support(server, tmp_path):
    url, script = server
    script.steps = [("nologprobs400", "A")]
    llm = _backend(url, tmp_path)
    assert llm.choose("Q1", ["A", "B"])[0] == 0
    assert llm.choose("Q2", ["A", "B"])[0] == 0
    assert "logprobs" not in script.requests[-1]  # remembered: not asked again


def test_http_500_then_success(server, tmp_path):
    url, script = server
    script.steps = [("status", 500), ("status", 503), ("text", "A")]
    assert _backend(url, tmp_path, max_retries=3).choose("Q?", ["A", "B"])[0] == 0
    assert len(script.requests) == 3


def test_http_retries_are_capped(server, tmp_path):
    url, script = server
    script.steps = [("status", 500)]
    with pytest.raises(CausalError, match=r"failed after 3 tries within .* \(30 s x 3 tries \+ 0.03 s backoff\): HTTP 500"):
        _backend(url, tmp_path, max_retries=2).choose("Q?", ["A", "B"])
    assert len(script.requests) == 3


def test_http_timeout(server, tmp_path):
    url, script = server
    script.steps = [("sleep", 1.0)]
    t0 = time.perf_counter()
    with pytest.raises(CausalError, match="timed out"):
        _backend(url, tmp_path, timeout=0.2, max_retries=1).choose("Q?", ["A", "B"])
    assert time.perf_counter() - t0 < 3


def test_http_garbage_is_an_error_and_not_cached(server, tmp_path):
    url, script = server
    script.steps = [("text", "I think both are plausible"), ("text", "A")]
    llm = _backend(url, tmp_path)
    with pytest.raises(CausalError, match="not one of"):
        llm.choose("Q?", ["A", "B"])
    assert llm.choose("Q?", ["A", "B"])[0] == 0  # asked again: the garbage was not cached
    script.steps = [("raw", "<html>not json</html>")]
    with pytest.raises(CausalError, match="not JSON"):
        llm.choose("Q3", ["A", "B"])


def test_http_down_server(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(CausalError, match="not reachable"):
        _backend(f"http://127.0.0.1:{port}/v1", tmp_path, max_retries=1).choose("Q?", ["A", "B"])


def test_http_401_names_the_env_var_not_the_key(server, tmp_path, monkeypatch):
    url, script = server
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    script.steps = [("status", 401)]
    with pytest.raises(CausalError) as err:
        _backend(url, tmp_path, api_key_env="MY_KEY").choose("Q?", ["A", "B"])
    assert "$MY_KEY" in str(err.value) and "sk-secret" not in str(err.value)


def test_api_key_sent_but_never_stored(server, tmp_path, monkeypatch):
    url, script = server
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("MY_SERVER_KEY", secret)
    script.steps = [("text", "B")]
    llm = _backend(url, tmp_path, api_key_env="MY_SERVER_KEY")
    llm.choose("Which is more likely?", ["A", "B"])
    llm.choose("Another question?", ["A", "B"])
    assert script.headers[0]["authorization"] == "Bearer " + secret
    assert secret.encode() not in (tmp_path / "c.sqlite").read_bytes()
    assert secret not in repr(llm) and secret not in json.dumps(vars(llm), default=str)


def test_openai_spec_needs_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = get_backend("openai:gpt-4o-mini")
    with pytest.raises(CausalError, match="OPENAI_API_KEY"):
        llm.choose("Q?", ["A", "B"])


# --------------------------------------------------------------------------- specs, parsing
def test_get_backend_specs():
    assert get_backend("ollama:llama3.1").base_url == "http://127.0.0.1:11434/v1"
    b = get_backend("http://127.0.0.1:8000/v1", model="qwen2.5:7b")
    assert (b.base_url, b.model) == ("http://127.0.0.1:8000/v1", "qwen2.5:7b")
    for bare in ("http://127.0.0.1:9/v1", "http://127.0.0.1:8000/v1:qwen2.5:7b"):
        with pytest.raises(CausalError, match="server URL without a model.*--llm-url URL --llm-model"):
            get_backend(bare)
    assert get_backend("openai:gpt-4o-mini").base_url.startswith("https://api.openai.com")
    with pytest.raises(CausalError, match="unknown LLM backend"):
        get_backend("claude:x")
    with pytest.raises(CausalError, match="no choose"):
        get_backend(42)

    class Mine:
        name, model = "mine", "m"

        def choose(self, prompt, options):
            return 0, np.array([1.0, 0.0])

    obj = Mine()
    assert get_backend(obj) is obj


def test_parse_choice_is_strict():
    assert parse_choice("A", ["A", "B"]) == 0
    assert parse_choice("<Answer>B</Answer>", ["A", "B"]) == 1
    assert parse_choice("Answer: c", ["A", "B", "C"]) == 2
    for bad in ["", "A or B", "The answer is A because", "D"]:
        assert parse_choice(bad, ["A", "B", "C"]) is None


def test_cache_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WHYLM_LLM_CACHE", str(tmp_path / "x.sqlite"))
    assert cache_path() == tmp_path / "x.sqlite"
    llm = ReplayBackend({"Q": "B"}, cache=True)
    llm.choose("Q", ["A", "B"])
    assert (tmp_path / "x.sqlite").exists()


def test_replay_backend(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"Q1": "B", "Q2": [0.7, 0.3], "Q3": 1, "Q4": "maybe"}))
    llm = get_backend(f"replay:{path}")
    assert llm.choose("Q1", ["A", "B"])[0] == 1
    idx, probs = llm.choose("Q2", ["A", "B"])
    assert idx == 0 and np.allclose(probs, [0.7, 0.3])
    assert llm.choose("Q3", ["A", "B"])[0] == 1
    with pytest.raises(CausalError, match="not one of"):
        llm.choose("Q4", ["A", "B"])
    with pytest.raises(CausalError, match="no recorded answer"):
        llm.choose("other", ["A", "B"])
    with pytest.raises(CausalError, match="not found"):
        get_backend(f"replay:{tmp_path / 'missing.json'}")


def test_invalid_probabilities_are_not_cached(tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    llm = ReplayBackend({"Q": [float("nan"), 1.0]}, cache=cache)
    with pytest.raises(CausalError, match="invalid answer"):
        llm.choose("Q", ["A", "B"])
    assert cache.get(llm.cache_key("Q", ["A", "B"])) is None


def test_local_backend_on_tiny_model(tiny_lm, tmp_path):
    llm = LocalBackend(tiny_lm, cache=AnswerCache(tmp_path / "c.sqlite"))
    idx, probs = llm.choose("Which is more likely? A. x B. y", ["A", "B", "C"])
    expected = tiny_lm.score_options("Which is more likely? A. x B. y", ["A", "B", "C"])
    assert idx == int(np.argmax(expected))
    assert np.allclose(probs, np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum(), atol=1e-6)
    llm.choose("Which is more likely? A. x B. y", ["A", "B", "C"])
    assert llm.calls == 2 and llm.uncached_calls == 1
