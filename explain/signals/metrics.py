"""Metrics of a probability of hallucination against labels: AUROC, Brier score, ECE, accuracy.

Shared by :mod:`explain.signals.calibration` (dev metrics stored in a calibration file) and
``benchmarks/hallucination.py`` (test metrics).

Examples:
    >>> auroc([0.9, 0.8], [0.1, 0.8])
    0.875
    >>> brier([1.0, 0.0], [1, 0])
    0.0
    >>> round(ece([0.9, 0.1], [1, 0]), 3)
    0.1
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Probability that a positive outscores a negative (ties count half): the Mann-Whitney AUROC.

    Returns:
        a float in [0, 1], NaN when either side is empty.

    Examples:
        >>> auroc([3, 2], [1, 0])
        1.0
    """
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    values = np.concatenate([pos, neg])
    order = values.argsort(kind="mergesort")
    sorted_v = values[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def auroc_labels(score: Sequence[float], label: Sequence[int]) -> float:
    """AUROC of ``score`` for ``label == 1``.

    Examples:
        >>> auroc_labels([0.2, 0.9, 0.4], [0, 1, 0])
        1.0
    """
    s, y = np.asarray(score, float), np.asarray(label, int)
    return auroc(s[y == 1], s[y == 0])


def brier(prob: Sequence[float], label: Sequence[int]) -> float:
    """Mean squared error of the probability. Returns: a float in [0, 1] (0 is perfect)."""
    p, y = np.asarray(prob, float), np.asarray(label, float)
    return float(np.mean((p - y) ** 2))


def ece(prob: Sequence[float], label: Sequence[int], bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins.

    Returns:
        sum over bins of (bin share) x |mean label - mean probability|.
    """
    p, y = np.asarray(prob, float), np.asarray(label, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def accuracy(prob: Sequence[float], label: Sequence[int], threshold: float = 0.5) -> float:
    """Share of items where ``prob >= threshold`` equals the label.

    Examples:
        >>> accuracy([0.7, 0.2, 0.6], [1, 0, 0])
        0.6666666666666666
    """
    p, y = np.asarray(prob, float), np.asarray(label, int)
    return float(np.mean((p >= threshold).astype(int) == y))
