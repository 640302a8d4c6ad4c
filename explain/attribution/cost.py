"""What an attribution run will cost, before it runs: :func:`estimate_cost`.

Each method registers a cost plan with itself (:func:`explain.attribution.register`, ``plan=``):
a function giving the passes, token positions and attention pairs it will compute. The plans of
the perturbation methods replay the engine's own plan without running the model
(:func:`masked_rows_work`): which perturbed rows the method asks for (exact for ``ablation``; for
the sampling methods, rows drawn the way captum draws them), how
:func:`~explain.attribution.batched_forward.plan_batches` groups them into passes under the token
and memory budgets, and how many token positions and attention pairs each pass computes. A method
registered without a plan is priced as one forward pass, and its estimate says it is a lower bound.
Seconds come from a short measurement of the model on this machine (:func:`explain.budget.speed`, three small
forwards, cached per model, device and thread count, in memory and on disk):

    seconds = a * positions + b * attention pairs + c * passes

where a position costs the layers' matrix products, an attention pair (a query and a key it looks
at) the attention's, and ``c`` is each pass's fixed overhead. Peak memory is the model's weights
plus the largest pass's key/value cache, activations and logits.

Examples:
    >>> c = estimate_cost(lm, "The capital of France is", " Paris")   # doctest: +SKIP
    >>> c.passes, c.positions                                          # doctest: +SKIP
    (3, 14)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from explain.attribution.batched_forward import (
    MAX_MEMORY_BYTES,
    available_memory,
    bytes_per_position,
    plan_batches,
    row_cap,
    rows_that_fit,
)
from explain.attribution.inputs import prompt_features, target_ids_of
from explain.attribution.registry import METHODS, PlanInput, Work
from explain.budget import Cost, speed
from explain.errors import ExplainError
from explain.model import LanguageModel
from explain.threads import accepts_threads

# Above this many simulated mask cells, rows are subsampled and the counts scaled up.
SIMULATION_CELLS = 4_000_000

# A top_k screen's cost plan, registered by explain.attribution.screen (register_screen):
# (plan input, top_k, masked_rows_work) -> the Work of the screen and of the exact part.
ScreenPlan = Callable[[PlanInput, int, Callable[..., Work]], Work]
SCREEN_PLANS: dict[str, ScreenPlan] = {}


def simulated_rows(samples: int, cells_per_row: int) -> int:
    """How many of ``samples`` mask rows of ``cells_per_row`` cells a plan simulates (the rest are
    scaled up from them). Returns: at least 1.

    Examples:
        >>> simulated_rows(200, 10), simulated_rows(10**6, 100)
        (200, 40000)
    """
    return max(1, min(samples, SIMULATION_CELLS // max(1, cells_per_row)))


def masked_rows_work(p: PlanInput, dropped: np.ndarray, scale: float = 1.0) -> Work:
    """The work of evaluating keep-masks on the batched engine: the unperturbed checks, then the
    rows (one per row of ``dropped``, True = feature dropped) grouped into passes exactly as
    :class:`~explain.attribution.batched_forward.BatchedForward` groups them.

    Args:
        p: the plan's input; its options give ``batch_tokens``, ``max_rows`` and ``use_cache``.
        dropped: bool (R, n): which features each perturbed row drops.
        scale: how many real rows each simulated row stands for (sampling methods).

    Returns:
        the :class:`Work`, scaled by ``scale``.

    Examples:
        >>> w = masked_rows_work(plan_input, np.eye(plan_input.n, dtype=bool))   # doctest: +SKIP
    """
    pf, m, n_seq = p.prompt, p.m, p.n_seq
    starts = np.array([f[0] for f in pf.features], dtype=np.int64)
    sizes = np.array([len(f) for f in pf.features], dtype=np.int64)
    last = p.n_prompt - 1
    any_dropped = dropped.any(1)
    first = np.where(dropped, starts[None, :], np.iinfo(np.int64).max).min(1)
    row_start = np.where(any_dropped, np.minimum(first, last), last)
    if pf.removal:
        lengths = n_seq - (dropped * sizes[None, :]).sum(1)
        row_start = np.minimum(row_start, np.maximum(lengths - m, 0))
    else:
        lengths = np.full(len(dropped), n_seq)
    order = np.argsort(row_start, kind="stable")
    row_start, lengths = row_start[order].tolist(), lengths[order].tolist()

    kv, act = bytes_per_position(p.lm)
    batch_tokens = int(p.options.get("batch_tokens") or 4096)
    memory_budget = min(MAX_MEMORY_BYTES, available_memory() // 4)
    vocab = p.lm.model.get_input_embeddings().num_embeddings
    use_cache = bool(p.options.get("use_cache", True))
    cap = row_cap(len(row_start), p.options.get("max_rows"), use_cache)

    def fit(start: int, length: int) -> int:
        return rows_that_fit(start, length, batch_tokens, memory_budget, kv, act)

    # the unperturbed pass (and, for removal, the same row through the gathered-head path)
    checks = 2 if pf.removal else 1
    passes, positions, pairs = float(checks), float(checks * n_seq), checks * n_seq * (n_seq + 1) / 2
    peak = 0.0
    probed = False
    for start, lo, hi in plan_batches(row_start, lengths, cap, fit, use_cache):
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
    return Work(passes * scale, positions * scale, pairs * scale, peak)


def random_halves(p: PlanInput, samples: int) -> tuple[np.ndarray, float]:
    """Masks that drop about half the features each (LIME's and shap's draws), subsampled for
    long prompts. Returns: (dropped (R, n), real rows per simulated row).

    Examples:
        >>> from explain.attribution.inputs import PromptFeatures
        >>> pf = PromptFeatures([1, 2, 3, 4], [[0], [1], [2], [3]], list("abcd"), False, "tokens", [])
        >>> dropped, scale = random_halves(PlanInput(None, pf, 1, {}), 10)
        >>> dropped.shape, scale
        ((10, 4), 1.0)
    """
    rows = simulated_rows(samples, p.n)
    return np.random.default_rng(0).random((rows, p.n)) < 0.5, samples / rows


@accepts_threads
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
            for :func:`explain.attribute` (``top_k``: the screen's registered plan, then the exact
            part; ``block`` is the hierarchical screen's option).
        **method_options: the method's options (``n_samples``, ``n_steps``, ``max_evals``,
            ``batch_tokens``, ``max_rows``...); the method's registered defaults fill in the rest.

    Returns:
        an :class:`explain.budget.Cost`; ``cheaper`` names the cheaper choice; ``note`` says when
        the method registered no cost plan (the estimate is then a lower bound).

    Raises:
        ExplainError: unknown method, bad option, bad prompt, target or sources (the same one-line
            errors as ``attribute``).

    Examples:
        >>> c = estimate_cost(lm, "Long text. " * 400, " x", sources="sentences")   # doctest: +SKIP
        >>> c.summary()                                                             # doctest: +SKIP
        'sentence-level ablation of 2,001 tokens (400 sources): about 6 s (...)'
    """
    info = METHODS.get(method)
    if info is None:
        raise ExplainError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    screen_options = {k: method_options.pop(k) for k in ("block", "head_weights") if k in method_options}
    options = info.options(method_options)
    pf = prompt_features(lm, prompt, chat=chat, sources=sources or "tokens", context=context)
    generated = target is None
    m = max_new_tokens if generated else len(target_ids_of(lm, target))
    plan_input = PlanInput(lm=lm, prompt=pf, m=m, options=options)
    note = ""
    if top_k is not None:
        from explain.attribution.screen import default_screen  # the screens register their plans here

        screen = screen or default_screen(lm)
        if screen not in SCREEN_PLANS:
            raise ExplainError(f"unknown screen '{screen}': choose one of {', '.join(SCREEN_PLANS)}")
        plan_input = PlanInput(lm=lm, prompt=pf, m=m, options={**options, **screen_options})
        work = SCREEN_PLANS[screen](plan_input, int(top_k), masked_rows_work)
    elif info.plan is None:
        work = Work.forwards(1, plan_input.n_seq)
        note = f"no cost plan registered for method {method}: the estimate is a lower bound"
    else:
        work = info.plan(plan_input)
    passes, positions, pairs = work.passes, work.positions, work.pairs
    n_prompt, n = plan_input.n_prompt, plan_input.n
    if generated:  # greedy generation of the target first: one cached step per new token
        passes += max_new_tokens + 1
        positions += n_prompt + max_new_tokens
        pairs += n_prompt * (n_prompt + 1) / 2 + max_new_tokens * (n_prompt + max_new_tokens / 2)
    pace = speed(lm)
    seconds = pace.seconds(positions, pairs, passes, method=method)
    weights = sum(t.numel() * t.element_size() for t in lm.model.parameters())
    level = "token" if pf.sources == "tokens" else ("segment" if pf.sources == "segments" else pf.sources.rstrip("s"))
    unit = "tokens" if pf.sources == "tokens" else "sources"
    what = f"{level}-level {method} of {n_prompt:,} tokens" + ("" if unit == "tokens" else f" ({n:,} {unit})")
    if pf.question is not None:  # the context's sources, and the question as one more
        what = f"{level}-level {method} of {n_prompt:,} tokens ({n - 1:,} context {unit} + the question)"
    if top_k is not None:
        what += f", {screen} screen + exact top {min(int(top_k), n - (pf.question is not None))}"
    return Cost(
        what=what,
        seconds=float(seconds),
        passes=int(math.ceil(passes)),
        positions=int(math.ceil(positions)),
        memory_bytes=int(weights + work.peak_bytes),
        cheaper=_cheaper(method, pf.sources, work.cheaper, top_k, n),
        spread=pace.spread,
        note="; ".join(x for x in (note, pace.note) if x),
    )


def _cheaper(method: str, sources: str, method_tip: str, top_k: int | None = None, n: int = 0) -> str:
    tips = []
    if method == "ablation" and (top_k is None or top_k > 5) and n > 10:
        tips.append("top_k=5 (a screen ranks every source, exact leave-one-out for the 5 best)")
    if sources in ("tokens", "words"):
        tips.append('use sources="sentences" (or "paragraphs")')
    elif sources == "sentences":
        tips.append('use sources="paragraphs"')
    if method_tip:
        tips.append(method_tip)
    if method != "ablation":
        tips.append('method="ablation"')
    return ", or ".join(tips)
