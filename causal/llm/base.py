"""The interface every LLM backend offers, and :class:`CachedBackend`, the base that gives a
backend the answer cache and its bookkeeping.

A backend answers multiple-choice questions: ``choose(prompt, options)`` returns the chosen index
and a probability per option. A new backend subclasses :class:`CachedBackend` and writes
``_choose`` (and ``settings`` when decoding settings change its answers).

Examples:
    >>> import numpy as np
    >>> class AlwaysFirst(CachedBackend):
    ...     name, model = "first", "none"
    ...     def _choose(self, prompt, options):
    ...         return np.eye(len(options))[0]
    >>> AlwaysFirst(cache=False).choose("Q?", ["A", "B"])
    (0, array([1., 0.]))
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from causal.errors import CausalError
from causal.llm.answers import check_probs, validate_options
from causal.llm.cache import AnswerCache


@runtime_checkable
class LLMBackend(Protocol):
    """The interface every backend offers (a user object with these members works as is).

    Attributes:
        name: the backend kind, e.g. ``"local"``, ``"openai"``, ``"replay"``.
        model: the model's name.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> isinstance(ReplayBackend({}), LLMBackend)
        True
    """

    name: str
    model: str

    def choose(self, prompt: str, options: Sequence[str]) -> tuple[int, np.ndarray]:
        """Answer a multiple-choice question. Returns: (index of the answer, probabilities)."""
        ...


class CachedBackend:
    """Shared caching and bookkeeping for backends: subclasses implement ``_choose``.

    Args:
        cache: True (the default on-disk cache, see :func:`causal.llm.cache.cache_path`), False
            (no cache) or an :class:`AnswerCache`.

    Attributes:
        calls: questions asked; uncached_calls: questions that reached the model.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> r = ReplayBackend({"Q": "B"}, cache=AnswerCache(":memory:"))
        >>> r.choose("Q", ["A", "B"])[0], r.choose("Q", ["A", "B"])[0], r.calls, r.uncached_calls
        (1, 1, 2, 1)
    """

    name = "base"
    model = ""

    def __init__(self, cache: bool | AnswerCache = True) -> None:
        self.cache: AnswerCache | None = (
            cache if isinstance(cache, AnswerCache) else (AnswerCache() if cache else None)
        )
        self.calls = 0
        self.uncached_calls = 0

    def settings(self) -> dict[str, Any]:
        """Decoding settings that change answers (part of the cache key).

        Returns:
            a JSON-serialisable dict; never holds a key.

        Examples:
            >>> CachedBackend(cache=False).settings()
            {}
        """
        return {}

    def cache_key(self, prompt: str, options: Sequence[str]) -> tuple:
        """The cache key of a question: (backend, model, question, options, decoding settings).

        Returns:
            a tuple of JSON-serialisable parts.

        Examples:
            >>> CachedBackend(cache=False).cache_key("Q", ["A", "B"])
            ('base', '', 'choose', 'Q', ['A', 'B'], {})
        """
        return (self.name, self.model, "choose", prompt, list(options), self.settings())

    def choose(self, prompt: str, options: Sequence[str]) -> tuple[int, np.ndarray]:
        """Answer a multiple-choice question; only valid answers are cached, a corrupt cache entry
        is ignored and overwritten.

        Returns:
            (index of the most probable option, probabilities over ``options``).

        Examples:
            >>> from causal.llm import ReplayBackend
            >>> ReplayBackend({"Q": "B"}).choose("Q", ["A", "B"])[0]
            1
        """
        opts = validate_options(options)
        self.calls += 1
        key = self.cache_key(prompt, opts)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    probs = check_probs(hit, len(opts))
                except CausalError:
                    pass  # a corrupt entry: ask again and overwrite it
                else:
                    return int(np.argmax(probs)), probs
        self.uncached_calls += 1
        probs = check_probs(self._choose(prompt, opts), len(opts))
        if self.cache is not None:
            self.cache.put(key, probs.tolist())
        return int(np.argmax(probs)), probs

    def _choose(self, prompt: str, options: list[str]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"
