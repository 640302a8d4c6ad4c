"""Teacher-forced target log-probs for many perturbed copies of one prompt, batched.

This is the engine under every perturbation method. Three savings over a plain loop:

1. perturbations are batched under a token budget (``batch_tokens`` positions per pass);
2. the LM head runs only at the m target positions (``logits_to_keep``);
3. positions before the first perturbed token are identical to the unperturbed input, so their
   key/value cache is computed once per batch (batch size 1) and repeated across the batch; only
   the suffix from the first perturbed position is run for every row.

The cached path is checked at run time: the first batch carries the unperturbed row, whose result
must match a plain forward; if it does not (a model whose cache misbehaves), the engine falls back
to full forwards and says so in ``info``.

Example:
    >>> fwd = BatchedForward(lm, inp)                       # doctest: +SKIP
    >>> keep = torch.ones(3, inp.n, dtype=torch.bool); keep[0, 0] = False   # doctest: +SKIP
    >>> fwd(keep).shape                                     # doctest: +SKIP
    torch.Size([3, m])
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from explain.attribution.inputs import AttributionInput
from explain.model import LanguageModel

CACHE_CHECK_TOLERANCE = 1e-3


class BatchedForward:
    """Callable: keep-masks (B, n features) -> target token log-probs (B, m), float64 on CPU.

    Args:
        lm: the model.
        inp: the prompt/target/features.
        baseline: token id put in place of a dropped feature's tokens.
        batch_tokens: token positions per forward pass (the memory budget).
        max_rows: rows per pass; ``None`` splits B perturbations into about three batches: on a
            CPU a large batch is far more efficient than a small one, while each split lets the
            later batches skip the prefix before their first perturbed position.
        use_cache: reuse the unperturbed prefix's key/value cache.
    """

    def __init__(
        self,
        lm: LanguageModel,
        inp: AttributionInput,
        baseline: int = 0,
        batch_tokens: int = 4096,
        max_rows: int | None = None,
        use_cache: bool = True,
    ) -> None:
        self.max_rows = max_rows
        self.lm, self.inp, self.baseline = lm, inp, int(baseline)
        self.batch_tokens = max(1, int(batch_tokens))
        self.use_cache = use_cache
        self.seq = torch.tensor(inp.sequence, dtype=torch.long)
        self.target = torch.tensor(inp.target_ids, dtype=torch.long)
        self.first_pos = torch.tensor([f[0] for f in inp.features], dtype=torch.long)
        self.feature_positions = torch.zeros(inp.n, len(inp.sequence))
        for f, positions in enumerate(inp.features):
            self.feature_positions[f, positions] = 1.0
        # The suffix must contain every position whose logits predict a target token.
        self.last_start = len(inp.prompt_ids) - 1
        self.calls = 0
        self.positions = 0
        self.cache_checked = not use_cache
        self.cache_fallback = False
        with torch.no_grad():
            self.original = self._plain(self.seq[None])[0]

    @property
    def info(self) -> dict[str, Any]:
        """Cost and path: forward passes, token positions computed, whether the cache was used."""
        return {
            "forward_passes": self.calls,
            "token_positions": self.positions,
            "kv_cache_reuse": self.use_cache and not self.cache_fallback,
        }

    def perturbed(self, keep: torch.Tensor) -> torch.Tensor:
        """Input ids (B, L) with every dropped feature's positions set to the baseline."""
        dropped = ((~keep).to(torch.float32) @ self.feature_positions) > 0
        ids = self.seq.repeat(keep.shape[0], 1)
        ids[dropped] = self.baseline
        return ids

    @torch.no_grad()
    def __call__(self, keep: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Target log-probs (B, m) of each keep-mask row; ``progress`` shows a tqdm bar."""
        keep = torch.as_tensor(keep).bool().reshape(-1, self.inp.n)
        out = torch.empty(keep.shape[0], self.inp.m, dtype=torch.float64)
        starts = torch.where(
            (~keep).any(1),
            torch.where(~keep, self.first_pos, torch.iinfo(torch.long).max).min(1).values,
            torch.tensor(self.last_start),
        ).clamp(max=self.last_start)
        order = torch.argsort(starts, stable=True)
        ids_all = self.perturbed(keep)
        length = self.seq.shape[0]
        bar = tqdm(total=len(order), desc="perturbations", unit="seq", disable=not progress, leave=False)
        cap = self.max_rows or max(8, math.ceil(len(order) / 3)) if self.use_cache else len(order)
        i = 0
        while i < len(order):
            start = int(starts[order[i]])
            rows = max(1, min(cap, self.batch_tokens // max(1, length - start)))
            chunk = order[i:i + rows]
            out[chunk] = self._batch(ids_all[chunk], start)
            i += len(chunk)
            bar.update(len(chunk))
        bar.close()
        return out

    def _batch(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        if not self.use_cache or self.cache_fallback or start == 0:
            return self._plain(ids)
        if not self.cache_checked:
            # Run the unperturbed row through the cached path once and compare with the plain pass.
            probe = self._cached(torch.cat([self.seq[None], ids]), start)
            self.cache_checked = True
            if float((probe[0] - self.original).abs().max()) > CACHE_CHECK_TOLERANCE:
                self.cache_fallback = True
                warnings.warn(
                    f"{self.lm.name}: key/value cache reuse disagrees with a plain forward; "
                    "using plain forwards (slower, exact)", stacklevel=3,
                )
                return self._plain(ids)
            return probe[1:]
        return self._cached(ids, start)

    def _logprobs(self, logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.float(), dim=-1)
        tgt = self.target.to(logp.device)[None, :, None].expand(logp.shape[0], -1, 1)
        return logp.gather(-1, tgt)[..., 0].double().cpu()

    def _plain(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.positions += ids.numel()
        logits = self.lm.forward_logits(ids.to(self.lm.device), self.inp.m)
        return self._logprobs(logits)

    def _cached(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        dev = self.lm.device
        prefix = self.seq[None, :start].to(dev)
        past = self.lm.model(input_ids=prefix, use_cache=True).past_key_values
        past.batch_repeat_interleave(ids.shape[0])
        self.calls += 2
        self.positions += start + ids[:, start:].numel()
        logits = self.lm.forward_logits(ids[:, start:].to(dev), self.inp.m, past_key_values=past)
        return self._logprobs(logits)


def elapsed(since: float) -> float:
    """Seconds since ``since`` (a ``time.perf_counter()`` value), rounded for reports."""
    return round(time.perf_counter() - since, 4)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of ``t``."""
    return t.detach().double().cpu().numpy()
