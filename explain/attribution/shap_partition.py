"""shap's Partition explainer (Owen values over a feature hierarchy) on our batched forward.

shap's own text pipeline (``shap.models.TeacherForcing``) copies full-vocabulary logits to the
CPU as float64 and scores one masked text at a time. Here shap only sees a set function: a masker
over our features (a dropped feature's tokens become the baseline id) and a model function that
maps a batch of keep-masks to the m target log-probs through
:class:`~explain.attribution.batched_forward.BatchedForward`, computed at target positions only.

The hierarchy is a balanced binary tree over contiguous features (neighbouring tokens are grouped
first), as shap's text masker does for text. Owen values are exact for that hierarchy when
``max_evals`` is large enough; below that shap explores the largest groups first.

Examples:
    >>> res = attribute(lm, "The capital of France is", " Paris", method="shap", max_evals=200)  # doctest: +SKIP
    >>> res.token_attr.shape                                                                   # doctest: +SKIP
    (1, 5)
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from explain.attribution.batched_forward import BatchedForward, as_numpy
from explain.attribution.cost import masked_rows_work, random_halves
from explain.attribution.inputs import AttributionInput
from explain.attribution.registry import PlanInput, Work, check_int, register
from explain.model import LanguageModel


def contiguous_tree(n: int) -> np.ndarray:
    """A scipy-style linkage matrix (n-1, 4) of a balanced binary tree over features 0..n-1 in order.

    Examples:
        >>> contiguous_tree(3).tolist()
        [[1.0, 2.0, 2.0, 2.0], [0.0, 3.0, 3.0, 3.0]]
    """
    rows: list[list[float]] = []

    def build(lo: int, hi: int) -> int:
        if hi - lo == 1:
            return lo
        mid = (lo + hi) // 2
        left, right = build(lo, mid), build(mid, hi)
        rows.append([float(left), float(right), float(hi - lo), float(hi - lo)])
        return n + len(rows) - 1

    build(0, n)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


class FeatureMasker:
    """A shap masker over n features: the masked "input" is the keep-mask itself.

    Examples:
        >>> FeatureMasker(3)(np.array([True, False, True]), np.ones(3)).tolist()
        [[True, False, True]]
    """

    def __init__(self, n: int) -> None:
        self.shape = (1, n)
        self.clustering = contiguous_tree(n)

    def __call__(self, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.asarray(mask, dtype=bool).reshape(1, -1).copy()


def shap_plan(p: PlanInput) -> Work:
    """The cost plan of :func:`shap_partition`: ``max_evals`` masks (shap's coalitions of groups
    drop about half the features). Returns: the engine's :class:`Work`."""
    evals = int(p.options["max_evals"])
    work = masked_rows_work(p, *random_halves(p, evals))
    work.cheaper = f"fewer evaluations (max_evals={max(3, evals // 4)})"
    return work


def _check(options: Mapping[str, Any]) -> None:
    check_int(options, "max_evals", minimum=3)
    check_int(options, "batch_size")
    check_int(options, "batch_tokens")


@register(
    "shap",
    family="perturbation",
    cost="max_evals sequences (default 500), batched",
    note="shap Partition explainer (Owen values over a contiguous hierarchy); "
    "good for long prompts at a fixed budget.",
    plan=shap_plan,
    shown=("max_evals",),
    check=_check,
)
def shap_partition(
    lm: LanguageModel,
    inp: AttributionInput,
    *,
    baseline: int,
    progress: bool,
    max_evals: int = 500,
    batch_size: int = 64,
    batch_tokens: int = 4096,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Owen values of every target token's log-prob with shap's ``Partition`` explainer.

    Args:
        max_evals: shap's evaluation budget (masked inputs), at least 2 * n + 1 recommended.
        batch_size: masks shap hands to the model function at a time.

    Returns:
        (token_attr (m, n), info).

    Examples:
        >>> attr, info = shap_partition(lm, inp, baseline=0, progress=False, max_evals=100)  # doctest: +SKIP
    """
    import shap

    fwd = BatchedForward(lm, inp, baseline=baseline, batch_tokens=batch_tokens)
    evaluated = 0

    def model_fn(keep: np.ndarray) -> np.ndarray:
        nonlocal evaluated
        evaluated += len(keep)
        return as_numpy(fwd(torch.from_numpy(np.asarray(keep, dtype=bool))))

    if inp.n == 1:  # no hierarchy to explore: the one feature gets the whole difference
        attr = (fwd.original - fwd(torch.zeros(1, 1, dtype=torch.bool))[0])[:, None]
        return as_numpy(attr), {**fwd.info, "max_evals": int(max_evals),
                                "target_logprobs": as_numpy(fwd.original)}
    explainer = shap.explainers.Partition(model_fn, FeatureMasker(inp.n))
    exp = explainer(np.ones((1, inp.n)), max_evals=int(max_evals), batch_size=int(batch_size),
                    silent=not progress)
    values = np.asarray(exp.values[0], dtype=np.float64).reshape(inp.n, inp.m)
    return values.T.copy(), {**fwd.info, "max_evals": int(max_evals), "evaluations": evaluated,
                             "target_logprobs": as_numpy(fwd.original)}
