"""Propose a causal graph from variable names with an LLM, optionally combined with data.

- :func:`orient_pair`: Kıcıman et al.'s forced-choice prompt ("Which cause-and-effect relationship
  is more likely? A. changing a causes a change in b. B. changing b causes a change in a."), asked
  with both orders of the options and averaged, so the answer does not depend on which variable is
  named first (or on the model's preference for the letter A).
- :func:`propose_graph`: ``"pairwise"`` (every pair, with a third "no direct edge" option),
  ``"ordering"`` (a causal order by merge sort over pairwise comparisons, then one
  multiple-choice "which of these earlier variables directly causes X?" question per variable:
  O(n log n) questions), or with ``data`` the hybrid: the data decide which pairs are adjacent
  (PC's CPDAG, one run) and orient what they can, the LLM orients the rest. The result is always a DAG:
  edges are added most-confident first and an edge that would close a cycle is dropped (recorded).

Examples:
    >>> g = propose_graph(["smoking", "tar deposits", "lung cancer"])      # doctest: +SKIP
    >>> sorted(g.graph.edges)                                               # doctest: +SKIP
    [('smoking', 'tar deposits'), ('tar deposits', 'lung cancer')]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import cmp_to_key
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from causal.ask import Asker, parents_prompt
from causal.citests import TESTS, is_discrete
from causal.data import match_columns, validate_data
from causal.errors import CausalError, did_you_mean
from causal.graph import ProposedGraph, to_dag
from causal.judge import JudgeResult, judge_cost, measure_judge, resolve_judge, seconds_per_question
from causal.llm import backend_label, get_backend
from causal.pc import data_cpdag, pc_hybrid
from explain.budget import Cost, check_budget
from explain.progress import want_progress

MAX_CANDIDATES = 20  # options per "which is a direct cause" question (letters A..U with "none")
COMMIT_THRESHOLD = 0.75  # calibrated P(direction) an LLM orientation needs to become an arrow
DATA_CONFIDENCE = 0.95  # edges the data orient (colliders): 1 - alpha of the tests, not a calibration


def orient_pair(
    a: str,
    b: str,
    llm: Any = None,
    descriptions: Mapping[str, str] | None = None,
) -> tuple[str, str, float]:
    """Which of two variables causes the other, by Kıcıman et al.'s forced choice in both orders.

    The two answers are averaged: P(a→b) = (P(A | a first) + P(B | b first)) / 2. The result is
    exactly the same for ``orient_pair(a, b)`` and ``orient_pair(b, a)``.

    Returns:
        (cause, effect, confidence): confidence in [0.5, 1] is the averaged probability of the
        chosen direction.

    Examples:
        >>> orient_pair("altitude", "temperature")          # doctest: +SKIP
        ('altitude', 'temperature', 0.83)
    """
    a, b = str(a), str(b)
    if a == b:
        raise CausalError(f"cannot orient a variable against itself: '{a}'")
    asker = Asker(get_backend(llm), descriptions)
    p = asker.pair(a, b)
    lo, hi = sorted((a, b))
    p_lo_hi = p[0] if a == lo else p[1]
    if p_lo_hi >= 0.5:  # ties go to the canonical order, so both call orders agree
        return lo, hi, float(p_lo_hi)
    return hi, lo, float(1.0 - p_lo_hi)


# --------------------------------------------------------------------------- abstention
class _Decider:
    """Turns the model's pair probabilities into committed edges or undecided pairs.

    The pair probability is shrunk toward 0.5 by the judge's measured skill
    (:meth:`causal.judge.JudgeResult.calibrate`); an orientation is committed only when the
    calibrated probability reaches ``threshold``. Without a judge (``judge=False``) the model's
    own probability is used and the proposal says it is uncalibrated.
    """

    def __init__(self, judge: JudgeResult | None, threshold: float) -> None:
        self.judge, self.threshold = judge, threshold

    def calibrate(self, p: float) -> float:
        return self.judge.calibrate(p) if self.judge is not None else float(p)

    def decide(self, a: str, b: str, p_raw: float, evidence: str, edges: list, undecided: list) -> None:
        """File ``a``-``b`` (``p_raw`` = the model's P(a -> b)) as a committed edge or undecided."""
        p = self.calibrate(p_raw)
        if max(p, 1.0 - p) >= self.threshold:
            u, v, conf = (a, b, p) if p >= 0.5 else (b, a, 1.0 - p)
            edges.append((u, v, {"confidence": float(conf), "evidence": evidence, "origin": "judge"}))
        else:
            undecided.append((a, b, {"p": float(p), "p_raw": float(p_raw), "evidence": evidence}))


def _orientation(p: np.ndarray) -> float:
    """P(a -> b) given that there is an edge, from [P(a->b), P(b->a), ...]."""
    total = float(p[0] + p[1])
    return float(p[0]) / total if total > 0 else 0.5


# --------------------------------------------------------------------------- strategies
def _pairwise(variables: list[str], asker: Asker, decider: _Decider, show: bool) -> tuple[list, list]:
    edges: list = []
    undecided: list = []
    pairs = list(combinations(variables, 2))
    for a, b in tqdm(pairs, desc="pairs", disable=not show, leave=False):
        p = asker.pair(a, b, none_option=True)
        if int(np.argmax(p)) == 2:
            continue
        ev = f"llm pairwise: P({a}->{b})={p[0]:.2f}, P({b}->{a})={p[1]:.2f}, P(no edge)={p[2]:.2f}"
        decider.decide(a, b, _orientation(p), ev, edges, undecided)
    return edges, undecided


def causal_order(variables: Sequence[str], asker: Asker, progress: bool = False) -> list[str]:
    """Sort variables cause-first by merge sort over order-invariant pairwise comparisons.

    Returns:
        the variables, causes before effects (as the LLM sees it).
    """
    bar = tqdm(desc="ordering (comparisons)", disable=not progress, leave=False)

    def cmp(a: str, b: str) -> int:
        p = asker.pair(a, b)
        bar.update(1)
        if p[0] == p[1]:
            return -1 if a < b else 1
        return -1 if p[0] > p[1] else 1

    order = sorted(sorted(variables), key=cmp_to_key(cmp))  # timsort: a merge sort, O(n log n)
    bar.close()
    return order


def _ordering(variables: list[str], asker: Asker, decider: _Decider, show: bool) -> tuple[list, list]:
    order = causal_order(variables, asker, show)
    edges: list = []
    undecided: list = []
    for i, target in enumerate(tqdm(order, desc="parents", disable=not show, leave=False)):
        earlier = order[:i]
        for start in range(0, len(earlier), MAX_CANDIDATES):
            cands = earlier[start:start + MAX_CANDIDATES]
            k = len(cands)
            p_fwd_prompt, labels = parents_prompt(target, cands, asker.descriptions)
            p_fwd = asker.choose(p_fwd_prompt, labels)
            p_rev_prompt, _ = parents_prompt(target, cands[::-1], asker.descriptions)
            p_rev = asker.choose(p_rev_prompt, labels)
            p = (p_fwd[:k] + p_rev[:k][::-1]) / 2.0
            p_none = (p_fwd[k] + p_rev[k]) / 2.0
            if p_none >= p.max():
                continue
            for c, pc in zip(cands, p):
                if pc >= 1.0 / (k + 1):  # above the uniform share: a plausible direct cause
                    # the direction is the pair's own (measured) forced choice, both orders
                    p_dir = float(asker.pair(c, target)[0])
                    ev = (f"llm ordering: P({c} directly causes {target})={pc:.2f}, P(none)={p_none:.2f}; "
                          f"pair P({c}->{target})={p_dir:.2f}")
                    decider.decide(c, target, p_dir, ev, edges, undecided)
    return edges, undecided


# --------------------------------------------------------------------------- cost
def count_questions(n: int, strategy: str, adjacent: int | None = None) -> int:
    """Predicted LLM questions of a proposal over ``n`` variables (before any answer is known).

    ``pairwise``: two per pair (exact). ``ordering``: two per merge-sort comparison (at most
    ``n*ceil(log2 n) - 2**ceil(log2 n) + 1``), two per block of 20 candidate parents, and two per
    proposed parent for its direction, predicted at two parents per variable (a model that proposes
    more asks more: the embedded one asked 238 on the 20-variable child network, predicted 256).
    ``hybrid``: two per pair the data leave unoriented (``adjacent``; all pairs when unknown, as
    before the data step has run: :func:`propose_graph` checks its budget on that upper bound).

    Returns:
        the number of questions.

    Examples:
        >>> count_questions(3, "pairwise"), count_questions(200, "pairwise"), count_questions(200, "ordering")
        (6, 39800, 5670)
    """
    if strategy == "pairwise":
        return n * (n - 1)
    if strategy == "hybrid":
        return 2 * (adjacent if adjacent is not None else n * (n - 1) // 2)
    depth = math.ceil(math.log2(n)) if n > 1 else 0
    comparisons = max(0, n * depth - 2 ** depth + 1)
    blocks = sum(math.ceil(i / MAX_CANDIDATES) for i in range(1, n))
    return 2 * comparisons + 2 * blocks + 4 * n


def propose_cost(n_variables: int, llm: Any = None, strategy: str = "pairwise", adjacent: int | None = None,
                 judge_questions: int = 0) -> Cost:
    """The predicted cost of :func:`propose_graph`: questions and seconds on this machine.

    Returns:
        a :class:`explain.budget.Cost` (``passes`` counts questions).

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> c = propose_cost(200, ReplayBackend({}), "pairwise")
        >>> c.passes, c.cheaper
        (39800, 'use strategy="ordering" (5,670 questions)')
    """
    backend = get_backend(llm)
    q = count_questions(n_variables, strategy, adjacent) + judge_questions
    what = f"proposing a graph over {n_variables} variables ({strategy}"
    if strategy == "hybrid" and adjacent is None:
        what += "; at most: only the pairs the data leave unoriented are asked"
    what += ", plus measuring the judge on Tübingen pairs)" if judge_questions else ")"
    cheaper = ""
    if strategy == "pairwise" and n_variables > 3:
        cheaper = f'use strategy="ordering" ({count_questions(n_variables, "ordering"):,} questions)'
    elif judge_questions:
        cheaper = "measure the judge once with causal.evaluate_judge(llm) (it is cached), or pass judge="
    else:
        cheaper = "propose over fewer variables"
    return Cost(what, seconds=q * seconds_per_question(backend), passes=q, unit="questions", cheaper=cheaper)


# --------------------------------------------------------------------------- entry
def propose_graph(
    variables: Sequence[str],
    llm: Any = None,
    descriptions: Mapping[str, str] | None = None,
    data: pd.DataFrame | None = None,
    strategy: str = "auto",
    progress: bool | None = None,
    alpha: float = 0.05,
    max_cond: int = 2,
    judge: Any = None,
    threshold: float = COMMIT_THRESHOLD,
    max_seconds: float | None = None,
    on_estimate: Callable[[Cost], Any] | None = None,
    data_method: str = "pc",
) -> ProposedGraph:
    """Propose a causal DAG over ``variables``, committing only the orientations the judge knows.

    Every orientation the LLM gives is calibrated against its judge's measured accuracy on the
    Tübingen pairs (:func:`causal.evaluate_judge`): the pair probability is shrunk toward 0.5 by
    the judge's skill (lower 95% bound), so a coin-flip judge cannot produce 0.9. An edge is
    committed (drawn as an arrow) only when the calibrated probability reaches ``threshold``; the
    other pairs go to ``.undecided``. Data-oriented edges (colliders) need no judge.

    Args:
        variables: a list of distinct names (with ``data``, exactly its column names).
        llm: ``None`` (embedded model), a backend spec string or a backend object.
        descriptions: optional ``{variable: description}`` added to every prompt.
        data: optional table; with it ``"auto"`` runs the hybrid (data skeleton, LLM orientation),
            and ``"pairwise"``/``"ordering"`` drop LLM edges between independent variables.
        strategy: ``"auto"`` (hybrid with data, else pairwise up to 12 variables, else ordering),
            ``"pairwise"``, ``"ordering"`` or ``"hybrid"``.
        progress: show a progress bar (``None``: when interactive and long).
        alpha, max_cond: significance level and largest conditioning set of the data's tests.
        judge: ``None``: the backend's known figure (cached or shipped), measured now when none
            exists (its questions count in the cost); a :class:`causal.judge.JudgeResult`; or
            ``False`` for the model's own, uncalibrated probabilities (the result says so).
        threshold: calibrated probability a committed orientation needs (default 0.75).
        max_seconds: refuse, in one line, a proposal predicted to take longer (default 600 s);
            checked before the data step and before any question (with data, on the upper bound
            of two questions per pair).
        on_estimate: called with the predicted :class:`explain.budget.Cost` before the data step
            and before any question is asked (the CLI prints it; see also :func:`propose_cost`);
            the same hook as :func:`explain.audit`'s.
        data_method: the data step, run once: ``"pc"`` (causal-learn's PC) or ``"skeleton"``
            (whylm's own PC-style skeleton and colliders), each followed by Meek's rules; in the
            hybrid the LLM orients only what the data leave unoriented, and Meek's rules propagate
            its confident arrows.

    Returns:
        a :class:`ProposedGraph`; ``.graph`` (committed edges, each with its ``origin``) is always
        acyclic, ``.undecided`` holds the pairs the judge could not orient, ``.judge`` the figure
        used, and with data ``.data_orientation`` says for each undecided pair whether the data
        orient it, leave it undecidable (Markov-equivalent graphs disagree) or find it not adjacent.

    Examples:
        >>> from causal.ask import pair_prompt
        >>> from causal.judge import JudgeResult
        >>> from causal.llm import ReplayBackend
        >>> llm = ReplayBackend({pair_prompt("rain", "wet", none_option=True): "A",
        ...                      pair_prompt("wet", "rain", none_option=True): "B"})
        >>> strong = JudgeResult(llm="replay:dict", accuracy=0.95, ci_low=0.9, ci_high=0.98, n=108)
        >>> g = propose_graph(["rain", "wet"], llm=llm, judge=strong)
        >>> list(g.graph.edges(data="confidence")), g.undecided
        ([('rain', 'wet', 0.9)], [])
        >>> coin = JudgeResult(llm="replay:dict", accuracy=0.53, ci_low=0.43, ci_high=0.62, n=108)
        >>> g = propose_graph(["rain", "wet"], llm=llm, judge=coin)
        >>> list(g.graph.edges), [(a, b, d["p"]) for a, b, d in g.undecided]
        ([], [('rain', 'wet', 0.5)])
    """
    t0 = time.perf_counter()
    if isinstance(variables, (str, bytes)) or not isinstance(variables, Iterable):
        raise CausalError(f"variables must be a list of names, got {type(variables).__name__} {str(variables)[:40]!r}"
                          + (f" (did you mean [{str(variables)[:40]!r}, ...]?)" if isinstance(variables, str) else ""))
    variables = [str(v) for v in variables]
    if len(variables) < 2:
        raise CausalError("need at least two variables")
    dup = {v for v in variables if variables.count(v) > 1}
    if dup:
        raise CausalError(f"variables named twice: {sorted(dup)}")
    if any(not v.strip() for v in variables):
        raise CausalError("variable names must not be empty")
    if descriptions is not None:
        unknown = [k for k in descriptions if k not in variables]
        if unknown:
            hint = did_you_mean(unknown[0], variables)
            raise CausalError(f"description given for unknown variable '{unknown[0]}'{hint}")
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise CausalError("data must be a pandas DataFrame")
        match_columns(variables, data)
        validate_data(data[variables], allow_categorical=True)
    if strategy not in {"auto", "pairwise", "ordering", "hybrid"}:
        raise CausalError(f"unknown strategy '{strategy}': use auto, pairwise, ordering or hybrid")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.5 < threshold <= 1:
        raise CausalError(f"threshold must be a probability in (0.5, 1], got {threshold!r}")
    if strategy == "auto":
        strategy = "hybrid" if data is not None else ("pairwise" if len(variables) <= 12 else "ordering")
    if strategy == "hybrid" and data is None:
        raise CausalError("strategy 'hybrid' needs data")
    if data_method not in ("pc", "skeleton"):
        raise CausalError(f"unknown data_method '{data_method}': use pc or skeleton")
    backend = get_backend(llm)
    judge, measure = resolve_judge(backend, judge)
    cost = check_budget(propose_cost(len(variables), backend, strategy,
                                     judge_questions=judge_cost(backend).passes if measure else 0), max_seconds)
    if on_estimate is not None:
        on_estimate(cost)
    show = want_progress(progress, cost.seconds)
    if measure:
        judge = measure_judge(backend, show, max_seconds)
    cpdag = data_cpdag(data[variables], alpha, max_cond, data_method) if data is not None else None
    decider = _Decider(judge, float(threshold))
    asker = Asker(backend, descriptions)
    flagged: list[tuple[str, str, dict]] = []
    if strategy == "hybrid":
        def orient(a: str, b: str) -> tuple[float, float, str]:
            p_raw = float(asker.pair(a, b)[0])
            return decider.calibrate(p_raw), p_raw, f"llm P({a}->{b})={p_raw:.2f}"

        edges, undecided = pc_hybrid(cpdag, orient, decider.threshold, DATA_CONFIDENCE)
    else:
        run = _pairwise if strategy == "pairwise" else _ordering
        edges, undecided = run(variables, asker, decider, show)
        if cpdag is not None:
            kept = []
            for u, v, d in edges:
                if cpdag.adjacent(u, v):
                    kept.append((u, v, dict(d, evidence=d["evidence"] + "; data: dependent")))
                else:
                    sep = cpdag.sepsets.get(frozenset((u, v)), ())
                    flagged.append((u, v, dict(d, reason="independent in data",
                                               separating_set=list(sep), p_value=_indep_p(data, u, v, sep))))
            edges = kept
            undecided = [(a, b, d) for a, b, d in undecided if cpdag.adjacent(a, b)]
    graph, dropped = to_dag(edges, variables)
    return ProposedGraph(
        graph=graph,
        undecided=undecided,
        dropped=dropped,
        flagged=flagged,
        queries=asker.queries,
        strategy=strategy,
        llm=backend_label(backend),
        seconds=time.perf_counter() - t0,
        judge=_without_answers(judge),
        threshold=float(threshold),
        data_orientation=_data_orientation(cpdag, undecided) if cpdag is not None else [],
    )


def _data_orientation(cpdag: Any, undecided: Sequence[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    """What the data's equivalence class says about each pair the judge left undecided."""
    out = []
    for a, b, _ in undecided:
        status = cpdag.status(a, b)
        attrs: dict[str, Any] = {"data": status}
        if status == "oriented":
            attrs["cause"], attrs["effect"] = cpdag.direction(a, b)
        out.append((a, b, attrs))
    return out


def _without_answers(judge: JudgeResult | None) -> JudgeResult | None:
    return None if judge is None else replace(judge, answers=[])


def _indep_p(data: pd.DataFrame, u: str, v: str, sep: Sequence[str]) -> float:
    cols = [u, v, *sep]
    test = TESTS["chi2" if is_discrete(data[cols]) else "fisher_z"]
    z = data[list(sep)].to_numpy() if sep else None
    return float(test(data[u].to_numpy(), data[v].to_numpy(), z))
