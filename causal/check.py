"""Check a causal graph against data with DoWhy, and estimate an effect with refutations.

:func:`check_graph` runs DoWhy's ``falsify_graph`` (permutation test of the graph's local Markov
conditions against random node relabelings) with a fast vectorised CI test, and adds what the
yes/no verdict misses: the violation rate against the significance level (a binomial test of
"more violations than alpha explains") and Bonferroni-strong violations, per-node results, edges
the data do not support, edges whose direction no independence test can see (Markov
equivalence), and suggested edge changes.

:func:`estimate_effect` runs DoWhy's identify / estimate / refute workflow in one call.

Example:
    >>> chk = check_graph(nx.DiGraph([("x", "y"), ("y", "z")]), df)     # doctest: +SKIP
    >>> print(chk.summary())                                              # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from causal.citests import TESTS, is_discrete
from causal.errors import CausalError, did_you_mean

MIN_ROWS = 10


# --------------------------------------------------------------------------- validation
def validate_data(data: Any, allow_categorical: bool = False, min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """Raise :class:`CausalError` for data a test cannot use: not a table, too few rows, missing
    values, non-numeric columns (unless ``allow_categorical``).

    Returns:
        the data unchanged.

    Example:
        >>> validate_data(pd.DataFrame({"a": [1.0, None] * 10}))
        Traceback (most recent call last):
        ...
        causal.errors.CausalError: column 'a' has 10 missing values: drop or impute them first
    """
    if not isinstance(data, pd.DataFrame):
        raise CausalError("data must be a pandas DataFrame (one column per variable)")
    if data.shape[1] == 0:
        raise CausalError("data has no columns")
    for col in data.columns:
        missing = int(data[col].isna().sum())
        if missing:
            raise CausalError(f"column '{col}' has {missing} missing values: drop or impute them first")
    if not allow_categorical:
        for col in data.columns:
            if not pd.api.types.is_numeric_dtype(data[col]) or pd.api.types.is_bool_dtype(data[col]):
                if pd.api.types.is_bool_dtype(data[col]):
                    continue
                raise CausalError(
                    f"column '{col}' is not numeric ({data[col].dtype}): encode it as numbers, "
                    "or use test='chi2' for discrete data"
                )
    if len(data) < min_rows:
        raise CausalError(f"data has {len(data)} rows: need at least {min_rows}")
    return data


def as_digraph(graph: Any) -> nx.DiGraph:
    """Accept a DiGraph, a :class:`ProposedGraph`, or a path to a GML / JSON graph file.

    Returns:
        a ``networkx.DiGraph`` with string node names.

    Raises:
        CausalError: not a directed graph, or a cycle (named).
    """
    from causal.io import load_graph

    if hasattr(graph, "graph") and isinstance(getattr(graph, "graph"), nx.DiGraph):
        graph = graph.graph
    elif isinstance(graph, (str, bytes)) or hasattr(graph, "__fspath__"):
        graph = load_graph(graph)
    if not isinstance(graph, nx.DiGraph):
        raise CausalError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    g = nx.relabel_nodes(graph, {n: str(n) for n in graph.nodes}, copy=True)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        path = " -> ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])
        raise CausalError(f"graph has a cycle: {path}")
    return g


def _match_nodes(graph: nx.DiGraph, data: pd.DataFrame) -> None:
    cols = [str(c) for c in data.columns]
    for n in graph.nodes:
        if n not in cols:
            raise CausalError(f"graph node '{n}' is not a column of the data{did_you_mean(n, cols)}")


# --------------------------------------------------------------------------- result
@dataclass
class GraphCheck:
    """The result of :func:`check_graph`.

    Attributes:
        falsified: True when the data contradict the graph: DoWhy's permutation verdict, more
            violated independences than ``alpha`` explains (binomial test), or a violation
            strong enough to survive a Bonferroni correction.
        dowhy_falsified, falsifiable: DoWhy's own verdicts (None when DoWhy cannot evaluate).
        violation_rate: violated / tested local Markov conditions (expected about ``alpha``
            for a correct graph).
        violations: violated independence statements (``statement``, ``node``, ``independent_of``,
            ``given``, ``p_value``), strongest first.
        per_node: per node: parents, tests, violations, and each parent edge's p-value.
        unsupported_edges: edges whose endpoints look independent given the child's other parents.
        untestable_edges: edges whose direction no independence test can see (reversible within
            the Markov equivalence class).
        suggestions: readable suggested edge changes.
    """

    falsified: bool
    dowhy_falsified: bool | None
    falsifiable: bool | None
    violation_rate: float
    n_tests: int
    n_violations: int
    alpha: float
    excess_p_value: float
    permutation_p_value: float | None
    strong_violations: int
    violations: list[dict] = field(default_factory=list)
    per_node: dict[str, dict] = field(default_factory=dict)
    unsupported_edges: list[tuple[str, str, float]] = field(default_factory=list)
    untestable_edges: list[tuple[str, str]] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    test: str = "fisher_z"
    seconds: float = 0.0

    @property
    def reasons(self) -> list[str]:
        """Why the graph is judged wrong (empty when it is not)."""
        out = []
        if self.dowhy_falsified:
            out.append(f"DoWhy's permutation test rejects it (p={self.permutation_p_value:.2f})")
        if self.excess_p_value < self.alpha:
            out.append(
                f"{self.n_violations}/{self.n_tests} = {self.violation_rate:.0%} of its independences are "
                f"violated, more than the {self.alpha:.0%} expected by chance (binomial p={self.excess_p_value:.2g})"
            )
        if self.strong_violations:
            out.append(f"{self.strong_violations} violation(s) survive a Bonferroni correction")
        return out

    def summary(self) -> str:
        """A readable report.

        Returns:
            text, verdict first.
        """
        verdict = "REJECTED: the data contradict this graph" if self.falsified else (
            "not rejected: the data do not contradict this graph"
        )
        lines = [verdict]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(
            f"violation rate {self.violation_rate:.1%} ({self.n_violations}/{self.n_tests} local Markov "
            f"conditions, test {self.test}, alpha {self.alpha}); a correct graph gives about {self.alpha:.0%}"
        )
        if self.dowhy_falsified is not None:
            lines.append(
                f"DoWhy permutation test: {'falsified' if self.dowhy_falsified else 'not falsified'} "
                f"(p={self.permutation_p_value:.2f}, {'informative' if self.falsifiable else 'not informative'})"
            )
        for v in self.violations[:10]:
            lines.append(f"  violated: {v['statement']}  (p={v['p_value']:.2g})")
        if len(self.violations) > 10:
            lines.append(f"  ... and {len(self.violations) - 10} more")
        if self.untestable_edges:
            lines.append(
                f"{len(self.untestable_edges)} edge(s) can be reversed without changing any testable "
                "independence: the data cannot confirm their direction"
            )
        for s in self.suggestions[:10]:
            lines.append(f"  suggestion: {s}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the result.

        Returns:
            dict.
        """
        return {
            "falsified": self.falsified,
            "reasons": self.reasons,
            "dowhy_falsified": self.dowhy_falsified,
            "falsifiable": self.falsifiable,
            "violation_rate": self.violation_rate,
            "n_tests": self.n_tests,
            "n_violations": self.n_violations,
            "alpha": self.alpha,
            "excess_p_value": self.excess_p_value,
            "permutation_p_value": self.permutation_p_value,
            "strong_violations": self.strong_violations,
            "violations": self.violations,
            "per_node": self.per_node,
            "unsupported_edges": [list(e) for e in self.unsupported_edges],
            "untestable_edges": [list(e) for e in self.untestable_edges],
            "suggestions": self.suggestions,
            "test": self.test,
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------- helpers
def compelled_edges(graph: nx.DiGraph) -> set[tuple[str, str]]:
    """Edges whose direction is fixed by the graph's independences (v-structures + Meek rules 1-2).

    Returns:
        the set of compelled ``(u, v)`` edges; the others are reversible within the Markov
        equivalence class, so data alone cannot tell their direction.

    Example:
        >>> sorted(compelled_edges(nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d")])))
        [('a', 'c'), ('b', 'c'), ('c', 'd')]
    """
    und = graph.to_undirected()
    directed: set[tuple[str, str]] = set()
    for v in graph.nodes:
        parents = list(graph.predecessors(v))
        for i, a in enumerate(parents):
            for b in parents[i + 1:]:
                if not und.has_edge(a, b):
                    directed.update({(a, v), (b, v)})
    changed = True
    while changed:
        changed = False
        for u, v in graph.edges:
            if (u, v) in directed:
                continue
            # R1: a -> u - v with a, v not adjacent  =>  u -> v
            if any((a, u) in directed and not und.has_edge(a, v) for a in graph.predecessors(u)):
                directed.add((u, v))
                changed = True
                continue
            # R2: u -> w -> v  =>  u -> v
            if any((u, w) in directed and (w, v) in directed for w in graph.successors(u)):
                directed.add((u, v))
                changed = True
    return directed


def _binom_excess(k: int, n: int, alpha: float) -> float:
    if n == 0 or k == 0:
        return 1.0
    return float(stats.binom.sf(k - 1, n, alpha))


# --------------------------------------------------------------------------- check
def check_graph(
    graph: Any,
    data: pd.DataFrame,
    test: str = "fisher_z",
    alpha: float = 0.05,
    n_permutations: int | None = None,
    seed: int = 0,
    permutation_test: bool = True,
) -> GraphCheck:
    """Check a causal DAG against data.

    Args:
        graph: ``networkx.DiGraph`` (or a :class:`ProposedGraph`, or a GML/JSON path) whose node
            names are data columns.
        data: observations, one column per variable.
        test: ``"fisher_z"`` (continuous, fast), ``"chi2"`` (discrete, fast), ``"kernel"``
            (DoWhy's default kernel test: nonlinear, slow) or ``"auto"``.
        alpha: significance level of each independence test and of the verdicts.
        n_permutations: DoWhy's node permutations (default ``1/alpha``).
        seed: random seed for the permutations.
        permutation_test: run DoWhy's ``falsify_graph`` (off: only the local tests).

    Returns:
        a :class:`GraphCheck`.

    Example:
        >>> chk = check_graph(nx.DiGraph([("x", "y"), ("y", "z")]), df)   # doctest: +SKIP
        >>> chk.falsified, chk.violation_rate                              # doctest: +SKIP
        (False, 0.0)
    """
    t0 = time.perf_counter()
    g = as_digraph(graph)
    if g.number_of_nodes() < 2:
        raise CausalError("graph needs at least two nodes")
    if not 0 < alpha < 1:
        raise CausalError(f"alpha must be between 0 and 1, got {alpha}")
    if not isinstance(data, pd.DataFrame):
        raise CausalError("data must be a pandas DataFrame (one column per variable)")
    _match_nodes(g, data)
    nodes = list(g.nodes)
    df = data[nodes]
    if test == "auto":
        test = "chi2" if is_discrete(df) else "fisher_z"
    if test not in TESTS:
        raise CausalError(f"unknown test '{test}': use fisher_z, chi2, kernel or auto")
    validate_data(df, allow_categorical=(test == "chi2"))
    max_parents = max((g.in_degree(n) for n in nodes), default=0)
    if test != "chi2" and len(df) < max_parents + 5:
        raise CausalError(f"data has {len(df)} rows: too few for a node with {max_parents} parents")
    fn = TESTS[test]
    frame: Any = df
    if test == "fisher_z":
        from causal.citests import FisherZ

        fn = FisherZ(df)
        frame = fn.frame
    # local Markov conditions of the given graph, and DoWhy's permutation verdict
    dowhy_falsified = falsifiable = None
    perm_p = None
    if permutation_test:
        from dowhy.gcm.falsify import FalsifyConst, falsify_graph
        from dowhy.gcm.util.general import set_random_seed

        set_random_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = falsify_graph(
                g, frame, independence_test=fn, conditional_independence_test=fn,
                significance_level=alpha, significance_ci=alpha, n_permutations=n_permutations,
                show_progress_bar=False, n_jobs=1,
            )
        lmc = res.summary[FalsifyConst.VALIDATE_LMC]
        local = lmc.get(FalsifyConst.LOCAL_VIOLATION_INSIGHT, {})
        if res.can_evaluate:
            dowhy_falsified, falsifiable = bool(res.falsified), bool(res.falsifiable)
            perm_p = float(lmc[FalsifyConst.P_VALUE])
    else:
        from dowhy.gcm.falsify import FalsifyConst, validate_lmc

        local = validate_lmc(g, frame, independence_test=fn, conditional_independence_test=fn,
                             significance_level=alpha, n_jobs=1)[FalsifyConst.P_VALUES]

    n_tests = len(local)
    violations = []
    for (node, other), (p, violated) in local.items():
        if violated:
            given = sorted(g.predecessors(node))
            cond = f" | {', '.join(given)}" if given else ""
            violations.append({
                "statement": f"{node} _||_ {other}{cond}",
                "node": node, "independent_of": other, "given": given, "p_value": float(p),
            })
    violations.sort(key=lambda v: v["p_value"])
    n_viol = len(violations)
    rate = n_viol / n_tests if n_tests else 0.0
    excess = _binom_excess(n_viol, n_tests, alpha)
    strong = sum(v["p_value"] <= alpha / max(1, n_tests) for v in violations)

    # per node: local Markov results and each parent edge's dependence given the other parents
    arr = {c: frame[c].values for c in nodes} if frame is not df else {c: df[c].to_numpy() for c in nodes}
    per_node: dict[str, dict] = {}
    unsupported = []
    for node in nodes:
        parents = sorted(g.predecessors(node))
        tests_here = [(o, p) for (n, o), (p, _) in local.items() if n == node]
        viol_here = [v["independent_of"] for v in violations if v["node"] == node]
        edge_p = {}
        for par in parents:
            rest = [q for q in parents if q != par]
            z = (frame[rest].values if frame is not df else df[rest].to_numpy()) if rest else None
            p = float(fn(arr[node], arr[par], z))
            edge_p[par] = p
            if p > alpha:
                unsupported.append((par, node, p))
        per_node[node] = {
            "parents": parents, "lmc_tests": len(tests_here), "lmc_violations": len(viol_here),
            "violated_with": viol_here, "edge_p_values": edge_p,
        }
    compelled = compelled_edges(g)
    untestable = sorted((u, v) for u, v in g.edges if (u, v) not in compelled)

    suggestions = []
    seen = set()
    for v in violations:
        a, b = v["independent_of"], v["node"]
        if (a, b) in seen:
            continue
        seen.add((a, b))
        suggestions.append(
            f"add edge {a} -> {b} (or reverse an edge near {b}): {b} depends on {a} given its parents (p={v['p_value']:.2g})"
        )
    for u, v, p in sorted(unsupported, key=lambda e: -e[2]):
        suggestions.append(f"remove edge {u} -> {v}: not supported by the data given {v}'s other parents (p={p:.2f})")

    falsified = bool(dowhy_falsified) or excess < alpha or strong > 0
    return GraphCheck(
        falsified=falsified, dowhy_falsified=dowhy_falsified, falsifiable=falsifiable,
        violation_rate=rate, n_tests=n_tests, n_violations=n_viol, alpha=alpha,
        excess_p_value=excess, permutation_p_value=perm_p, strong_violations=int(strong),
        violations=violations, per_node=per_node, unsupported_edges=unsupported,
        untestable_edges=untestable, suggestions=suggestions, test=test,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- effects
@dataclass
class EffectEstimate:
    """The result of :func:`estimate_effect`.

    Attributes:
        value: the estimated average effect of a unit change in ``treatment`` on ``outcome``.
        treatment, outcome, method: what was estimated and how.
        estimand: DoWhy's identified estimand, as text.
        adjustment_set: the backdoor variables adjusted for.
        refutations: per refuter: ``new_effect``, ``p_value`` and ``passed``.
    """

    value: float
    treatment: str
    outcome: str
    method: str
    estimand: str
    adjustment_set: list[str]
    refutations: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

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
        for name, r in self.refutations.items():
            status = "passed" if r["passed"] else "FAILED"
            lines.append(f"  {name}: new effect {r['new_effect']:.4g}, p={r['p_value']:.2g} -> {status} ({r['meaning']})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict. Returns: dict."""
        return {
            "value": self.value, "treatment": self.treatment, "outcome": self.outcome,
            "method": self.method, "estimand": self.estimand, "adjustment_set": self.adjustment_set,
            "refutations": self.refutations, "passed": self.passed, "seconds": self.seconds,
        }


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
        an :class:`EffectEstimate` with ``.value`` and ``.refutations``.

    Example:
        >>> eff = estimate_effect(nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")]), df, "x", "y")  # doctest: +SKIP
        >>> round(eff.value, 1)                                                                  # doctest: +SKIP
        2.0
    """
    t0 = time.perf_counter()
    g = as_digraph(graph)
    if not isinstance(data, pd.DataFrame):
        raise CausalError("data must be a pandas DataFrame (one column per variable)")
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if name not in g.nodes:
            hint = did_you_mean(str(name), [str(n) for n in g.nodes])
            raise CausalError(f"{role} '{name}' is not a node of the graph{hint}")
    if treatment == outcome:
        raise CausalError("treatment and outcome must differ")
    _match_nodes(g, data)
    if not nx.has_path(g, treatment, outcome):
        raise CausalError(
            f"the graph has no directed path from '{treatment}' to '{outcome}': it implies no effect to estimate"
        )
    unknown = set(refuters) - set(_REFUTERS)
    if unknown:
        raise CausalError(f"unknown refuter(s) {sorted(unknown)}: use {sorted(_REFUTERS)}")
    df = validate_data(data[list(g.nodes)], min_rows=max(MIN_ROWS, g.number_of_nodes() + 5))
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
    return EffectEstimate(
        value=value, treatment=treatment, outcome=outcome, method=method,
        estimand=str(estimand).strip(), adjustment_set=sorted(str(b) for b in (backdoor or [])),
        refutations=refutations, seconds=time.perf_counter() - t0,
    )
