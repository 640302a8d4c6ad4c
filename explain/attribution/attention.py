"""Attention-based attribution: a cheap heuristic, not a faithful explanation.

Attention weights say where a layer reads from, not how much an input changes the output; use this
for a first look (one forward pass), and check conclusions with ``ablation`` or
``integrated_gradients``. Three views of the same forward pass:

- ``rollout`` (default, Abnar & Zuidema 2020): per layer, the head-averaged attention mixed with
  the residual connection (``residual * I + (1 - residual) * A``, rows renormalised), multiplied
  through the layers; the row of the position predicting target token j is its attribution;
- ``last_layer``: the last layer's head-averaged attention;
- ``mean``: the head- and layer-averaged attention.

A segment's score is the sum over its positions. Scores are non-negative and rows sum to at most 1.

Example:
    >>> res = attribute(lm, "The capital of France is", " Paris", method="attention")  # doctest: +SKIP
    >>> res.token_attr.min() >= 0                                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from explain.attribution.batched_forward import as_numpy
from explain.attribution.inputs import AttributionInput
from explain.attribution.registry import register
from explain.errors import ExplainError
from explain.model import LanguageModel

MODES = ("rollout", "last_layer", "mean")


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Switch ``model`` to eager attention (the only kind that returns weights), then back."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def rollout(attentions: list[torch.Tensor], residual: float) -> torch.Tensor:
    """Attention rollout of head-averaged maps (L, L) per layer. Returns: (L, L), rows sum to 1.

    Example:
        >>> rollout([torch.tensor([[1.0, 0.0], [0.5, 0.5]])], residual=0.5).tolist()
        [[1.0, 0.0], [0.25, 0.75]]
    """
    eye = torch.eye(attentions[0].shape[-1], dtype=torch.float64)
    out = eye
    for a in attentions:
        mixed = residual * eye + (1.0 - residual) * a.double()
        out = (mixed / mixed.sum(-1, keepdim=True)) @ out
    return out


@register(
    "attention",
    family="attention",
    cost="1 forward pass (eager attention)",
    note="HEURISTIC: attention rollout from each target position; cheap, not faithful. "
    "mode=rollout (default), last_layer or mean.",
)
def attention(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    baseline: int,
    progress: bool,
    mode: str = "rollout",
    residual: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Attention from the positions predicting each target token to the prompt's features.

    ``baseline`` and ``progress`` are not used (one pass, nothing is perturbed).

    Returns:
        (token_attr (m, n), info) with non-negative scores.

    Example:
        >>> attr, info = attention(lm, inp, baseline=0, progress=False, mode="last_layer")  # doctest: +SKIP
    """
    if mode not in MODES:
        raise ExplainError(f"unknown attention mode '{mode}': choose one of {', '.join(MODES)}")
    if isinstance(residual, bool) or not isinstance(residual, (int, float)) or not 0 <= residual < 1:
        raise ExplainError(f"residual must be a number in [0, 1), got {residual!r}")
    ids = torch.tensor([inp.sequence], dtype=torch.long, device=lm.device)
    with torch.no_grad(), eager_attention(lm.model):
        out = lm.model(input_ids=ids, output_attentions=True, use_cache=False)
    if not out.attentions or any(a is None for a in out.attentions):
        raise ExplainError(f"model '{lm.name}' does not return attention weights")
    maps = [a[0].float().mean(0).cpu() for a in out.attentions]  # head-averaged (L, L) per layer
    if mode == "rollout":
        scores = rollout(maps, float(residual))
    elif mode == "last_layer":
        scores = maps[-1].double()
    else:
        scores = torch.stack(maps).double().mean(0)
    rows = scores[len(inp.prompt_ids) - 1:len(inp.prompt_ids) - 1 + inp.m]
    attr = torch.stack([rows[:, pos].sum(1) for pos in inp.features], dim=1)
    logp = torch.log_softmax(out.logits[0, -inp.m:].float(), dim=-1)
    target = torch.tensor(inp.target_ids, device=logp.device)
    return as_numpy(attr), {
        "forward_passes": 1,
        "mode": mode,
        "residual": float(residual),
        "heuristic": True,
        "target_logprobs": as_numpy(logp.gather(-1, target[:, None])[:, 0]),
    }
