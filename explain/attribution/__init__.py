"""Token attribution: one module per method family, one entry point, :func:`attribute`.

Example:
    >>> from explain import LanguageModel, attribute
    >>> lm = LanguageModel.load()                                                  # doctest: +SKIP
    >>> res = attribute(lm, "The capital of France is", target=" Paris")           # doctest: +SKIP
    >>> res.top_features(2)                                                        # doctest: +SKIP
    [(' France', 6.1), (' capital', 2.3)]
"""

from __future__ import annotations

import importlib
import inspect
import time
from typing import Any, Mapping

import numpy as np

from explain.attribution.inputs import AttributionInput, build_input
from explain.attribution.registry import METHODS, MethodInfo, register
from explain.errors import ExplainError
from explain.model import LanguageModel
from explain.result import AttributionResult

# Each module registers its methods on import; a module that is missing a dependency is skipped.
for _module in ("ablation", "perturbation_sampling", "gradient", "attention", "shap_partition"):
    try:
        importlib.import_module(f"explain.attribution.{_module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"explain.attribution.{_module}":
            raise

# Above this many perturbed sequences a progress bar is shown (unless progress=False).
PROGRESS_THRESHOLD = 64


def attribute(
    lm: LanguageModel,
    prompt: str | Mapping[str, str],
    target: str | None = None,
    method: str = "ablation",
    baseline: int | None = None,
    chat: bool = False,
    max_new_tokens: int = 32,
    progress: bool | None = None,
    **kwargs: Any,
) -> AttributionResult:
    """Attribute each target token's log-probability to the prompt's tokens (or segments).

    Args:
        lm: the model (:class:`explain.LanguageModel`).
        prompt: a string, or a dict of named segments (one feature per segment).
        target: the text to explain; ``None`` generates greedily first.
        method: a name in :data:`METHODS` (``ablation``, ``shapley``, ``kernelshap``, ``lime``,
            ``integrated_gradients``, ``input_x_gradient``, ``attention``, ``shap``).
        baseline: replacement token id for perturbation methods (default 0, captum's).
        chat: apply the chat template; only the user's content tokens are features.
        max_new_tokens: generation length when ``target`` is None.
        progress: show a progress bar; default: only for long runs.
        **kwargs: passed to the method (e.g. ``n_samples``, ``seed``, ``n_steps``).

    Returns:
        an :class:`AttributionResult` with ``token_attr`` (m, n) and ``seq_attr`` (n,).

    Raises:
        ExplainError: unknown method, empty or over-long prompt/target, bad arguments.

    Example:
        >>> res = attribute(lm, "The capital of France is", target=" Paris")   # doctest: +SKIP
        >>> res.token_attr.shape                                                # doctest: +SKIP
        (1, 5)
    """
    info = METHODS.get(method)
    if info is None:
        raise ExplainError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    if baseline is None:
        baseline = 0
    vocab = lm.model.get_input_embeddings().num_embeddings
    if not 0 <= int(baseline) < vocab:
        raise ExplainError(f"baseline token id {baseline} is outside the vocabulary (0..{vocab - 1})")
    params = inspect.signature(info.fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for name in kwargs:
            if name not in params or name in ("lm", "inp", "baseline", "progress"):
                raise ExplainError(f"method '{method}' takes no option '{name}'")
    inp = build_input(lm, prompt, target, chat=chat, max_new_tokens=max_new_tokens)
    if progress is None:
        progress = inp.n * inp.m > PROGRESS_THRESHOLD * 8
    start = time.perf_counter()
    token_attr, details = info.fn(lm, inp, baseline=int(baseline), progress=bool(progress), **kwargs)
    seconds = time.perf_counter() - start
    token_attr = np.asarray(token_attr, dtype=np.float64).reshape(inp.m, inp.n)
    logprobs = details.pop("target_logprobs", None)
    # A surrogate fit (lime) is not additive over target tokens: such methods give their own.
    seq_attr = details.pop("seq_attr", None)
    if seq_attr is None:
        seq_attr = token_attr.sum(axis=0)
    if logprobs is None:
        logprobs = lm.continuation_logprobs([inp.prompt_ids], [inp.target_ids])[0]
    return AttributionResult(
        input_tokens=inp.feature_names,
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
            "baseline": int(baseline),
            "chat": chat,
            "generated": inp.generated,
            "family": info.family,
            **details,
        },
    )


__all__ = ["METHODS", "AttributionInput", "MethodInfo", "attribute", "build_input", "register"]
