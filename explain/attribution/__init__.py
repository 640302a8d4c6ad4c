"""Attribution to tokens or sources: one module per method family, one entry point, :func:`attribute`.

Examples:
    >>> from explain import LanguageModel, attribute
    >>> lm = LanguageModel.load()                                                  # doctest: +SKIP
    >>> res = attribute(lm, "The capital of France is", target=" Paris")           # doctest: +SKIP
    >>> res.top_features(2)                                                        # doctest: +SKIP
    [(' France', 6.1), (' capital', 2.3)]
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Mapping, Sequence

import numpy as np

from explain.attribution.cost import estimate_cost
from explain.attribution.inputs import AttributionInput, build_input, default_baseline, split_context_prompt
from explain.attribution.registry import METHODS, MethodInfo, PlanInput, Work, register, unregister
from explain.attribution.sources import check_sources, split_sources
from explain.budget import check_budget, record_run
from explain.errors import ExplainError
from explain.model import LanguageModel
from explain.result import AttributionResult
from explain.threads import accepts_threads

# Each module registers its methods on import; a module that is missing a dependency is skipped.
for _module in ("ablation", "perturbation_sampling", "gradient", "attention", "shap_partition"):
    try:
        importlib.import_module(f"explain.attribution.{_module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"explain.attribution.{_module}":
            raise

# After the methods, so that METHODS keeps their order (a screen imports the modules it reuses).
from explain.attribution.screen import (DEFAULT_SCREEN, SCREENS, check_top_k, default_screen, screened_ablation,  # noqa: E402
                                        split_question)

# Above this many perturbed sequences a progress bar is shown (unless progress=False).
PROGRESS_THRESHOLD = 64


def check_baseline(lm: LanguageModel, baseline: Any) -> tuple[int, str]:
    """Validate ``baseline`` (a token id) or choose the default (:func:`default_baseline`).

    Returns:
        (token id, how it was chosen).

    Raises:
        ExplainError: not an integer token id, or outside the vocabulary.

    Examples:
        >>> check_baseline(lm, 1.5)   # doctest: +SKIP
        Traceback (most recent call last):
        explain.errors.ExplainError: baseline must be a token id (an integer), got 1.5
    """
    if baseline is None:
        return default_baseline(lm)
    if isinstance(baseline, bool) or not isinstance(baseline, (int, np.integer)):
        raise ExplainError(f"baseline must be a token id (an integer), got {baseline!r}")
    vocab = lm.model.get_input_embeddings().num_embeddings
    if not 0 <= int(baseline) < vocab:
        raise ExplainError(f"baseline token id {baseline} is outside the vocabulary (0..{vocab - 1})")
    return int(baseline), "given"


@accepts_threads
def attribute(
    lm: LanguageModel,
    prompt: str | Mapping[str, str],
    target: str | None = None,
    method: str = "ablation",
    baseline: int | None = None,
    chat: bool = False,
    max_new_tokens: int = 32,
    progress: bool | None = None,
    sources: str | Sequence[tuple[int, int]] = "tokens",
    max_seconds: float | None = None,
    context: str | None = None,
    top_k: int | None = None,
    screen: str | None = None,
    **kwargs: Any,
) -> AttributionResult:
    """Attribute each target token's log-probability to the prompt's tokens or sources.

    Args:
        lm: the model (:class:`explain.LanguageModel`).
        prompt: a string, or a dict of named segments (one feature per segment).
        target: the text to explain; ``None`` generates greedily first.
        method: a name in :data:`METHODS` (``ablation``, ``shapley``, ``kernelshap``, ``lime``,
            ``integrated_gradients``, ``input_x_gradient``, ``attention``, ``shap``).
        baseline: replacement token id for token-level perturbation and for gradient methods;
            default: a content-free token chosen per tokenizer (:func:`default_baseline`, recorded
            in ``info``); ``baseline=0`` gives captum's numbers.
        chat: apply the chat template; only the user's content tokens are features.
        max_new_tokens: generation length when ``target`` is None.
        progress: show a progress bar; default: only for long runs.
        sources: what a feature is: ``"tokens"`` (default), ``"words"``, ``"sentences"``,
            ``"paragraphs"``, or a list of ``(start, end)`` character spans. A source is ablated by
            removing its tokens (ContextCite), a token by replacing it with ``baseline``.
        max_seconds: refuse a run predicted (:func:`estimate_cost`) to take longer
            (default :data:`explain.budget.DEFAULT_MAX_SECONDS`).
        context: a passage the prompt (then the question) rests on; the model reads
            ``explain.model.with_context(prompt, context)``. Only the context is split into
            sources; the question is one source kept apart from the ranking, in
            ``info["question"]``. ``prompt={"context": ..., "question": ...}`` says the same.
        top_k: rank every source with a cheap screen, then exact leave-one-out for the ``top_k``
            best only (``method="ablation"``); ``info["exact"]`` marks them, the rest hold the
            screen's estimate (:mod:`explain.attribution.screen`).
        screen: the screen for ``top_k``: ``hierarchical`` (default), ``attention``, ``gradient`` or ``block_attention``.
        threads: torch CPU threads for this run and its estimate (restored after; default:
            torch's setting; one per worker on a busy machine, see :mod:`explain.threads`).
        **kwargs: the method's options (e.g. ``n_samples``, ``seed``, ``n_steps``, ``batch_tokens``;
            ``METHODS[method].defaults`` lists them with their defaults; ``None`` means the default).

    Returns:
        an :class:`AttributionResult` with ``token_attr`` (m, n) and ``seq_attr`` (n,); its
        ``input_tokens`` are the tokens or the source texts.

    Raises:
        ExplainError: unknown method, empty or over-long prompt/target, bad arguments, or a run
            over its time budget (the message gives the estimate and the cheaper choice).

    Examples:
        >>> res = attribute(lm, "The capital of France is", target=" Paris")   # doctest: +SKIP
        >>> res.token_attr.shape                                                # doctest: +SKIP
        (1, 5)
        >>> res = attribute(lm, "Q: who? A:", " Ada", context=ctx, sources="sentences", top_k=3)  # doctest: +SKIP
        >>> res.info["exact"], res.info["question"]["value"]                       # doctest: +SKIP
    """
    info = METHODS.get(method)
    if info is None:
        raise ExplainError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    if target is not None and not isinstance(target, str):
        raise ExplainError(f"target must be a string, not {type(target).__name__}")
    baseline_id, baseline_rule = check_baseline(lm, baseline)
    prompt, context = split_context_prompt(prompt, context, sources)
    top_k, screen, screen_options = check_top_k(method, top_k, screen, kwargs, lm)
    options = info.options(kwargs)
    if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))):
        raise ExplainError(f"max_seconds must be a number of seconds, got {max_seconds!r}")
    sources = "tokens" if sources is None else check_sources(sources)
    cost = estimate_cost(lm, prompt, target, method=method, sources=sources, chat=chat,
                         max_new_tokens=max_new_tokens, context=context, top_k=top_k, screen=screen,
                         **kwargs, **screen_options)
    check_budget(cost, max_seconds)
    start = time.perf_counter()
    inp = build_input(lm, prompt, target, chat=chat, max_new_tokens=max_new_tokens, sources=sources,
                      context=context)
    if progress is None:
        progress = cost.seconds > 10 or inp.n * inp.m > PROGRESS_THRESHOLD * 8
    if top_k is not None:
        token_attr, details = screened_ablation(lm, inp, top_k=top_k, screen=screen, baseline=baseline_id,
                                                progress=bool(progress), **options, **screen_options)
    else:
        token_attr, details = info.fn(lm, inp, baseline=baseline_id, progress=bool(progress), **options)
    seconds = time.perf_counter() - start
    record_run(lm, method, predicted=cost.seconds, measured=seconds)
    token_attr = np.asarray(token_attr, dtype=np.float64).reshape(inp.m, inp.n)
    logprobs = details.pop("target_logprobs", None)
    # A surrogate fit (lime) is not additive over target tokens: such methods give their own.
    seq_attr = details.pop("seq_attr", None)
    if seq_attr is None:
        seq_attr = token_attr.sum(axis=0)
    if logprobs is None:
        logprobs = lm.continuation_logprobs([inp.prompt_ids], [inp.target_ids])[0]
    names, token_attr, seq_attr, details = split_question(inp, token_attr, np.asarray(seq_attr), details)
    return AttributionResult(
        input_tokens=names,
        output_tokens=inp.target_tokens,
        token_attr=token_attr,
        seq_attr=np.asarray(seq_attr, dtype=np.float64),
        target_logprobs=np.asarray(logprobs, dtype=np.float64),
        method=method,
        model=lm.name,
        prompt=inp.prompt,
        target=inp.target,
        info={
            "seconds": round(seconds, 4),
            "estimated_seconds": round(cost.seconds, 4),
            "baseline": baseline_id,
            "baseline_token": lm.tokenizer.convert_ids_to_tokens(baseline_id),
            "baseline_rule": baseline_rule,
            "sources": inp.sources,
            "source_spans": [list(s) for s in inp.spans],
            "ablation": "removal" if inp.removal else "replacement",
            "chat": chat,
            "generated": inp.generated,
            "family": info.family,
            **({"context": context} if context is not None else {}),
            **details,
        },
    )


__all__ = [
    "DEFAULT_SCREEN", "METHODS", "default_screen", "SCREENS", "AttributionInput", "MethodInfo", "PlanInput", "Work", "attribute", "build_input",
    "check_baseline", "default_baseline", "estimate_cost", "register", "split_sources", "unregister",
]
