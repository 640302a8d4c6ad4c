"""What the data say about a graph's edges: one PC run, its CPDAG, and the LLM for the rest.

:func:`data_cpdag` runs the data step once (causal-learn's PC, stable, Fisher-z for numeric data,
chi-square on category codes for discrete data; or whylm's own skeleton search) and returns a
:class:`CPDAG`: which pairs are adjacent, which of them the data orient (v-structures and Meek's
rules), which stay undirected because Markov-equivalent graphs disagree on them, and the
separating sets. :func:`pc_hybrid` asks the LLM only about the undirected pairs; an orientation
the judge is confident about is added and Meek's rules propagate it (no second PC run).

Examples:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0); a = rng.normal(size=2000); c = rng.normal(size=2000)
    >>> df = pd.DataFrame({"a": a, "c": c, "b": a + c + rng.normal(size=2000)})
    >>> directed, undirected = run_pc(df)
    >>> sorted(directed), undirected
    ([('a', 'b'), ('c', 'b')], [])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable

import numpy as np
import pandas as pd

from causal.citests import is_discrete, skeleton


@dataclass
class CPDAG:
    """The data's equivalence class: what observational data can and cannot orient.

    Attributes:
        directed: ``(cause, effect)`` edges every graph in the class shares.
        undirected: adjacent pairs ``(a, b)`` the class leaves open (some equivalent graphs have
            ``a -> b``, others ``b -> a``): the data alone cannot tell the direction.
        sepsets: ``{frozenset({a, b}): (s, ...)}`` for the pairs found non-adjacent.
        evidence: ``{frozenset({a, b}): text}`` for adjacent pairs.
        method: ``"pc"`` or ``"skeleton"``.

    Examples:
        >>> c = CPDAG(directed=[("a", "c"), ("b", "c")], undirected=[("c", "d")])
        >>> c.status("d", "c"), c.status("a", "c"), c.status("a", "b")
        ('undecidable', 'oriented', 'not adjacent')
    """

    directed: list[tuple[str, str]] = field(default_factory=list)
    undirected: list[tuple[str, str]] = field(default_factory=list)
    sepsets: dict[frozenset, tuple[str, ...]] = field(default_factory=dict)
    evidence: dict[frozenset, str] = field(default_factory=dict)
    method: str = "pc"

    def adjacent(self, a: str, b: str) -> bool:
        """True when the data keep ``a`` and ``b`` adjacent."""
        return any({a, b} == {u, v} for u, v in (*self.directed, *self.undirected))

    def status(self, a: str, b: str) -> str:
        """``"oriented"``, ``"undecidable"`` or ``"not adjacent"`` for the pair ``a``-``b``.

        Returns:
            the status text.
        """
        if any({a, b} == {u, v} for u, v in self.directed):
            return "oriented"
        if any({a, b} == {u, v} for u, v in self.undirected):
            return "undecidable"
        return "not adjacent"

    def direction(self, a: str, b: str) -> tuple[str, str] | None:
        """The data's ``(cause, effect)`` for the pair, or None when they do not orient it."""
        return next(((u, v) for u, v in self.directed if {a, b} == {u, v}), None)


def _matrix(data: pd.DataFrame) -> tuple[np.ndarray, str]:
    if is_discrete(data):
        codes = np.column_stack([data[c].astype("category").cat.codes.to_numpy() for c in data.columns])
        return codes.astype(float), "chisq"
    return data.to_numpy(dtype=float), "fisherz"


