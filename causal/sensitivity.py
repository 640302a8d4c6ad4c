"""How strong an unobserved confounder would have to be to move an estimate to zero.

The robustness value of Cinelli & Hazlett (2020, "Making sense of sensitivity", JRSS-B): from the
ordinary least squares fit of the outcome on the treatment and the adjustment set, with ``t`` the
treatment's t-statistic and ``dof`` the residual degrees of freedom, the partial Cohen's
``f = t / sqrt(dof)`` gives

    RV = (sqrt(f^4 + 4 f^2) - f^2) / 2,

the share of the residual variance of *both* the treatment and the outcome (partial R², beyond
the adjustment set) that an unobserved confounder must explain to bring the estimate to zero;
a weaker one cannot. A confounder explaining all of the outcome's residual variance must still
explain ``t^2 / (t^2 + dof)`` (the treatment's partial R² with the outcome) of the treatment's.

Examples:
    >>> round(robustness_value(4.18, 783), 3)   # the paper's Darfur example: 13.9%
    0.139
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd


def robustness_value(t: float, dof: int) -> float:
    """Cinelli & Hazlett's robustness value RV (q = 1: moving the estimate to zero).

    Returns:
        a share in [0, 1).

    Examples:
        >>> robustness_value(0.0, 100), round(robustness_value(10.0, 100), 3)
        (0.0, 0.618)
    """
    f2 = float(t) ** 2 / float(dof)
    return 0.5 * (math.sqrt(f2 * f2 + 4.0 * f2) - f2)


def _design(data: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Numeric columns as they are, categorical ones as 0/1 indicators (first level dropped)."""
    blocks = []
    for c in columns:
        s = data[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            blocks.append(s.to_numpy(dtype=float)[:, None])
        else:
            blocks.append(pd.get_dummies(s.astype(str), drop_first=True).to_numpy(dtype=float))
    return np.hstack(blocks) if blocks else np.empty((len(data), 0))


def ols_sensitivity(data: pd.DataFrame, treatment: str, outcome: str, adjustment: Sequence[str]) -> dict[str, Any]:
    """The robustness value of the linear-regression effect of ``treatment`` on ``outcome``.

    Returns:
        ``{"robustness_value", "partial_r2", "t", "dof", "estimate", "method"}``, or
        ``{"unavailable": reason}`` when a linear fit cannot be made (non-numeric treatment or
        outcome, no residual degrees of freedom, a treatment collinear with the adjustment set).

    Examples:
        >>> rng = np.random.default_rng(0); x = rng.normal(size=400)
        >>> s = ols_sensitivity(pd.DataFrame({"x": x, "y": 0.3 * x + rng.normal(size=400)}), "x", "y", [])
        >>> round(s["estimate"], 2), s["dof"], round(s["robustness_value"], 2)
        (0.39, 398, 0.32)
    """
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if not pd.api.types.is_numeric_dtype(data[name]) and not pd.api.types.is_bool_dtype(data[name]):
            return {"unavailable": f"the {role} '{name}' is not numeric, so no linear fit is made"}
    y = data[outcome].to_numpy(dtype=float)
    x = np.hstack([np.ones((len(data), 1)), data[[treatment]].to_numpy(dtype=float), _design(data, adjustment)])
    dof = x.shape[0] - x.shape[1]
    if dof <= 0:
        return {"unavailable": "too few rows for a linear fit with this adjustment set"}
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    if rank < x.shape[1]:
        return {"unavailable": "the treatment or an adjustment column is collinear with the others"}
    resid = y - x @ beta
    sigma2 = float(resid @ resid) / dof
    se = math.sqrt(sigma2 * float(np.linalg.inv(x.T @ x)[1, 1]))
    t = float(beta[1]) / se if se > 0 else math.inf
    rv = robustness_value(t, dof) if math.isfinite(t) else 1.0
    return {"robustness_value": rv, "partial_r2": t * t / (t * t + dof) if math.isfinite(t) else 1.0,
            "t": t, "dof": int(dof), "estimate": float(beta[1]),
            "method": "robustness value (Cinelli & Hazlett 2020) of the linear regression on the adjustment set"}


def sensitivity_sentence(sens: dict[str, Any] | None, treatment: str, outcome: str) -> str:
    """The sensitivity result as one plain sentence.

    Returns:
        the sentence ("" when there is no result).

    Examples:
        >>> sensitivity_sentence({"robustness_value": 0.139}, "peace", "harm")
        'Sensitivity: an unobserved confounder would have to explain at least 13.9% of the remaining variance of both peace and harm (beyond the adjustment set) to move the estimate to zero; a weaker one cannot (robustness value, Cinelli & Hazlett 2020).'
    """
    if not sens:
        return ""
    if "unavailable" in sens:
        return f"Sensitivity to an unobserved confounder not computed: {sens['unavailable']}."
    rv = 100 * float(sens["robustness_value"])
    return (f"Sensitivity: an unobserved confounder would have to explain at least {rv:.1f}% of the remaining "
            f"variance of both {treatment} and {outcome} (beyond the adjustment set) to move the estimate to "
            "zero; a weaker one cannot (robustness value, Cinelli & Hazlett 2020).")
