"""The backend registry: spec strings such as ``"openai:gpt-4o-mini"`` turn into backends.

A backend kind is registered once with :func:`register_backend` under a prefix; :func:`get_backend`
splits a spec at the first ``:`` and calls the prefix's factory with the rest. The dashboard's
list of backends comes from :func:`backends`.

Examples:
    >>> from causal.llm import ReplayBackend
    >>> register_backend("canned", lambda rest, **kw: ReplayBackend({"Q": rest}), label="Canned answer")
    >>> get_backend("canned:B").choose("Q", ["A", "B"])[0]
    1
    >>> unregister_backend("canned")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from causal.errors import CausalError
from causal.llm.base import LLMBackend
from causal.llm.local import LocalBackend, default_backend
from causal.llm.openai import OPENAI_URL, OpenAIBackend
from causal.llm.replay import ReplayBackend

OLLAMA_URL = "http://127.0.0.1:11434/v1"


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend kind.

    Attributes:
        prefix: the spec prefix (``"openai"`` for ``"openai:MODEL"``).
        factory: ``factory(rest, **kwargs)`` builds the backend from the text after the prefix.
        label: a human name (shown in the dashboard).
        example: an example spec.
        offer: when set, the dashboard offers this kind while ``offer()`` is true; None: never.
    """

    prefix: str
    factory: Callable[..., LLMBackend]
    label: str
    example: str
    offer: Callable[[], bool] | None = None


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(
    prefix: str,
    factory: Callable[..., LLMBackend],
    *,
    label: str | None = None,
    example: str | None = None,
    offer: Callable[[], bool] | None = None,
) -> None:
    """Register a backend kind under ``prefix`` (replacing one of the same name).

    Args:
        prefix: letters, digits, ``-``, ``_`` (case-insensitive), e.g. ``"mylab"`` for ``"mylab:MODEL"``.
        factory: called as ``factory(rest, **kwargs)`` with the text after ``prefix:`` and the
            keyword arguments of :func:`get_backend`; returns an object with ``choose``.
        label: a human name; example: an example spec; offer: see :class:`BackendEntry`.

    Returns:
        None.

    Examples:
        >>> register_backend("mine", lambda rest, **kw: None, label="Mine")
        >>> "mine" in [e.prefix for e in backends()]
        True
        >>> unregister_backend("mine")
    """
    key = str(prefix).strip().lower()
    if not key or not all(c.isalnum() or c in "-_" for c in key):
        raise CausalError(f"backend prefix must be letters, digits, '-' or '_', got {prefix!r}")
    if key in ("http", "https"):
        raise CausalError("'http' and 'https' cannot be backend prefixes: they would swallow URLs")
    if not callable(factory):
        raise CausalError(f"backend factory for '{key}' is not callable")
    _REGISTRY[key] = BackendEntry(key, factory, label or key, example or f"{key}:MODEL", offer)


def unregister_backend(prefix: str) -> None:
    """Remove a registered backend kind (no error when absent).

    Returns:
        None.

    Examples:
        >>> unregister_backend("never-registered")
    """
    _REGISTRY.pop(str(prefix).strip().lower(), None)


def backends() -> list[BackendEntry]:
    """The registered backend kinds, in registration order.

    Returns:
        a list of :class:`BackendEntry`.

    Examples:
        >>> [e.prefix for e in backends()][:4]
        ['local', 'openai', 'ollama', 'replay']
    """
    return list(_REGISTRY.values())


