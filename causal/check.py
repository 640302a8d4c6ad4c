"""Falsify a causal graph against data with DoWhy.

:func:`check_graph` runs DoWhy's ``falsify_graph`` (permutation test of the graph's local Markov
conditions against random node relabelings) with a fast vectorised CI test, and adds what the
yes/no verdict misses: the violation rate against the significance level (a binomial test of
"more violations than alpha explains") and Bonferroni-strong violations, per-node results, edges
the data do not support, edges whose direction no independence test can see (Markov
equivalence), and suggested edge changes.

Example:
    >>> chk = check_graph(nx.DiGraph([("x", "y"), ("y", "z")]), df)     # doctest: +SKIP
    >>> print(chk.summary())                                              # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats

from causal.citests import TESTS, FisherZ, is_discrete
from causal.data import match_nodes, validate_data
from causal.errors import CausalError
from causal.graph import as_digraph, compelled_edges


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
    match_nodes(g, data)
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
