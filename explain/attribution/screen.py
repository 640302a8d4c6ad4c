"""``top_k``: rank every source with a cheap screen, then compute exact leave-one-out for the K best.

Exact leave-one-out over a 2,000-token context costs one perturbed sequence per sentence; a user
wants the few sources that matter, exactly, and a ranking of the rest. A *screen* estimates every
feature's effect on the target in about one pass; :func:`screened_ablation` then removes (or
replaces, for tokens) only the K features the screen ranked highest, with the same batched engine
and prefix cache as ``method="ablation"`` (:class:`~explain.attribution.batched_forward.BatchedForward`),
so those K values equal a full run's. ``info["exact"]`` marks them; the other features hold the
screen's estimate.

Screens (``screen=``):

- ``attention``: one ordinary pass over the whole input, whose key/value cache the exact part
  then reuses, plus a short pass over the m target-predicting positions with attention weights
  kept: a feature's score is the attention those positions pay to its tokens, averaged over layers
  and heads (the first position, the attention sink, left out).
- ``fitted_attention`` (AT2-style; the default where head weights ship for the model, as for the
  embedded one): the same passes, the question's positions included, with one weight per head and
  profile fitted to leave-one-out for the model (:mod:`explain.attribution.head_weights`;
  ``whylm fit-screen`` fits them for yours). In ``benchmarks/context_attribution.py`` it is the
  only screen that puts both needles of two-needle haystacks in the exact top 5, key first, at 1k
  and 2k tokens at the cost of a few plain forwards (figures: docs/benchmarks/context.md).
- ``gradient``: input x gradient of the target's log-prob, one forward and one backward pass.
- ``hierarchical`` (the default for models without head weights; AttriBoT): leave-one-out over
  blocks of adjacent features, then over the features inside the best blocks (all of those are
  exact). It finds both needles too, but costs about 7 forwards at 1k tokens and 17 at 2k.
- ``block_attention``: one whole pass (its cache serves everything after), leave-one-out over about
  sqrt(n)/2 large blocks, each block's drop shared among its features by the attention the target
  pays them; only the K best are then computed exactly (cost about 1 + blocks/2 + K/2 passes).

Estimates of ``attention`` and ``fitted_attention`` are scores put on the nats scale by a
least-squares factor fitted on the exact features of the same run (``info["estimate_scale"]``);
``gradient`` estimates are a first-order Taylor estimate in nats; ``hierarchical`` gives a block's
drop shared evenly among its features; ``block_attention`` gives its block's drop shared in
proportion to attention. No estimate is left above the smallest exact value of the K the screen
chose (:func:`cap_estimates`): an estimated source never outranks one computed exactly.

Examples:
    >>> res = attribute(lm, "Question: what is the code?\\nAnswer:", context=ctx, target=" 4417",
    ...                 sources="sentences", top_k=5)      # doctest: +SKIP
    >>> res.info["exact"][:3]                               # doctest: +SKIP
    [False, True, False]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from explain.attribution.attention import target_attention
from explain.attribution.batched_forward import BatchedForward, as_numpy
from explain.attribution.cost import SCREEN_PLANS
from explain.attribution.gradient import _EmbeddingGradients
from explain.attribution.head_weights import (attention_profiles, load_head_weights, question_start, score_sources,
                                              shipped_path)
from explain.attribution.inputs import AttributionInput
from explain.attribution.registry import PlanInput, Work
from explain.errors import ExplainError
from explain.model import LanguageModel


@dataclass
class ScreenOutput:
    """What a screen found.

    Attributes:
        estimate: float (m, n): estimated drop of each target token's log-prob per feature.
        exact: feature index -> exact (m,) drops the screen already computed (hierarchical).
        prepared: ``(original log-probs, whole-input cache or None)`` for the exact engine, or None.
        passes: forward-pass equivalents the screen ran (a backward counts as two).
        scaled: whether ``estimate`` must be put on the nats scale from the exact features.
        info: screen-specific details.
        engine: the exact engine the screen built, or None.
        rank: the screen's order of the candidates, or None for the order of ``estimate``.
    """

    estimate: np.ndarray
    exact: dict[int, np.ndarray] = field(default_factory=dict)
    prepared: tuple[torch.Tensor, Any] | None = None
    passes: float = 1.0
    scaled: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    engine: BatchedForward | None = None
    rank: list[int] | None = None


ScreenFn = Callable[..., ScreenOutput]


@dataclass(frozen=True)
class ScreenInfo:
    """A registered screen: its name, its cost in words, and the function."""

    name: str
    cost: str
    fn: ScreenFn


SCREENS: dict[str, ScreenInfo] = {}
DEFAULT_SCREEN = "hierarchical"
"""The screen for a model without fitted head weights (:func:`default_screen`)."""


def default_screen(lm: Any = None) -> str:
    """The screen ``top_k`` uses when none is named for ``lm`` (a model or its name):
    ``fitted_attention`` where head weights ship for the model (the embedded one; ``whylm fit-screen``
    fits them for yours, passed as ``head_weights=``), else :data:`DEFAULT_SCREEN`.

    Examples:
        >>> default_screen("my-own-model")
        'hierarchical'
    """
    name = lm if isinstance(lm, str) else getattr(lm, "name", None)
    if name and shipped_path(name).is_file():
        return "fitted_attention"
    return DEFAULT_SCREEN


def register_screen(name: str, cost: str) -> Callable[[ScreenFn], ScreenFn]:
    """Decorator that adds a screen to :data:`SCREENS` and its cost plan (:func:`screen_plan`) to
    :data:`explain.attribution.cost.SCREEN_PLANS`. Returns: the function unchanged."""

    def wrap(fn: ScreenFn) -> ScreenFn:
        SCREENS[name] = ScreenInfo(name, cost, fn)
        SCREEN_PLANS[name] = lambda p, k, rows_work: screen_plan(name, p, k, rows_work)
        return fn

    return wrap


def _per_feature(per_position: torch.Tensor, inp: AttributionInput) -> np.ndarray:
    """(m, L) per-position scores -> (m, n) sums over each feature's positions."""
    return as_numpy(torch.stack([per_position[:, pos].sum(1) for pos in inp.features], dim=1))


