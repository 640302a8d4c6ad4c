"""The local backend: a :class:`explain.model.LanguageModel` compares the options by log-probability.

Examples:
    >>> from explain.model import LanguageModel                  # doctest: +SKIP
    >>> LocalBackend(LanguageModel.load()).choose("2+2=4? A. yes B. no", ["A", "B"])  # doctest: +SKIP
    (0, array([0.7, 0.3]))
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from causal.llm.base import CachedBackend
from causal.llm.cache import AnswerCache


class LocalBackend(CachedBackend):
    """A local :class:`explain.model.LanguageModel`: options are compared by log-probability.

    All options are scored in one batched teacher-forced pass as the assistant's answer to the
    chat-formatted prompt; probabilities are the softmax of the options' summed log-probs.

    Examples:
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
        """Decoding settings in the cache key. Returns: ``{"chat": ..., "scoring": "option-logprob"}``."""
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


_default_lock = threading.Lock()
_default_backend: LocalBackend | None = None


def default_backend() -> LocalBackend:
    """The embedded local model's backend, loaded once per process.

    Returns:
        a :class:`LocalBackend` over ``LanguageModel.load()``.

    Examples:
        >>> default_backend().name                                     # doctest: +SKIP
        'local'
    """
    global _default_backend
    with _default_lock:
        if _default_backend is None:
            from explain.model import LanguageModel

            _default_backend = LocalBackend(LanguageModel.load())
        return _default_backend
