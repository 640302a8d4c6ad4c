"""Keys go only where they belong, errors never show them, and a call has a total deadline: checked
against real HTTP servers on 127.0.0.1 that echo what they receive."""

from __future__ import annotations

import json
import time

import pytest

from causal.errors import CausalError
from causal.llm import AnswerCache, OpenAIBackend, get_backend
from llm_server import answer, send, serve

OPENAI_SECRET = "sk-openai-SECRET-0123456789abcdef"
OTHER_SECRET = "sk-vllm-OTHER-9876543210fedcba"


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    monkeypatch.setenv("VLLM_KEY", OTHER_SECRET)


def _echo_headers_as_answer(handler, body, rec):
    """A hostile server: its 'answer' is the request headers it got."""
    send(handler, 200, answer(json.dumps(rec.headers[-1])))


def _answer_a(handler, body, rec):
    send(handler, 200, answer("A"))


def _seen(rec) -> str:
    return json.dumps(rec.headers)


@pytest.mark.parametrize("make", [
    lambda url, tmp: OpenAIBackend(url, "m", cache=AnswerCache(tmp / "c.sqlite")),
    lambda url, tmp: get_backend(url, model="m", cache=AnswerCache(tmp / "c.sqlite")),
    lambda url, tmp: get_backend("ollama:m", cache=AnswerCache(tmp / "c.sqlite")),
], ids=["OpenAIBackend", "get_backend-url", "ollama"])
def test_unnamed_endpoint_never_sees_a_key(make, keys, tmp_path, monkeypatch):
    with serve(_answer_a) as (url, rec):
        monkeypatch.setenv("OLLAMA_HOST", url[: -len("/v1")])
        llm = make(url, tmp_path)
        assert llm.choose("Q?", ["A", "B"])[0] == 0
    assert len(rec.headers) == 1
    assert "authorization" not in rec.headers[0]
    assert OPENAI_SECRET not in _seen(rec) and OTHER_SECRET not in _seen(rec)


def test_named_variable_goes_to_its_endpoint_only(keys, tmp_path):
    with serve(_answer_a) as (url, rec):
        OpenAIBackend(url, "m", api_key_env="VLLM_KEY", cache=False).choose("Q?", ["A", "B"])
        OpenAIBackend(url, "m", api_key_env="OPENAI_API_KEY", cache=False).choose("Q?", ["A", "B"])
    assert rec.headers[0]["authorization"] == "Bearer " + OTHER_SECRET
    assert OPENAI_SECRET not in json.dumps(rec.headers[0])
    assert rec.headers[1]["authorization"] == "Bearer " + OPENAI_SECRET  # named explicitly: allowed


def test_named_variable_unset_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_KEY", raising=False)
    with serve(_answer_a) as (url, rec):
        with pytest.raises(CausalError, match="no API key: set the environment variable VLLM_KEY"):
            OpenAIBackend(url, "m", api_key_env="VLLM_KEY", cache=False).choose("Q?", ["A", "B"])
    assert rec.requests == []


@pytest.mark.parametrize("url", ["http://example.com/v1", "http://10.1.2.3:8000/v1",
                                 "http://api.openai.com/v1", "http://127.0.0.1.example.com/v1"])
def test_no_key_over_plain_http_to_another_host(url, keys):
    with pytest.raises(CausalError, match=r"refusing to send the key in \$VLLM_KEY over plain http"):
        OpenAIBackend(url, "m", api_key_env="VLLM_KEY", cache=False)
    assert OpenAIBackend(url, "m", cache=False).api_key_env is None  # no key: allowed, sends none


def test_openai_spec_uses_openai_key_on_https_only(keys):
    llm = get_backend("openai:gpt-4o-mini", cache=False)
    assert llm.base_url == "https://api.openai.com/v1" and llm.api_key_env == "OPENAI_API_KEY"
    assert OpenAIBackend("https://api.openai.com/v1", "m", cache=False).api_key_env == "OPENAI_API_KEY"
    assert OpenAIBackend("https://api.openai.com:8443/v1", "m", cache=False).api_key_env is None
    assert OpenAIBackend("https://my-proxy.example/v1", "m", cache=False).api_key_env is None


def test_credentials_in_url_refused():
    with pytest.raises(CausalError, match="must not hold credentials"):
        OpenAIBackend("http://user:pw@127.0.0.1:8000/v1", "m", cache=False)


