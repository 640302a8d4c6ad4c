"""Falsify a causal graph against data.

:func:`check_graph` tests every independence the graph implies (its local Markov conditions: each
node independent of each non-descendant given its parents) with a fast CI test suited to the data
(Fisher-z for continuous columns, the G-test for categorical ones, nested regressions for a mix)
and rejects the graph when at least one of them fails after **Holm's correction** across all of
them.

Why Holm: the implied independences are tested on the same rows and share variables, so their
p-values are dependent in ways no formula gives. Counting violations against a binomial (which
assumes independent tests) rejected a correct 6-node graph in 13% of seeds at alpha 0.05.
Holm (like Bonferroni, whose global verdict it shares: reject when the smallest p-value is at most
alpha / m) bounds the family-wise error by alpha under *any* dependence, so a correct graph is
rejected in at most alpha of data sets, whatever the graph; Simes or the harmonic mean p-value are
less conservative but need assumptions on that dependence, and DoWhy's permutation calibration
answers a different question (is the graph better than random relabelings of its nodes?) at the
cost of re-running every test per permutation. A wrong graph implies an independence the data
break by orders of magnitude (p around 1e-10 and below with a few hundred rows), far under alpha /
m, so the correction costs little power. ``benchmarks/causal_check_calibration.py`` measures both:
false rejections of correct graphs against alpha, and power on wrong ones.

DoWhy's ``falsify_graph`` permutation test is still run (``permutation_test=True``) and reported in
the verdict sentence as what it is (whether the graph fits better than random relabelings), but it
does not decide the verdict. The result also holds the violation rate, per-node results, edges
the data do not support, edges whose direction no independence test can see (Markov
equivalence), and suggested edge changes that name a direction only where the data can tell it.

Examples:
    >>> rng = np.random.default_rng(0); x = rng.normal(size=500); y = x + rng.normal(size=500)
    >>> df = pd.DataFrame({"x": x, "y": y, "z": y + rng.normal(size=500)})
    >>> chk = check_graph(nx.DiGraph([("x", "y"), ("y", "z")]), df, permutation_test=False)
    >>> chk.falsified, chk.n_tests
    (False, 1)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from causal.citests import TESTS, FisherZ, Mixed, choose_test, column_kinds
from causal.data import match_columns, quote, validate_data
from causal.errors import CausalError
from causal.graph import as_digraph, compelled_edges
from explain.serialize import Result, from_jsonable_array

MAX_LABELS = 50  # a text column with more labels (and more than rows/5) is an identifier, not a variable

TEST_NAMES = {
    "fisher_z": "Fisher-z partial-correlation",
    "chi2": "chi-square (G) contingency",
    "mixed": "mixed-data regression (F / likelihood-ratio)",
    "kernel": "kernel (KCI)",
}


def _num(value: Any) -> float:
    """A float from JSON, ``None`` (NaN or infinity written as null) back to NaN."""
    return float(from_jsonable_array(value))


# --------------------------------------------------------------------------- result
@dataclass
class GraphCheck(Result):
    """The result of :func:`check_graph`.

    Attributes:
        falsified: True when the data contradict the graph: at least one implied independence
            fails after Holm's correction across all ``n_tests`` (a correct graph is rejected in at
            most ``alpha`` of data sets).
        dowhy_falsified, falsifiable: DoWhy's own permutation verdicts, reported but not deciding
            (None when DoWhy cannot evaluate or was not run).
        excess_p_value: binomial p-value of "more violations than alpha explains", descriptive only
            (it treats the dependent tests as independent, so it is not used in the verdict).
        strong_violations: violations that survive Holm's correction (``p_holm <= alpha``).
        violation_rate: violated / tested local Markov conditions (expected about ``alpha``
            for a correct graph).
        violations: violated independences, one entry per pair of variables (a pair tested both
            ways is listed once, ``statements`` holds every violated form), strongest first:
            ``statement``, ``node``, ``independent_of``, ``given``, ``p_value``, ``p_holm`` (Holm-adjusted),
            ``significant`` (``p_holm <= alpha``), ``statements``.
        per_node: per node: parents, tests, violations, and each parent edge's p-value.
        unsupported_edges: edges whose endpoints look independent given the child's other parents.
        untestable_edges: edges whose direction no independence test can see (reversible within
            the Markov equivalence class).
        suggestions: readable suggested edge changes.
        test: the independence test that produced the p-values.
        nodes, edges: the graph that was checked (so the result can draw itself).

    Examples:
        >>> chk = GraphCheck(falsified=False, dowhy_falsified=None, falsifiable=None, violation_rate=0.0,
        ...                  n_tests=1, n_violations=0, alpha=0.05, excess_p_value=1.0,
        ...                  permutation_p_value=None, strong_violations=0, nodes=["a", "b", "c"],
        ...                  edges=[("a", "b"), ("b", "c")])
        >>> GraphCheck.from_json(chk.to_json()) == chk
        True
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
    nodes: list[str] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    @property
    def graph(self) -> nx.DiGraph:
        """The checked graph. Returns: a new ``networkx.DiGraph``."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    @property
    def local_rejects(self) -> bool:
        """True when an implied independence fails after Holm's correction (the verdict)."""
        return self.strong_violations > 0

    @property
    def reasons(self) -> list[str]:
        """Why the graph is judged wrong (empty when it is not)."""
        if not self.strong_violations:
            return []
        worst = min((v.get("p_holm", v["p_value"]) for v in self.violations), default=float("nan"))
        return [f"{self.strong_violations} of its {self.n_tests} implied independences fail after Holm's "
                f"correction (smallest adjusted p={worst:.2g} <= alpha {self.alpha:g})"]

    def _dowhy_words(self) -> str:
        if self.dowhy_falsified is None:
            return ("DoWhy's permutation test (does it fit better than random relabelings of its "
                    "nodes?) was not run or had nothing to test")
        p = f"p={self.permutation_p_value:.2f}"
        if self.dowhy_falsified:
            return (f"DoWhy's permutation test adds that it fits no better than random relabelings of its "
                    f"nodes, so the data say little for it ({p})")
        if not self.falsifiable:
            return (f"DoWhy's permutation test adds nothing here: too many relabelings of its nodes imply "
                    f"the same independences for it to be informative ({p})")
        return f"DoWhy's permutation test adds that it fits better than random relabelings of its nodes ({p})"

    @property
    def verdict(self) -> str:
        """One sentence: the verdict, which test decided it, and what DoWhy's permutation test adds.

        Returns:
            the sentence.
        """
        name = TEST_NAMES.get(self.test, self.test)
        counts = (f"{self.strong_violations} of {self.n_tests} implied independences fail after Holm's "
                  f"correction at alpha={self.alpha:g}")
        if self.local_rejects:
            return f"REJECTED by the {name} test: {counts}; {self._dowhy_words()}."
        if self.n_tests == 0:
            return ("not rejected, but not tested either: the graph implies no independence the data could "
                    f"contradict (every pair of variables is adjacent), so neither the {name} test nor "
                    "DoWhy's permutation test can falsify it.")
        return f"not rejected: {counts} under the {name} test; {self._dowhy_words()}."

    def summary(self) -> str:
        """A readable report a user can paste, verdict sentence first.

        Returns:
            text.
        """
        lines = [self.verdict]
        if self.n_tests:
            lines.append(
                f"{self.n_violations}/{self.n_tests} = {self.violation_rate:.1%} of the implied independences have "
                f"p <= {self.alpha:g} before correction (test {self.test}); a correct graph is rejected in at most "
                f"{self.alpha:.0%} of data sets (Holm's correction, measured in "
                "benchmarks/causal_check_calibration.py)"
            )
        for v in self.violations[:10]:
            both = " (violated both ways)" if len(v.get("statements", [])) > 1 else ""
            sig = "significant after Holm" if v.get("significant") else "not significant after Holm"
            lines.append(f"  violated: {v['statement']}  (p={v['p_value']:.2g}, {sig}){both}")
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

    def figure(self, title: str | None = None) -> Any:
        """The checked graph coloured by this check (see :func:`causal.plot.graph_figure`).

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        from causal.plot import graph_figure

        return graph_figure(self.graph, check=self, title=title or "causal graph checked against data")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the result (with ``verdict``, ``reasons`` and ``summary`` as text).

        Returns:
            dict readable by :meth:`from_dict`.
        """
        return {
            "falsified": self.falsified,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "summary": self.summary(),
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
            "nodes": list(self.nodes),
            "edges": [list(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GraphCheck":
        """Rebuild a check from :meth:`to_dict` (or its JSON); computed fields are ignored.

        Returns:
            a :class:`GraphCheck`.
        """
        try:
            perm = d.get("permutation_p_value")
            return cls(
                falsified=bool(d["falsified"]),
                dowhy_falsified=None if d.get("dowhy_falsified") is None else bool(d["dowhy_falsified"]),
                falsifiable=None if d.get("falsifiable") is None else bool(d["falsifiable"]),
                violation_rate=_num(d["violation_rate"]),
                n_tests=int(d["n_tests"]),
                n_violations=int(d["n_violations"]),
                alpha=float(d["alpha"]),
                excess_p_value=_num(d["excess_p_value"]),
                permutation_p_value=None if perm is None else float(perm),
                strong_violations=int(d["strong_violations"]),
                violations=[{**v, **{k: _num(v[k]) for k in ("p_value", "p_holm") if k in v}}
                            for v in d.get("violations", [])],
                per_node={
                    str(k): {**v, "edge_p_values": {str(a): _num(b) for a, b in v.get("edge_p_values", {}).items()}}
                    for k, v in d.get("per_node", {}).items()
                },
                unsupported_edges=[(str(u), str(v), _num(p)) for u, v, p in d.get("unsupported_edges", [])],
                untestable_edges=[(str(u), str(v)) for u, v in d.get("untestable_edges", [])],
                suggestions=[str(s) for s in d.get("suggestions", [])],
                test=str(d.get("test", "fisher_z")),
                seconds=float(d.get("seconds") or 0.0),
                nodes=[str(n) for n in d.get("nodes", [])],
                edges=[(str(u), str(v)) for u, v in d.get("edges", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CausalError(f"not a graph-check dict: {type(exc).__name__} {exc}") from None


def _binom_excess(k: int, n: int, alpha: float) -> float:
    if n == 0 or k == 0:
        return 1.0
    return float(stats.binom.sf(k - 1, n, alpha))


# --------------------------------------------------------------------------- check
def _prepare(g: nx.DiGraph, data: Any, test: str) -> tuple[pd.DataFrame, str]:
    """The graph's columns of ``data`` and the test to use; one-line errors for what no test fits."""
    df = match_columns(list(g.nodes), data, what="graph node")
    if test == "auto":
        test = choose_test(df)
    if test not in TESTS:
        raise CausalError(f"unknown test {quote(test)}: use {', '.join(TESTS)} or auto")
    validate_data(df, allow_categorical=test in ("chi2", "mixed"))
    for col in df.columns:
        if df[col].nunique() == 1:
            raise CausalError(
                f"column {quote(col)} is constant ({df[col].iloc[0]} in every row): no independence test can "
                "say anything about it; drop it from the graph"
            )
    if test in ("chi2", "mixed"):
        limit = max(MAX_LABELS, len(df) // 5)
        for col in df.columns:
            labels = df[col].nunique()
            if not pd.api.types.is_numeric_dtype(df[col]) and labels > limit:
                raise CausalError(
                    f"column {quote(col)} has {labels} distinct labels in {len(df)} rows: too many categories "
                    "for an independence test; drop it or group its labels"
                )
    if test == "chi2":
        for col, kind in column_kinds(df).items():
            if kind == "continuous":
                raise CausalError(
                    f"column {quote(col)} is continuous ({df[col].nunique()} distinct values): chi2 needs "
                    "categorical columns; use test='mixed' (or 'auto'), or bin the column first"
                )
    return df, test


def _dedupe(violations: list[dict]) -> list[dict]:
    """One entry per pair of variables (strongest form first, every violated form in ``statements``)."""
    pairs: dict[frozenset, dict] = {}
    for v in sorted(violations, key=lambda v: v["p_value"]):
        key = frozenset((v["node"], v["independent_of"]))
        if key in pairs:
            pairs[key]["statements"].append(v["statement"])
        else:
            pairs[key] = {**v, "statements": [v["statement"]]}
    return list(pairs.values())


def holm_adjust(p_values: Mapping[Any, float]) -> dict[Any, float]:
    """Holm's step-down adjusted p-values: reject a test when its adjusted p is at most alpha, and
    the chance of any false rejection stays at most alpha under any dependence between the tests.

    Returns:
        ``{key: adjusted p}``.

    Examples:
        >>> holm_adjust({"a": 0.01, "b": 0.04, "c": 0.03})
        {'a': 0.03, 'c': 0.06, 'b': 0.06}
    """
    order = sorted(p_values, key=lambda k: p_values[k])
    m, running, out = len(order), 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p_values[key])))
        out[key] = round(running, 15)
    return out


def _v_structures(g: nx.DiGraph) -> set[tuple[str, frozenset]]:
    und = g.to_undirected()
    out = set()
    for v in g.nodes:
        parents = sorted(g.predecessors(v))
        for i, a in enumerate(parents):
            for b in parents[i + 1:]:
                if not und.has_edge(a, b):
                    out.add((v, frozenset((a, b))))
    return out


def _holm_rejects(g: nx.DiGraph, fn: Any, frame: Any, alpha: float) -> bool:
    """The verdict of the local tests on ``g`` (Holm across its implied independences)."""
    from dowhy.gcm.falsify import FalsifyConst, validate_lmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = validate_lmc(g, frame, independence_test=fn, conditional_independence_test=fn,
                             significance_level=alpha, n_jobs=1)[FalsifyConst.P_VALUES]
    ps = [float(p) for p, _ in local.values()]
    return bool(ps) and min(ps) * len(ps) <= alpha


def _connect_suggestions(g: nx.DiGraph, violations: list[dict], fn: Any, frame: Any, alpha: float,
                         most: int = 3) -> list[str]:
    """For each significant violation, connect the pair; name a direction only where the data tell it.

    The two ways to add the missing edge are compared: when both are acyclic and Markov
    equivalent (same skeleton and v-structures), no observational data can choose, and the
    suggestion says so. When they differ (a v-structure or a Meek-rule consequence changes), both
    edited graphs are checked and a direction is named only when one passes and the other is
    still rejected. Only the ``most`` strongest violations get that test; the rest are worded
    without a direction.

    Returns:
        one suggestion per violation.
    """
    out = []
    for i, v in enumerate(violations):
        a, b = v["independent_of"], v["node"]
        why = f"{b} depends on {a} given {b}'s parents (p={v['p_value']:.2g})"
        options = []
        for u, w in ((a, b), (b, a)):
            h = g.copy()
            h.add_edge(u, w)
            if nx.is_directed_acyclic_graph(h):
                options.append(((u, w), h))
        if len(options) == 1:
            (u, w), _ = options[0]
            out.append(f"add edge {u} -> {w} (the other direction would make a cycle): {why}")
            continue
        if not options:
            out.append(f"connect {a} and {b} after removing a cycle-making edge: {why}")
            continue
        (e1, h1), (e2, h2) = options
        if _v_structures(h1) == _v_structures(h2):  # Markov equivalent: no observational data can choose
            out.append(f"connect {a} and {b}; the data alone can't tell the direction: {why}")
            continue
        if i >= most:
            out.append(f"connect {a} and {b}; the two directions imply different independences, check "
                       f"each with check_graph (not tested here): {why}")
            continue
        r1, r2 = _holm_rejects(h1, fn, frame, alpha), _holm_rejects(h2, fn, frame, alpha)
        if r1 == r2:
            state = "rejected" if r1 else "accepted"
            out.append(f"connect {a} and {b}; the data don't pick a direction (both {state}): {why}")
        else:
            u, w = e2 if r1 else e1
            out.append(f"add edge {u} -> {w} (the data orient it: with {w} -> {u} the graph is still "
                       f"rejected): {why}")
    return out


# --------------------------------------------------------------------------- check
def check_graph(
    graph: Any,
    data: pd.DataFrame,
    test: str = "auto",
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
        test: ``"auto"`` (Fisher-z when every column is continuous, chi2 when every column is
            categorical, mixed otherwise), ``"fisher_z"`` (continuous, fast), ``"chi2"``
            (categorical only), ``"mixed"`` (nested regressions: continuous and categorical
            columns) or ``"kernel"`` (DoWhy's kernel test: nonlinear, slow).
        alpha: significance level of each independence test and of the verdicts.
        n_permutations: DoWhy's node permutations (default ``1/alpha``).
        seed: random seed for the permutations.
        permutation_test: run DoWhy's ``falsify_graph`` (off: only the local tests).

    Returns:
        a :class:`GraphCheck`; ``.verdict`` says in one sentence which test decided.

    Examples:
        >>> rng = np.random.default_rng(1); x = rng.normal(size=400); y = x + rng.normal(size=400)
        >>> df = pd.DataFrame({"x": x, "y": y, "z": y + rng.normal(size=400)})
        >>> check_graph(nx.DiGraph([("x", "y"), ("x", "z")]), df).falsified   # z depends on y
        True
    """
    t0 = time.perf_counter()
    g = as_digraph(graph)
    if g.number_of_nodes() < 2:
        raise CausalError("graph needs at least two nodes")
    if not 0 < alpha < 1:
        raise CausalError(f"alpha must be between 0 and 1, got {alpha}")
    df, test = _prepare(g, data, test)
    nodes = list(g.nodes)
    max_parents = max((g.in_degree(n) for n in nodes), default=0)
    if test != "chi2" and len(df) < max_parents + 5:
        raise CausalError(f"data has {len(df)} rows: too few for a node with {max_parents} parents")
    fn: Any = TESTS[test]
    frame: Any = df
    if test in ("fisher_z", "mixed"):
        fn = FisherZ(df) if test == "fisher_z" else Mixed(df)
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
    holm = holm_adjust({key: float(p) if p == p else 1.0 for key, (p, _) in local.items()})  # NaN: no evidence
    violated = []
    for (node, other), (p, _) in local.items():
        if float(p) <= alpha:
            given = sorted(g.predecessors(node))
            cond = f" | {', '.join(given)}" if given else ""
            violated.append({
                "statement": f"{node} _||_ {other}{cond}", "node": node, "independent_of": other,
                "given": given, "p_value": float(p), "p_holm": holm[(node, other)],
                "significant": holm[(node, other)] <= alpha,
            })
    n_viol = len(violated)
    rate = n_viol / n_tests if n_tests else 0.0
    excess = _binom_excess(n_viol, n_tests, alpha)
    strong = sum(v["significant"] for v in violated)
    violations = _dedupe(violated)

    # per node: local Markov results and each parent edge's dependence given the other parents
    def column(names: list[str]) -> np.ndarray:
        return frame[names].values if frame is not df else df[names].to_numpy()

    per_node: dict[str, dict] = {}
    unsupported = []
    for node in nodes:
        parents = sorted(g.predecessors(node))
        tests_here = [o for (n, o) in local if n == node]
        viol_here = [v["independent_of"] for v in violated if v["node"] == node]
        edge_p = {}
        for par in parents:
            rest = [q for q in parents if q != par]
            p = float(fn(column([node]), column([par]), column(rest) if rest else None))
            edge_p[par] = p
            if p > alpha:
                unsupported.append((par, node, p))
        per_node[node] = {
            "parents": parents, "lmc_tests": len(tests_here), "lmc_violations": len(viol_here),
            "violated_with": viol_here, "edge_p_values": edge_p,
        }
    compelled = compelled_edges(g)
    untestable = sorted((u, v) for u, v in g.edges if (u, v) not in compelled)

    suggestions = _connect_suggestions(g, [v for v in violations if v["significant"]], fn, frame, alpha,
                                       most=0 if test == "kernel" else 3)  # kernel tests take seconds each
    for u, v, p in sorted(unsupported, key=lambda e: -e[2]):
        suggestions.append(f"remove edge {u} -> {v}: not supported by the data given {v}'s other parents (p={p:.2f})")

    falsified = strong > 0  # DoWhy's permutation verdict is reported, not deciding (module docstring)
    return GraphCheck(
        falsified=falsified, dowhy_falsified=dowhy_falsified, falsifiable=falsifiable,
        violation_rate=rate, n_tests=n_tests, n_violations=n_viol, alpha=alpha,
        excess_p_value=excess, permutation_p_value=perm_p, strong_violations=int(strong),
        violations=violations, per_node=per_node, unsupported_edges=unsupported,
        untestable_edges=untestable, suggestions=suggestions, test=test,
        seconds=time.perf_counter() - t0, nodes=nodes, edges=sorted(g.edges),
    )
