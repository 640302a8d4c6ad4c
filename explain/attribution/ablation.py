"""Exact leave-one-out ablation: our batched engine.

Feature i's attribution to target token j is ``log p(t_j | x) - log p(t_j | x with feature i
replaced by the baseline token)``, the same quantity as captum's ``FeatureAblation`` over
``LLMAttribution``, computed with n + 1 teacher-forced sequences in a few batched passes that
reuse the unperturbed prefix's key/value cache (see :mod:`explain.attribution.batched_forward`).
Over sources (``sources="sentences"``, ...) feature i is *removed* instead (ContextCite's
leave-one-out): ``log p(t_j | x) - log p(t_j | x without source i)``.

Examples:
    >>> res = attribute(lm, "The capital of France is", " Paris", method="ablation")  # doctest: +SKIP
    >>> res.token_attr.shape                                                           # doctest: +SKIP
    (1, 5)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explain.attribution.batched_forward import BatchedForward, as_numpy
from explain.attribution.cost import masked_rows_work
from explain.attribution.inputs import AttributionInput
from explain.attribution.registry import PlanInput, Work, integer_options, register
from explain.model import LanguageModel


def ablation_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`ablation`: one row per feature, each dropping that feature.

    Returns: the engine's :class:`Work` (:func:`~explain.attribution.cost.masked_rows_work`).
    """
    return masked_rows_work(p, np.eye(p.n, dtype=bool))


@register(
    "ablation",
    family="perturbation",
    cost="n+1 sequences, batched, prefix cache reused (~n²/2 + nm positions)",
    note="Exact leave-one-out; equals captum FeatureAblation. The default: cheap and faithful.",
    plan=ablation_plan,
    shown=(),
    check=integer_options("batch_tokens", "max_rows"),
)
def ablation(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    baseline: int,
    progress: bool,
    batch_tokens: int = 4096,
    max_rows: int | None = None,
    use_cache: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Leave-one-out attributions.

    Returns:
        (token_attr (m, n), info) where ``token_attr[j, i]`` is the drop in target token j's
        log-prob when feature i is replaced by ``baseline`` (removed, over sources).

    Examples:
        >>> attr, info = ablation(lm, inp, baseline=0, progress=False)   # doctest: +SKIP
    """
    fwd = BatchedForward(
        lm, inp, baseline=baseline, batch_tokens=batch_tokens, max_rows=max_rows, use_cache=use_cache
    )
    keep = ~torch.eye(inp.n, dtype=torch.bool)
    perturbed = fwd(keep, progress=progress)
    attr = as_numpy(fwd.original[None, :] - perturbed).T
    return attr, {**fwd.info, "batch_tokens": batch_tokens, "target_logprobs": as_numpy(fwd.original)}


