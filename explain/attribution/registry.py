"""The method registry: each attribution method registers itself with everything the rest of whylm
needs to know about it, in one place.

``register(name, family=, cost=, note=, plan=, defaults=, check=)`` records:

- ``defaults``: every option the method takes, with its default (read from the function's
  signature unless given; ``attribute`` fills in the ones a caller leaves out or passes as
  ``None``; the dashboard's Explain page offers the ``shown`` ones);
- ``choices``: the allowed values of an option that takes one of a few (checked here);
- ``check``: a function that raises :class:`~explain.errors.ExplainError` for a bad option value
  (``attribute`` and ``estimate_cost`` call it before anything runs; an option the method does not
  take is refused here too);
- ``plan``: a function from a :class:`PlanInput` (the tokenised prompt, the target length and the
  options) to the :class:`Work` the method will run: passes, token positions, attention pairs,
  peak memory, and the cheaper choice to suggest. :func:`~explain.attribution.cost.estimate_cost`
  turns it into seconds with the speed model. A method without a plan is priced as one forward
  pass and its estimate says that it is a lower bound.

Examples:
    >>> from explain.attribution import METHODS
    >>> METHODS["ablation"].family
    'perturbation'
    >>> METHODS["shapley"].defaults["n_samples"]
    5
    >>> METHODS["shapley"].options({"n_samples": None})["n_samples"]
    5
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from explain.attribution.inputs import AttributionInput, PromptFeatures
from explain.errors import ExplainError
from explain.model import LanguageModel


class MethodFn(Protocol):
    """What a registered method computes: (m, n) attributions and an info dict."""

    def __call__(
        self, lm: LanguageModel, inp: AttributionInput, *, baseline: int, progress: bool, **kw: Any
    ) -> tuple[np.ndarray, dict[str, Any]]: ...


@dataclass(frozen=True)
class PlanInput:
    """What a cost plan sees: the model, the tokenised prompt and its features, the target length
    and the method's options (defaults filled in).

    Examples:
        >>> pf = PromptFeatures([1, 2, 3], [[0], [1], [2]], ["a", "b", "c"], False, "tokens", [])
        >>> p = PlanInput(lm=None, prompt=pf, m=2, options={})
        >>> p.n, p.n_prompt, p.n_seq
        (3, 3, 4)
    """

    lm: Any
    prompt: PromptFeatures
    m: int
    options: Mapping[str, Any]

    @property
    def n(self) -> int:
        """Number of features."""
        return len(self.prompt.features)

    @property
    def n_prompt(self) -> int:
        """Prompt tokens (template included)."""
        return len(self.prompt.ids)

    @property
    def n_seq(self) -> int:
        """Teacher-forced sequence length: the prompt and every target token but the last."""
        return self.n_prompt + self.m - 1


@dataclass
class Work:
    """What a run computes: model passes, token positions, attention pairs (a query and a key it
    looks at), peak memory beyond the weights, and the cheaper choice to suggest.

    Examples:
        >>> w = Work.forwards(2, 4)
        >>> w.passes, w.positions, w.pairs
        (2.0, 8.0, 20.0)
    """

    passes: float
    positions: float
    pairs: float
    peak_bytes: float = 0.0
    cheaper: str = ""

    @classmethod
    def forwards(cls, k: float, length: int, peak_bytes: float = 0.0, cheaper: str = "") -> "Work":
        """``k`` plain forward passes over ``length`` positions each. Returns: the Work."""
        return cls(float(k), float(k * length), k * length * (length + 1) / 2, peak_bytes, cheaper)


CostPlan = Callable[[PlanInput], Work]
# Arguments every method function receives from attribute(): never options.
_RESERVED = ("lm", "inp", "baseline", "progress")
OptionCheck = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its name, family, cost in words, when to use it, the function, its
    cost plan (``None``: not known), its options' defaults, the options the Explain page offers,
    the allowed values of options that take one of a few, and its option check."""

    name: str
    family: str
    cost: str
    note: str
    fn: MethodFn
    plan: CostPlan | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    shown: tuple[str, ...] = ()
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    check: OptionCheck | None = None

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The options a run uses: ``given`` checked, the defaults for the rest (and for ``None``).

        Raises:
            ExplainError: an option the method does not take, or a bad value (from ``check``).

        Examples:
            >>> from explain.attribution import METHODS
            >>> METHODS["ablation"].options({"n_samples": 3})
            Traceback (most recent call last):
            explain.errors.ExplainError: method 'ablation' takes no option 'n_samples' (it takes batch_tokens, max_rows, use_cache)
        """
        takes = self.takes()
        for name in given:
            if takes is not None and name not in takes:
                raise ExplainError(f"method '{self.name}' takes no option '{name}' "
                                   f"(it takes {', '.join(takes) or 'none'})")
        merged = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        for name, allowed in self.choices.items():
            if merged.get(name) not in allowed:
                raise ExplainError(f"unknown {name} '{merged.get(name)}' for method '{self.name}': "
                                   f"choose one of {', '.join(map(str, allowed))}")
        if self.check is not None:
            self.check(merged)
        return merged

    def run(self, lm: LanguageModel, inp: AttributionInput, *, baseline: int, progress: bool,
            **given: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Run the method with ``given`` options checked and the defaults for the rest.

        Returns:
            the method's (token_attr (m, n), info).

        Examples:
            >>> attr, info = METHODS["shapley"].run(lm, inp, baseline=0, progress=False, n_samples=3)  # doctest: +SKIP
        """
        return self.fn(lm, inp, baseline=baseline, progress=progress, **self.options(given))

    def takes(self) -> list[str] | None:
        """The option names the method takes: its defaults, then any other keyword parameter of its
        function; ``None`` when the function takes ``**kwargs`` (anything goes)."""
        params = inspect.signature(self.fn).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        extra = [p.name for p in params if p.name not in self.defaults and p.name not in _RESERVED
                 and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        return [*self.defaults, *extra]


METHODS: dict[str, MethodInfo] = {}


def register(
    name: str,
    *,
    family: str,
    cost: str,
    note: str,
    plan: CostPlan | None = None,
    defaults: Mapping[str, Any] | None = None,
    shown: tuple[str, ...] | None = None,
    choices: Mapping[str, tuple[Any, ...]] | None = None,
    check: OptionCheck | None = None,
) -> Callable[[MethodFn], MethodFn]:
    """Decorator that adds a method to :data:`METHODS`.

    Args:
        name, family, cost, note: the method's name, family, cost in words and when to use it.
        plan: the method's cost plan (see :class:`PlanInput`, :class:`Work`).
        defaults: every option the method takes, with its default; default: the keyword
            parameters of the function's signature that have a default (the signature is then the
            one place they are written).
        shown: the options a user tunes (the Explain page's widgets); default: all of them.
        choices: option name -> its allowed values (checked; the Explain page offers a list).
        check: raises :class:`~explain.errors.ExplainError` for a bad option value.

    Returns:
        the function unchanged.

    Examples:
        >>> @register("demo", family="perturbation", cost="k passes", note="a demo",
        ...           plan=lambda p: Work.forwards(p.options["k"], p.n_seq))
        ... def demo(lm, inp, *, baseline, progress, k=2):
        ...     return np.zeros((inp.m, inp.n)), {}
        >>> METHODS["demo"].options({})
        {'k': 2}
        >>> unregister("demo").name
        'demo'
    """

    def wrap(fn: MethodFn) -> MethodFn:
        opts = dict(_signature_defaults(fn) if defaults is None else defaults)
        bad = [k for k in opts if k in _RESERVED]
        if bad:
            raise ValueError(f"method '{name}': '{bad[0]}' is an argument of every method, not an option")
        unknown = [k for k in (*(shown or ()), *(choices or {})) if k not in opts]
        if unknown:
            raise ValueError(f"method '{name}': option '{unknown[0]}' has no default")
        METHODS[name] = MethodInfo(name=name, family=family, cost=cost, note=note, fn=fn, plan=plan,
                                   defaults=opts, shown=tuple(opts) if shown is None else tuple(shown),
                                   choices=dict(choices or {}), check=check)
        return fn

    return wrap


def _signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters of ``fn`` that have a default, but the arguments every method gets."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.default is not inspect.Parameter.empty and p.name not in _RESERVED
            and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}


