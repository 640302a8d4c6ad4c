"""A critique of a given causal graph by the judge: doubtful edges and missing confounders.

:func:`critique_graph` asks every pair of the graph's variables the forced-choice question with a
"neither" option (both orders, as :func:`causal.propose_graph` does), calibrates the directions by
the judge's measured accuracy and reports, only where the calibrated probability reaches
``threshold``: edges the judge confidently reverses, and variables it confidently says cause both
ends of an edge without the graph drawing both arrows (a missing confounder). A judge at chance
reports nothing and says why.

Examples:
    >>> import networkx as nx
    >>> from causal.ask import pair_prompt
    >>> from causal.judge import JudgeResult
    >>> from causal.llm import ReplayBackend
    >>> causes = lambda x, y: {pair_prompt(x, y, none_option=True): "A", pair_prompt(y, x, none_option=True): "B"}
    >>> llm = ReplayBackend({**causes("genes", "smoking"), **causes("genes", "cancer"), **causes("cancer", "smoking")})
    >>> strong = JudgeResult(llm="replay:dict", accuracy=0.97, ci_low=0.95, ci_high=0.99, n=106)
    >>> c = critique_graph(nx.DiGraph([("smoking", "cancer")]), llm=llm, judge=strong, nodes=["genes"])
    >>> [d["edge"] for d in c.doubtful], [(m["name"], m["edge"]) for m in c.missing_confounders]
    ([['smoking', 'cancer']], [('genes', ['smoking', 'cancer'])])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Mapping, Sequence

from causal.confounders import (COMMIT_THRESHOLD, JudgedResult, JudgedRun, abstention_reason, check_threshold,
                                 direction, linked, names)
from causal.errors import CausalError
from causal.graph import as_digraph
from causal.judge import seconds_per_question
from causal.llm import get_backend
from explain.budget import Cost
from explain.progress import bar
from explain.serialize import jsonable


@dataclass
class GraphCritique(JudgedResult):
    """What :func:`critique_graph` found.

    Attributes:
        doubtful: edges the judge confidently reverses, ``{"edge": [u, v], "confidence", "evidence"}``
            (``confidence``: calibrated P(v -> u)).
        missing_confounders: ``{"name", "edge": [u, v], "confidence"}``: the judge says ``name``
            causes both ``u`` and ``v`` (calibrated P), and the graph lacks one of those arrows.
        judge: the judge's record used, None when uncalibrated.
        reason: why nothing was reported, in one sentence ("" when something was).
        queries, llm, threshold, seconds: questions asked, backend label, bar, wall time.
    """

    doubtful: list[dict] = field(default_factory=list)
    missing_confounders: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """Plain lines: doubtful edges and missing confounders, or why there are none.

        Returns:
            text.
        """
        lines = self._head("critique of the graph")
        for d in self.doubtful:
            u, v = d["edge"]
            lines.append(f"  doubtful {u} -> {v}: the judge says {v} -> {u} (calibrated P {d['confidence']:.2f})")
        for m in self.missing_confounders:
            u, v = m["edge"]
            lines.append(f"  missing confounder {m['name']} of {u} -> {v}: causes both "
                         f"(calibrated P {m['confidence']:.2f}); add {m['name']} -> {u} and {m['name']} -> {v}")
        if not self.doubtful and not self.missing_confounders:
            lines.append(f"  nothing to report: {self.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON. Returns: a dict for :meth:`from_dict`."""
        return jsonable({
            "doubtful": self.doubtful, "missing_confounders": self.missing_confounders, **self._judged_dict(),
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GraphCritique":
        """Rebuild from :meth:`to_dict` output. Returns: the result."""
        return cls._rebuild(d, "graph-critique", lambda: dict(
            doubtful=[dict(x) for x in d.get("doubtful") or []],
            missing_confounders=[dict(x) for x in d.get("missing_confounders") or []],
        ))


def critique_cost(n_variables: int, llm: Any = None, judge_questions: int = 0) -> Cost:
    """The predicted cost of :func:`critique_graph`: two questions per pair of variables.

    Returns:
        a :class:`explain.budget.Cost`.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> critique_cost(4, ReplayBackend({})).passes
        12
    """
    backend = get_backend(llm)
    q = n_variables * (n_variables - 1) + judge_questions
    what = f"critiquing a graph over {n_variables} variables"
    what += " (plus measuring the judge on Tübingen pairs)" if judge_questions else ""
    return Cost(what, seconds=q * seconds_per_question(backend), passes=q, unit="questions",
                cheaper="critique a smaller graph")


def critique_graph(
    graph: Any,
    llm: Any = None,
    descriptions: Mapping[str, str] | None = None,
    nodes: Sequence[str] = (),
    judge: Any = None,
    threshold: float = COMMIT_THRESHOLD,
    max_seconds: float | None = None,
    on_estimate: Callable[[Cost], Any] | None = None,
    progress: bool | None = None,
) -> GraphCritique:
    """Doubtful edges and missing confounders of ``graph``, by the judge, with its measured skill.

    Args:
        graph: a DiGraph, a :class:`causal.ProposedGraph` or a graph file.
        llm: ``None`` (embedded model), a backend spec string or a backend object.
        descriptions: optional ``{variable: description}`` added to every prompt.
        nodes: extra variables (not in the graph) to consider as missing confounders.
        judge, threshold, max_seconds, on_estimate, progress: as for :func:`causal.suggest_confounders`.

    Returns:
        a :class:`GraphCritique` (empty, with ``.reason``, when the judge is at chance).

    Examples:
        >>> critique_graph(nx.DiGraph([("smoking", "lung cancer")])).summary()   # doctest: +SKIP
        'critique of the graph (local:SmolLM2-135M-Instruct, 2 LLM questions):\\n  nothing to report: the judge is at chance (...)'
    """
    t0 = time.perf_counter()
    g = as_digraph(graph)
    variables = list(g.nodes) + [n for n in names(nodes, "nodes") if n not in g]
    if len(variables) < 2:
        raise CausalError("the graph needs at least two variables to critique")
    check_threshold(threshold)
    run = JudgedRun.start(llm, judge, descriptions, lambda b, jq: critique_cost(len(variables), b, jq),
                          max_seconds, on_estimate, progress, t0)
    calibrate, asker = run.calibrate, run.asker
    p_cause: dict[tuple[str, str], float] = {}  # calibrated P(a -> b) for linked pairs
    pairs = list(combinations(variables, 2))
    with bar(len(pairs), "pairs", run.show) as pbar:
        for a, b in pairs:
            p = asker.pair(a, b, none_option=True)
            pbar.update(1)
            if linked(p):
                q = calibrate(direction(p))
                p_cause[(a, b)], p_cause[(b, a)] = q, 1.0 - q
    doubtful = [{"edge": [u, v], "confidence": p_cause[(v, u)],
                 "evidence": f"llm: P({v}->{u})={p_cause[(v, u)]:.2f} after calibration"}
                for u, v in g.edges if p_cause.get((v, u), 0.0) >= threshold]
    missing = []
    for u, v in g.edges:
        for c in variables:
            if c in (u, v) or (g.has_edge(c, u) and g.has_edge(c, v)):
                continue
            conf = p_cause.get((c, u), 0.0) * p_cause.get((c, v), 0.0)
            if conf >= threshold:
                missing.append({"name": c, "edge": [u, v], "confidence": conf})
    reason = ""
    if not doubtful and not missing:
        reason = abstention_reason(run.record) or "the judge doubts no edge and names no missing confounder"
    return GraphCritique(doubtful=doubtful, missing_confounders=missing, **run.result_fields(reason, threshold))
