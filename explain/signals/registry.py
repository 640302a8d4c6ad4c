"""The registry of hallucination signals: one function per signal, registered by name.

A *token-level* signal is a function of a :class:`SignalContext` (the response's tokens and their
log-probabilities, entropies, margins, and the context contrast when a context was given) that
returns one value per response token, oriented so that **higher = more suspicious**, or ``None``
when it does not apply (e.g. a grounding signal without a context). :func:`explain.signals`
computes every registered signal into ``SignalReport.token_signals[name]`` and rolls it up into
sequence scores (``rep.scores``) and sentence scores by the signal's ``aggregate``.

Examples:
    >>> import numpy as np
    >>> @register_signal("double_surprise", doc="twice the negative log-prob")
    ... def double_surprise(ctx):
    ...     return -2 * ctx.token_logprob
    >>> ctx = SignalContext(tokens=["a", "b"], token_ids=[1, 2], token_logprob=np.log([0.5, 0.25]),
    ...                     token_entropy=np.zeros(2), token_margin=np.ones(2), token_top1=np.ones(2))
    >>> values, scores = compute_signals(ctx, names=["double_surprise"])
    >>> np.round(values["double_surprise"], 3).tolist(), round(scores["mean_double_surprise"], 3)
    ([1.386, 2.773], 2.079)
    >>> unregister_signal("double_surprise")
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from explain.attribution.sources import content_positions
from explain.errors import ExplainError
from explain.signals.evidence import SCORE_DOCS as EVIDENCE_DOCS

Reducer = Union[str, Callable[[np.ndarray], float]]

REDUCERS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": lambda v: float(np.mean(v)),
    "max": lambda v: float(np.max(v)),
    "min": lambda v: float(np.min(v)),
    "sum": lambda v: float(np.sum(v)),
}
"""Named reducers a signal's ``aggregate`` may use."""


@dataclass
class SignalContext:
    """What a token-level signal sees: one response and the model's view of each of its tokens.

    Attributes:
        tokens, token_ids: the response tokens (readable) and their ids.
        token_logprob: (m,) log p(token) (with the context, when one was given).
        token_entropy: (m,) entropy (nats) of the next-token distribution.
        token_margin: (m,) top-1 minus top-2 probability.
        token_top1: (m,) top-1 probability.
        token_context_contrast: (m,) log p(token | context) - log p(token | no context), or None.
        token_context_share: (m,) share of |attribution| going to the context, or None.
        prompt, response, context: the texts.
        extra: anything else a caller passes to custom signals.
    """

    tokens: list[str]
    token_ids: list[int]
    token_logprob: np.ndarray
    token_entropy: np.ndarray
    token_margin: np.ndarray
    token_top1: np.ndarray
    token_context_contrast: np.ndarray | None = None
    token_context_share: np.ndarray | None = None
    prompt: str = ""
    response: str = ""
    context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalSpec:
    """A registered signal.

    Attributes:
        name: the key in ``SignalReport.token_signals``.
        fn: ``fn(ctx) -> array of one value per token, or None``.
        level: ``"token"`` (the only level the report stores per token today).
        doc: what the value means, its unit and range (shown in tooltips and reports).
        label: a plain-language name for people (dashboard, figures).
        aggregate: sequence score name -> reducer (``"mean"``, ``"max"``, ... or a function of the
            token values); each becomes ``rep.scores[score]`` and a sentence score.
        score_docs: score name -> its meaning, for :data:`SCORE_DOCS`.
        scale: the value that gets full colour in figures and highlighting (an absolute scale,
            the same for every answer); None: the largest |value| of the answer shown.
    """

    name: str
    fn: Callable[[SignalContext], Any]
    level: str = "token"
    doc: str = ""
    label: str = ""
    aggregate: Mapping[str, Reducer] = field(default_factory=dict)
    score_docs: Mapping[str, str] = field(default_factory=dict)
    scale: float | None = None


SIGNALS: dict[str, SignalSpec] = {}
"""Every registered signal by name, in registration order."""

LEVELS = ("token",)