def test_errors_never_echo_the_key(keys, tmp_path):
    def echo_in_error(handler, body, rec):
        send(handler, 400, json.dumps({"error": "bad request", "headers": rec.headers[-1]}).encode())

    for respond, pattern in ((_echo_headers_as_answer, "not one of"), (echo_in_error, "HTTP 400")):
        with serve(respond) as (url, rec):
            llm = OpenAIBackend(url, "m", api_key_env="VLLM_KEY", cache=AnswerCache(tmp_path / "c.sqlite"))
            with pytest.raises(CausalError, match=pattern) as err:
                llm.choose("Q?", ["A", "B"])
        assert rec.headers[-1]["authorization"] == "Bearer " + OTHER_SECRET  # it did see it...
        message = str(err.value)
        assert OTHER_SECRET not in message and OTHER_SECRET[:12] not in message  # ...we never show it
        assert "\n" not in message
    assert OTHER_SECRET.encode() not in (tmp_path / "c.sqlite").read_bytes()


def test_redirect_is_not_followed(keys):
    with serve(_answer_a) as (other_url, other):
        def redirect(handler, body, rec):
            send(handler, 307, b"", headers={"Location": other_url + "/chat/completions"})

        with serve(redirect) as (url, rec):
            with pytest.raises(CausalError, match="redirect"):
                OpenAIBackend(url, "m", api_key_env="VLLM_KEY", cache=False).choose("Q?", ["A", "B"])
    assert len(rec.requests) == 1 and other.requests == []  # the key never reached the other host


def _dribble(headers_first: bool):
    def respond(handler, body, rec):
        payload = json.dumps(answer("A")).encode()
        if headers_first:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.flush()
        else:
            payload = b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n" + payload
        for i in range(40):  # one byte every 0.5 s: 20 s if nobody cuts it off
            handler.wfile.write(payload[i:i + 1])
            handler.wfile.flush()
            time.sleep(0.5)
    return respond


@pytest.mark.parametrize("headers_first", [True, False], ids=["dribbled-body", "dribbled-headers"])
def test_total_deadline_cuts_a_dribbling_server(headers_first, tmp_path):
    with serve(_dribble(headers_first)) as (url, rec):
        llm = OpenAIBackend(url, "m", timeout=1, max_retries=0, cache=False)
        t0 = time.monotonic()
        with pytest.raises(CausalError, match=r"failed after 1 try within the call's deadline of 1 s "
                                              r"\(1 s x 1 try \+ 0 s backoff\): timed out") as err:
            llm.choose("Q?", ["A", "B"])
        elapsed = time.monotonic() - t0
    assert elapsed < 2.5, f"took {elapsed:.1f} s"  # a correctness bound: 20 s without the deadline
    assert "\n" not in str(err.value)


def test_deadline_counts_retries_and_backoff(tmp_path):
    with serve(_dribble(True)) as (url, rec):
        llm = OpenAIBackend(url, "m", timeout=0.4, max_retries=2, backoff=0.1, cache=False)
        assert llm.deadline == pytest.approx(0.4 * 3 + 0.1 + 0.2)
        t0 = time.monotonic()
        with pytest.raises(CausalError, match=r"3 tries within the call's deadline of 1.5 s"):
            llm.choose("Q?", ["A", "B"])
        assert time.monotonic() - t0 < llm.deadline + 1.0
    assert len(rec.requests) == 3


@pytest.mark.parametrize("kw, msg", [({"timeout": 0}, "timeout > 0"), ({"max_retries": -1}, "max_retries >= 0"),
                                     ({"timeout": "x"}, "must be numbers"), ({"api_key_env": "A B"}, "api_key_env")])
def test_bad_settings_are_one_line(kw, msg):
    with pytest.raises(CausalError, match=msg):
        OpenAIBackend("http://127.0.0.1:8000/v1", "m", cache=False, **kw)


def test_deadline_covers_a_hung_dns_lookup(monkeypatch):
    import socket
    import threading

    from causal.llm.transport import DeadlineExceeded, post

    release = threading.Event()
    real = socket.getaddrinfo

    def hung(host, *args, **kwargs):  # a resolver that never answers (getaddrinfo has no timeout)
        if host == "llm.example.invalid":
            release.wait(20)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    t0 = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded):
            post("http://llm.example.invalid/v1/chat/completions", b"{}", {}, timeout=0.5)
        elapsed = time.monotonic() - t0
        llm = OpenAIBackend("http://llm.example.invalid/v1", "m", timeout=0.5, max_retries=0, cache=False)
        with pytest.raises(CausalError, match=r"within the call's deadline of 0.5 s .*timed out") as err:
            llm.choose("Q?", ["A", "B"])
        assert "\n" not in str(err.value)
    finally:
        release.set()
    assert elapsed < 5, f"took {elapsed:.1f} s"  # a correctness bound: 20 s without the deadline
