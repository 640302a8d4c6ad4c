"""Built-in grounding signals: does the context support each token of the answer?

The *context contrast* of a token is ``log p(token | context, prompt) - log p(token | prompt)``,
from one batched teacher-forced pass holding both rows; the *context share* is the share of
leave-one-segment-out attribution that goes to the context. Both apply only when a context is given.

Examples:
    >>> import numpy as np
    >>> grounding_scores(np.array([2.0, 0.0]), np.log([0.9, 0.9]))["ungrounded_fraction"]
    0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explain.attribution import attribute
from explain.errors import ExplainError
from explain.signals.registry import SignalContext, aggregate, register_signal

GROUNDED_NATS = 0.5
"""A token counts as supported by the context when the context raises its log-prob by this much."""


SUPPORTED_P = 0.5
"""A token the model already gives this probability with the context counts as grounded even when the
context raises it by less than :data:`GROUNDED_NATS` (the end of a copied span, a full stop)."""


@register_signal(
    "ungrounded", label="context argues against it", scale=5.0,
    doc="[0, inf) nats: how much the context lowers the token's log-prob (0 when it raises it)",
    aggregate={"ungrounded": "mean", "ungrounded_max": "max"},
    score_docs={
        "ungrounded": "[0, inf) nats: mean over tokens of how much the context lowers each token's log-prob",
        "ungrounded_max": "[0, inf) nats: how much the context lowers the least compatible token (> 0: the "
        "context argues against some token)",
    },
)
def ungrounded(ctx: SignalContext) -> np.ndarray | None:
    """Returns: ``max(0, -context contrast)`` per token, or None without a context."""
    if ctx.token_context_contrast is None:
        return None
    return np.maximum(0.0, -np.asarray(ctx.token_context_contrast, dtype=np.float64))


@register_signal(
    "not_grounded", label="not grounded in the context", scale=1.0,
    doc=f"0 or 1: 1 when the context neither raises the token by {GROUNDED_NATS} nats nor makes it likely "
        f"(p >= {SUPPORTED_P})",
    aggregate={"ungrounded_fraction": "mean"},
    score_docs={"ungrounded_fraction": "[0, 1]: fraction of tokens the context neither makes more likely "
                f"(by {GROUNDED_NATS} nats) nor likely (p >= {SUPPORTED_P}); ~0 for a copied span"},
)
def not_grounded(ctx: SignalContext) -> np.ndarray | None:
    """Returns: 1.0 for each token not grounded in the context, else 0.0; None without a context."""
    if ctx.token_context_contrast is None:
        return None
    contrast = np.asarray(ctx.token_context_contrast, dtype=np.float64)
    likely = np.asarray(ctx.token_logprob, dtype=np.float64) >= np.log(SUPPORTED_P)
    return ((contrast < GROUNDED_NATS) & ~likely).astype(np.float64)


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


def grounding_scores(contrast: np.ndarray, logprob: np.ndarray) -> dict[str, float]:
    """Grounding scores from the per-token context contrast and log-prob (higher = less grounded).

    Returns:
        dict with ``ungrounded`` (mean of ``max(0, -contrast)``), ``ungrounded_max`` (its maximum)
        and ``ungrounded_fraction`` (share of tokens neither raised by :data:`GROUNDED_NATS` nor
        likely with the context).

    Examples:
        >>> grounding_scores(np.array([2.0, -1.0]), np.log([0.9, 0.1]))
        {'ungrounded': 0.5, 'ungrounded_max': 1.0, 'ungrounded_fraction': 0.5}
    """
    ctx = SignalContext(tokens=[""] * len(contrast), token_ids=[0] * len(contrast), token_logprob=logprob,
                        token_entropy=np.zeros(len(contrast)), token_margin=np.zeros(len(contrast)),
                        token_top1=np.zeros(len(contrast)), token_context_contrast=contrast)
    return {**aggregate("ungrounded", ungrounded(ctx)), **aggregate("not_grounded", not_grounded(ctx))}


def context_share(lm: Any, prompt: str, context: str, response: str, m: int, chat: bool,
                  notes: list[str]) -> np.ndarray | None:
    """Per-token share of |attribution| going to the context segment (leave-one-segment-out).

    Returns:
        float32 array (m,) in [0, 1], or None (with a line in ``notes``) when attribution fails.

    Examples:
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
