"""Estimate the effect of one variable on another along a causal graph, with DoWhy's refuters.

:func:`estimate_effect` runs DoWhy's identify / estimate / refute workflow in one call, reports
the identification DoWhy found (the adjustment set used, instruments, front-door variables) and
how strong an unobserved confounder would have to be to move the estimate to zero
(:mod:`causal.sensitivity`).

Examples:
    >>> rng = np.random.default_rng(0); x = rng.normal(size=300)
    >>> df = pd.DataFrame({"x": x, "y": 3 * x + rng.normal(size=300)})
    >>> eff = estimate_effect(nx.DiGraph([("x", "y")]), df, treatment="x", outcome="y", refuters=())
    >>> print(eff.summary())
    effect of x on y: 3.04 (backdoor.linear_regression, adjusting for nothing)
    Sensitivity: an unobserved confounder would have to explain at least 91.7% of the remaining variance of both x and y (beyond the adjustment set) to move the estimate to zero; a weaker one cannot (robustness value, Cinelli & Hazlett 2020).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd

from causal.data import MIN_ROWS, match_columns, quote, validate_data
from causal.errors import CausalError, did_you_mean
from causal.graph import as_digraph
from causal.sensitivity import ols_sensitivity, sensitivity_sentence
from explain.serialize import Result, from_jsonable_array, jsonable

MIN_VARIED_ROWS = 5

# --------------------------------------------------------------------------- effects
@dataclass
class EffectEstimate(Result):
    """The result of :func:`estimate_effect`.

    Attributes:
        value: the estimated average effect of a unit change in ``treatment`` on ``outcome``.
        treatment, outcome, method: what was estimated and how.
        estimand: DoWhy's identified estimand, as text.
        adjustment_set: the backdoor variables adjusted for.
        refutations: per refuter: ``new_effect``, ``p_value``, ``passed`` and ``meaning``.
        instruments: the instrumental variables DoWhy's identification finds in the graph.
        frontdoor: the front-door variables it finds (empty when there is no front-door set).
        sensitivity: ``{"robustness_value", "partial_r2", "t", "dof", "estimate", "method"}`` (see
            :func:`causal.sensitivity.ols_sensitivity`) or ``{"unavailable": reason}``; stated in
            one sentence by :attr:`sensitivity_text` and in :meth:`summary`.

    Examples:
        >>> eff = EffectEstimate(2.0, "x", "y", "backdoor.linear_regression", "", ["z"],
        ...                      {"placebo": {"new_effect": 0.01, "p_value": float("nan"), "passed": True,
        ...                                   "meaning": "the effect should vanish"}})
        >>> back = EffectEstimate.from_json(eff.to_json())
        >>> back.value, back.refutations["placebo"]["passed"], back.refutations["placebo"]["p_value"]
        (2.0, True, nan)
    """

    value: float
    treatment: str
    outcome: str
    method: str
    estimand: str
    adjustment_set: list[str]
    refutations: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    instruments: list[str] = field(default_factory=list)
    frontdoor: list[str] = field(default_factory=list)
    sensitivity: dict[str, Any] | None = None

    @property
    def sensitivity_text(self) -> str:
        """The sensitivity result in one plain sentence ("" when none was computed)."""
        return sensitivity_sentence(self.sensitivity, self.treatment, self.outcome)

    @property
    def passed(self) -> bool:
        """True when every refutation passed."""
        return all(r.get("passed") for r in self.refutations.values())

    def summary(self) -> str:
        """A readable report.

        Returns:
            text.
        """
        adj = ", ".join(self.adjustment_set) if self.adjustment_set else "nothing"
        lines = [
            f"effect of {self.treatment} on {self.outcome}: {self.value:.4g} ({self.method}, adjusting for {adj})"
        ]
        if self.instruments or self.frontdoor:
            found = [f"the instruments {{{', '.join(self.instruments)}}}" if self.instruments else "",
                     f"the front-door set {{{', '.join(self.frontdoor)}}}" if self.frontdoor else ""]
            lines.append("The graph also identifies the effect through " + " and ".join(f for f in found if f) + ".")
        if self.sensitivity_text:
            lines.append(self.sensitivity_text)
        for name, r in self.refutations.items():
            status = "passed" if r["passed"] else "FAILED"
            lines.append(f"  {name}: new effect {r['new_effect']:.4g}, p={r['p_value']:.2g} -> {status} ({r['meaning']})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with ``passed`` and ``summary`` as computed fields).

        Returns:
            dict readable by :meth:`from_dict`.
        """
        return {
            "value": self.value, "treatment": self.treatment, "outcome": self.outcome,
            "method": self.method, "estimand": self.estimand, "adjustment_set": list(self.adjustment_set),
            "refutations": self.refutations, "passed": self.passed, "seconds": self.seconds,
            "instruments": list(self.instruments), "frontdoor": list(self.frontdoor),
            "sensitivity": jsonable(self.sensitivity), "sensitivity_text": self.sensitivity_text,
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EffectEstimate":
        """Rebuild an estimate from :meth:`to_dict` (or its JSON; null numbers back to NaN).

        Returns:
            an :class:`EffectEstimate`.
        """
        def num(v: Any) -> float:
            return float(from_jsonable_array(v))  # null (NaN or infinity) back to NaN

        try:
            refs = {
                str(name): {**r, "new_effect": num(r.get("new_effect")), "p_value": num(r.get("p_value")),
                            "passed": bool(r.get("passed"))}
                for name, r in (d.get("refutations") or {}).items()
            }
            return cls(
                value=num(d["value"]), treatment=str(d["treatment"]), outcome=str(d["outcome"]),
                method=str(d.get("method", "")), estimand=str(d.get("estimand", "")),
                adjustment_set=[str(a) for a in d.get("adjustment_set", [])], refutations=refs,
                seconds=float(d.get("seconds") or 0.0),
                instruments=[str(a) for a in d.get("instruments") or []],
                frontdoor=[str(a) for a in d.get("frontdoor") or []],
                sensitivity=_read_sensitivity(d.get("sensitivity")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CausalError(f"not an effect-estimate dict: {type(exc).__name__} {exc}") from None


def _read_sensitivity(d: Any) -> dict[str, Any] | None:
    if not d:
        return None
    return {k: (float(from_jsonable_array(v)) if k in ("robustness_value", "partial_r2", "t", "estimate") else v)
            for k, v in dict(d).items()}


def check_treatment(values: pd.Series, name: str) -> None:
    """Raise :class:`CausalError` when a treatment column varies too little to estimate an effect:
    one value in every row, all but fewer than ``MIN_VARIED_ROWS`` rows equal, or a spread that
    vanishes next to its level (below 1e-9 of it).

    Returns:
        None.

    Examples:
        >>> check_treatment(pd.Series([3.0] * 50), "dose")
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: treatment 'dose' is constant (3.0 in all 50 rows): no effect can be estimated; pick a treatment that varies
    """
    counts = values.value_counts()
    if len(counts) <= 1:
        level = counts.index[0] if len(counts) else "no value"
        raise CausalError(
            f"treatment {quote(name)} is constant ({level} in all {len(values)} rows): no effect can be "
            "estimated; pick a treatment that varies"
        )
    others = int(len(values) - counts.iloc[0])
    if others < MIN_VARIED_ROWS:
        raise CausalError(
            f"treatment {quote(name)} is nearly constant ({counts.index[0]} in all but {others} of "
            f"{len(values)} rows): too little variation to estimate an effect"
        )
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        x = values.to_numpy(dtype=float)
        if float(np.std(x)) <= 1e-9 * max(float(np.abs(x).max()), 1e-300):
            raise CausalError(
                f"treatment {quote(name)} is nearly constant (spread {np.std(x):.3g} around {np.mean(x):.6g}): "
                "too little variation to estimate an effect"
            )


_REFUTERS = {
    "placebo": ("placebo_treatment_refuter", "the effect should vanish when the treatment is permuted"),
    "random_common_cause": ("random_common_cause", "the effect should not move when a random confounder is added"),
    "data_subset": ("data_subset_refuter", "the effect should not move on random 80% subsets"),
}


def estimate_effect(
    graph: Any,
    data: pd.DataFrame,
    treatment: str,
    outcome: str,
    method: str = "backdoor.linear_regression",
    refuters: Sequence[str] = ("placebo", "random_common_cause", "data_subset"),
    simulations: int = 20,
    seed: int = 0,
) -> EffectEstimate:
    """Identify, estimate and refute the effect of ``treatment`` on ``outcome`` with DoWhy.

    Returns:
        an :class:`EffectEstimate` with ``.value``, ``.refutations``, ``.adjustment_set``,
        ``.instruments``, ``.frontdoor`` and ``.sensitivity`` (the robustness value of the linear
        regression on the adjustment set, stated in one sentence in ``summary()``).

    Examples:
        >>> rng = np.random.default_rng(0); z = rng.normal(size=500); x = z + rng.normal(size=500)
        >>> df = pd.DataFrame({"z": z, "x": x, "y": 2 * x - z + rng.normal(size=500)})
        >>> eff = estimate_effect(nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")]), df, "x", "y", simulations=2)
        >>> round(eff.value, 1), eff.adjustment_set, sorted(eff.refutations)
        (2.0, ['z'], ['data_subset', 'placebo', 'random_common_cause'])
    """
    t0 = time.perf_counter()
    g = as_digraph(graph)
    treatment, outcome = str(treatment), str(outcome)  # node names are text (integer columns too)
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if name not in g.nodes:
            hint = did_you_mean(str(name), [str(n) for n in g.nodes])
            raise CausalError(f"{role} {quote(name)} is not a node of the graph{hint}")
    if treatment == outcome:
        raise CausalError("treatment and outcome must differ")
    df = match_columns(list(g.nodes), data, what="graph node")
    if not nx.has_path(g, treatment, outcome):
        raise CausalError(
            f"the graph has no directed path from {quote(treatment)} to {quote(outcome)}: it implies no effect to estimate"
        )
    unknown = set(refuters) - set(_REFUTERS)
    if unknown:
        raise CausalError(f"unknown refuter(s) {sorted(unknown)}: use {sorted(_REFUTERS)}")
    df = validate_data(df, min_rows=max(MIN_ROWS, g.number_of_nodes() + 5),
                       hint="e.g. 0/1 for two levels or one 0/1 column per level (as graph nodes)")
    check_treatment(df[treatment], treatment)
    df = df.astype({c: float for c in df.columns if pd.api.types.is_bool_dtype(df[c])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger("dowhy").setLevel(logging.ERROR)
        from dowhy import CausalModel

        model = CausalModel(data=df, treatment=treatment, outcome=outcome, graph=g)
        estimand = model.identify_effect(proceed_when_unidentifiable=True)
        try:
            estimate = model.estimate_effect(estimand, method_name=method)
        except Exception as exc:  # noqa: BLE001 - DoWhy raises many types for a bad method
            raise CausalError(f"DoWhy could not estimate with '{method}': {str(exc).splitlines()[0][:160]}") from None
        if estimate.value is None:
            raise CausalError(f"DoWhy returned no estimate for {treatment} -> {outcome} ({method})")
        value = float(np.asarray(estimate.value).reshape(-1)[0])
        backdoor = estimand.get_backdoor_variables() if hasattr(estimand, "get_backdoor_variables") else []
        instruments = sorted(str(v) for v in (estimand.get_instrumental_variables() or []))
        frontdoor = sorted(str(v) for v in (estimand.get_frontdoor_variables() or []))
        refutations: dict[str, dict] = {}
        for name in refuters:
            dowhy_name, meaning = _REFUTERS[name]
            kwargs: dict[str, Any] = {"num_simulations": simulations, "random_seed": seed}
            if name == "placebo":
                kwargs["placebo_type"] = "permute"
            if name == "data_subset":
                kwargs["subset_fraction"] = 0.8
            ref = model.refute_estimate(estimand, estimate, method_name=dowhy_name, **kwargs)
            new = float(np.asarray(ref.new_effect).reshape(-1)[0])
            p = float((ref.refutation_result or {}).get("p_value", float("nan")))
            scale = max(abs(value), 1e-8)
            if name == "placebo":
                passed = abs(new) <= 0.1 * scale + 1e-6 or p <= 0.05
            else:
                passed = abs(new - value) <= 0.1 * scale + 1e-6 or (p > 0.05)
            refutations[name] = {"new_effect": new, "p_value": p, "passed": bool(passed), "meaning": meaning}
    adjustment = sorted(str(b) for b in (backdoor or []))
    if method.startswith("backdoor."):
        sensitivity = ols_sensitivity(df, treatment, outcome, adjustment)
    else:
        sensitivity = {"unavailable": f"the robustness value is computed for backdoor adjustment, not {method}"}
    return EffectEstimate(
        value=value, treatment=treatment, outcome=outcome, method=method,
        estimand=str(estimand).strip(), adjustment_set=adjustment,
        refutations=refutations, seconds=time.perf_counter() - t0,
        instruments=instruments, frontdoor=frontdoor, sensitivity=sensitivity,
    )