def _causallearn_pc(data: pd.DataFrame, alpha: float, max_cond: int | None) -> CPDAG:
    from causallearn.search.ConstraintBased.PC import pc

    names = [str(c) for c in data.columns]
    x, test = _matrix(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cg = pc(x, alpha=alpha, indep_test=test, stable=True, show_progress=False, node_names=names, max_k=max_cond)
    g = cg.G.graph  # g[j, i] == 1 and g[i, j] == -1: i -> j; both -1: i - j; both 1: i <-> j
    out = CPDAG(method="pc")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            key = frozenset((names[i], names[j]))
            if g[i, j] == 0 and g[j, i] == 0:
                sets = cg.sepset[i, j] if cg.sepset is not None else None
                out.sepsets[key] = tuple(names[int(k)] for k in sets[0]) if sets else ()
                continue
            out.evidence[key] = "data: adjacent (PC)"
            if g[j, i] == 1 and g[i, j] == -1:
                out.directed.append((names[i], names[j]))
            elif g[i, j] == 1 and g[j, i] == -1:
                out.directed.append((names[j], names[i]))
            else:  # undirected, or bidirected (conflicting colliders): the data cannot orient it
                out.undirected.append((names[i], names[j]))
    return out


def _own_skeleton(data: pd.DataFrame, alpha: float, max_cond: int) -> CPDAG:
    skel, sepsets, colliders = skeleton(data, alpha=alpha, max_cond=max_cond)
    directed = sorted(colliders)
    undirected = [tuple(sorted((a, b))) for a, b in skel.edges if (a, b) not in colliders and (b, a) not in colliders]
    directed, undirected = meek(directed, undirected)
    evidence = {frozenset((a, b)): f"data: adjacent (p<={d['p_max']:.2g})" for a, b, d in skel.edges(data=True)}
    for u, v in colliders:
        evidence[frozenset((u, v))] += ", oriented as a collider"
    return CPDAG(directed, undirected, dict(sepsets), evidence, method="skeleton")


def data_cpdag(data: pd.DataFrame, alpha: float = 0.05, max_cond: int | None = 2, method: str = "pc") -> CPDAG:
    """The data's equivalence class, from one run of PC (``"pc"``) or whylm's skeleton (``"skeleton"``).

    Returns:
        a :class:`CPDAG`.

    Examples:
        >>> rng = np.random.default_rng(1); a = rng.normal(size=2000); b = a + rng.normal(size=2000)
        >>> c = data_cpdag(pd.DataFrame({"a": a, "b": b, "c": b + rng.normal(size=2000)}))
        >>> c.directed, c.undirected, c.sepsets[frozenset(("a", "c"))], c.status("a", "c")
        ([], [('a', 'b'), ('b', 'c')], ('b',), 'not adjacent')
    """
    if method == "pc":
        return _causallearn_pc(data, alpha, max_cond)
    return _own_skeleton(data, alpha, 2 if max_cond is None else max_cond)


def run_pc(
    data: pd.DataFrame,
    alpha: float = 0.05,
    max_cond: int | None = 2,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """causal-learn's PC on ``data``.

    Returns:
        (directed edges ``(cause, effect)``, adjacent pairs left unoriented ``(a, b)`` with a < b
        in column order); a pair PC marks bidirected (conflicting colliders) counts as unoriented.
    """
    c = _causallearn_pc(data, alpha, max_cond)
    return c.directed, c.undirected


def meek(
    directed: list[tuple[str, str]],
    undirected: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Orient what Meek's rules R1-R4 force, given some arrows (a PDAG).

    R1: a -> b - c, a and c not adjacent => b -> c. R2: a -> c -> b and a - b => a -> b.
    R3: a - c -> b, a - d -> b, c and d not adjacent, a - b => a -> b. R4: a - d -> c -> b,
    a adjacent to c, b and d not adjacent, a - b => a -> b.

    Returns:
        (directed: the given arrows, then the ones the rules add, in order; undirected: the
        given pairs still open, in their order).

    Examples:
        >>> meek([("a", "b")], [("b", "c"), ("c", "d")])
        ([('a', 'b'), ('b', 'c'), ('c', 'd')], [])
        >>> meek([], [("a", "b")])
        ([], [('a', 'b')])
    """
    arrows = list(dict.fromkeys(map(tuple, directed)))
    has = set(arrows)
    lines = {frozenset(e) for e in undirected if (e[0], e[1]) not in has and (e[1], e[0]) not in has}

    def adj(x: str, y: str) -> bool:
        return (x, y) in has or (y, x) in has or frozenset((x, y)) in lines

    nodes = sorted({n for e in (*arrows, *lines) for n in e})
    changed = True
    while changed:
        changed = False
        for line in sorted(lines, key=sorted):
            for a, b in (tuple(sorted(line)), tuple(sorted(line))[::-1]):
                r1 = any((p, a) in has and p != b and not adj(p, b) for p in nodes)
                r2 = any((a, c) in has and (c, b) in has for c in nodes)
                both = [c for c in nodes if frozenset((a, c)) in lines and (c, b) in has]
                r3 = any(not adj(c, d) for c, d in combinations(both, 2))
                r4 = any(frozenset((a, d)) in lines and (d, c) in has and (c, b) in has
                         and adj(a, c) and not adj(b, d) for c in nodes for d in nodes if len({a, b, c, d}) == 4)
                if r1 or r2 or r3 or r4:
                    lines.discard(line)
                    arrows.append((a, b))
                    has.add((a, b))
                    changed = True
                    break
    return arrows, [tuple(e) for e in undirected if frozenset(e) in lines]


def pc_hybrid(
    cpdag: CPDAG,
    orient: Callable[[str, str], tuple[float, float, str]],
    threshold: float,
    data_confidence: float = 0.95,
) -> tuple[list[tuple[str, str, dict]], list[tuple[str, str, dict]]]:
    """The data's CPDAG, the LLM for what it leaves unoriented, Meek's rules on the LLM's confident arrows.

    Args:
        cpdag: what the data orient (:func:`data_cpdag`).
        orient: ``orient(a, b)`` -> (calibrated P(a -> b), the model's own P, evidence text).
        threshold: calibrated probability an LLM orientation needs to be used.

    Returns:
        (committed edges, undecided pairs), each as ``(u, v, attrs)``; edges carry ``origin``
        ``"data"`` (the data alone orient them) or ``"judge"`` (the LLM's arrow, or one Meek's rules
        derive from it).
    """
    answers: dict[tuple[str, str], tuple[float, float, str]] = {}
    required = []
    for a, b in cpdag.undirected:
        p, p_raw, ev = orient(a, b)
        answers[(a, b)] = (p, p_raw, ev)
        if max(p, 1 - p) >= threshold:
            required.append((a, b) if p >= 0.5 else (b, a))
    by_data = set(cpdag.directed)
    directed, undirected = meek([*cpdag.directed, *required], cpdag.undirected) if required else \
        (list(cpdag.directed), list(cpdag.undirected))
    by_llm = set(required)
    name = "PC" if cpdag.method == "pc" else "the data's colliders"
    edges: list[tuple[str, str, dict]] = []
    for u, v in directed:
        adjacent = cpdag.evidence.get(frozenset((u, v)), "data: adjacent")
        if (u, v) in by_llm:
            p, _, ev = answers.get((u, v)) or answers[(v, u)]
            conf = p if (u, v) in answers else 1 - p
            edges.append((u, v, {"confidence": float(conf), "evidence": f"{adjacent}; {ev}", "origin": "judge"}))
        elif (u, v) in by_data:
            how = adjacent if cpdag.method == "skeleton" else "data: oriented by PC"
            edges.append((u, v, {"confidence": data_confidence, "evidence": how, "origin": "data"}))
        else:
            edges.append((u, v, {"confidence": data_confidence, "origin": "judge",
                                 "evidence": f"data: oriented by {name} with the LLM's arrows"}))
    undecided = []
    for a, b in undirected:
        p, p_raw, ev = answers[(a, b)] if (a, b) in answers else orient(a, b)
        adjacent = cpdag.evidence.get(frozenset((a, b)), "data: adjacent")
        undecided.append((a, b, {"p": float(p), "p_raw": float(p_raw), "evidence": f"{adjacent}; {ev}"}))
    return edges, undecided
