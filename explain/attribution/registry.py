"""The method registry: each attribution module registers its function under a name.

Example:
    >>> from explain.attribution import METHODS
    >>> METHODS["ablation"].family
    'perturbation'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from explain.attribution.inputs import AttributionInput
from explain.model import LanguageModel


class MethodFn(Protocol):
    """What a registered method computes: (m, n) attributions and an info dict."""

    def __call__(
        self, lm: LanguageModel, inp: AttributionInput, *, baseline: int, progress: bool, **kw: Any
    ) -> tuple[np.ndarray, dict[str, Any]]: ...


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its name, family, cost in model passes, and when to use it."""

    name: str
    family: str
    cost: str
    note: str
    fn: MethodFn


METHODS: dict[str, MethodInfo] = {}


def register(name: str, *, family: str, cost: str, note: str) -> Callable[[MethodFn], MethodFn]:
    """Decorator that adds a method to :data:`METHODS`. Returns: the function unchanged."""

    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = MethodInfo(name=name, family=family, cost=cost, note=note, fn=fn)
        return fn

    return wrap
