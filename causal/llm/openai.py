"""The OpenAI-compatible HTTP backend: OpenAI, vLLM, llama.cpp server, Ollama.

Examples:
    >>> OpenAIBackend("http://127.0.0.1:8000/v1", "qwen2.5-7b", cache=False).base_url
    'http://127.0.0.1:8000/v1'
"""

from __future__ import annotations

import http.client
import json
import os
import time
from typing import Any

import numpy as np

from causal.errors import CausalError
from causal.llm.transport import DeadlineExceeded, TooLarge, post
from causal.llm.answers import NonAnswerError, parse_choice, probs_from_logprobs
from causal.llm.base import CachedBackend
from causal.llm.cache import AnswerCache
from causal.llm.keys import OPENAI_URL, check_url, key_env_for, redact

__all__ = ["OpenAIBackend", "OPENAI_URL"]


class OpenAIBackend(CachedBackend):
    """An OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp server, Ollama).

    Multiple-choice answers use the top log-probs of the first answer token when the server gives
    them and that token is itself an option label; otherwise the answer text must be exactly one
    option label (strict parsing). Anything else raises :class:`NonAnswerError` and is not cached.

    Keys: ``$OPENAI_API_KEY`` is sent only to OpenAI's own https endpoint. Any other server gets a
    key only from the variable named by ``api_key_env``, and never over plain http to a host that
    is not this machine. The key is read at request time and never stored or shown.

    Deadline: every call ends within ``timeout x (max_retries + 1) + backoff x (2**max_retries - 1)``
    seconds (each try has ``timeout`` seconds in total for connecting, sending and reading the whole
    answer; the waits between tries are ``backoff``, doubled each time).

    Args:
        base_url: e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the served model's name.
        timeout: seconds per try, in total.
        max_retries: retries after the first try on timeouts, connection errors, 429 and 5xx.
        backoff: first wait in seconds between tries, doubled after each retry.
        cache: True (on-disk cache), False, or an :class:`AnswerCache`.
        api_key_env: the environment variable holding this server's key (None: no key, except
            ``$OPENAI_API_KEY`` for OpenAI's own endpoint).
        require_key: fail (one line) when the key's variable is unset.

    Examples:
        >>> llm = OpenAIBackend("http://127.0.0.1:8000/v1", "qwen2.5-7b", timeout=2, max_retries=1,
        ...                     cache=False)
        >>> llm.deadline
        4.5
        >>> llm.choose("Is rain wet? A. yes B. no", ["A", "B"])              # doctest: +SKIP
        (0, array([0.99, 0.01]))
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        cache: bool | AnswerCache = True,
        api_key_env: str | None = None,
        require_key: bool = False,
    ) -> None:
        if not model or not str(model).strip():
            raise CausalError("OpenAI-compatible backend needs a model name")
        try:
            timeout, max_retries, backoff = float(timeout), int(max_retries), float(backoff)
        except (TypeError, ValueError):
            raise CausalError("timeout and backoff must be numbers, max_retries an integer") from None
        if not timeout > 0 or max_retries < 0 or backoff < 0:
            raise CausalError(f"need timeout > 0, max_retries >= 0, backoff >= 0; got {timeout:g}, "
                              f"{max_retries}, {backoff:g}")
        self.base_url = check_url(base_url)
        self.api_key_env = key_env_for(self.base_url, api_key_env)
        super().__init__(cache)
        self.model = str(model).strip()
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.require_key = require_key or bool(api_key_env)
        self._logprobs_ok: bool | None = None

    @property
    def deadline(self) -> float:
        """The longest a call can take, in seconds: timeout x tries + the waits between them."""
        return self.timeout * (self.max_retries + 1) + self.backoff * (2**self.max_retries - 1)

    def settings(self) -> dict[str, Any]:
        """Decoding settings in the cache key. Returns: the server URL and temperature 0."""
        return {"url": self.base_url, "temperature": 0}

    # -- transport
    def _key(self) -> str | None:
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if not key and self.require_key:
            raise CausalError(f"no API key: set the environment variable {self.api_key_env}")
        return key or None

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + "/chat/completions"
        key = self._key()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        body = json.dumps(payload).encode()
        tries = self.max_retries + 1
        last = "no answer"
        for attempt in range(tries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                status, raw = post(url, body, headers, self.timeout)
            except DeadlineExceeded:
                last = f"timed out (no complete answer within {self.timeout:g} s)"
                continue
            except TooLarge as exc:
                raise CausalError(f"LLM server at {self.base_url}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                last = f"not reachable ({type(exc).__name__}: {redact(str(exc), key)[:80]})"
                continue
            if status == 429 or status >= 500:
                last = f"HTTP {status}{_detail(raw, key)}"
                continue
            if 300 <= status < 400:
                raise CausalError(f"LLM server at {self.base_url} answered a redirect (HTTP {status}); "
                                  "redirects are not followed: give the final URL") from None
            if status == 400 and payload.get("logprobs") and self._logprobs_ok is None:
                raise _LogprobsRefused()
            if status in (401, 403):
                hint = f"check the key in ${self.api_key_env}" if self.api_key_env else (
                    "no key is sent to this server unless you name its variable with api_key_env "
                    "(--api-key-env)")
                raise CausalError(f"LLM server at {self.base_url} refused the request (HTTP {status}): "
                                  f"{hint}")
            if status >= 400:
                raise CausalError(f"LLM server at {self.base_url} answered HTTP {status}{_detail(raw, key)}")
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise CausalError(f"LLM server at {self.base_url} answered something that is not JSON: "
                                  f"{redact(raw[:200].decode('utf-8', 'replace'), key)[:80]!r}") from None
            if not isinstance(data, dict) or not data.get("choices"):
                raise CausalError(f"LLM server at {self.base_url} answered without 'choices'")
            choices = data["choices"]
            if not isinstance(choices, list) or not isinstance(choices[0], dict):
                raise CausalError(f"LLM server at {self.base_url} answered 'choices' as a "
                                  f"{type(choices).__name__ if not isinstance(choices, list) else 'list of ' + type(choices[0]).__name__}"
                                  ", not a list of objects (not an OpenAI-compatible answer)")
            message = choices[0].get("message")
            if message is not None and not isinstance(message, dict):
                raise CausalError(f"LLM server at {self.base_url} answered a 'message' that is a "
                                  f"{type(message).__name__}, not an object (not an OpenAI-compatible answer)")
            return data
        plural = "try" if tries == 1 else "tries"
        raise CausalError(
            f"LLM server at {self.base_url} failed after {tries} {plural} within the call's deadline "
            f"of {self.deadline:g} s ({self.timeout:g} s x {tries} {plural} + "
            f"{self.deadline - self.timeout * tries:g} s backoff): {last}"
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
        choice = data["choices"][0]  # _post checked: a dict whose message, if any, is a dict
        try:
            probs = probs_from_logprobs(choice.get("logprobs"), options)
        except ValueError as exc:
            raise CausalError(f"LLM server at {self.base_url}: {exc}") from None
        if probs is not None:
            self._logprobs_ok = True
            return probs
        text = (choice.get("message") or {}).get("content") or ""
        index = parse_choice(text, options)
        if index is None:
            shown = redact(str(text), os.environ.get(self.api_key_env or "", "") or None)
            raise NonAnswerError(f"LLM answered {shown[:60]!r}, not one of {options} (answer not cached)")
        out = np.zeros(len(options))
        out[index] = 1.0
        return out


class _LogprobsRefused(Exception):
    """The server rejected the log-probs request (HTTP 400): retry without it."""


def _detail(raw: bytes, key: str | None) -> str:
    body = " ".join(redact(raw[:2000].decode("utf-8", "replace"), key).split())[:120]
    return f": {body}" if body else ""
