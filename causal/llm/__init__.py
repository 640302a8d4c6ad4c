"""LLM backends behind one small interface and a registry, with an on-disk answer cache.

A backend answers multiple-choice questions: ``choose(prompt, options)`` returns the chosen index
and a probability per option. Modules: ``base`` (the :class:`LLMBackend` protocol and
:class:`CachedBackend`), ``cache`` (the SQLite answer cache), ``answers`` (strict answer parsing),
``local`` (an :class:`explain.model.LanguageModel`), ``openai`` (any OpenAI-compatible server),
``keys`` (which key may go to which endpoint), ``transport`` (one POST under a total deadline),
``replay`` (recorded answers), ``registry`` (:func:`register_backend`, :func:`get_backend`).

Examples:
    >>> llm = get_backend("replay:answers.json")       # doctest: +SKIP
    >>> llm.choose("Which is more likely? A. ... B. ...", ["A", "B"])   # doctest: +SKIP
    (0, array([0.8, 0.2]))
"""

from causal.llm.answers import NonAnswerError, parse_choice
from causal.llm.base import CachedBackend, LLMBackend
from causal.llm.cache import AnswerCache, cache_path
from causal.llm.local import LocalBackend, default_backend
from causal.llm.openai import OPENAI_URL, OpenAIBackend
from causal.llm.registry import (
    BackendEntry, backend_label, backends, get_backend, register_backend, unregister_backend,
)
from causal.llm.replay import ReplayBackend

__all__ = [
    "LLMBackend", "CachedBackend", "AnswerCache", "cache_path", "LocalBackend", "default_backend",
    "OpenAIBackend", "OPENAI_URL", "ReplayBackend", "get_backend", "backend_label",
    "register_backend", "unregister_backend", "backends", "BackendEntry", "parse_choice", "NonAnswerError",
]
