"""Teacher-forced target log-probs for many perturbed copies of one prompt, batched.

This is the engine under every perturbation method. Three savings over a plain loop:

1. perturbations are batched under a token budget (``batch_tokens`` positions per pass);
2. the LM head runs only at the m target positions (``logits_to_keep``);
3. positions before the first perturbed token are identical to the unperturbed input, so their
   key/value cache is computed once per run (one pass over the whole input, cut to each batch's
   prefix) and repeated across the batch; only the suffix from the first perturbed position is
   run for every row.

The cached path is checked at run time: the first batch carries the unperturbed row, whose result
must match a plain forward; if it does not (a model whose cache misbehaves), the engine falls back
to full forwards and says so in ``info``.

With ``inp.removal`` (sources: words, sentences, segments...) a dropped feature's tokens are
*removed*, as ContextCite does: each row is the kept tokens only, so rows differ in length. Rows
are right-padded (causal attention never looks right, so padding changes nothing before it), the
prefix cache is shared as above, and the LM head runs on the hidden states gathered at each row's
own m target positions.

Batches are sized by ``batch_tokens`` (positions computed per pass) and by ``memory_bytes`` (the
key/value cache and activations a pass holds; default: a quarter of the available memory, at most
1 GiB), so a long prompt runs in bounded memory (a 4k-token prompt held 3.5 GB peak RSS at 2 GiB).

Examples:
    >>> fwd = BatchedForward(lm, inp)                       # doctest: +SKIP
    >>> keep = torch.ones(3, inp.n, dtype=torch.bool); keep[0, 0] = False   # doctest: +SKIP
    >>> fwd(keep).shape                                     # doctest: +SKIP
    torch.Size([3, m])
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from explain.attribution.inputs import AttributionInput
from explain.model import LanguageModel

CACHE_CHECK_TOLERANCE = 1e-3
MAX_MEMORY_BYTES = 1024**3


def available_memory() -> int:
    """Bytes of memory available to a new allocation (CPU: ``psutil``; CUDA: free device memory).

    Examples:
        >>> available_memory() > 0
        True
    """
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with our dependencies
        return 4 * 1024**3


def bytes_per_position(lm: LanguageModel) -> tuple[int, int]:
    """Memory one token position costs in a pass: (key/value cache bytes, transient activation bytes).

    Returns:
        a pair of ints: the cache kept for a position across layers, and the largest per-layer
        activations (hidden states, MLP intermediate, attention rows) a position needs at once.

    Examples:
        >>> bytes_per_position(lm)   # doctest: +SKIP
        (46080, 12288)
    """
    cfg = lm.model.config
    get = lambda *names, default=0: next((int(getattr(cfg, n)) for n in names if getattr(cfg, n, None)), default)  # noqa: E731
    hidden = get("hidden_size", "n_embd", "d_model", default=768)
    layers = get("num_hidden_layers", "n_layer", "num_layers", default=12)
    heads = get("num_attention_heads", "n_head", default=12)
    kv_heads = get("num_key_value_heads", default=heads)
    head_dim = get("head_dim", default=hidden // max(heads, 1))
    inter = get("intermediate_size", "n_inner", default=4 * hidden)
    itemsize = next(lm.model.parameters()).element_size()
    kv = 2 * layers * kv_heads * head_dim * itemsize
    act = (4 * hidden + 2 * inter) * itemsize
    return kv, act


class BatchedForward:
    """Callable: keep-masks (B, n features) -> target token log-probs (B, m), float64 on CPU.

    Args:
        lm: the model.
        inp: the prompt/target/features.
        baseline: token id put in place of a dropped feature's tokens.
        batch_tokens: token positions computed per forward pass.
        max_rows: rows per pass; ``None`` splits B perturbations into about three batches: on a
            CPU a large batch is far more efficient than a small one, while each split lets the
            later batches skip the prefix before their first perturbed position.
        use_cache: reuse the unperturbed prefix's key/value cache.
        memory_bytes: memory one pass may hold (cache + activations); default: a quarter of the
            available memory, at most :data:`MAX_MEMORY_BYTES`.
        prepared: ``(unperturbed target log-probs (m,), the whole input's cache or None)`` from a
            pass the caller already ran (a screen): the engine then skips its own first passes, and
            the gathered-head path is checked on the first batch's unperturbed row instead.
    """

    def __init__(
        self,
        lm: LanguageModel,
        inp: AttributionInput,
        baseline: int = 0,
        batch_tokens: int = 4096,
        max_rows: int | None = None,
        use_cache: bool = True,
        memory_bytes: int | None = None,
        prepared: tuple[torch.Tensor, Any] | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.lm, self.inp, self.baseline = lm, inp, int(baseline)
        self.batch_tokens = max(1, int(batch_tokens))
        self.use_cache = use_cache
        self.removal = bool(inp.removal)
        self.memory_bytes = int(memory_bytes or min(MAX_MEMORY_BYTES, available_memory() // 4))
        self.kv_bytes, self.act_bytes = bytes_per_position(lm)
        self.head_ok = True
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
        self._full_cache: Any = None  # the unperturbed input's cache; False where it cannot be cut
        self.cache_fallback = False
        self.head_checked = prepared is None
        if prepared is not None:
            self.original, cache = prepared
            self._full_cache = cache
            return
        with torch.no_grad():
            self.original = self._plain(self.seq[None])[0]
            if self.removal:  # the gathered-head path must give the plain path's numbers
                via_head = self._removed_pass([self.seq], 0)[0]
                self.head_ok = float((via_head - self.original).abs().max()) <= CACHE_CHECK_TOLERANCE

    @property
    def info(self) -> dict[str, Any]:
        """Cost and path: forward passes, token positions computed, whether the cache was used."""
        return {
            "forward_passes": self.calls,
            "token_positions": self.positions,
            "kv_cache_reuse": self.use_cache and not self.cache_fallback,
            "ablation": "removal" if self.removal else "replacement",
        }

    def cap(self, n_rows: int) -> int:
        """Most rows per pass before the budgets (:func:`row_cap`). Returns: the cap."""
        return row_cap(n_rows, self.max_rows, self.use_cache)

    def rows_for(self, start: int, length: int) -> int:
        """How many rows of ``length`` positions whose first ``start`` come from the shared cache fit
        in one pass under both budgets. Returns: at least 1."""
        return rows_that_fit(start, length, self.batch_tokens, self.memory_bytes, self.kv_bytes, self.act_bytes)

    def perturbed(self, keep: torch.Tensor) -> torch.Tensor:
        """Input ids (B, L) with every dropped feature's positions set to the baseline."""
        dropped = ((~keep).to(torch.float32) @ self.feature_positions) > 0
        ids = self.seq.repeat(keep.shape[0], 1)
        ids[dropped] = self.baseline
        return ids

    def removed_rows(self, keep: torch.Tensor) -> list[torch.Tensor]:
        """Per keep-mask row, the sequence with every dropped feature's tokens removed. A row whose
        whole prompt is removed is conditioned on the end-of-text token alone (an empty document).
        Returns: a list of 1-D long tensors (prompt kept + target[:-1])."""
        dropped = ((~keep).to(torch.float32) @ self.feature_positions) > 0
        rows = [self.seq[~d] for d in dropped]
        empty = torch.tensor([self.lm.pad_id if self.lm.tokenizer.bos_token_id is None
                              else self.lm.tokenizer.bos_token_id])
        n_prompt = len(self.inp.prompt_ids)
        return [r if int((~d[:n_prompt]).sum()) else torch.cat([empty, r]) for r, d in zip(rows, dropped)]

    def starts(self, keep: torch.Tensor) -> torch.Tensor:
        """Per row, the first position that differs from the unperturbed input (capped so the
        suffix holds every target position). Returns: a long tensor (B,)."""
        return torch.where(
            (~keep).any(1),
            torch.where(~keep, self.first_pos, torch.iinfo(torch.long).max).min(1).values,
            torch.tensor(self.last_start),
        ).clamp(max=self.last_start)

    @torch.no_grad()
    def __call__(self, keep: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Target log-probs (B, m) of each keep-mask row; ``progress`` shows a tqdm bar."""
        keep = torch.as_tensor(keep).bool().reshape(-1, self.inp.n)
        out = torch.empty(keep.shape[0], self.inp.m, dtype=torch.float64)
        starts = self.starts(keep)
        if self.removal:
            rows_all = self.removed_rows(keep)
            # a row's suffix must still hold its first target position (its kept prompt may end early)
            starts = torch.minimum(starts, torch.tensor([len(r) - self.inp.m for r in rows_all]))
        else:
            ids_all = self.perturbed(keep)
        order = torch.argsort(starts, stable=True)
        if self.removal:
            lengths = [len(rows_all[int(r)]) for r in order]
        else:
            lengths = [self.seq.shape[0]] * len(order)
        bar = tqdm(total=len(order), desc="perturbations", unit="seq", disable=not progress, leave=False)
        batches = plan_batches([int(starts[r]) for r in order], lengths, self.cap(len(order)),
                               self.rows_for, self.use_cache)
        for start, lo, hi in batches:
            chunk = order[lo:hi]
            if self.removal:
                out[chunk] = self._removed_batch([rows_all[int(r)] for r in chunk], start)
            else:
                out[chunk] = self._batch(ids_all[chunk], start)
            bar.update(len(chunk))
        bar.close()
        return out

    def _batch(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        if not self.use_cache or self.cache_fallback or start == 0:
            return self._plain(ids)
        if not self.cache_checked:
            # Run the unperturbed row through the cached path once and compare with the plain pass.
            probe = self._cached(torch.cat([self.seq[None], ids]), start)
            return probe[1:] if self._cache_agrees(probe[0]) else self._plain(ids)
        return self._cached(ids, start)

    def _cache_agrees(self, unperturbed: torch.Tensor) -> bool:
        """Compare the unperturbed row's cached-path result with the plain pass, once; on a mismatch
        fall back to plain forwards for good (with a warning). Returns: whether the cache may be used."""
        self.cache_checked = True
        if float((unperturbed - self.original).abs().max()) > CACHE_CHECK_TOLERANCE:
            self.cache_fallback = True
            warnings.warn(
                f"{self.lm.name}: key/value cache reuse disagrees with a plain forward; "
                "using plain forwards (slower, exact)", stacklevel=4,
            )
            return False
        return True

    # ------------------------------------------------------------ removal
    def _removed_batch(self, rows: list[torch.Tensor], start: int) -> torch.Tensor:
        if not self.head_ok:
            return torch.stack([self._plain(r[None])[0] for r in rows])
        if not self.head_checked:  # prepared: the unperturbed row rides along once, checking head and cache
            self.head_checked = True
            start = start if self.use_cache and not self.cache_fallback else 0
            probe = self._removed_pass([self.seq, *rows], start)
            self.cache_checked = self.cache_checked or start > 0
            if float((probe[0] - self.original).abs().max()) <= CACHE_CHECK_TOLERANCE:
                return probe[1:]
            self.head_ok, self.cache_fallback = False, True
            warnings.warn(f"{self.lm.name}: the cached/gathered path disagrees with a plain forward; "
                          "using plain forwards (slower, exact)", stacklevel=4)
            return self._removed_batch(rows, start)
        if not self.use_cache or self.cache_fallback or start == 0:
            return self._removed_pass(rows, 0)
        if not self.cache_checked:
            probe = self._removed_pass([self.seq, *rows], start)
            return probe[1:] if self._cache_agrees(probe[0]) else self._removed_pass(rows, 0)
        return self._removed_pass(rows, start)

    def _removed_pass(self, rows: list[torch.Tensor], start: int) -> torch.Tensor:
        """Rows of different lengths sharing their first ``start`` tokens: right-padded, one pass,
        the LM head applied at each row's own target positions."""
        dev, m = self.lm.device, self.inp.m
        width = max(len(r) for r in rows) - start
        ids = torch.full((len(rows), width), int(self.seq[-1]), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r) - start] = r[start:]
        past = self._prefix_cache(start, len(rows)) if start else None
        self.calls += 1
        self.positions += len(rows) * width  # right-padding is computed too
        kwargs: dict[str, Any] = {"input_ids": ids.to(dev), "use_cache": past is not None}
        if past is not None:
            kwargs[self.lm._cache_kwarg] = past
        hidden = self.lm.model.base_model(**kwargs).last_hidden_state
        # Row k's target tokens are predicted at its last m positions (its own length).
        ends = torch.tensor([len(r) - start for r in rows], device=dev)
        index = (ends[:, None] - m + torch.arange(m, device=dev)[None, :]).clamp(min=0)
        gathered = hidden.gather(1, index[:, :, None].expand(-1, -1, hidden.shape[-1]))
        logits = self.lm.model.get_output_embeddings()(gathered)
        cap = getattr(self.lm.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return self._logprobs(logits)

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
        past = self._prefix_cache(start, ids.shape[0])
        self.calls += 1
        self.positions += ids[:, start:].numel()
        logits = self.lm.forward_logits(ids[:, start:].to(self.lm.device), self.inp.m, past_key_values=past)
        return self._logprobs(logits)

    def _prefix_cache(self, start: int, rows: int) -> Any:
        """The unperturbed input's key/value cache over its first ``start`` positions, one copy per
        row: cut from one pass over the whole input, made once per run (so a batch never recomputes
        its prefix), or computed afresh where the model's cache cannot be cut."""
        dev = self.lm.device
        if self._full_cache is None:
            self._full_cache = self.lm.extend_cache(self.seq[None].to(dev))
            self.calls += 1
            self.positions += len(self.seq)
        past = self.lm.cache_prefix(self._full_cache, start, rows) if self._full_cache is not False else None
        if past is None:
            self._full_cache = False
            past = self.lm.extend_cache(self.seq[None, :start].to(dev))
            past.batch_repeat_interleave(rows)
            self.calls += 1
            self.positions += start
        return past


def row_cap(n_rows: int, max_rows: int | None, use_cache: bool) -> int:
    """Most rows per pass before the budgets: ``max_rows``, else about a third of the rows (on a
    CPU a large batch is far more efficient, while each split lets later batches skip the prefix
    before their first perturbed position); without the cache, all of them.

    Examples:
        >>> row_cap(30, None, True), row_cap(30, 4, True), row_cap(30, None, False)
        (10, 4, 30)
    """
    if max_rows:
        return int(max_rows)
    return max(8, math.ceil(n_rows / 3)) if use_cache else max(1, n_rows)


def rows_that_fit(start: int, length: int, batch_tokens: int, memory_bytes: int, kv_bytes: int, act_bytes: int) -> int:
    """Rows of ``length`` positions (the first ``start`` shared from the cache) one pass may hold:
    at most ``batch_tokens`` computed positions and ``memory_bytes`` of cache and activations.

    Returns:
        at least 1.

    Examples:
        >>> rows_that_fit(0, 100, 4096, 10**9, 1000, 1000)
        40
    """
    suffix = max(1, length - start)
    by_time = batch_tokens // suffix
    by_memory = memory_bytes // max(1, length * kv_bytes + suffix * act_bytes)
    return max(1, min(by_time, by_memory))


def plan_batches(
    starts: list[int], lengths: list[int], cap: int, rows_for: Any, use_cache: bool = True
) -> list[tuple[int, int, int]]:
    """Group rows (sorted by ``starts``) into passes: each pass shares the cache up to its first
    row's start and holds at most ``cap`` rows and ``rows_for(start, longest row)`` rows.

    Returns:
        a list of (shared prefix length, first row, end row) over the sorted rows.

    Examples:
        >>> plan_batches([0, 2, 2, 5], [10, 10, 10, 10], cap=2, rows_for=lambda s, n: 8)
        [(0, 0, 2), (2, 2, 4)]
    """
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(starts):
        start = starts[i] if use_cache else 0
        length = max(lengths[i:i + cap])
        rows = max(1, min(cap, rows_for(start, length)))
        out.append((start, i, min(len(starts), i + rows)))
        i += rows
    return out


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of ``t``."""
    return t.detach().double().cpu().numpy()
