"""Sampling perturbation methods: captum's ShapleyValueSampling, KernelShap and Lime on our engine.

The algorithms are captum's own (same permutations, samples, kernels and surrogate fits, driven
by the same torch random stream), but the model calls go through
:class:`~explain.attribution.prefix_tree.PrefixTreeForward`: the masks are evaluated as a prefix
tree, so the key/value cache of a prefix that several masks share is computed once (a Shapley
permutation's masks add one feature at a time and share most; random KernelSHAP/LIME masks share
only their first few features). Captum draws its perturbations
without looking at the model's answers, so each method runs in three steps:

1. *record*: captum runs with a forward function that only records the keep-masks it asks for;
2. *evaluate*: every distinct mask is evaluated in one batched call (all m target log-probs each);
3. *replay*: captum runs again from the same seed, its forward answered from that table.

ShapleyValueSampling takes a multi-output forward, so one replay gives the whole m x n matrix.
KernelShap and Lime fit a surrogate to a scalar, so they replay once per target token (no model
calls: the table answers) and once for the whole target's log-prob, which is captum's
``LLMAttribution`` sequence-level result (the result's ``seq_attr``). KernelShap's least-squares
fit is linear in its outputs, so the per-token rows sum to it; Lime's Lasso fit is not, so for
``lime`` ``token_attr.sum(0)`` and ``seq_attr`` differ slightly.

Each method is captum's algorithm with one shared wrapper (:func:`_sampling_method`):
``shapley`` (``ShapleyValueSampling``, default 5 permutations), ``kernelshap`` (``KernelShap``,
200 samples) and ``lime`` (``Lime``: Lasso, alpha 0.01, cosine kernel; 200 samples).

Examples:
    >>> res = attribute(lm, "The capital of France is", " Paris", method="shapley", n_samples=5)  # doctest: +SKIP
    >>> res.token_attr.shape                                                                    # doctest: +SKIP
    (1, 5)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from explain.attribution.batched_forward import BatchedForward, as_numpy
from explain.attribution.cost import masked_rows_work, random_halves, simulated_rows
from explain.attribution.inputs import AttributionInput
from explain.attribution.prefix_tree import PrefixTreeForward
from explain.attribution.registry import CostPlan, MethodFn, PlanInput, Work, check_int, register
from explain.model import LanguageModel

# Masks captum hands to one call of the forward function in the record/replay passes; the real
# batching happens in BatchedForward under its token budget.
PERTURBATIONS_PER_EVAL = 64


class MaskTable:
    """The forward function captum sees: records keep-masks, then answers them from a table.

    Args:
        fwd: the batched engine that evaluates masks.
        multi_output: answer (B, m) rows while recording (ShapleyValueSampling) instead of (B,).

    Examples:
        >>> table = MaskTable(BatchedForward(lm, inp), multi_output=True)   # doctest: +SKIP
        >>> table.mode = "record"; table(torch.ones(2, inp.n)).shape   # doctest: +SKIP
        torch.Size([2, m])
    """

    def __init__(self, fwd: BatchedForward | PrefixTreeForward, multi_output: bool) -> None:
        self.fwd = fwd
        self.multi_output = multi_output
        self.mode = "record"  # "record" | "all" (B, m) | "total" (B,) | int j: column j (B,)
        self.pending: dict[bytes, torch.Tensor] = {}
        self.rows: dict[bytes, torch.Tensor] = {}

    @staticmethod
    def _key(mask: torch.Tensor) -> bytes:
        return np.packbits(mask.numpy()).tobytes()

    def __call__(self, perturbed: torch.Tensor, *_: Any) -> torch.Tensor:
        """Answer captum: (B, m) in mode "all", (B,) otherwise. Returns: a float64 tensor."""
        keep = (perturbed.detach().cpu().reshape(-1, self.fwd.inp.n) > 0.5)
        if self.mode == "record":
            for row in keep:
                self.pending.setdefault(self._key(row), row)
            shape = (keep.shape[0], self.fwd.inp.m) if self.multi_output else (keep.shape[0],)
            return torch.zeros(shape, dtype=torch.float64)
        out = torch.stack([self.rows[self._key(row)] for row in keep])
        if self.mode == "all":
            return out
        if self.mode == "total":
            return out.sum(1)
        return out[:, int(self.mode)]

    def evaluate(self, progress: bool) -> None:
        """Evaluate every recorded mask not seen before, in one batched call."""
        keys = [k for k in self.pending if k not in self.rows]
        if keys:
            keep = torch.stack([self.pending[k] for k in keys])
            values = self.fwd(keep, progress=progress)
            self.rows.update(zip(keys, values))
        self.pending.clear()

    @property
    def distinct(self) -> int:
        """Number of distinct masks evaluated."""
        return len(self.rows)


def _seeded(seed: int, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Run ``fn`` from ``torch.manual_seed(seed)`` without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def _run(
    lm: LanguageModel,
    inp: AttributionInput,
    algorithm: Any,
    *,
    baseline: int,
    progress: bool,
    n_samples: int,
    seed: int,
    batch_tokens: int,
    per_token: bool,
) -> tuple[np.ndarray, dict[str, Any]]:
    fwd = BatchedForward(lm, inp, baseline=baseline, batch_tokens=batch_tokens)
    engine = PrefixTreeForward(fwd)
    table = MaskTable(engine, multi_output=per_token)
    method = algorithm(table)
    ones = torch.ones(1, inp.n)

    def run() -> torch.Tensor:
        return method.attribute(ones, n_samples=n_samples, perturbations_per_eval=PERTURBATIONS_PER_EVAL)

    _seeded(seed, run)
    table.evaluate(progress)
    info: dict[str, Any] = {"n_samples": n_samples, "seed": seed}
    if per_token:
        table.mode = "all"
        attr = _seeded(seed, run).reshape(inp.m, inp.n)
    else:
        rows = []
        for j in range(inp.m):
            table.mode = j
            rows.append(_seeded(seed, run).reshape(inp.n))
        attr = torch.stack(rows)
        table.mode = "total"
        info["seq_attr"] = as_numpy(_seeded(seed, run).reshape(inp.n)).tolist()
    info.update(engine.info)
    info["perturbations"] = table.distinct
    info["target_logprobs"] = as_numpy(fwd.original)
    return as_numpy(attr), info


def _check(options: Mapping[str, Any]) -> None:
    check_int(options, "n_samples")
    check_int(options, "seed", minimum=0)
    check_int(options, "batch_tokens")


def _fewer_samples(samples: int) -> str:
    return f"fewer samples (n_samples={max(16, samples // 4)})"


def shapley_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`shapley`: captum adds the features of each of ``n_samples``
    permutations one at a time to the all-dropped input (a few permutations simulated on long
    prompts). Returns: the engine's :class:`Work`."""
    samples, n = int(p.options["n_samples"]), p.n
    perms = simulated_rows(samples, n * n)
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(perms):
        order = rng.permutation(n)
        dropped = np.ones((n, n), dtype=bool)
        for k in range(n):
            dropped[k:, order[k]] = False  # row k keeps order[:k+1]
        blocks.append(dropped)
    work = masked_rows_work(p, np.concatenate(blocks), (samples * n + 1) / (perms * n))
    work.cheaper = f"fewer permutations (n_samples={max(1, samples // 2)})"
    return work


