"""Built-in token-level signals from the model's own next-token distributions.

Each is registered with :func:`~explain.signals.registry.register_signal` exactly like a user's
signal; values are oriented so that higher = more suspicious. ``1 - top-1 probability`` and
``1 - margin`` are not registered: on the HaluEval dev split they rate right answers as more
suspicious than hallucinated ones (issue 10; AUROC below 0.5), so they are not shown as risk
signals (``SignalReport.token_margin`` still holds the raw margin).

Examples:
    >>> import numpy as np
    >>> from explain.signals.registry import SignalContext
    >>> ctx = SignalContext(tokens=["a", "b"], token_ids=[1, 2], token_logprob=np.log([0.5, 0.25]),
    ...                     token_entropy=np.array([0.1, 0.2]), token_margin=np.array([0.3, 0.9]),
    ...                     token_top1=np.array([0.5, 0.95]))
    >>> entropy(ctx).tolist()
    [0.1, 0.2]
    >>> np.round(neg_logprob(ctx), 3).tolist()
    [0.693, 1.386]
"""

from __future__ import annotations

import numpy as np

from explain.signals.registry import SignalContext, register_signal


@register_signal(
    "neg_logprob", label="surprise (-log p)", scale=10.0,
    doc="[0, inf) nats: -log p(token); how unexpected the token was to the model",
    aggregate={"mean_neg_logprob": "mean", "max_neg_logprob": "max"},
    score_docs={
        "mean_neg_logprob": "[0, inf) nats: mean over tokens of -log p(token); length-normalised perplexity",
        "max_neg_logprob": "[0, inf) nats: the least likely token's -log p",
    },
)
def neg_logprob(ctx: SignalContext) -> np.ndarray:
    """Returns: -log p(token) per token (nats)."""
    return -np.asarray(ctx.token_logprob, dtype=np.float64)


@register_signal(
    "entropy", label="model hesitation (entropy)", scale=5.0,
    doc="[0, log V] nats: entropy of the next-token distribution before the token",
    aggregate={"mean_entropy": "mean"},
    score_docs={"mean_entropy": "[0, log V] nats: mean entropy of the next-token distribution"},
)
def entropy(ctx: SignalContext) -> np.ndarray:
    """Returns: the next-token entropy per token (nats)."""
    return np.asarray(ctx.token_entropy, dtype=np.float64)