def register_signal(
    name: str,
    level: str = "token",
    doc: str = "",
    aggregate: Mapping[str, Reducer] | Reducer | None = None,
    label: str | None = None,
    score_docs: Mapping[str, str] | None = None,
    scale: float | None = None,
) -> Callable[[Callable[[SignalContext], Any]], Callable[[SignalContext], Any]]:
    """Decorator: register ``fn(ctx) -> one value per response token`` as signal ``name``.

    Args:
        name: the signal's key (letters, digits, underscores).
        level: ``"token"``.
        doc: what the value means (unit, range; higher = more suspicious).
        aggregate: how the token values roll up into sequence and sentence scores: a mapping
            score name -> reducer, or one reducer (score ``"mean_<name>"`` / ``"<reducer>_<name>"``);
            default ``{"mean_<name>": "mean"}``.
        label: plain-language name (default: ``name`` with spaces).
        score_docs: meaning of each aggregated score (default: from ``doc``).
        scale: the value drawn at full colour (an absolute scale); None: per answer.

    Returns:
        the decorator; it returns the function unchanged. Registering a name again replaces it.

    Examples:
        >>> @register_signal("length_one", doc="1 per token", aggregate="sum")
        ... def length_one(ctx):
        ...     return [1.0] * len(ctx.tokens)
        >>> SIGNALS["length_one"].aggregate
        {'sum_length_one': 'sum'}
        >>> unregister_signal("length_one")
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ExplainError(f"signal name must be an identifier like 'my_signal', got {name!r}")
    if level not in LEVELS:
        raise ExplainError(f"unknown signal level {level!r}: use one of {', '.join(LEVELS)}")
    if aggregate is None:
        agg: dict[str, Reducer] = {f"mean_{name}": "mean"}
    elif isinstance(aggregate, str) or callable(aggregate):
        key = aggregate if isinstance(aggregate, str) else getattr(aggregate, "__name__", "agg")
        agg = {f"{key}_{name}": aggregate}
    else:
        agg = dict(aggregate)
    for score, reducer in agg.items():
        if isinstance(reducer, str) and reducer not in REDUCERS:
            raise ExplainError(f"unknown reducer {reducer!r} for score {score!r}: use {', '.join(REDUCERS)} or a function")

    def deco(fn: Callable[[SignalContext], Any]) -> Callable[[SignalContext], Any]:
        docs = dict(score_docs or {})
        for score, reducer in agg.items():
            docs.setdefault(score, f"{reducer if isinstance(reducer, str) else 'aggregate'} over tokens of: {doc}")
        SIGNALS[name] = SignalSpec(name=name, fn=fn, level=level, doc=doc, label=label or name.replace("_", " "),
                                   aggregate=agg, score_docs=docs, scale=scale)
        return fn

    return deco


def unregister_signal(name: str) -> None:
    """Remove a registered signal (no error if it is not registered).

    Examples:
        >>> unregister_signal("no_such_signal")
    """
    SIGNALS.pop(name, None)


def _reduce(reducer: Reducer, values: np.ndarray) -> float:
    fn = REDUCERS[reducer] if isinstance(reducer, str) else reducer
    return float(fn(values)) if values.size else float("nan")


def compute_signals(
    ctx: SignalContext, names: Sequence[str] | None = None, notes: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Run registered signals on one response.

    Args:
        ctx: the response's :class:`SignalContext`.
        names: which signals (default: every registered one).
        notes: a list that a signal's failure is reported to (the signal is then skipped).

    Returns:
        (token values by signal name as float arrays of length m, sequence scores by score name,
        rolled up over the tokens that hold words or numbers: :func:`content_positions`).
        Signals that return ``None`` (not applicable) are left out.

    Raises:
        ExplainError: a signal returned the wrong number of values (without ``notes``: any failure).
    """
    m = len(ctx.tokens)
    keep = content_positions(ctx.tokens)
    values: dict[str, np.ndarray] = {}
    scores: dict[str, float] = {}
    for name in names if names is not None else list(SIGNALS):
        spec = SIGNALS.get(name)
        if spec is None:
            raise ExplainError(f"unknown signal {name!r}: registered are {', '.join(SIGNALS)}")
        try:
            out = spec.fn(ctx)
            if out is None:
                continue
            arr = np.asarray(out, dtype=np.float64).reshape(-1)
            if arr.shape != (m,):
                raise ExplainError(f"signal {name!r} returned {arr.size} values for {m} tokens")
            rolled = aggregate(name, arr[keep])
        except Exception as exc:  # noqa: BLE001 — a user's signal must not sink the whole report
            if notes is None:
                raise
            notes.append(f"signal {name!r} skipped: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        values[name] = arr
        bad = [score for score, v in rolled.items() if not math.isfinite(v)]
        if bad and notes is not None:  # a NaN/inf score would pass for a number downstream
            notes.append(f"signal {name!r}: score {', '.join(bad)} is not finite (NaN or inf token values): dropped")
        scores.update({score: v for score, v in rolled.items() if score not in bad})
    return values, scores


def sentence_scores(values: Mapping[str, np.ndarray], spans: Sequence[tuple[int, int]],
                    tokens: Sequence[str]) -> list[dict[str, float]]:
    """Each sentence's scores: every signal's token values over the sentence's tokens that hold
    words or numbers (:func:`content_positions`), rolled up by the signal's reducers.

    Returns:
        per span, score name -> value.

    Examples:
        >>> import numpy as np
        >>> sentence_scores({"neg_logprob": np.array([1.0, 6.0, 2.0])}, [(0, 2), (2, 3)], [" Paris", ".", " Yes"])
        [{'mean_neg_logprob': 1.0, 'max_neg_logprob': 1.0}, {'mean_neg_logprob': 2.0, 'max_neg_logprob': 2.0}]
    """
    out = []
    for s, e in spans:
        keep = content_positions(tokens, s, e)
        sc: dict[str, float] = {}
        for name, v in values.items():
            sc.update(aggregate(name, np.asarray(v)[keep]))
        out.append(sc)
    return out


def aggregate(name: str, values: np.ndarray) -> dict[str, float]:
    """Roll one signal's token values (or a slice of them) up by the signal's reducers.

    Returns:
        score name -> value.

    Examples:
        >>> import numpy as np
        >>> aggregate("neg_logprob", np.array([1.0, 3.0]))
        {'mean_neg_logprob': 2.0, 'max_neg_logprob': 3.0}
    """
    spec = SIGNALS[name]
    out = {}
    for score, reducer in spec.aggregate.items():
        try:
            out[score] = _reduce(reducer, np.asarray(values, dtype=np.float64))
        except Exception as exc:  # noqa: BLE001 - a user's reducer: name it, in one line
            raise ExplainError(f"signal {name!r}: the reducer of score {score!r} failed "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})") from None
    return out


def score_docs() -> dict[str, str]:
    """Every sequence score's meaning: the registered signals', then the evidence scores
    (:mod:`explain.signals.evidence`, with a context).

    Returns:
        score name -> doc string.

    Examples:
        >>> "mean_neg_logprob" in score_docs(), "contradicted" in score_docs()
        (True, True)
    """
    out: dict[str, str] = {}
    for spec in SIGNALS.values():
        out.update(spec.score_docs)
    out.update(EVIDENCE_DOCS)
    return out
