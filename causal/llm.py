"""LLM backends behind one small interface, with an on-disk answer cache.

A backend answers two kinds of question:

- ``choose(prompt, options)``: a multiple-choice question whose answer is one of ``options``
  (short labels such as ``"A"``, ``"B"``); returns the chosen index and a probability per option;
- ``complete(prompt, max_tokens)``: free text.

Backends: :class:`LocalBackend` (an :class:`explain.model.LanguageModel`, options compared by
log-probability in one batched pass), :class:`OpenAIBackend` (any OpenAI-compatible
``/v1/chat/completions`` server: OpenAI, vLLM, llama.cpp server, Ollama), :class:`ReplayBackend`
(recorded answers). :func:`get_backend` turns a spec string into a backend. Every answer of the
built-in backends is cached in SQLite (``$WHYLM_LLM_CACHE``) keyed by backend, model, prompt and
decoding settings; invalid answers are never cached. API keys are read from the environment at
request time and never stored, logged or cached.

Example:
    >>> llm = get_backend("replay:answers.json")       # doctest: +SKIP
    >>> llm.choose("Which is more likely? A. ... B. ...", ["A", "B"])   # doctest: +SKIP
    (0, array([0.8, 0.2]))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from causal.errors import CausalError

OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://127.0.0.1:11434/v1"
_URL_SPEC = re.compile(r"^(https?://[^/:\s]+(?::\d+)?(?:/[^:\s]*)?):(.+)$")


@runtime_checkable
class LLMBackend(Protocol):
    """The interface every backend offers (a user object with these members works as is).

    Attributes:
        name: the backend kind, e.g. ``"local"``, ``"openai"``, ``"replay"``.
        model: the model's name.
    """

    name: str
    model: str

    def choose(self, prompt: str, options: Sequence[str]) -> tuple[int, np.ndarray]:
        """Answer a multiple-choice question. Returns: (index of the answer, probabilities)."""
        ...

    def complete(self, prompt: str, max_tokens: int = 64) -> str:
        """Answer in free text. Returns: the answer."""
        ...


# --------------------------------------------------------------------------- cache
def cache_path() -> Path:
    """Path of the SQLite answer cache: ``$WHYLM_LLM_CACHE`` or the user cache dir.

    Example:
        >>> cache_path().suffix
        '.sqlite'
    """
    env = os.environ.get("WHYLM_LLM_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("whylm")) / "llm-cache.sqlite"


class AnswerCache:
    """A small SQLite key-value store of LLM answers (JSON values).

    Example:
        >>> c = AnswerCache(":memory:")
        >>> c.put(("local", "m", "p"), {"probs": [1.0]}); c.get(("local", "m", "p"))
        {'probs': [1.0]}
    """

    _lock = threading.Lock()

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = str(path) if path is not None else str(cache_path())
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        return self._conn

    @staticmethod
    def key(parts: Sequence[Any]) -> str:
        """A stable hash of the key parts. Returns: a hex digest."""
        return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).hexdigest()

    def get(self, parts: Sequence[Any]) -> Any | None:
        """The cached value for ``parts``, or None. Returns: the decoded JSON value or None."""
        with self._lock:
            try:
                row = self._db().execute(
                    "SELECT value FROM answers WHERE key = ?", (self.key(parts),)
                ).fetchone()
            except sqlite3.Error:
                return None
        return json.loads(row[0]) if row else None

    def put(self, parts: Sequence[Any], value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``parts``. Returns: None."""
        with self._lock:
            try:
                db = self._db()
                db.execute(
                    "INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)",
                    (self.key(parts), json.dumps(value)),
                )
                db.commit()
            except sqlite3.Error:
                pass  # a read-only or locked cache must not break a run


def _check_probs(probs: Any, n: int) -> np.ndarray:
    """Validate option probabilities (finite, non-negative, right length) and normalise them."""
    arr = np.asarray(probs, dtype=float).reshape(-1)
    if arr.shape[0] != n or not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
        raise CausalError(f"LLM returned an invalid answer distribution {arr.tolist()[:8]}")
    return arr / arr.sum()


