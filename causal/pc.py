"""The data part of the hybrid proposal with causal-learn's PC, the LLM's confident answers as
background knowledge.

:func:`run_pc` runs PC (stable, Fisher-z for numeric data, chi-square on category codes for
discrete data) and reads its CPDAG: which pairs are adjacent, which of them the data orient.
:func:`pc_hybrid` asks the LLM only about adjacent pairs the data leave unoriented; an answer the
judge is confident about becomes background knowledge (required edge, forbidden reverse) and PC is
run again with it, so its orientation rules propagate the LLM's arrows consistently.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0); a = rng.normal(size=2000); c = rng.normal(size=2000)
    >>> df = pd.DataFrame({"a": a, "c": c, "b": a + c + rng.normal(size=2000)})
    >>> directed, undirected = run_pc(df)
    >>> sorted(directed), undirected
    ([('a', 'b'), ('c', 'b')], [])
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

from causal.citests import is_discrete


def _matrix(data: pd.DataFrame) -> tuple[np.ndarray, str]:
    if is_discrete(data):
        codes = np.column_stack([data[c].astype("category").cat.codes.to_numpy() for c in data.columns])
        return codes.astype(float), "chisq"
    return data.to_numpy(dtype=float), "fisherz"


def run_pc(
    data: pd.DataFrame,
    alpha: float = 0.05,
    max_cond: int | None = 2,
    required: list[tuple[str, str]] = (),
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """causal-learn's PC on ``data``, with ``required`` edges as background knowledge.

    Returns:
        (directed edges ``(cause, effect)``, adjacent pairs left unoriented ``(a, b)`` with a < b
        in column order); a pair PC marks bidirected (conflicting colliders) counts as unoriented.
    """
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    names = [str(c) for c in data.columns]
    x, test = _matrix(data)
    bk = None
    if required:
        from causallearn.graph.GraphNode import GraphNode

        nodes = {n: GraphNode(n) for n in names}
        bk = BackgroundKnowledge()
        for u, v in required:
            bk.add_required_by_node(nodes[u], nodes[v])
            bk.add_forbidden_by_node(nodes[v], nodes[u])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cg = pc(x, alpha=alpha, indep_test=test, stable=True, background_knowledge=bk, show_progress=False,
                node_names=names, max_k=max_cond)
    g = cg.G.graph  # g[j, i] == 1 and g[i, j] == -1: i -> j; both -1: i - j; both 1: i <-> j
    directed, undirected = [], []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if g[i, j] == 0 and g[j, i] == 0:
                continue
            if g[j, i] == 1 and g[i, j] == -1:
                directed.append((names[i], names[j]))
            elif g[i, j] == 1 and g[j, i] == -1:
                directed.append((names[j], names[i]))
            else:
                undirected.append((names[i], names[j]))
    return directed, undirected


def pc_hybrid(
    data: pd.DataFrame,
    orient: Callable[[str, str], tuple[float, float, str]],
    threshold: float,
    alpha: float = 0.05,
    max_cond: int | None = 2,
    data_confidence: float = 0.95,
) -> tuple[list[tuple[str, str, dict]], list[tuple[str, str, dict]]]:
    """PC for the data, the LLM for what the data leave unoriented, PC again with its confident answers.

    Args:
        data: one column per variable.
        orient: ``orient(a, b)`` -> (calibrated P(a -> b), the model's own P, evidence text).
        threshold: calibrated probability an LLM orientation needs to be used.

    Returns:
        (committed edges, undecided pairs), each as ``(u, v, attrs)``.
    """
    directed, undirected = run_pc(data, alpha, max_cond)
    answers: dict[tuple[str, str], tuple[float, float, str]] = {}
    required = []
    for a, b in undirected:
        p, p_raw, ev = orient(a, b)
        answers[(a, b)] = (p, p_raw, ev)
        if max(p, 1 - p) >= threshold:
            required.append((a, b) if p >= 0.5 else (b, a))
    if required:
        directed, undirected = run_pc(data, alpha, max_cond, required=required)
    by_llm = set(required)
    edges: list[tuple[str, str, dict]] = []
    for u, v in directed:
        if (u, v) in by_llm:
            p, _, ev = answers.get((u, v)) or answers[(v, u)]
            conf = p if (u, v) in answers else 1 - p
            edges.append((u, v, {"confidence": float(conf), "evidence": f"data: adjacent (PC); {ev}"}))
        else:
            how = "oriented by PC" + (" with the LLM's arrows" if required else "")
            edges.append((u, v, {"confidence": data_confidence, "evidence": f"data: {how}"}))
    undecided = []
    for a, b in undirected:
        p, p_raw, ev = answers[(a, b)] if (a, b) in answers else orient(a, b)
        undecided.append((a, b, {"p": float(p), "p_raw": float(p_raw), "evidence": f"data: adjacent (PC); {ev}"}))
    return edges, undecided