def _logprobs(logits: torch.Tensor, target_ids: list[int]) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)
    tgt = torch.tensor(target_ids, device=logp.device)
    return logp.gather(-1, tgt[:, None])[:, 0].double().cpu()


def whole_pass(lm: LanguageModel, inp: AttributionInput) -> tuple[torch.Tensor, Any]:
    """One ordinary forward over prompt + target with the cache kept.

    Returns:
        (unperturbed target log-probs (m,) float64, the key/value cache).

    Examples:
        >>> original, cache = whole_pass(lm, inp)   # doctest: +SKIP
    """
    ids = torch.tensor([inp.sequence], dtype=torch.long, device=lm.device)
    with torch.no_grad():
        out = lm._run({"input_ids": ids, "use_cache": True}, inp.m)
    cache = out.get("cache") if hasattr(out, "get") else None
    cache = cache if cache is not None else out.past_key_values
    return _logprobs(out.logits[0, -inp.m:], inp.target_ids), cache


@register_screen("attention", cost="1 forward pass (its cache is reused by the exact part) + m positions")
def attention_screen(lm: LanguageModel, inp: AttributionInput, **_: Any) -> ScreenOutput:
    """Attention paid by the target-predicting positions to each feature, averaged over layers and heads.

    Returns:
        a :class:`ScreenOutput` (``scaled``: the estimate is attention mass, not nats).
    """
    original, cache = whole_pass(lm, inp)
    att = target_attention(lm, inp, cache)
    if att is None:  # no attention weights here: the gradient screen gives an estimate instead
        out = gradient_screen(lm, inp)
        out.info["fallback"] = "attention weights unavailable; gradient screen used"
        return out
    att[..., 0] = 0.0  # the attention sink
    return ScreenOutput(_per_feature(att.mean((0, 1)), inp), prepared=(original, cache),
                        passes=1.0 + inp.m / max(1, len(inp.sequence)), scaled=True)


