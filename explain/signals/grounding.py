"""Built-in grounding signals: does the context support each token of the answer?

The *context contrast* of a token is ``log p(token | context, prompt) - log p(token | prompt)``,
from one batched teacher-forced pass holding both rows; the *context share* is the share of
leave-one-segment-out attribution that goes to the context. Both apply only when a context is given.

Example:
    >>> import numpy as np
    >>> grounding_scores(np.array([2.0, 0.0]))["ungrounded"]
    -1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explain.attribution import attribute
from explain.errors import ExplainError
from explain.signals.registry import SignalContext, aggregate, register_signal

GROUNDED_NATS = 0.5
"""A token counts as supported by the context when the context raises its log-prob by this much."""


def _fraction_ungrounded(values: np.ndarray) -> float:
    return float((np.asarray(values) > -GROUNDED_NATS).mean())


@register_signal(
    "ungrounded", label="not supported by the context", scale=5.0,
    doc="(-inf, inf) nats: minus the context contrast; > 0 means the context made the token less likely",
    aggregate={"ungrounded": "mean", "ungrounded_max": "max", "ungrounded_fraction": _fraction_ungrounded},
    score_docs={
        "ungrounded": "(-inf, inf) nats: minus the mean context contrast; > 0 means the context made the "
        "answer less likely, < 0 that it supports it",
        "ungrounded_max": "(-inf, inf) nats: minus the smallest token context contrast (the worst-grounded "
        "token; > 0 means the context argues against some token)",
        "ungrounded_fraction": "[0, 1]: fraction of tokens the context does not make more likely "
        f"(contrast < {GROUNDED_NATS} nats)",
    },
)
def ungrounded(ctx: SignalContext) -> np.ndarray | None:
    """Returns: minus the context contrast per token, or None without a context."""
    if ctx.token_context_contrast is None:
        return None
    return -np.asarray(ctx.token_context_contrast, dtype=np.float64)


@register_signal(
    "context_unused", label="context ignored (attribution)", scale=1.0,
    doc="[0, 1]: 1 - the share of |attribution| that goes to the context",
    aggregate={"context_unused": "mean"},
    score_docs={"context_unused": "[0, 1]: 1 - mean share of attribution that goes to the context"},
)
def context_unused(ctx: SignalContext) -> np.ndarray | None:
    """Returns: 1 - context share per token, or None when it was not computed."""
    if ctx.token_context_share is None:
        return None
    return 1.0 - np.asarray(ctx.token_context_share, dtype=np.float64)


def grounding_scores(contrast: np.ndarray) -> dict[str, float]:
    """Grounding scores from the per-token context contrast (higher = less grounded).

    Returns:
        dict with ``ungrounded`` (minus mean contrast), ``ungrounded_max`` (minus min contrast)
        and ``ungrounded_fraction`` (share of tokens with contrast < :data:`GROUNDED_NATS`).

    Example:
        >>> grounding_scores(np.array([2.0, 0.0]))["ungrounded_max"]
        -0.0
    """
    return aggregate("ungrounded", -np.asarray(contrast, dtype=np.float64))


def context_share(lm: Any, prompt: str, context: str, response: str, m: int, chat: bool,
                  notes: list[str]) -> np.ndarray | None:
    """Per-token share of |attribution| going to the context segment (leave-one-segment-out).

    Returns:
        float32 array (m,) in [0, 1], or None (with a line in ``notes``) when attribution fails.

    Example:
        >>> context_share(lm, "Q?", "Passage.", "A.", 2, True, [])     # doctest: +SKIP
        array([0.61, 0.55], dtype=float32)
    """
    try:
        res = attribute(lm, {"context": context, "question": prompt}, target=response,
                        method="ablation", chat=chat, progress=False)
    except ExplainError as exc:
        notes.append(f"context share skipped: {exc}")
        return None
    attr = np.abs(np.asarray(res.token_attr, dtype=np.float64))
    if attr.ndim != 2 or attr.shape[0] != m or attr.shape[1] < 2:
        notes.append(f"context share skipped: attribution shape {attr.shape} does not match {m} tokens")
        return None
    total = attr.sum(axis=1)
    share = np.where(total > 0, attr[:, 0] / np.where(total > 0, total, 1.0), 0.5)
    return share.astype(np.float32)
