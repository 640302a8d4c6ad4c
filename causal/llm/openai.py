"""The OpenAI-compatible HTTP backend: OpenAI, vLLM, llama.cpp server, Ollama.

Example:
    >>> OpenAIBackend("http://127.0.0.1:8000/v1", "qwen2.5-7b", cache=False).base_url
    'http://127.0.0.1:8000/v1'
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from causal.errors import CausalError
from causal.llm.answers import parse_choice, probs_from_logprobs
from causal.llm.base import CachedBackend
from causal.llm.cache import AnswerCache

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIBackend(CachedBackend):
    """An OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp server, Ollama).

    Multiple-choice answers use the returned top log-probs of the first answer token when the
    server gives them; otherwise the answer must be exactly one option label (strict parsing:
    anything else is an error and is not cached). The API key is read from ``api_key_env`` at
    request time and never stored.

    Args:
        base_url: e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the served model's name.
        api_key_env: environment variable holding the key (optional for local servers).
        timeout: seconds per request.
        max_retries: retries after the first try on timeouts, connection errors, 429 and 5xx.
        backoff: first wait in seconds, doubled after each retry.

    Example:
        >>> llm = OpenAIBackend("http://127.0.0.1:8000/v1", "qwen2.5-7b")   # doctest: +SKIP
        >>> llm.choose("Is rain wet? A. yes B. no", ["A", "B"])              # doctest: +SKIP
        (0, array([0.99, 0.01]))
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        cache: bool | AnswerCache = True,
        require_key: bool = False,
    ) -> None:
        super().__init__(cache)
        if not model:
            raise CausalError("OpenAI-compatible backend needs a model name")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.require_key = require_key
        self._logprobs_ok: bool | None = None

    def settings(self) -> dict[str, Any]:
        return {"url": self.base_url, "temperature": 0}

    # -- transport
    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env or "", "")
        if key:
            headers["Authorization"] = "Bearer " + key
        elif self.require_key:
            raise CausalError(f"no API key: set the environment variable {self.api_key_env}")
        body = json.dumps(payload).encode()
        last = "no answer"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as exc:
                detail = _http_detail(exc)
                if exc.code == 429 or exc.code >= 500:
                    last = f"HTTP {exc.code}{detail}"
                    continue
                if exc.code == 400 and payload.get("logprobs") and self._logprobs_ok is None:
                    raise _LogprobsRefused() from None
                if exc.code in (401, 403):
                    raise CausalError(
                        f"LLM server at {self.base_url} refused the request (HTTP {exc.code}): "
                        f"check the key in ${self.api_key_env}"
                    ) from None
                raise CausalError(
                    f"LLM server at {self.base_url} answered HTTP {exc.code}{detail}"
                ) from None
            except (socket.timeout, TimeoutError):
                last = f"timed out after {self.timeout:g} s"
                continue
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    last = f"timed out after {self.timeout:g} s"
                else:
                    last = f"not reachable ({reason})"
                continue
            except (ConnectionError, OSError) as exc:
                last = f"connection failed ({type(exc).__name__})"
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise CausalError(
                    f"LLM server at {self.base_url} answered something that is not JSON: "
                    f"{raw[:80]!r}"
                ) from None
            if not isinstance(data, dict) or not data.get("choices"):
                raise CausalError(f"LLM server at {self.base_url} answered without 'choices'")
            return data
        raise CausalError(
            f"LLM server at {self.base_url} failed after {self.max_retries + 1} tries: {last}"
        )

    def _chat(self, prompt: str, max_tokens: int, logprobs: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        if logprobs:
            payload.update(logprobs=True, top_logprobs=20)
        return self._post(payload)

    def _choose(self, prompt: str, options: list[str]) -> np.ndarray:
        labels = ", ".join(options[:-1]) + " or " + options[-1]
        question = f"{prompt}\n\nAnswer with exactly one of {labels} and nothing else."
        want_lp = self._logprobs_ok is not False
        try:
            data = self._chat(question, 4, logprobs=want_lp)
        except _LogprobsRefused:
            self._logprobs_ok = False
            data = self._chat(question, 4, logprobs=False)
        choice = data["choices"][0]
        probs = probs_from_logprobs(choice.get("logprobs"), options)
        if probs is not None:
            self._logprobs_ok = True
            return probs
        text = ((choice.get("message") or {}).get("content") or "")
        index = parse_choice(text, options)
        if index is None:
            raise CausalError(
                f"LLM answered {text[:60]!r}, not one of {options} (answer not cached)"
            )
        out = np.zeros(len(options))
        out[index] = 1.0
        return out


class _LogprobsRefused(Exception):
    """The server rejected the log-probs request (HTTP 400): retry without it."""


def _http_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(300).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a detail is optional
        return ""
    body = " ".join(body.split())[:120]
    return f": {body}" if body else ""
