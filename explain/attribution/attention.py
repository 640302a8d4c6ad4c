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

**The attention sink.** Causal LMs park most of their attention on the first position (a "sink",
Xiao et al. 2023): on SmolLM2, rollout over "The capital of France is" gives "The" 1.0 and every
other token below 1e-6, whatever the target. By default (``sink="exclude"``) the first position is
left out of the normalisation: each target token's scores over the other positions are divided by
their sum (so they sum to 1 over prompt, template and earlier target positions), and the first
position scores 0 by construction. The mass the method puts on it is shown separately, per target
token, in ``info["sink_share"]``. Rollout still favours early positions (a causal model's rollout
drains mass towards the start); read it as a heuristic.
``sink="keep"`` gives the unmodified method.

Examples:
    >>> res = attribute(lm, "The capital of France is", " Paris", method="attention")  # doctest: +SKIP
    >>> res.token_attr.min() >= 0                                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from explain.attribution.batched_forward import as_numpy
from explain.attribution.inputs import AttributionInput
from explain.attribution.registry import PlanInput, Work, register
from explain.errors import ExplainError
from explain.model import LanguageModel

MODES = ("rollout", "last_layer", "mean")
SINK_CHOICES = ("exclude", "keep")


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


def target_attention(lm: LanguageModel, inp: AttributionInput, cache: Any,
                     first: int | None = None) -> torch.Tensor | None:
    """Attention weights from the positions ``first`` on (default: the m positions that predict the
    target) to every position, every layer and head.

    The prefix's cache is cut from ``cache`` (a pass over the whole sequence) and only those
    positions are run again with eager attention, so the weights cost (layers, heads, rows, L)
    memory, never L x L.

    Returns:
        float32 (layers, heads, rows, L), or None where the model's cache cannot be cut or it returns
        no attention weights.
    """
    first = len(inp.prompt_ids) - 1 if first is None else first
    past = lm.cache_prefix(cache, first, 1) if cache is not None else None
    if past is None:
        return None
    ids = torch.tensor([inp.sequence[first:]], dtype=torch.long, device=lm.device)
    kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": True, "output_attentions": True,
                              lm._cache_kwarg: past}
    with torch.no_grad(), eager_attention(lm.model):
        out = lm.model.base_model(**kwargs)
    atts = getattr(out, "attentions", None)
    if not atts or any(a is None for a in atts):
        return None
    return torch.stack([a[0].float() for a in atts]).cpu()


def exclude_sink(rows: torch.Tensor) -> torch.Tensor:
    """Score rows (k, L) without the first position, renormalised to sum to 1 over the rest.

    Returns: a float64 (k, L) tensor whose first column is 0.

    Examples:
        >>> exclude_sink(torch.tensor([[0.9, 0.06, 0.04], [1.0, 0.0, 0.0]])).tolist()
        [[0.0, 0.6, 0.4], [0.0, 0.0, 0.0]]
    """
    out = rows.double().clone()
    out[:, 0] = 0.0
    return out / out.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


def rollout(attentions: list[torch.Tensor], residual: float) -> torch.Tensor:
    """Attention rollout of head-averaged maps (L, L) per layer. Returns: (L, L), rows sum to 1.

    Examples:
        >>> rollout([torch.tensor([[1.0, 0.0], [0.5, 0.5]])], residual=0.5).tolist()
        [[1.0, 0.0], [0.25, 0.75]]
    """
    eye = torch.eye(attentions[0].shape[-1], dtype=torch.float64)
    out = eye
    for a in attentions:
        mixed = residual * eye + (1.0 - residual) * a.double()
        out = (mixed / mixed.sum(-1, keepdim=True)) @ out
    return out


def _combine(maps: list[torch.Tensor], mode: str, residual: float) -> torch.Tensor:
    """One (L, L) float64 score map from per-layer head-averaged maps, as ``mode`` says."""
    if mode == "rollout":
        return rollout(maps, residual)
    if mode == "last_layer":
        return maps[-1].double()
    return torch.stack(maps).double().mean(0)


def attention_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`attention`: one forward that keeps every layer's attention weights.
    Returns: the :class:`Work`."""
    cfg = p.lm.model.config
    layers = getattr(cfg, "num_hidden_layers", 12)
    heads = getattr(cfg, "num_attention_heads", 12)
    return Work.forwards(1, p.n_seq, peak_bytes=layers * heads * p.n_seq * p.n_seq * 4.0)


def _check(options: Mapping[str, Any]) -> None:
    residual = options.get("residual")
    if isinstance(residual, bool) or not isinstance(residual, (int, float)) or not 0 <= residual < 1:
        raise ExplainError(f"residual must be a number in [0, 1), got {residual!r}")


@register(
    "attention",
    family="attention",
    cost="1 forward pass (eager attention)",
    note="HEURISTIC: attention rollout from each target position; cheap, not faithful. "
    "mode=rollout (default), last_layer or mean. The first position (the attention sink, which "
    "takes nearly all the mass) is excluded from every map and its share shown separately in "
    "info['sink_share']; sink='keep' for the unmodified method.",
    plan=attention_plan,
    shown=("mode",),
    choices={"mode": MODES, "sink": SINK_CHOICES},
    check=_check,
)
def attention(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    baseline: int,
    progress: bool,
    mode: str = "rollout",
    residual: float = 0.5,
    sink: str = "exclude",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Attention from the positions predicting each target token to the prompt's features.

    ``baseline`` and ``progress`` are not used (one pass, nothing is perturbed).

    Args:
        mode: ``rollout``, ``last_layer`` or ``mean``.
        residual: rollout's weight of the residual connection.
        sink: ``exclude`` (default) takes the first position out of every map (see the module's
            note); ``keep`` runs the method unmodified.

    Returns:
        (token_attr (m, n), info) with non-negative scores; ``info["sink_share"]`` is the mass the
        unmodified method puts on the first position, per target token.

    Examples:
        >>> attr, info = attention(lm, inp, baseline=0, progress=False, mode="last_layer")  # doctest: +SKIP
    """
    ids = torch.tensor([inp.sequence], dtype=torch.long, device=lm.device)
    with torch.no_grad(), eager_attention(lm.model):
        out = lm.model(input_ids=ids, output_attentions=True, use_cache=False)
    if not out.attentions or any(a is None for a in out.attentions):
        raise ExplainError(f"model '{lm.name}' does not return attention weights")
    maps = [a[0].float().mean(0).cpu() for a in out.attentions]  # head-averaged (L, L) per layer
    predicting = slice(len(inp.prompt_ids) - 1, len(inp.prompt_ids) - 1 + inp.m)
    rows = _combine(maps, mode, float(residual))[predicting]
    sink_share = rows[:, 0]
    if sink == "exclude":
        rows = exclude_sink(rows)
    attr = torch.stack([rows[:, pos].sum(1) for pos in inp.features], dim=1)
    logp = torch.log_softmax(out.logits[0, -inp.m:].float(), dim=-1)
    target = torch.tensor(inp.target_ids, device=logp.device)
    return as_numpy(attr), {
        "forward_passes": 1,
        "mode": mode,
        "residual": float(residual),
        "sink": sink,
        "sink_share": as_numpy(sink_share).tolist(),
        "heuristic": True,
        "target_logprobs": as_numpy(logp.gather(-1, target[:, None])[:, 0]),
    }