@register_screen("fitted_attention", cost="1 forward pass (reused by the exact part) + the question and m positions")
def fitted_attention_screen(lm: LanguageModel, inp: AttributionInput, *, candidates: list[int],
                            head_weights: Any = None, **_: Any) -> ScreenOutput:
    """Attention from the target's and the question's positions, weighted per head by weights fitted
    to leave-one-out for the model (AT2-style, :mod:`explain.attribution.head_weights`).

    Args:
        candidates: the features to rank.
        head_weights: a path, dict or :class:`~explain.attribution.head_weights.HeadWeights`; None
            for the file shipped for the model (``whylm fit-screen`` writes one for your model).

    Returns:
        a :class:`ScreenOutput` (``scaled``: scores, put on the nats scale from the exact features).

    Raises:
        ExplainError: no weights ship for the model and none were given, or they do not fit it.
    """
    weights = load_head_weights(head_weights, lm)
    if weights is None:
        raise ExplainError(f"no fitted head weights ship for model {lm.name}: fit them with "
                           "`whylm fit-screen --model ... --out heads.json` and pass head_weights=, "
                           "or use screen='hierarchical'")
    original, cache = whole_pass(lm, inp)
    profiles = attention_profiles(lm, inp, cache, candidates)
    if profiles is None:
        raise ExplainError(f"model {lm.name} gives no attention weights here (or its cache cannot be cut): "
                           "use screen='hierarchical'")
    score = score_sources(profiles, weights.weights)
    score = np.exp(score - score.max())  # a positive estimate; the order is the fitted score's
    estimate = np.zeros((inp.m, inp.n))
    estimate[:, candidates] = score[None, :] / inp.m
    rows = len(inp.sequence) - question_start(inp)
    return ScreenOutput(estimate, prepared=(original, cache), passes=1.0 + rows / max(1, len(inp.sequence)),
                        scaled=True, info={"head_weights": weights.model or "given"})


@register_screen("gradient", cost="1 forward + 1 backward pass (about 3 forwards)")
def gradient_screen(lm: LanguageModel, inp: AttributionInput, **_: Any) -> ScreenOutput:
    """Input x gradient of every target token's log-prob (first-order estimate of zeroing a feature).

    Returns:
        a :class:`ScreenOutput` in nats (first order).
    """
    eg = _EmbeddingGradients(lm, inp, grad_tokens=1 << 30)
    embeds = eg.embed(eg.ids)
    grads, lp = eg.weighted_grads(embeds, torch.ones(1))
    per_position = (grads * embeds[0][None]).sum(-1).detach()  # (m, L)
    return ScreenOutput(_per_feature(per_position, inp), prepared=(lp[0].detach().double().cpu(), None),
                        passes=3.0, info=eg.info)


@register_screen("hierarchical", cost="leave-one-out over ~sqrt(n) blocks, then inside the best blocks")
def hierarchical_screen(lm: LanguageModel, inp: AttributionInput, *, engine: BatchedForward,
                        candidates: list[int], top_k: int, block: int | None = None,
                        progress: bool = False, **_: Any) -> ScreenOutput:
    """Leave-one-out over blocks of adjacent candidates, then over each candidate of the best blocks.

    Args:
        engine: the exact engine (shared with the exact part).
        candidates: the features to rank; top_k: how many the exact part needs.
        block: features per block (default: about sqrt(len(candidates)), 2 to 16).

    Returns:
        a :class:`ScreenOutput` whose ``exact`` holds every feature of the best blocks.
    """
    n_c = len(candidates)
    size = int(block) if block else min(16, max(2, round(math.sqrt(n_c))))
    blocks = [candidates[i:i + size] for i in range(0, n_c, size)]
    keep = torch.ones(len(blocks), inp.n, dtype=torch.bool)
    for b, members in enumerate(blocks):
        keep[b, members] = False
    drops = as_numpy(engine.original[None, :] - engine(keep, progress=progress))  # (B, m)
    n_best = min(len(blocks), max(2, math.ceil(top_k / size) + 1))
    best = np.argsort(-drops.sum(1), kind="stable")[:n_best]
    inside = sorted(f for b in best for f in blocks[b])
    keep = ~torch.eye(inp.n, dtype=torch.bool)[inside]
    exact_rows = as_numpy(engine.original[None, :] - engine(keep, progress=progress))
    estimate = np.zeros((inp.m, inp.n))
    for b, members in enumerate(blocks):
        estimate[:, members] = drops[b][:, None] / len(members)
    exact = {f: exact_rows[r] for r, f in enumerate(inside)}
    return ScreenOutput(estimate, exact=exact, passes=0.0,
                        info={"block": size, "blocks": len(blocks), "blocks_searched": int(n_best)})


