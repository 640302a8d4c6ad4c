"""Compare a proposed causal graph with the true one: SHD, edge precision / recall / F1, orientation.

Graphs are ``networkx.DiGraph`` over the same variable names (nodes missing in one graph simply
have no edges there). An edge's *skeleton* is the unordered pair; its *orientation* the ordered one.

Examples:
    >>> import networkx as nx
    >>> true, pred = nx.DiGraph([("a", "b"), ("b", "c")]), nx.DiGraph([("a", "b"), ("c", "b")])
    >>> shd(true, pred), orientation_accuracy(true, pred)
    (1, 0.5)
"""

from __future__ import annotations

import networkx as nx


def _skeleton(g: nx.DiGraph) -> set[frozenset]:
    return {frozenset((u, v)) for u, v in g.edges if u != v}


def _directed(g: nx.DiGraph) -> set[tuple]:
    return {(u, v) for u, v in g.edges if u != v}


def shd(true: nx.DiGraph, pred: nx.DiGraph) -> int:
    """Structural Hamming distance: missing + extra + wrongly oriented edges (a reversal counts 1).

    Returns:
        the number of edge insertions, deletions and reversals turning ``pred`` into ``true``.

    Examples:
        >>> shd(nx.DiGraph([("a", "b")]), nx.DiGraph([("b", "a"), ("b", "c")]))
        2
    """
    ts, ps = _skeleton(true), _skeleton(pred)
    td, pd_ = _directed(true), _directed(pred)
    missing = len(ts - ps)
    extra = len(ps - ts)
    wrong = 0
    for pair in ts & ps:
        u, v = tuple(pair)
        if ((u, v) in td) != ((u, v) in pd_) or ((v, u) in td) != ((v, u) in pd_):
            wrong += 1
    return missing + extra + wrong


def _prf(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def edge_scores(true: nx.DiGraph, pred: nx.DiGraph, oriented: bool = True) -> dict[str, float]:
    """Edge precision, recall and F1; ``oriented=False`` compares skeletons (direction ignored).

    Returns:
        ``{"precision": p, "recall": r, "f1": f}``.

    Examples:
        >>> edge_scores(nx.DiGraph([("a", "b")]), nx.DiGraph([("b", "a")]), oriented=False)["f1"]
        1.0
    """
    if oriented:
        t, p = _directed(true), _directed(pred)
    else:
        t, p = _skeleton(true), _skeleton(pred)
    return _prf(len(t & p), len(p), len(t))


def orientation_accuracy(true: nx.DiGraph, pred: nx.DiGraph) -> float:
    """Among true edges also found in ``pred`` (as pairs), the fraction oriented correctly.

    Returns:
        a fraction in [0, 1]; NaN when no true edge was found.

    Examples:
        >>> orientation_accuracy(nx.DiGraph([("a", "b"), ("c", "d")]), nx.DiGraph([("a", "b"), ("d", "c")]))
        0.5
    """
    td, pd_ = _directed(true), _directed(pred)
    found = [(u, v) for u, v in td if (u, v) in pd_ or (v, u) in pd_]
    if not found:
        return float("nan")
    return sum((u, v) in pd_ for u, v in found) / len(found)


def compare_graphs(true: nx.DiGraph, pred: nx.DiGraph) -> dict[str, float]:
    """All metrics at once.

    Returns:
        dict with ``shd``, ``precision``/``recall``/``f1`` (oriented), ``skeleton_precision``/
        ``skeleton_recall``/``skeleton_f1``, ``orientation_accuracy``, ``n_true``, ``n_pred``.

    Examples:
        >>> compare_graphs(nx.DiGraph([("a", "b")]), nx.DiGraph([("a", "b")]))["shd"]
        0.0
    """
    out: dict[str, float] = {"shd": float(shd(true, pred))}
    out.update(edge_scores(true, pred, oriented=True))
    out.update({f"skeleton_{k}": v for k, v in edge_scores(true, pred, oriented=False).items()})
    out["orientation_accuracy"] = orientation_accuracy(true, pred)
    out["n_true"] = float(true.number_of_edges())
    out["n_pred"] = float(pred.number_of_edges())
    return out
