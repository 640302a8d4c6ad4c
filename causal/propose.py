"""Propose a causal graph from variable names with an LLM, optionally combined with data.

- :func:`orient_pair`: Kıcıman et al.'s forced-choice prompt ("Which cause-and-effect relationship
  is more likely? A. changing a causes a change in b. B. changing b causes a change in a."), asked
  with both orders of the options and averaged, so the answer does not depend on which variable is
  named first (or on the model's preference for the letter A).
- :func:`propose_graph`: ``"pairwise"`` (every pair, with a third "no direct edge" option),
  ``"ordering"`` (a causal order by merge sort over pairwise comparisons, then one
  multiple-choice "which of these earlier variables directly causes X?" question per variable:
  O(n log n) questions), or with ``data`` the hybrid: the data decide which pairs are adjacent
  (PC-style skeleton) and orient colliders, the LLM orients the rest. The result is always a DAG:
  edges are added most-confident first and an edge that would close a cycle is dropped (recorded).

Example:
    >>> g = propose_graph(["smoking", "tar deposits", "lung cancer"])      # doctest: +SKIP
    >>> sorted(g.graph.edges)                                               # doctest: +SKIP
    [('smoking', 'tar deposits'), ('tar deposits', 'lung cancer')]
"""

from __future__ import annotations

import string
import time
from functools import cmp_to_key
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from causal.citests import TESTS, is_discrete, skeleton
from causal.data import match_columns, validate_data
from causal.errors import CausalError, did_you_mean
from causal.graph import ProposedGraph, to_dag
from causal.llm import backend_label, get_backend

PAIR_HEADER = "Which cause-and-effect relationship is more likely?"
MAX_CANDIDATES = 20  # options per "which is a direct cause" question (letters A..U with "none")


# --------------------------------------------------------------------------- prompts
def _context(names: Sequence[str], descriptions: Mapping[str, str] | None) -> str:
    if not descriptions:
        return ""
    lines = [f"- {n}: {descriptions[n]}" for n in names if descriptions.get(n)]
    return ("Variables:\n" + "\n".join(lines) + "\n\n") if lines else ""


def pair_prompt(x: str, y: str, descriptions: Mapping[str, str] | None = None, none_option: bool = False) -> str:
    """The forced-choice prompt with option A = "x causes y", B = "y causes x" (C = no direct edge).

    Returns:
        the prompt text.

    Example:
        >>> print(pair_prompt("altitude", "temperature"))
        Which cause-and-effect relationship is more likely?
        A. changing altitude causes a change in temperature.
        B. changing temperature causes a change in altitude.
        Answer with the letter A or B.
    """
    lines = [
        _context([x, y], descriptions) + PAIR_HEADER,
        f"A. changing {x} causes a change in {y}.",
        f"B. changing {y} causes a change in {x}.",
    ]
    if none_option:
        lines.append(f"C. neither directly causes the other: changing {x} does not directly change {y} and changing {y} does not directly change {x}.")
        lines.append("Answer with the letter A, B or C.")
    else:
        lines.append("Answer with the letter A or B.")
    return "\n".join(lines)