def unregister(name: str) -> MethodInfo:
    """Remove a method from :data:`METHODS` (a plugin's or a test's). Returns: its entry.

    Raises:
        ExplainError: no method of that name.
    """
    if name not in METHODS:
        raise ExplainError(f"unknown method '{name}': choose one of {', '.join(METHODS)}")
    return METHODS.pop(name)


def check_int(options: Mapping[str, Any], name: str, minimum: int = 1) -> None:
    """Raise a one-line error unless ``options[name]`` is ``None`` or an integer >= ``minimum``.

    Examples:
        >>> check_int({"n_samples": 0}, "n_samples")
        Traceback (most recent call last):
        explain.errors.ExplainError: n_samples must be an integer >= 1, got 0
        >>> check_int({"max_rows": None}, "max_rows")
    """
    value = options.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ExplainError(f"{name} must be an integer >= {minimum}, got {value!r}")


def integer_options(*names: str, minimum: int = 1) -> OptionCheck:
    """A check that each of ``names`` is ``None`` or an integer >= ``minimum``. Returns: the check.

    Examples:
        >>> integer_options("batch_tokens")({"batch_tokens": "x"})
        Traceback (most recent call last):
        explain.errors.ExplainError: batch_tokens must be an integer >= 1, got 'x'
    """

    def check(options: Mapping[str, Any]) -> None:
        for name in names:
            check_int(options, name, minimum)

    return check
