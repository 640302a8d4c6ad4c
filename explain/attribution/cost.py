"""What an attribution run will cost, before it runs: :func:`estimate_cost`.

The estimate replays the engine's own plan without running the model: which perturbed rows a
method asks for (exact for ``ablation``; for the sampling methods, rows drawn the way captum draws
them), how :func:`~explain.attribution.batched_forward.plan_batches` groups them into passes under
the token and memory budgets, and how many token positions and attention pairs each pass computes.
Seconds come from a short measurement of the model on this machine (:func:`explain.budget.speed`, three small
forwards, cached per model, device and thread count, in memory and on disk):

    seconds = a * positions + b * attention pairs + c * passes

where a position costs the layers' matrix products, an attention pair (a query and a key it looks
at) the attention's, and ``c`` is each pass's fixed overhead. Gradient methods count a backward
pass as two forwards. Peak memory is the model's weights plus the largest pass's key/value cache,
activations and logits.

Example:
    >>> c = estimate_cost(lm, "The capital of France is", " Paris")   # doctest: +SKIP
    >>> c.passes, c.positions                                          # doctest: +SKIP
    (3, 14)
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from explain.attribution.batched_forward import (
    MAX_MEMORY_BYTES,
    available_memory,
    bytes_per_position,
    plan_batches,
    rows_that_fit,
)
from explain.attribution.inputs import prompt_features, target_ids_of
from explain.budget import Cost, speed
from explain.errors import ExplainError
from explain.model import LanguageModel

# Sampling defaults, as in each method's signature.
DEFAULT_SAMPLES = {"shapley": 5, "kernelshap": 200, "lime": 200}
PERTURBATION = ("ablation", "shapley", "kernelshap", "lime", "shap")
# Above this many simulated mask cells, rows are subsampled and the counts scaled up.
SIMULATION_CELLS = 4_000_000


def _rows(method: str, starts: np.ndarray, sizes: np.ndarray, n_prompt: int, n_seq: int, m: int,
          options: Mapping[str, Any], removal: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """(row starts, row lengths, scale): the perturbed rows ``method`` evaluates, as the engine
    sees them, and how many real rows each simulated row stands for."""
    n = len(starts)
    last = n_prompt - 1

    def from_masks(dropped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        any_dropped = dropped.any(1)
        first = np.where(dropped, starts[None, :], np.iinfo(np.int64).max).min(1)
        row_start = np.where(any_dropped, np.minimum(first, last), last)
        lengths = n_seq - (dropped * sizes[None, :]).sum(1) if removal else np.full(len(dropped), n_seq)
        if removal:
            row_start = np.minimum(row_start, np.maximum(lengths - m, 0))
        return row_start, lengths

    if method == "ablation":
        rows = options.get("_rows")  # top_k: only the rows the screen leaves for the exact part
        dropped = np.eye(n, dtype=bool) if rows is None else np.eye(n, dtype=bool)[rows]
        row_start, lengths = from_masks(dropped)
        return row_start, lengths, 1.0
    samples = options.get("n_samples") or DEFAULT_SAMPLES.get(method)
    if method == "shap":
        samples = int(options.get("max_evals", 500))
    samples = int(samples)
    if method == "shapley":
        # captum adds the features of each permutation one at a time to the all-dropped input.
        total = samples * n + 1
        perms = max(1, min(samples, SIMULATION_CELLS // max(1, n * n)))
        row_s, row_l = [], []
        for _ in range(perms):
            order = rng.permutation(n)
            dropped = np.ones((n, n), dtype=bool)
            for k in range(n):
                dropped[k:, order[k]] = False  # row k keeps order[:k+1]
            s, length = from_masks(dropped)
            row_s.append(s)
            row_l.append(length)
        return np.concatenate(row_s), np.concatenate(row_l), total / (perms * n)
    rows = max(1, min(samples, SIMULATION_CELLS // max(1, n)))
    if method == "kernelshap":
        k = np.arange(1, max(2, n))
        weights = (n - 1) / (k * np.maximum(n - k, 1))
        size = rng.choice(k, size=rows, p=weights / weights.sum())
        keys = rng.random((rows, n))
        kept = keys < np.sort(keys, axis=1)[np.arange(rows), np.minimum(size, n) - 1][:, None] + 1e-12
        dropped = ~kept
    else:  # lime and shap: about half the features dropped per row
        dropped = rng.random((rows, n)) < 0.5
    s, length = from_masks(dropped)
    return s, length, samples / rows


def estimate_cost(
    lm: LanguageModel,
    prompt: str | Mapping[str, str],
    target: str | None = None,
    method: str = "ablation",
    sources: str | Sequence[tuple[int, int]] | None = None,
    chat: bool = False,
    max_new_tokens: int = 32,
    context: str | None = None,
    top_k: int | None = None,
    screen: str | None = None,
    **method_options: Any,
) -> Cost:
    """Predict the forward passes, token positions, seconds and peak memory of an attribution run.

    Args:
        lm, prompt, target, method, sources, chat, max_new_tokens, context, top_k, screen: as
            for :func:`explain.attribute` (``top_k``: the screen, then the exact part for the
            ``top_k`` best, placed at evenly spread quantiles of the sources since the screen's
            choice is not known before it runs).
        **method_options: the method's options that change its cost (``n_samples``, ``n_steps``,
            ``max_evals``, ``batch_tokens``, ``max_rows``).

    Returns:
        an :class:`explain.budget.Cost`; ``cheaper`` names the cheaper choice.

    Raises:
        ExplainError: bad prompt, target or sources (the same one-line errors as ``attribute``).

    Example:
        >>> c = estimate_cost(lm, "Long text. " * 400, " x", sources="sentences")   # doctest: +SKIP
        >>> c.summary()                                                             # doctest: +SKIP
        'sentence-level ablation of 2,001 tokens (400 sources): about 6 s (...)'
    """
    from explain.attribution.registry import METHODS

    if method not in METHODS:
        raise ExplainError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    from explain.attribution.screen import DEFAULT_SCREEN, screen_plan

    pf = prompt_features(lm, prompt, chat=chat, sources=sources or "tokens", context=context)
    generated = target is None
    m = max_new_tokens if generated else len(target_ids_of(lm, target))
    n_prompt, n = len(pf.ids), len(pf.features)
    n_seq = n_prompt + m - 1
    kv, act = bytes_per_position(lm)
    batch_tokens = int(method_options.get("batch_tokens", 4096) or 4096)
    memory_budget = min(MAX_MEMORY_BYTES, available_memory() // 4)
    vocab = lm.model.get_input_embeddings().num_embeddings
    rng = np.random.default_rng(0)

    passes = positions = pairs = 0.0
    peak = 0.0
    checks = 2 if pf.removal else 1  # the unperturbed pass (and, for removal, the gathered-head check)
    if top_k is not None and method == "ablation":
        screen = screen or DEFAULT_SCREEN
        method_options = dict(method_options)
        method_options["_rows"], extra, checks = screen_plan(screen, [f[0] for f in pf.features],
                                                             pf.question, int(top_k), n_seq, m,
                                                             method_options.get("block"))
        passes, positions, pairs = passes + extra[0], positions + extra[1], pairs + extra[2]
        method_options.setdefault("max_rows", None if screen == "hierarchical" else 1)
    if method in PERTURBATION:
        starts = np.array([f[0] for f in pf.features], dtype=np.int64)
        sizes = np.array([len(f) for f in pf.features], dtype=np.int64)
        row_start, lengths, scale = _rows(method, starts, sizes, n_prompt, n_seq, m, method_options,
                                          pf.removal, rng)
        order = np.argsort(row_start, kind="stable")
        row_start, lengths = row_start[order].tolist(), lengths[order].tolist()
        max_rows = method_options.get("max_rows")
        n_rows = len(row_start)
        cap = int(max_rows) if max_rows else max(8, math.ceil(n_rows / 3))

        def fit(start: int, length: int) -> int:
            return rows_that_fit(start, length, batch_tokens, memory_budget, kv, act)

        passes += checks
        positions += checks * n_seq
        pairs += checks * n_seq * (n_seq + 1) / 2
        probed = False
        for start, lo, hi in plan_batches(row_start, lengths, cap, fit):
            suffix = [max(1, lengths[r] - start) for r in range(lo, hi)]
            if start and not probed:  # the first cached pass also carries the unperturbed row,
                suffix.append(n_seq - start)  # and the whole input's cache is made once for all
                passes, positions, pairs = passes + 1, positions + n_seq, pairs + n_seq * (n_seq + 1) / 2
                probed = True
            passes += 1
            width = max(suffix)  # rows are right-padded to the longest: the padding is computed too
            positions += width * len(suffix)
            pairs += len(suffix) * width * (start + (width + 1) / 2)
            held = n_seq * kv if probed else 0
            peak = max(peak, held + (hi - lo) * (max(lengths[lo:hi]) * kv + width * act + m * vocab * 4))
        passes, positions, pairs = passes * scale, positions * scale, pairs * scale
    elif method in ("integrated_gradients", "input_x_gradient"):
        steps = int(method_options.get("n_steps", 20)) if method == "integrated_gradients" else 1
        # a forward and a backward (about two forwards) per step, plus one batched backward per extra target
        work = steps * (3 + 2 * (m - 1))
        passes, positions, pairs = work, work * n_seq, work * n_seq * (n_seq + 1) / 2
        peak = steps * n_seq * (kv + act) * 4
    else:  # attention: one forward with attention weights kept
        layers = getattr(lm.model.config, "num_hidden_layers", 12)
        heads = getattr(lm.model.config, "num_attention_heads", 12)
        passes, positions, pairs = 1.0, float(n_seq), n_seq * (n_seq + 1) / 2
        peak = layers * heads * n_seq * n_seq * 4.0
    if generated:  # greedy generation of the target first: one cached step per new token
        passes += max_new_tokens + 1
        positions += n_prompt + max_new_tokens
        pairs += n_prompt * (n_prompt + 1) / 2 + max_new_tokens * (n_prompt + max_new_tokens / 2)
    seconds = speed(lm).seconds(positions, pairs, passes, method=method)
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    level = "token" if pf.sources == "tokens" else ("segment" if pf.sources == "segments" else pf.sources.rstrip("s"))
    unit = "tokens" if pf.sources == "tokens" else "sources"
    what = f"{level}-level {method} of {n_prompt:,} tokens" + ("" if unit == "tokens" else f" ({n:,} {unit})")
    if top_k is not None:
        what += f", {screen} screen + exact top {min(int(top_k), n - (pf.question is not None))}"
    return Cost(
        what=what,
        seconds=float(seconds),
        passes=int(math.ceil(passes)),
        positions=int(math.ceil(positions)),
        memory_bytes=int(weights + peak),
        cheaper=_cheaper(method, pf.sources, method_options, top_k, n),
    )


def _cheaper(method: str, sources: str, options: Mapping[str, Any], top_k: int | None = None, n: int = 0) -> str:
    tips = []
    if method == "ablation" and (top_k is None or top_k > 5) and n > 10:
        tips.append("top_k=5 (a screen ranks every source, exact leave-one-out for the 5 best)")
    if sources in ("tokens", "words"):
        tips.append('use sources="sentences" (or "paragraphs")')
    elif sources == "sentences":
        tips.append('use sources="paragraphs"')
    if method == "shapley":
        tips.append(f"fewer permutations (n_samples={max(1, int(options.get('n_samples') or 5) // 2)})")
    elif method in ("kernelshap", "lime"):
        tips.append(f"fewer samples (n_samples={max(16, int(options.get('n_samples') or 200) // 4)})")
    elif method == "shap":
        tips.append(f"fewer evaluations (max_evals={max(3, int(options.get('max_evals', 500)) // 4)})")
    elif method == "integrated_gradients":
        tips.append(f"fewer steps (n_steps={max(2, int(options.get('n_steps', 20)) // 4)})")
    if method != "ablation":
        tips.append('method="ablation"')
    return ", or ".join(tips)
