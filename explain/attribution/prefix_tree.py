"""Evaluate many keep-masks of one prompt as a prefix tree: each distinct prefix is computed once.

In a causal LM the hidden states up to position p depend only on the tokens up to p. Two masks that
agree on every feature before feature f therefore share the key/value cache of everything before
f. Sorted in feature order, the masks form a tree (a trie over their keep-bits); this engine walks
it level by level: at each chosen feature boundary it keeps one cache row per distinct prefix,
copies each row to its children, and runs only the next span of tokens for them, in one batched
pass per level; the last level runs the rest of the prompt and the target with the LM head at the
m target positions only.

The boundaries are chosen by a small dynamic programme over a cost model (tokens computed,
cached tokens copied and read, a fixed cost per pass). Shapley value sampling gains most: one
permutation's n + 1 masks add one feature at a time, so at feature f only f + 1 of them differ
before it, about half the positions of running every mask in full. Random masks (KernelSHAP,
LIME) differ early (2**f prefixes at feature f), so only their first few features are shared.

The pass cost also keeps the levels few for accuracy's sake: on SmolLM2 (float32, with the
outsized activations of its sink token) a tree with one level per feature gave Shapley values
1.4e-3 away from captum's; the default constants 2e-5 to 1.1e-4 (n = 32 to 64 prompt tokens),
against 1.6e-5 to 3.4e-5 for plain forwards.

The path is checked at run time as :class:`BatchedForward` checks its own: the unperturbed row is
always evaluated, and if it differs from a plain forward the engine falls back to plain forwards.

Examples:
    >>> fwd = PrefixTreeForward(BatchedForward(lm, inp))       # doctest: +SKIP
    >>> fwd(torch.ones(2, inp.n, dtype=torch.bool)).shape       # doctest: +SKIP
    torch.Size([2, m])
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from explain.attribution.batched_forward import CACHE_CHECK_TOLERANCE, BatchedForward

# Cost model, in units of "one token through the model": copying and attending to one cached
# token, and the fixed cost of one batched pass (Python and kernel launch overhead).
KV_TOKEN_COST = 0.05
PASS_COST = 16.0


def distinct_prefixes(keep: np.ndarray) -> np.ndarray:
    """Number of distinct prefixes ``keep[:, :f]`` for f = 0..n. Returns: int array (n + 1,).

    Examples:
        >>> distinct_prefixes(np.array([[0, 0], [1, 0], [1, 1]], dtype=bool)).tolist()
        [1, 2, 3]
    """
    rows, n = keep.shape
    counts = np.ones(n + 1, dtype=np.int64)
    group = np.zeros(rows, dtype=np.int64)
    for f in range(n):
        group = np.unique(group * 2 + keep[:, f], return_inverse=True)[1].reshape(-1)
        counts[f + 1] = group.max() + 1 if rows else 0
    return counts


def plan(
    distinct: np.ndarray,
    bounds: np.ndarray,
    total: int,
    pass_cost: float = PASS_COST,
    kv_cost: float = KV_TOKEN_COST,
) -> list[int]:
    """Feature boundaries to cache at, minimising the cost model.

    Args:
        distinct: distinct prefixes per boundary (:func:`distinct_prefixes`).
        bounds: token position of boundary f (start of feature f; ``bounds[n]`` the prompt's end).
        total: sequence length (the last level runs from its boundary to here for every row).
        pass_cost, kv_cost: the cost model's constants (see the module's note).

    Returns:
        the increasing boundaries (0 first) whose caches are built.

    Examples:
        >>> plan(np.array([1, 2, 3]), np.array([0, 1, 2]), 3)
        [0]
    """
    n = len(distinct) - 1
    best = np.full(n + 1, np.inf)
    back = np.zeros(n + 1, dtype=np.int64)
    best[0] = bounds[0] + (pass_cost if bounds[0] else 0.0)
    for f in range(1, n + 1):
        prev = np.arange(f)
        cost = best[:f] + pass_cost + distinct[f] * ((bounds[f] - bounds[prev]) + kv_cost * bounds[prev])
        back[f] = int(np.argmin(cost))
        best[f] = cost[back[f]]
    final = best + pass_cost + distinct[-1] * ((total - bounds) + kv_cost * bounds)
    f = int(np.argmin(final))
    chosen = [f]
    while f:
        f = int(back[f])
        chosen.append(f)
    return chosen[::-1]


class PrefixTreeForward:
    """Callable: keep-masks (B, n) -> target log-probs (B, m), float64, via a prefix tree.

    Args:
        fwd: the plain batched engine of the same input (its unperturbed result, counters, and the
            fallback when the features are not contiguous and in order, are removed rather than
            replaced (sources), or the cache misbehaves).
        max_rows: rows per tree (rows are split into groups of adjacent masks in sorted order;
            default: ``fwd.batch_tokens`` divided by the sequence length, at least 8).
        pass_cost, kv_cost: the cost model's constants (see the module's note).

    Examples:
        >>> tree = PrefixTreeForward(BatchedForward(lm, inp))   # doctest: +SKIP
    """

    def __init__(
        self,
        fwd: BatchedForward,
        max_rows: int | None = None,
        pass_cost: float = PASS_COST,
        kv_cost: float = KV_TOKEN_COST,
    ) -> None:
        self.fwd = fwd
        self.costs = (float(pass_cost), float(kv_cost))
        inp = fwd.inp
        self.length = len(inp.sequence)
        self.max_rows = max_rows or max(8, fwd.batch_tokens // max(1, self.length))
        starts = [f[0] for f in inp.features]
        contiguous = all(f == list(range(f[0], f[-1] + 1)) for f in inp.features)
        ordered = all(a[-1] < b[0] for a, b in zip(inp.features, inp.features[1:]))
        # A removed source shortens its row: rows no longer share positions, so the plain engine runs.
        self.usable = contiguous and ordered and fwd.use_cache and not inp.removal
        self.bounds = np.array(starts + [inp.features[-1][-1] + 1], dtype=np.int64)
        self.checked = False
        self.levels = 0

    @property
    def inp(self) -> Any:
        """The :class:`AttributionInput` evaluated."""
        return self.fwd.inp

    @property
    def info(self) -> dict[str, Any]:
        """The plain engine's counters plus whether the tree was used."""
        return {**self.fwd.info, "prefix_tree": self.usable and not self.fwd.cache_fallback}

    @torch.no_grad()
    def __call__(self, keep: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Target log-probs (B, m) of each keep-mask row; ``progress`` shows a tqdm bar."""
        keep = torch.as_tensor(keep).bool().reshape(-1, self.fwd.inp.n)
        if not self.usable or self.fwd.cache_fallback:
            return self.fwd(keep, progress=progress)
        if not self.checked:
            keep = torch.cat([torch.ones(1, keep.shape[1], dtype=torch.bool), keep])
        bits = keep.numpy()
        order = np.lexsort(bits.T[::-1])  # lexicographic in feature order: neighbours share prefixes
        out = torch.empty(len(bits), self.fwd.inp.m, dtype=torch.float64)
        bar = tqdm(total=len(order), desc="perturbations", unit="seq", disable=not progress, leave=False)
        for start in range(0, len(order), self.max_rows):
            rows = order[start:start + self.max_rows]
            out[torch.as_tensor(rows)] = self._tree(bits[rows])
            bar.update(len(rows))
        bar.close()
        if not self.checked:
            self.checked = True
            if float((out[0] - self.fwd.original).abs().max()) > CACHE_CHECK_TOLERANCE:
                self.fwd.cache_fallback = True
                warnings.warn(
                    f"{self.fwd.lm.name}: prefix-tree cache reuse disagrees with a plain forward; "
                    "using plain forwards (slower, exact)", stacklevel=2,
                )
                return self.fwd(keep[1:], progress=progress)
            out = out[1:]
        return out

    def _tree(self, bits: np.ndarray) -> torch.Tensor:
        """Log-probs (R, m) of R masks sorted in feature order, one pass per tree level."""
        fwd, lm = self.fwd, self.fwd.lm
        dev = lm.device
        ids = fwd.perturbed(torch.as_tensor(bits))
        levels = plan(distinct_prefixes(bits), self.bounds, self.length, *self.costs)
        past, parent_key = None, np.zeros(len(bits), dtype=np.int64)
        if self.bounds[0] > 0:  # tokens before the first feature (BOS, template): one row
            past = lm.extend_cache(ids[:1, :self.bounds[0]].to(dev))
            fwd.calls += 1
            fwd.positions += int(self.bounds[0])
        for lo, hi in zip(levels, levels[1:]):
            _, first, key = np.unique(
                _prefix_keys(bits, hi), return_index=True, return_inverse=True
            )
            key = key.reshape(-1)
            a, b = int(self.bounds[lo]), int(self.bounds[hi])
            past = self._grow(past, parent_key[first])
            past = lm.extend_cache(ids[torch.as_tensor(first), a:b].to(dev), past)
            fwd.calls += 1
            fwd.positions += len(first) * (b - a)
            parent_key = key
        a = int(self.bounds[levels[-1]])
        past = self._grow(past, parent_key)
        fwd.calls += 1
        fwd.positions += len(bits) * (self.length - a)
        self.levels = len(levels)
        logits = lm.forward_logits(ids[:, a:].to(dev), fwd.inp.m, past_key_values=past)
        return fwd._logprobs(logits)

    @staticmethod
    def _grow(past: Any, parents: np.ndarray) -> Any:
        """The cache with one row per child (a copy of its parent's row)."""
        if past is None:
            return None
        past.batch_select_indices(torch.as_tensor(parents, dtype=torch.long, device=_cache_device(past)))
        return past


def _prefix_keys(bits: np.ndarray, f: int) -> np.ndarray:
    """One integer-comparable key per row for its first ``f`` bits (rows of packed bytes)."""
    packed = np.packbits(bits[:, :f], axis=1)
    return packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1) if f else np.zeros(len(bits), np.int8)


def _cache_device(past: Any) -> torch.device:
    layer = past.layers[0]
    return layer.keys.device if getattr(layer, "keys", None) is not None else torch.device("cpu")