@register_screen("block_attention", cost="1 forward pass + leave-one-out over ~sqrt(n)/2 large blocks")
def block_attention_screen(lm: LanguageModel, inp: AttributionInput, *, candidates: list[int],
                           make_engine: Callable[..., BatchedForward], top_k: int,
                           block: int | None = None, progress: bool = False, **_: Any) -> ScreenOutput:
    """Exact leave-one-out over a few large blocks, each block's drop shared among its features in
    proportion to the attention the target pays them.

    One whole pass (its cache serves the block rows and the exact part) and its attention weights
    rank features inside a block; the block rows say which blocks matter, so a feature the target
    attends to little (a linking fact) still ranks high when its block's removal costs much: the
    order takes the floor(K/2) most attended features of the best block, then ceil(K/2) of each next
    (for K >= 2 the exact rows span at least two blocks), then the rest by estimate.

    Args:
        candidates: the features to rank; top_k: how many the exact part computes;
            make_engine: ``prepared -> BatchedForward`` (the exact engine, built on this screen's
            whole pass); block: features per block (default: about
            2 sqrt(len(candidates)), so about sqrt(n)/2 blocks).

    Returns:
        a :class:`ScreenOutput` in nats (block drops, shared) with the engine it built.
    """
    original, cache = whole_pass(lm, inp)
    engine = make_engine((original, cache))
    att = target_attention(lm, inp, cache)
    if att is not None:
        att[..., 0] = 0.0  # the attention sink
        weight = _per_feature(att.mean((0, 1)), inp).sum(0)
    else:
        weight = np.ones(inp.n)
    n_c = len(candidates)
    size = int(block) if block else max(2, math.ceil(2 * math.sqrt(n_c)))
    blocks = [candidates[i:i + size] for i in range(0, n_c, size)]
    keep = torch.ones(len(blocks), inp.n, dtype=torch.bool)
    for b, members in enumerate(blocks):
        keep[b, members] = False
    drops = as_numpy(engine.original[None, :] - engine(keep, progress=progress))  # (B, m)
    estimate = np.zeros((inp.m, inp.n))
    for b, members in enumerate(blocks):
        w = np.clip(weight[members], 0.0, None) + 1e-12
        estimate[:, members] = drops[b][:, None] * (w / w.sum())[None, :]
    # the key fact is what the target attends to most: its block needs fewer slots than the next,
    # where a linking fact may rank third by attention
    order = np.argsort(-drops.sum(1), kind="stable")
    quota = [max(1, top_k // 2) if j == 0 else max(1, math.ceil(top_k / 2)) for j in range(len(order))]
    rank = [f for j, b in enumerate(order) for f in sorted(blocks[b], key=lambda f: (-weight[f], f))[:quota[j]]]
    score = estimate.sum(0)
    rank += sorted((f for f in candidates if f not in set(rank)), key=lambda f: (-score[f], f))
    return ScreenOutput(estimate, prepared=(original, cache), passes=0.0, engine=engine, rank=rank,
                        info={"block": size, "blocks": len(blocks), "attention": att is not None})


def screened_ablation(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    top_k: int,
    screen: str,
    baseline: int,
    progress: bool,
    batch_tokens: int = 4096,
    max_rows: int | None = None,
    **screen_options: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Screen every feature, then exact leave-one-out for the ``top_k`` the screen ranks highest.

    The question (``inp.question``, with ``context=``) is never ranked: its exact value is always
    computed (one short row at the end of the prompt).

    Returns:
        (token_attr (m, n), details) with ``details["exact"]`` a bool list over features,
        ``details["screen"]`` its name and ``details["screen_rank"]`` the screen's order.

    Raises:
        ExplainError: unknown screen or a bad ``top_k``.

    Examples:
        >>> attr, info = screened_ablation(lm, inp, top_k=3, screen="hierarchical", baseline=0,
        ...                                  progress=False)   # doctest: +SKIP
    """
    info_s = SCREENS.get(screen)
    if info_s is None:
        raise ExplainError(f"unknown screen '{screen}': choose one of {', '.join(SCREENS)}")
    candidates = [f for f in range(inp.n) if f != inp.question]
    k = min(int(top_k), len(candidates))
    t0 = time.perf_counter()
    engine: BatchedForward | None = None
    if screen == "hierarchical":
        engine = BatchedForward(lm, inp, baseline=baseline, batch_tokens=batch_tokens, max_rows=max_rows)
        out = info_s.fn(lm, inp, engine=engine, candidates=candidates, top_k=k, progress=progress,
                        **screen_options)
    elif screen == "block_attention":
        out = info_s.fn(lm, inp, candidates=candidates, top_k=k, progress=progress, **screen_options,
                        make_engine=lambda prepared: BatchedForward(
                            lm, inp, baseline=baseline, batch_tokens=batch_tokens, max_rows=max_rows,
                            prepared=prepared))
        engine = out.engine
    else:
        out = info_s.fn(lm, inp, candidates=candidates, **screen_options)
    t_screen = time.perf_counter() - t0
    score = out.estimate.sum(0)
    rank = out.rank or sorted(candidates, key=lambda f: (-score[f], f))
    exact = dict(out.exact)
    if screen == "hierarchical":  # its exact features are the ones it searched; keep the K best
        chosen = sorted(exact, key=lambda f: -float(exact[f].sum()))[:k]
        rank = chosen + [f for f in rank if f not in chosen]
    else:
        chosen = rank[:k]
    todo = [f for f in chosen + ([inp.question] if inp.question is not None else []) if f not in exact]
    if todo:
        if engine is None:
            engine = BatchedForward(lm, inp, baseline=baseline, batch_tokens=batch_tokens,
                                    max_rows=max_rows or 1, prepared=out.prepared)
        elif screen == "block_attention":  # few rows: one per pass, each skipping its own prefix
            engine.max_rows = max_rows or 1
        keep = ~torch.eye(inp.n, dtype=torch.bool)[todo]
        rows = as_numpy(engine.original[None, :] - engine(keep, progress=progress))
        exact.update({f: rows[r] for r, f in enumerate(todo)})
    original = engine.original if engine is not None else out.prepared[0]
    attr = out.estimate.copy()
    scale = 1.0
    if out.scaled:
        fit = [f for f in exact if f != inp.question]
        s = np.array([out.estimate[:, f].sum() for f in fit])
        e = np.array([exact[f].sum() for f in fit])
        scale = float(s @ e / (s @ s)) if len(fit) and float(s @ s) > 0 else 1.0
        attr *= scale
    mask = np.zeros(inp.n, dtype=bool)
    for f, col in exact.items():
        attr[:, f] = col
        mask[f] = True
    floor = cap_estimates(attr, mask, [f for f in chosen if f in exact])
    details: dict[str, Any] = {
        "exact": mask.tolist(),
        "top_k": k,
        "screen": screen,
        "screen_rank": [int(f) for f in rank],
        "screen_seconds": round(t_screen, 4),
        "screen_passes": out.passes,
        "estimate_scale": scale,
        "estimate_cap": floor,
        "target_logprobs": as_numpy(original),
        **{f"screen_{key}": v for key, v in out.info.items()},
    }
    if engine is not None:
        details.update(engine.info)
    return attr, details


def cap_estimates(attr: np.ndarray, exact: np.ndarray, chosen: list[int]) -> float | None:
    """Keep every estimate at or below the smallest exact value of the sources the screen chose.

    The screen ranked an estimated source below the K it sent to the exact part, so its estimate
    must not outrank them (a scaled attention score can: its scale is fitted on the K, the top one
    dominating). ``attr`` (m, n) is changed in place; a capped column keeps its shape over the target
    tokens (or is spread evenly when the cap is not positive).

    Returns:
        the cap (a sum over target tokens), or None when nothing was chosen.

    Examples:
        >>> a = np.array([[3.0, 0.2, 1.0, 0.5]])
        >>> cap_estimates(a, np.array([True, True, False, False]), [0, 1]), a.tolist()
        (0.2, [[3.0, 0.2, 0.2, 0.2]])
    """
    if not chosen:
        return None
    floor = float(min(attr[:, f].sum() for f in chosen))
    m = attr.shape[0]
    for f in np.flatnonzero(~exact):
        total = float(attr[:, f].sum())
        if total > floor:
            attr[:, f] = attr[:, f] * (floor / total) if floor > 0 and total > 0 else floor / m
    return floor


# Options of the screens, taken out of attribute()'s **kwargs before the method's own are checked.
SCREEN_OPTIONS = ("block", "head_weights")


def check_top_k(method: str, top_k: Any, screen: Any, kwargs: dict[str, Any],
                lm: Any = None) -> tuple[int | None, str, dict[str, Any]]:
    """Validate ``top_k``/``screen`` (None: :func:`default_screen` for ``lm``) and take the screens'
    options out of ``kwargs``.

    Returns:
        (top_k or None, the screen's name, the screen's options).

    Raises:
        ExplainError: ``top_k`` not a positive integer, with a method other than ``ablation``,
        an unknown screen, or ``screen=`` without ``top_k``.

    Examples:
        >>> check_top_k("ablation", 5, None, {})
        (5, 'hierarchical', {})
        >>> check_top_k("shapley", 5, None, {})
        Traceback (most recent call last):
        explain.errors.ExplainError: top_k computes exact leave-one-out for the best sources: it needs method="ablation", not 'shapley'
    """
    options = {k: kwargs.pop(k) for k in SCREEN_OPTIONS if k in kwargs}
    if top_k is None:
        if screen is not None or options:
            raise ExplainError("screen= and its options need top_k= (how many sources to compute exactly)")
        return None, DEFAULT_SCREEN, {}
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ExplainError(f"top_k must be an integer >= 1, got {top_k!r}")
    if method != "ablation":
        raise ExplainError(f'top_k computes exact leave-one-out for the best sources: it needs method="ablation", '
                           f"not {method!r}")
    screen = default_screen(lm) if screen is None else screen
    if screen not in SCREENS:
        raise ExplainError(f"unknown screen {screen!r}: choose one of {', '.join(SCREENS)}")
    if "head_weights" in options and screen != "fitted_attention":
        raise ExplainError(f"head_weights is an option of screen='fitted_attention', not of {screen!r}")
    block = options.get("block")
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1):
        raise ExplainError(f"block must be an integer >= 1, got {block!r}")
    return int(top_k), screen, options


def split_question(inp: AttributionInput, token_attr: np.ndarray, seq_attr: np.ndarray,
                   details: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any]]:
    """Take the question's feature (``context=`` runs) out of the ranking into ``details["question"]``.

    Returns:
        (feature names, token_attr, seq_attr, details) without the question's column; with
        ``details["question"] = {"text", "value", "token_attr"}``.

    Examples:
        >>> names, ta, sa, d = split_question(inp, attr, attr.sum(0), {})   # doctest: +SKIP
    """
    q = inp.question
    if q is None:
        return list(inp.feature_names), token_attr, seq_attr, details
    keep = [f for f in range(inp.n) if f != q]
    details = dict(details)
    details["question"] = {"text": inp.prompt if isinstance(inp.prompt, str) else str(inp.prompt),
                           "value": float(seq_attr[q]), "token_attr": token_attr[:, q].tolist()}
    if "exact" in details:
        details["exact"] = [bool(details["exact"][f]) for f in keep]
    if "screen_rank" in details:
        pos = {f: i for i, f in enumerate(keep)}
        details["screen_rank"] = [pos[f] for f in details["screen_rank"] if f in pos]
    return [inp.feature_names[f] for f in keep], token_attr[:, keep], seq_attr[keep], details


def screen_plan(screen: str, p: PlanInput, top_k: int, rows_work: Callable[..., Work]) -> Work:
    """What a ``top_k`` run will compute, for :func:`~explain.attribution.cost.estimate_cost`.

    The screen's choice is not known before it runs: the exact rows are placed at evenly spread
    quantiles of the candidates (a row's cost is the suffix after its source).

    Args:
        screen: the screen's name; p: the plan input (options hold ``block`` for hierarchical);
        top_k: exact rows wanted; rows_work: the engine's plan of keep-masks
            (:func:`~explain.attribution.cost.masked_rows_work`).

    Returns:
        the :class:`Work` of the screen and the exact part.
    """
    n, question = p.n, p.prompt.question
    candidates = [f for f in range(n) if f != question]
    k = min(top_k, len(candidates))
    n_seq = p.n_seq
    tail = [question] if question is not None else []

    def spread(count: int) -> list[int]:
        at = np.linspace(0, len(candidates) - 1, count).round().astype(int) if count else []
        return sorted({candidates[i] for i in at})

    eye = np.eye(n, dtype=bool)
    if screen == "hierarchical":
        size = int(p.options.get("block") or min(16, max(2, round(math.sqrt(len(candidates))))))
        blocks = [candidates[i:i + size] for i in range(0, len(candidates), size)]
        n_best = min(len(blocks), max(2, math.ceil(k / size) + 1))
        dropped = np.zeros((len(blocks), n), dtype=bool)
        for b, members in enumerate(blocks):
            dropped[b, members] = True
        work = rows_work(p, np.concatenate([dropped, eye[spread(min(len(candidates), n_best * size)) + tail]]))
        return work
    one_row = PlanInput(p.lm, p.prompt, p.m, {**p.options, "max_rows": 1})
    work = rows_work(one_row, eye[spread(k) + tail])
    checks = 2 if p.prompt.removal else 1  # the engine's own unperturbed passes: the screen gives them
    work.passes -= checks
    work.positions -= checks * n_seq
    work.pairs -= checks * n_seq * (n_seq + 1) / 2
    if screen == "block_attention":  # plus the block rows (engine on the screen's pass, no checks)
        size = int(p.options.get("block") or max(2, math.ceil(2 * math.sqrt(len(candidates)))))
        blocks = [candidates[i:i + size] for i in range(0, len(candidates), size)]
        dropped = np.zeros((len(blocks), n), dtype=bool)
        for b, members in enumerate(blocks):
            dropped[b, members] = True
        rows = rows_work(p, dropped)
        work = Work(work.passes + rows.passes - checks, work.positions + rows.positions - checks * n_seq,
                    work.pairs + rows.pairs - checks * n_seq * (n_seq + 1) / 2,
                    max(work.peak_bytes, rows.peak_bytes), work.cheaper)
    if screen == "gradient":  # a forward with the graph kept and a backward (about two forwards)
        extra = Work.forwards(3, n_seq)
    else:  # the whole pass is the exact part's cache pass; then m positions (and the question's), eager
        rows = p.m + (len(p.prompt.features[question]) if screen == "fitted_attention" and question is not None else 0)
        extra = Work(1.0, float(rows), rows * (n_seq - rows / 2))
    return Work(work.passes + extra.passes, work.positions + extra.positions, work.pairs + extra.pairs,
                work.peak_bytes, work.cheaper)
