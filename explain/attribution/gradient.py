"""Gradient methods on the input-embedding layer: integrated gradients and input x gradient.

The numbers are those of captum's ``LLMGradientAttribution`` over ``LayerIntegratedGradients`` /
``LayerGradientXActivation`` on ``model.get_input_embeddings()``: the layer's output is
interpolated from the baseline token's embedding to the real one at the prompt's feature positions
(target tokens stay as they are), with captum's own quadrature (its ``method``, here ``rule=``,
default ``"gausslegendre"``, and ``n_steps``), gradients are taken with respect to that output, multiplied by (input - baseline)
and summed over the hidden dimension (and over a segment's positions).

Captum runs one attribution per target token, each with its own forward and backward pass over
prompt + target[:j]. A causal LM scores every target token in one teacher-forced pass, so here the
forward over each batch of interpolation steps is shared by all m target tokens, the LM head runs
only at the m target positions, and the m backward passes are batched into one vectorised call
(``torch.autograd.grad(..., is_grads_batched=True)``).

Differences from captum: captum also interpolates tokens that are not features (e.g. a BOS token,
or the chat template with ``chat=True``); here they stay fixed. With a plain prompt and a tokenizer
that adds no special tokens the two are identical.

Examples:
    >>> res = attribute(lm, "The capital of France is", " Paris", method="integrated_gradients")  # doctest: +SKIP
    >>> res.token_attr.shape                                                                     # doctest: +SKIP
    (1, 5)
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from explain.attribution.batched_forward import as_numpy, bytes_per_position
from explain.attribution.inputs import AttributionInput
from explain.attribution.registry import PlanInput, Work, check_int, register
from explain.model import LanguageModel

IG_RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def _steps(rule: str, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """captum's quadrature: (alphas, weights) for ``n_steps`` points of ``rule``."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes_fn, alphas_fn = approximation_parameters(rule)
    return torch.tensor(alphas_fn(n_steps), dtype=torch.float32), torch.tensor(
        step_sizes_fn(n_steps), dtype=torch.float32
    )