def _validate_options(options: Sequence[str]) -> list[str]:
    opts = [str(o) for o in options]
    if len(opts) < 2:
        raise CausalError("a multiple-choice question needs at least two options")
    if len(set(o.strip().upper() for o in opts)) != len(opts) or any(not o.strip() for o in opts):
        raise CausalError(f"options must be distinct and non-empty: {opts}")
    return opts


class _CachedBackend:
    """Shared caching and bookkeeping for the built-in backends."""

    name = "base"
    model = ""

    def __init__(self, cache: bool | AnswerCache = True) -> None:
        self.cache: AnswerCache | None = (
            cache if isinstance(cache, AnswerCache) else (AnswerCache() if cache else None)
        )
        self.calls = 0  # questions asked
        self.uncached_calls = 0  # questions that reached the model

    def settings(self) -> dict[str, Any]:
        """Decoding settings that change answers (part of the cache key)."""
        return {}

    def _key(self, kind: str, prompt: str, extra: Any) -> tuple:
        return (self.name, self.model, kind, prompt, extra, self.settings())

    def choose(self, prompt: str, options: Sequence[str]) -> tuple[int, np.ndarray]:
        """Answer a multiple-choice question.

        Returns:
            (index of the most probable option, probabilities over ``options``).

        Example:
            >>> ReplayBackend({"Q": "B"}).choose("Q", ["A", "B"])[0]
            1
        """
        opts = _validate_options(options)
        self.calls += 1
        key = self._key("choose", prompt, opts)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                probs = _check_probs(hit, len(opts))
                return int(np.argmax(probs)), probs
        self.uncached_calls += 1
        probs = _check_probs(self._choose(prompt, opts), len(opts))
        if self.cache is not None:
            self.cache.put(key, probs.tolist())
        return int(np.argmax(probs)), probs

    def complete(self, prompt: str, max_tokens: int = 64) -> str:
        """Answer in free text (greedy).

        Returns:
            the answer's text.
        """
        self.calls += 1
        key = self._key("complete", prompt, int(max_tokens))
        if self.cache is not None:
            hit = self.cache.get(key)
            if isinstance(hit, str):
                return hit
        self.uncached_calls += 1
        text = self._complete(prompt, int(max_tokens))
        if not isinstance(text, str):
            raise CausalError("LLM returned no text")
        if self.cache is not None and text.strip():
            self.cache.put(key, text)
        return text

    def _choose(self, prompt: str, options: list[str]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _complete(self, prompt: str, max_tokens: int) -> str:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


# --------------------------------------------------------------------------- local
class LocalBackend(_CachedBackend):
    """A local :class:`explain.model.LanguageModel`: options are compared by log-probability.

    All options are scored in one batched teacher-forced pass as the assistant's answer to the
    chat-formatted prompt; probabilities are the softmax of the options' summed log-probs.

    Example:
        >>> from explain.model import LanguageModel                  # doctest: +SKIP
        >>> LocalBackend(LanguageModel.load()).choose("2+2=4? A. yes B. no", ["A", "B"])  # doctest: +SKIP
        (0, array([0.7, 0.3]))
    """

    name = "local"

    def __init__(self, lm: Any, cache: bool | AnswerCache = True, chat: bool = True) -> None:
        super().__init__(cache)
        self.lm = lm
        self.model = str(getattr(lm, "name", type(lm).__name__))
        self.chat = chat

    def settings(self) -> dict[str, Any]:
        return {"chat": self.chat, "scoring": "option-logprob"}

    def _choose(self, prompt: str, options: list[str]) -> np.ndarray:
        scores = self._single_token_scores(prompt, options)
        if scores is None:
            scores = np.asarray(self.lm.score_options(prompt, options, chat=self.chat), dtype=float)
        scores = scores - scores.max()
        return np.exp(scores)

    def _single_token_scores(self, prompt: str, options: list[str]) -> np.ndarray | None:
        """When every option is one token (letters), all scores come from one next-token
        distribution: one row instead of one per option (same numbers as ``score_options``)."""
        tok_ids = [self.lm.encode(o, special=False) for o in options]
        if any(len(t) != 1 for t in tok_ids):
            return None
        ids, _ = self.lm.prompt_ids(prompt, chat=self.chat and self.lm.has_chat_template)
        _, row = self.lm.continuation_logprobs([ids], [tok_ids[0]], full=True)[0]
        return np.array([float(row[0, t[0]]) for t in tok_ids], dtype=float)

    def _complete(self, prompt: str, max_tokens: int) -> str:
        ids, _ = self.lm.prompt_ids(prompt, chat=self.chat and self.lm.has_chat_template)
        gen = self.lm.generate(ids, max_new_tokens=max_tokens)
        return self.lm.tokenizer.decode(gen.sequences[0], skip_special_tokens=True)


# --------------------------------------------------------------------------- HTTP
class OpenAIBackend(_CachedBackend):
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
        probs = _probs_from_logprobs(choice.get("logprobs"), options)
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

    def _complete(self, prompt: str, max_tokens: int) -> str:
        data = self._chat(prompt, max_tokens, logprobs=False)
        text = (data["choices"][0].get("message") or {}).get("content")
        if not isinstance(text, str):
            raise CausalError(f"LLM server at {self.base_url} answered without message content")
        return text


class _LogprobsRefused(Exception):
    """The server rejected the log-probs request (HTTP 400): retry without it."""


def _http_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(300).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a detail is optional
        return ""
    body = " ".join(body.split())[:120]
    return f": {body}" if body else ""


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Strictly parse a constrained answer: the text must be one option label, optionally wrapped
    in punctuation, markdown or an ``<Answer>`` tag.

    Returns:
        the option's index, or None when the text is not exactly one option.

    Example:
        >>> parse_choice(" **B**.", ["A", "B"]), parse_choice("A or B", ["A", "B"])
        (1, None)
    """
    t = re.sub(r"</?answer>", " ", str(text), flags=re.I)
    t = re.sub(r"^\s*(final\s+)?answer\s*[:\-]\s*", "", t.strip(), flags=re.I)
    t = t.strip().strip("*_`'\"()[]{}.:;!, \n\t")
    upper = [o.strip().upper() for o in options]
    return upper.index(t.upper()) if t.upper() in upper else None


def _probs_from_logprobs(logprobs: Any, options: Sequence[str]) -> np.ndarray | None:
    """Option probabilities from the first answer token's top log-probs, or None."""
    try:
        content = logprobs["content"]
        first = content[0]
        tops = first.get("top_logprobs") or [first]
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    upper = [o.strip().upper() for o in options]
    mass = np.zeros(len(options))
    for entry in tops:
        try:
            tok = str(entry["token"]).strip().strip("*_`'\"().:").upper()
            lp = float(entry["logprob"])
        except (TypeError, KeyError, ValueError):
            continue
        if tok in upper and math.isfinite(lp):
            mass[upper.index(tok)] += math.exp(lp)
    if mass.sum() <= 0:
        return None
    floor = 1e-6  # options outside the top list get a tiny mass, not zero
    return np.maximum(mass, floor)


# --------------------------------------------------------------------------- replay
class ReplayBackend(_CachedBackend):
    """Answers from a recording: a dict (or a JSON file holding one) from prompt to answer.

    An answer is an option label (``"B"``), an index, a list of probabilities, or for
    ``complete`` a string. A prompt with no recording is an error.

    Example:
        >>> r = ReplayBackend({"Q?": [0.2, 0.8]}, cache=False)
        >>> r.choose("Q?", ["A", "B"])[0]
        1
    """

    name = "replay"

    def __init__(self, answers: dict[str, Any] | str | os.PathLike, cache: bool | AnswerCache = False) -> None:
        super().__init__(cache)
        if isinstance(answers, (str, os.PathLike)):
            path = Path(answers).expanduser()
            try:
                answers = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise CausalError(f"replay file not found: {path}") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CausalError(f"replay file {path} is not JSON: {exc}") from None
            self.model = path.name
        else:
            self.model = "dict"
        if not isinstance(answers, dict):
            raise CausalError("replay answers must be a JSON object from prompt to answer")
        self.answers = answers

    def _lookup(self, prompt: str) -> Any:
        if prompt not in self.answers:
            raise CausalError(f"no recorded answer for prompt {prompt[:60]!r}")
        return self.answers[prompt]

    def _choose(self, prompt: str, options: list[str]) -> np.ndarray:
        ans = self._lookup(prompt)
        if isinstance(ans, (list, tuple)):
            return np.asarray(ans, dtype=float)
        if isinstance(ans, int) and 0 <= ans < len(options):
            index = ans
        else:
            index = parse_choice(str(ans), options)
        if index is None:
            raise CausalError(f"recorded answer {ans!r} is not one of {options}")
        out = np.zeros(len(options))
        out[index] = 1.0
        return out

    def _complete(self, prompt: str, max_tokens: int) -> str:
        return str(self._lookup(prompt))


# --------------------------------------------------------------------------- factory
_default_lock = threading.Lock()
_default_backend: LocalBackend | None = None


def default_backend() -> LocalBackend:
    """The embedded local model's backend, loaded once per process.

    Returns:
        a :class:`LocalBackend` over ``LanguageModel.load()``.
    """
    global _default_backend
    with _default_lock:
        if _default_backend is None:
            from explain.model import LanguageModel

            _default_backend = LocalBackend(LanguageModel.load())
        return _default_backend


def get_backend(spec: Any = None, **kwargs: Any) -> LLMBackend:
    """Turn a backend spec into a backend.

    ``None`` → the embedded local model; ``"openai:MODEL"``; ``"ollama:MODEL"``
    (http://127.0.0.1:11434/v1, or ``$OLLAMA_HOST``); ``"http://host:port/v1:MODEL"``;
    ``"replay:answers.json"``; a :class:`explain.model.LanguageModel`; or any object with
    ``choose``/``complete`` (used as is). Extra keyword arguments go to the HTTP backend
    (``timeout``, ``max_retries``, ``api_key_env``).

    Returns:
        an object implementing :class:`LLMBackend`.

    Example:
        >>> get_backend("ollama:llama3.1").base_url
        'http://127.0.0.1:11434/v1'
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in {"", "local", "embedded", "default"}):
        return default_backend()
    if not isinstance(spec, str):
        if hasattr(spec, "score_options") and hasattr(spec, "tokenizer"):
            return LocalBackend(spec)
        if callable(getattr(spec, "choose", None)):
            return spec
        raise CausalError(f"not an LLM backend: {type(spec).__name__} has no choose() method")
    s = spec.strip()
    low = s.lower()
    if low.startswith("openai:"):
        return OpenAIBackend(OPENAI_URL, s.split(":", 1)[1], require_key=True, **kwargs)
    if low.startswith("ollama:"):
        host = os.environ.get("OLLAMA_HOST", "").strip()
        url = OLLAMA_URL
        if host:
            host = host if host.startswith("http") else "http://" + host
            url = host.rstrip("/") + "/v1"
        return OpenAIBackend(url, s.split(":", 1)[1], **kwargs)
    if low.startswith("replay:"):
        return ReplayBackend(s.split(":", 1)[1])
    if low.startswith(("http://", "https://")):
        m = _URL_SPEC.match(s)
        if not m:
            raise CausalError(
                f"cannot read backend '{s}': use http://host:port/v1:model-name"
            )
        return OpenAIBackend(m.group(1), m.group(2), **kwargs)
    raise CausalError(
        f"unknown LLM backend '{s}': use openai:MODEL, ollama:MODEL, "
        "http://host:port/v1:MODEL or replay:FILE.json"
    )


def backend_label(llm: Any) -> str:
    """A short ``name:model`` label for a backend. Returns: the label."""
    return f"{getattr(llm, 'name', type(llm).__name__)}:{getattr(llm, 'model', '')}"