def kernelshap_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`kernelshap`: ``n_samples`` masks whose sizes follow the Shapley
    kernel, as captum draws them. Returns: the engine's :class:`Work`."""
    samples, n = int(p.options["n_samples"]), p.n
    rows = simulated_rows(samples, n)
    rng = np.random.default_rng(0)
    k = np.arange(1, max(2, n))
    weights = (n - 1) / (k * np.maximum(n - k, 1))
    size = rng.choice(k, size=rows, p=weights / weights.sum())
    keys = rng.random((rows, n))
    kept = keys < np.sort(keys, axis=1)[np.arange(rows), np.minimum(size, n) - 1][:, None] + 1e-12
    work = masked_rows_work(p, ~kept, samples / rows)
    work.cheaper = _fewer_samples(samples)
    return work


def lime_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`lime`: ``n_samples`` masks dropping about half the features.
    Returns: the engine's :class:`Work`."""
    samples = int(p.options["n_samples"])
    work = masked_rows_work(p, *random_halves(p, samples))
    work.cheaper = _fewer_samples(samples)
    return work


def _sampling_method(
    name: str, algorithm: str, *, per_token: bool, n_samples: int, plan: CostPlan, cost: str, note: str
) -> MethodFn:
    """Register captum's ``algorithm`` (a class in ``captum.attr``) as method ``name`` on our engine.

    Args:
        per_token: captum answers all m target tokens at once (``ShapleyValueSampling`` takes a
            multi-output forward); otherwise one surrogate fit per target token and one for the
            whole target (the result's ``seq_attr``).
        n_samples: the default number of samples (permutations for Shapley).

    Returns:
        the method: ``(lm, inp, *, baseline, progress, n_samples, seed, batch_tokens)`` ->
        (token_attr (m, n), info); equal to captum ``LLMAttribution(algorithm)`` with
        ``forward_in_tokens=False`` run from ``torch.manual_seed(seed)``.
    """

    def method(lm: LanguageModel, inp: AttributionInput, *, baseline: int, progress: bool, n_samples: int,
               seed: int, batch_tokens: int) -> tuple[np.ndarray, dict[str, Any]]:
        import captum.attr

        return _run(lm, inp, getattr(captum.attr, algorithm), baseline=baseline, progress=progress,
                    n_samples=n_samples, seed=seed, batch_tokens=batch_tokens, per_token=per_token)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"captum ``{algorithm}`` on the prefix-tree engine; see :func:`_sampling_method`."
    return register(
        name, family="perturbation", cost=cost, plan=plan, shown=("n_samples", "seed"), check=_check,
        note=note + " Seeded (seed=0), n_samples=; captum's algorithm on our prefix-tree batched forward.",
        defaults={"n_samples": n_samples, "seed": 0, "batch_tokens": 4096},
    )(method)


shapley = _sampling_method(
    "shapley", "ShapleyValueSampling", per_token=True, n_samples=5, plan=shapley_plan,
    cost="n_samples x n sequences (default 5 permutations), batched",
    note="Shapley value sampling (random permutations); unbiased, noisy with few samples.",
)
kernelshap = _sampling_method(
    "kernelshap", "KernelShap", per_token=False, n_samples=200, plan=kernelshap_plan,
    cost="n_samples sequences (default 200), batched; one linear fit per target token",
    note="Kernel SHAP: a weighted linear surrogate; good with few features (segments).",
)
lime = _sampling_method(
    "lime", "Lime", per_token=False, n_samples=200, plan=lime_plan,
    cost="n_samples sequences (default 200), batched; one Lasso fit per target token",
    note="LIME: a sparse (Lasso) local surrogate; a quick ranking, not additive.",
)