class _EmbeddingGradients:
    """Gradients of every target token's log-prob w.r.t. the input-embedding layer's output."""

    def __init__(self, lm: LanguageModel, inp: AttributionInput, grad_tokens: int) -> None:
        self.lm, self.inp = lm, inp
        self.grad_tokens = grad_tokens
        self.emb = lm.model.get_input_embeddings()
        self.ids = torch.tensor(inp.sequence, dtype=torch.long, device=lm.device)
        self.target = torch.tensor(inp.target_ids, dtype=torch.long, device=lm.device)
        self.forwards = 0
        self.backwards = 0
        self.batched = True

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.emb(ids[None]).detach()

    def logprobs(self, embeds: torch.Tensor) -> torch.Tensor:
        """(S, m) target log-probs of a batch of embedding sequences (S, L, d)."""
        m = self.inp.m
        self.forwards += 1
        logits = self.lm.forward_logits(None, m, inputs_embeds=embeds)
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(-1, self.target[None, :, None].expand(logp.shape[0], -1, 1))[..., 0]

    def weighted_grads(self, embeds: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_s weights[s] * d logp_j / d embeds[s] for every target j: (m, L, d); and logp (S, m)."""
        embeds = embeds.detach().requires_grad_(True)
        with torch.enable_grad():
            lp = self.logprobs(embeds)
        S, m = lp.shape
        per_target = S * embeds.shape[1]
        chunk = max(1, min(m, self.grad_tokens // max(1, per_target)))
        out = []
        for start in range(0, m, chunk):
            js = torch.arange(start, min(m, start + chunk), device=lp.device)
            grad_out = torch.zeros(len(js), S, m, device=lp.device, dtype=lp.dtype)
            grad_out[torch.arange(len(js)), :, js] = 1.0
            grads = self._vjp(lp, embeds, grad_out, retain=start + chunk < m)  # (chunk, S, L, d)
            out.append(torch.einsum("jsld,s->jld", grads, weights.to(grads)))
        return torch.cat(out), lp.detach()

    def _vjp(self, lp: torch.Tensor, embeds: torch.Tensor, grad_out: torch.Tensor, retain: bool) -> torch.Tensor:
        """Gradients (k, S, L, d) of lp for k cotangents: one vectorised backward, else k backwards."""
        if self.batched:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # vmap's per-op fallback warnings
                    (g,) = torch.autograd.grad(lp, embeds, grad_out, retain_graph=True, is_grads_batched=True)
                self.backwards += 1
                return g
            except RuntimeError:
                self.batched = False  # an op without a vmap rule: one backward per target token
        rows = []
        for k in range(grad_out.shape[0]):
            (g,) = torch.autograd.grad(lp, embeds, grad_out[k], retain_graph=retain or k + 1 < grad_out.shape[0])
            self.backwards += 1
            rows.append(g)
        return torch.stack(rows)

    def to_features(self, per_position: torch.Tensor) -> np.ndarray:
        """(m, L) per-position scores -> (m, n) per-feature sums."""
        cols = [per_position[:, pos].sum(1) for pos in self.inp.features]
        return as_numpy(torch.stack(cols, dim=1))

    @property
    def info(self) -> dict[str, Any]:
        return {"forward_passes": self.forwards, "backward_passes": self.backwards,
                "batched_backward": self.batched}


def _feature_positions(inp: AttributionInput) -> list[int]:
    return sorted({p for f in inp.features for p in f})


def _plan(p: PlanInput, steps: int, cheaper: str = "") -> Work:
    """``steps`` forwards and backwards (a backward costs about two forwards), plus one batched
    backward per extra target token."""
    kv, act = bytes_per_position(p.lm)
    return Work.forwards(steps * (3 + 2 * (p.m - 1)), p.n_seq, peak_bytes=steps * p.n_seq * (kv + act) * 4,
                         cheaper=cheaper)


def integrated_gradients_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`integrated_gradients`. Returns: the :class:`Work`."""
    steps = int(p.options["n_steps"])
    return _plan(p, steps, cheaper=f"fewer steps (n_steps={max(2, steps // 4)})")


def input_x_gradient_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`input_x_gradient`: one step. Returns: the :class:`Work`."""
    return _plan(p, 1)


def _check_ig(options: Mapping[str, Any]) -> None:
    for name in ("n_steps", "internal_batch_size", "grad_tokens"):
        check_int(options, name)


def _check_ixg(options: Mapping[str, Any]) -> None:
    check_int(options, "grad_tokens")


@register(
    "integrated_gradients",
    family="gradient",
    cost="n_steps forwards + m batched backwards (one per target token), steps batched",
    note="Integrated gradients from the baseline token's embedding; axiomatic, smooth, 1 model "
    "gradient per step. Equals captum LayerIntegratedGradients on the embedding layer.",
    plan=integrated_gradients_plan,
    shown=("n_steps", "rule"),
    choices={"rule": IG_RULES},
    check=_check_ig,
)
def integrated_gradients(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    baseline: int,
    progress: bool,
    n_steps: int = 20,
    rule: str = "gausslegendre",
    internal_batch_size: int | None = None,
    grad_tokens: int = 65536,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Integrated gradients of each target token's log-prob on the input embeddings.

    Args:
        n_steps: quadrature points (captum's ``n_steps``).
        rule: captum's quadrature ``method`` (default ``gausslegendre``, captum's default).
        internal_batch_size: interpolation steps per forward pass (default: all).
        grad_tokens: memory budget of one batched backward, in (targets x steps x positions).

    Returns:
        (token_attr (m, n), info); ``info["convergence_delta"]`` is the largest
        |sum of a row - (logp(x) - logp(baseline))| over target tokens (completeness gap).

    Examples:
        >>> attr, info = integrated_gradients(lm, inp, baseline=0, progress=False, n_steps=20)  # doctest: +SKIP
    """
    batch = n_steps if internal_batch_size is None else internal_batch_size
    grads = _EmbeddingGradients(lm, inp, grad_tokens)
    ref_ids = grads.ids.clone()
    ref_ids[_feature_positions(inp)] = int(baseline)
    x, x0 = grads.embed(grads.ids), grads.embed(ref_ids)
    delta = x - x0
    alphas, weights = _steps(rule, n_steps)
    total = torch.zeros(inp.m, x.shape[1], x.shape[2])
    bar = tqdm(total=n_steps, desc="integrated gradients", unit="step", disable=not progress, leave=False)
    for start in range(0, n_steps, batch):
        a = alphas[start:start + batch].to(x)
        embeds = x0 + a[:, None, None] * delta
        g, _ = grads.weighted_grads(embeds, weights[start:start + batch])
        total += g.cpu().float()
        bar.update(len(a))
    bar.close()
    per_position = (total * delta.cpu()[0][None]).sum(-1)
    attr = grads.to_features(per_position)
    with torch.no_grad():
        lp_x, lp_baseline = (grads.logprobs(emb)[0].double().cpu() for emb in (x, x0))
    gap = (lp_x - lp_baseline).numpy() - attr.sum(1)
    return attr, {
        **grads.info,
        "n_steps": n_steps,
        "rule": rule,
        "convergence_delta": float(np.abs(gap).max()),
        "target_logprobs": as_numpy(lp_x),
    }


@register(
    "input_x_gradient",
    family="gradient",
    cost="1 forward + m batched backwards",
    note="Input x gradient on the embeddings: the cheapest gradient view; a local linearisation, "
    "often noisy. Equals captum LayerGradientXActivation on the embedding layer.",
    plan=input_x_gradient_plan,
    shown=(),
    check=_check_ixg,
)
def input_x_gradient(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    baseline: int,
    progress: bool,
    grad_tokens: int = 65536,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Gradient of each target token's log-prob times the input embedding, summed over hidden dims.

    ``baseline`` is not used (the method has none); ``progress`` has nothing long to show.

    Returns:
        (token_attr (m, n), info).

    Examples:
        >>> attr, info = input_x_gradient(lm, inp, baseline=0, progress=False)  # doctest: +SKIP
    """
    grads = _EmbeddingGradients(lm, inp, grad_tokens)
    x = grads.embed(grads.ids)
    g, lp = grads.weighted_grads(x, torch.ones(1))
    per_position = (g.cpu().float() * x.cpu()[0][None]).sum(-1)
    return grads.to_features(per_position), {**grads.info, "target_logprobs": as_numpy(lp[0])}
