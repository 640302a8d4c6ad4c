"""The dashboard's LLM picker: what it offers, that a browser can never point a server-side key at a
URL of its choosing, and `whylm dashboard --llm-endpoint URL [--api-key-env NAME]`."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from causal.llm import OpenAIBackend  # noqa: E402
from dashboard import cli as dcli  # noqa: E402
from dashboard.llm_picker import ENDPOINTS_ENV, choices, endpoints_from_options, make_llm  # noqa: E402
from explain.errors import WhylmError  # noqa: E402
from llm_server import answer, send, serve  # noqa: E402

SECRET = "sk-lab-SECRET-0123456789abcdef"
OPENAI_SECRET = "sk-openai-SECRET-fedcba9876543210"


def _labels():
    return [c.label for c in choices()]


def test_openai_offered_only_with_its_key(monkeypatch):
    monkeypatch.delenv(ENDPOINTS_ENV, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert not [lab for lab in _labels() if "openai" in lab.lower()]
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    assert "OpenAI (openai:)" in _labels()
    llm, label = make_llm({"backend_choice": "OpenAI (openai:)", "llm_model": "gpt-4o-mini"})
    assert (llm.base_url, llm.api_key_env, label) == ("https://api.openai.com/v1", "OPENAI_API_KEY",
                                                      "openai:gpt-4o-mini")


def test_configured_endpoints_and_nothing_else(monkeypatch):
    monkeypatch.setenv(ENDPOINTS_ENV, json.dumps(endpoints_from_options(
        [("--llm-endpoint", "http://127.0.0.1:8000/v1"), ("--api-key-env", "LAB_KEY"),
         ("--llm-endpoint", "https://other.example/v1")])))
    labels = _labels()
    assert "Server http://127.0.0.1:8000/v1 (key from $LAB_KEY)" in labels
    assert "Server https://other.example/v1" in labels
    llm, _ = make_llm({"backend_choice": "Server https://other.example/v1", "llm_model": "m"})
    assert isinstance(llm, OpenAIBackend) and llm.api_key_env is None
    # a label, URL or key variable sent from the browser (or a reopened History run) is not obeyed
    with pytest.raises(WhylmError, match="not offered here"):
        make_llm({"backend_choice": "Server http://evil.example/v1", "llm_model": "m"})
    llm, _ = make_llm({"backend_choice": "Server http://127.0.0.1:8000/v1 (key from $LAB_KEY)",
                       "llm_model": "m", "url": "http://evil.example/v1", "api_key_env": "OPENAI_API_KEY"})
    assert (llm.base_url, llm.api_key_env) == ("http://127.0.0.1:8000/v1", "LAB_KEY")


@pytest.mark.parametrize("options, message", [
    ([("--api-key-env", "K")], "must follow the --llm-endpoint"),
    ([("--llm-endpoint", "http://example.com/v1"), ("--api-key-env", "K")], "over plain http"),
    ([("--llm-endpoint", "127.0.0.1:8000")], "--llm-endpoint: server URL must look like"),
    ([("--llm-endpoint", "http://127.0.0.1:1/v1"), ("--api-key-env", "A"), ("--api-key-env", "B")],
     "must follow"),
])
def test_dashboard_cli_rejects_bad_endpoints_in_one_line(options, message, capsys, monkeypatch):
    monkeypatch.setattr(dcli, "run_child", lambda cmd, env: pytest.fail("must not start"))
    argv = ["dashboard"] + [x for pair in options for x in pair]
    assert dcli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_dashboard_cli_passes_urls_and_names_never_keys(monkeypatch):
    monkeypatch.setenv("LAB_KEY", SECRET)
    seen = {}
    monkeypatch.setattr(dcli, "run_child", lambda cmd, env: seen.update(env=env, cmd=cmd) or 0)
    assert dcli.main(["dashboard", "--llm-endpoint", "http://127.0.0.1:8000/v1", "--api-key-env", "LAB_KEY",
                      "--llm-endpoint", "https://x.example/v1"]) == 0
    assert json.loads(seen["env"][ENDPOINTS_ENV]) == [
        {"url": "http://127.0.0.1:8000/v1", "api_key_env": "LAB_KEY"},
        {"url": "https://x.example/v1", "api_key_env": None}]
    assert SECRET not in seen["env"][ENDPOINTS_ENV] and SECRET not in " ".join(seen["cmd"])


def _page():
    return AppTest.from_string("from dashboard.pages import causal_page\ncausal_page.render()\n",
                               default_timeout=60)


@pytest.mark.parametrize("key_env", [None, "LAB_KEY"])
def test_page_sends_only_the_configured_key(key_env, tmp_path, monkeypatch):
    monkeypatch.setenv("WHYLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    monkeypatch.setenv("LAB_KEY", SECRET)

    def respond(handler, body, rec):
        send(handler, 200, answer("A"))

    with serve(respond) as (url, rec):
        monkeypatch.setenv(ENDPOINTS_ENV, json.dumps([{"url": url, "api_key_env": key_env}]))
        at = _page().run()
        assert not [t for t in at.text_input if "url" in (t.label or "").lower()]  # no URL field
        at.text_area(key="cz_vars").set_value("a\nb")
        label = f"Server {url}" + (f" (key from ${key_env})" if key_env else "")
        at.radio(key="cz_backend").set_value(label).run()
        at.text_input(key="cz_llm_model").set_value("lab-model")
        at.run()
        at.button(key="cz_propose").click().run()
    assert not at.exception and not [e.value for e in at.error], [e.value for e in at.error]
    assert rec.requests and all(r["model"] == "lab-model" for r in rec.requests)
    auth = {h.get("authorization") for h in rec.headers}
    assert auth == ({"Bearer " + SECRET} if key_env else {None})
    stored = (tmp_path / "data" / "audits.sqlite").read_bytes()
    assert SECRET.encode() not in stored and OPENAI_SECRET.encode() not in stored