def parents_prompt(
    target: str, candidates: Sequence[str], descriptions: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """A multiple-choice question: which candidate directly causes ``target`` (last option: none).

    Returns:
        (prompt, option labels).
    """
    labels = list(string.ascii_uppercase[: len(candidates) + 1])
    lines = [
        _context([*candidates, target], descriptions)
        + f"Which of the following variables is a direct cause of {target}? "
        f"(Changing it directly causes a change in {target}.)"
    ]
    lines += [f"{lab}. {c}" for lab, c in zip(labels, candidates)]
    lines.append(f"{labels[-1]}. none of these directly causes {target}")
    lines.append(f"Answer with one letter from A to {labels[-1]}.")
    return "\n".join(lines), labels


# --------------------------------------------------------------------------- asking
class _Asker:
    """Counts questions and remembers pair answers within one proposal."""

    def __init__(self, llm: Any, descriptions: Mapping[str, str] | None) -> None:
        self.llm = llm
        self.descriptions = descriptions
        self.queries = 0
        self._pairs: dict[tuple[str, str, bool], np.ndarray] = {}

    def choose(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        self.queries += 1
        _, probs = self.llm.choose(prompt, list(options))
        probs = np.asarray(probs, dtype=float)
        if probs.shape != (len(options),) or not np.all(np.isfinite(probs)) or probs.sum() <= 0:
            raise CausalError(f"LLM backend returned invalid probabilities {probs.tolist()}")
        return probs / probs.sum()

    def pair(self, a: str, b: str, none_option: bool = False) -> np.ndarray:
        """Order-invariant probabilities [a->b, b->a(, none)] from two prompts (both orders)."""
        lo, hi = sorted((a, b))
        key = (lo, hi, none_option)
        if key not in self._pairs:
            opts = ["A", "B", "C"] if none_option else ["A", "B"]
            p1 = self.choose(pair_prompt(lo, hi, self.descriptions, none_option), opts)
            p2 = self.choose(pair_prompt(hi, lo, self.descriptions, none_option), opts)
            fwd = (p1[0] + p2[1]) / 2.0
            bwd = (p1[1] + p2[0]) / 2.0
            out = [fwd, bwd] + ([(p1[2] + p2[2]) / 2.0] if none_option else [])
            self._pairs[key] = np.array(out)
        probs = self._pairs[key]
        if (a, b) == (lo, hi):
            return probs.copy()
        swapped = probs.copy()
        swapped[0], swapped[1] = probs[1], probs[0]
        return swapped


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

    Example:
        >>> orient_pair("altitude", "temperature")          # doctest: +SKIP
        ('altitude', 'temperature', 0.83)
    """
    a, b = str(a), str(b)
    if a == b:
        raise CausalError(f"cannot orient a variable against itself: '{a}'")
    asker = _Asker(get_backend(llm), descriptions)
    p = asker.pair(a, b)
    lo, hi = sorted((a, b))
    p_lo_hi = p[0] if a == lo else p[1]
    if p_lo_hi >= 0.5:  # ties go to the canonical order, so both call orders agree
        return lo, hi, float(p_lo_hi)
    return hi, lo, float(1.0 - p_lo_hi)


# --------------------------------------------------------------------------- result
def _pairwise(variables: list[str], asker: _Asker, progress: bool) -> list[tuple[str, str, dict]]:
    edges = []
    pairs = list(combinations(variables, 2))
    for a, b in tqdm(pairs, desc="pairs", disable=not progress, leave=False):
        p = asker.pair(a, b, none_option=True)
        best = int(np.argmax(p))
        if best == 2:
            continue
        u, v = (a, b) if best == 0 else (b, a)
        edges.append((u, v, {
            "confidence": float(p[best]),
            "evidence": f"llm pairwise: P({u}->{v})={p[best]:.2f}, P(no edge)={p[2]:.2f}",
        }))
    return edges


def causal_order(variables: Sequence[str], asker: _Asker, progress: bool = False) -> list[str]:
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


def _ordering(variables: list[str], asker: _Asker, progress: bool) -> list[tuple[str, str, dict]]:
    order = causal_order(variables, asker, progress)
    edges = []
    for i, target in enumerate(tqdm(order, desc="parents", disable=not progress, leave=False)):
        earlier = order[:i]
        for start in range(0, len(earlier), MAX_CANDIDATES):
            cands = earlier[start:start + MAX_CANDIDATES]
            k = len(cands)
            p_fwd_prompt, labels = parents_prompt(target, cands, asker.descriptions)
            p_fwd = asker.choose(p_fwd_prompt, labels)
            rev = cands[::-1]
            p_rev_prompt, _ = parents_prompt(target, rev, asker.descriptions)
            p_rev = asker.choose(p_rev_prompt, labels)
            p = (p_fwd[:k] + p_rev[:k][::-1]) / 2.0
            p_none = (p_fwd[k] + p_rev[k]) / 2.0
            if p_none >= p.max():
                continue
            for c, pc in zip(cands, p):
                if pc >= 1.0 / (k + 1):  # above the uniform share: a plausible direct cause
                    conf = float(pc / (pc + p_none))
                    edges.append((c, target, {
                        "confidence": conf,
                        "evidence": f"llm ordering: {c} before {target}; P(direct cause)={pc:.2f}, P(none)={p_none:.2f}",
                    }))
    return edges


def _hybrid(
    variables: list[str], data: pd.DataFrame, asker: _Asker, progress: bool, alpha: float, max_cond: int
) -> list[tuple[str, str, dict]]:
    skel, _, colliders = skeleton(data[variables], alpha=alpha, max_cond=max_cond)
    edges = []
    for a, b in tqdm(sorted(tuple(sorted(e)) for e in skel.edges), desc="orienting", disable=not progress, leave=False):
        pdep = skel.edges[a, b]["p_max"]
        data_dir = (a, b) if (a, b) in colliders else (b, a) if (b, a) in colliders else None
        p = asker.pair(a, b)
        if data_dir is not None:
            u, v = data_dir
            conf = float(p[0] if (u, v) == (a, b) else p[1])
            ev = f"data: adjacent (p<={pdep:.2g}), oriented as a collider; llm P({u}->{v})={conf:.2f}"
            conf = max(conf, 0.5)  # the data's orientation is not less reliable than a coin
        else:
            u, v = (a, b) if p[0] >= p[1] else (b, a)
            conf = float(max(p[0], p[1]))
            ev = f"data: adjacent (p<={pdep:.2g}); llm orientation P({u}->{v})={conf:.2f}"
        edges.append((u, v, {"confidence": conf, "evidence": ev}))
    return edges


# --------------------------------------------------------------------------- entry
def propose_graph(
    variables: Sequence[str],
    llm: Any = None,
    descriptions: Mapping[str, str] | None = None,
    data: pd.DataFrame | None = None,
    strategy: str = "auto",
    progress: bool = True,
    alpha: float = 0.05,
    max_cond: int = 2,
) -> ProposedGraph:
    """Propose a causal DAG over ``variables``.

    Args:
        variables: distinct names (with ``data``, exactly its column names).
        llm: ``None`` (embedded model), a backend spec string or a backend object.
        descriptions: optional ``{variable: description}`` added to every prompt.
        data: optional table; with it ``"auto"`` runs the hybrid (data skeleton, LLM orientation),
            and ``"pairwise"``/``"ordering"`` drop LLM edges between independent variables.
        strategy: ``"auto"`` (hybrid with data, else pairwise up to 12 variables, else ordering),
            ``"pairwise"``, ``"ordering"`` or ``"hybrid"``.
        progress: show a progress bar.
        alpha, max_cond: significance level and largest conditioning set of the data's tests.

    Returns:
        a :class:`ProposedGraph`; ``.graph`` is always acyclic.

    Example:
        >>> g = propose_graph(["altitude", "temperature"], llm="replay:answers.json")  # doctest: +SKIP
        >>> g.graph.edges(data=True)                                                   # doctest: +SKIP
    """
    t0 = time.perf_counter()
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
    if strategy == "auto":
        strategy = "hybrid" if data is not None else ("pairwise" if len(variables) <= 12 else "ordering")
    if strategy == "hybrid" and data is None:
        raise CausalError("strategy 'hybrid' needs data")
    backend = get_backend(llm)
    asker = _Asker(backend, descriptions)
    flagged: list[tuple[str, str, dict]] = []
    if strategy == "hybrid":
        edges = _hybrid(variables, data, asker, progress, alpha, max_cond)
    else:
        edges = _pairwise(variables, asker, progress) if strategy == "pairwise" else _ordering(variables, asker, progress)
        if data is not None:
            skel, sepsets, _ = skeleton(data[variables], alpha=alpha, max_cond=max_cond)
            kept = []
            for u, v, d in edges:
                if skel.has_edge(u, v):
                    kept.append((u, v, dict(d, evidence=d["evidence"] + "; data: dependent")))
                else:
                    sep = sepsets.get(frozenset((u, v)), ())
                    flagged.append((u, v, dict(d, reason="independent in data",
                                               separating_set=list(sep), p_value=_indep_p(data, u, v, sep))))
            edges = kept
    graph, dropped = to_dag(edges, variables)
    return ProposedGraph(
        graph=graph,
        dropped=dropped,
        flagged=flagged,
        queries=asker.queries,
        strategy=strategy,
        llm=backend_label(backend),
        seconds=time.perf_counter() - t0,
    )


def _indep_p(data: pd.DataFrame, u: str, v: str, sep: Sequence[str]) -> float:
    cols = [u, v, *sep]
    test = TESTS["chi2" if is_discrete(data[cols]) else "fisher_z"]
    z = data[list(sep)].to_numpy() if sep else None
    return float(test(data[u].to_numpy(), data[v].to_numpy(), z))