def get_backend(spec: Any = None, **kwargs: Any) -> LLMBackend:
    """Turn a backend spec into a backend.

    ``None`` or ``"local"`` → the embedded local model; ``"openai:MODEL"``; ``"ollama:MODEL"``
    (http://127.0.0.1:11434/v1, or ``$OLLAMA_HOST``); ``"replay:answers.json"``; any prefix added
    with :func:`register_backend`; a :class:`explain.model.LanguageModel`; or any object with
    ``choose`` (used as is); an OpenAI-compatible server's URL together with ``model=NAME``
    (``"http://127.0.0.1:8000/v1:qwen"`` is refused: a port or a tag would be read as the model).
    Extra keyword arguments go to the backend's factory (for HTTP backends: ``timeout``,
    ``max_retries``, ``api_key_env``).

    Returns:
        an object implementing :class:`LLMBackend`.

    Examples:
        >>> get_backend("ollama:llama3.1").base_url
        'http://127.0.0.1:11434/v1'
        >>> b = get_backend("http://127.0.0.1:9/v1", model="qwen2.5:7b", cache=False)
        >>> b.base_url, b.model
        ('http://127.0.0.1:9/v1', 'qwen2.5:7b')
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in {"", "embedded", "default"}):
        return default_backend()
    if not isinstance(spec, str):
        if hasattr(spec, "score_options") and hasattr(spec, "tokenizer"):
            return LocalBackend(spec)
        if callable(getattr(spec, "choose", None)):
            return spec
        raise CausalError(f"not an LLM backend: {type(spec).__name__} has no choose() method")
    s = spec.strip()
    if s.lower().startswith(("http://", "https://")):
        if kwargs.get("model"):
            model = kwargs.pop("model")
            return OpenAIBackend(s, str(model), **kwargs)
        raise CausalError(
            f"'{s}' is a server URL without a model: give them separately "
            "(whylm: --llm-url URL --llm-model NAME [--api-key-env NAME]; "
            "Python: OpenAIBackend(URL, MODEL) or get_backend(URL, model=NAME))"
        )
    prefix, _, rest = s.partition(":")
    entry = _REGISTRY.get(prefix.strip().lower())
    if entry is None:
        known = ", ".join(e.example for e in backends())
        raise CausalError(f"unknown LLM backend '{s}': use one of {known}")
    return entry.factory(rest.strip(), **kwargs)


def backend_label(llm: Any) -> str:
    """A short ``name:model`` label for a backend.

    Returns:
        the label.

    Examples:
        >>> backend_label(ReplayBackend({}))
        'replay:dict'
    """
    return f"{getattr(llm, 'name', type(llm).__name__)}:{getattr(llm, 'model', '')}"


def _need_model(kind: str, rest: str) -> str:
    if not rest:
        raise CausalError(f"the {kind} backend needs a model name: {kind}:MODEL")
    return rest


def _only(kind: str, kwargs: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    extra = sorted(k for k, v in kwargs.items() if k not in allowed and v is not None)
    if extra:
        raise CausalError(f"the {kind} backend takes no {', '.join(extra)}")
    return {k: v for k, v in kwargs.items() if k in allowed}


_HTTP_OPTIONS = ("timeout", "max_retries", "backoff", "cache", "api_key_env")


def _local(rest: str, **kwargs: Any) -> LLMBackend:
    kwargs = _only("local", kwargs, ("cache", "chat"))
    if rest:
        from explain.model import LanguageModel

        return LocalBackend(LanguageModel.load(rest), **kwargs)
    return default_backend()


def _openai(rest: str, **kwargs: Any) -> LLMBackend:
    kwargs = _only("openai", kwargs, _HTTP_OPTIONS)
    return OpenAIBackend(OPENAI_URL, _need_model("openai", rest), require_key=True, **kwargs)


def _ollama(rest: str, **kwargs: Any) -> LLMBackend:
    host = os.environ.get("OLLAMA_HOST", "").strip()
    url = OLLAMA_URL
    if host:
        host = host if host.startswith("http") else "http://" + host
        url = host.rstrip("/") + "/v1"
    return OpenAIBackend(url, _need_model("ollama", rest), **_only("ollama", kwargs, _HTTP_OPTIONS))


def _replay(rest: str, **kwargs: Any) -> LLMBackend:
    if not rest:
        raise CausalError("the replay backend needs a file: replay:answers.json")
    return ReplayBackend(rest, **_only("replay", kwargs, ("cache",)))


register_backend("local", _local, label="Local model", example="local")
register_backend("openai", _openai, label="OpenAI", example="openai:gpt-4o-mini",
                 offer=lambda: bool(os.environ.get("OPENAI_API_KEY")))
register_backend("ollama", _ollama, label="Ollama", example="ollama:llama3.1", offer=lambda: True)
register_backend("replay", _replay, label="Recorded answers", example="replay:answers.json")
