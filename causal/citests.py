"""Fast conditional-independence tests and a PC-style skeleton search.

- :func:`fisher_z`: partial correlation with Fisher's z transform (continuous, roughly linear data);
  one least-squares solve for all variables at once, so a test costs microseconds, not seconds.
- :func:`chi2`: the G-test of conditional independence for discrete data, stratified by the
  conditioning set, with contingency tables built by one ``bincount``.
- :class:`Mixed` / :func:`mixed`: continuous and categorical columns together, by nested
  regressions (F-test for a continuous response, likelihood ratio of multinomial logistic
  regressions, or the G-test when everything is categorical); :func:`choose_test` picks
  ``fisher_z``, ``chi2`` or ``mixed`` from the column kinds.
- :func:`skeleton`: PC-stable adjacency search (conditioning sets up to ``max_cond``) returning the
  undirected skeleton, separating sets and unshielded-collider orientations.

All tests take numpy arrays ``x (n,)``, ``y (n,) or (n, k)``, ``z (n, m) or None`` and return a
p-value, which is the signature DoWhy's ``falsify_graph`` expects.

Examples:
    >>> rng = np.random.default_rng(0); x = rng.normal(size=500); y = x + rng.normal(size=500)
    >>> fisher_z(x, y) < 1e-6, fisher_z(x, rng.normal(size=500)) > 0.01
    (True, True)
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Callable

import networkx as nx
import numpy as np
import pandas as pd
from scipy import special, stats

CITest = Callable[..., float]


def _as2d(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    return a if a.shape[1] else None


def fisher_z(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """Fisher-z test of ``x ⊥ y | z`` by partial correlation (Bonferroni over columns of x, y).

    Returns:
        the p-value (small = dependent).

    Examples:
        >>> rng = np.random.default_rng(1); z = rng.normal(size=400)
        >>> x, y = z + rng.normal(size=400), z + rng.normal(size=400)
        >>> fisher_z(x, y) < 0.01, fisher_z(x, y, z) > 0.01
        (True, True)
    """
    X, Y, Z = _as2d(x), _as2d(y), _as2d(z)
    X = X.astype(float)
    Y = Y.astype(float)
    n, nx_ = X.shape
    A = np.hstack([X, Y])
    k = 0
    if Z is not None:
        Zc = np.hstack([np.ones((n, 1)), Z.astype(float)])
        coef, *_ = np.linalg.lstsq(Zc, A, rcond=None)
        R = A - Zc @ coef
        k = Z.shape[1]
    else:
        R = A - A.mean(axis=0)
    norms = np.sqrt((R * R).sum(axis=0))
    norms[norms < 1e-12] = np.inf  # a constant (or fully explained) column carries no dependence
    Rn = R / norms
    r = Rn[:, :nx_].T @ Rn[:, nx_:]
    dof = n - k - 3
    if dof < 1:
        return 1.0
    r = np.clip(np.abs(r), 0.0, 1 - 1e-15)
    zstat = np.sqrt(dof) * np.arctanh(r)
    p = special.erfc(zstat / np.sqrt(2.0))
    return float(min(1.0, p.min() * p.size))


def _codes(a: np.ndarray) -> np.ndarray:
    """One integer code per row of a (n,) or (n, k) array of discrete values."""
    a = _as2d(a)
    code = np.zeros(a.shape[0], dtype=np.int64)
    for j in range(a.shape[1]):
        c, uniq = pd.factorize(pd.Series(a[:, j]), sort=True)
        code = code * max(1, len(uniq)) + c
        code = pd.factorize(code, sort=True)[0]  # keep codes small
    return code


def chi2(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """G-test (likelihood-ratio chi-square) of ``x ⊥ y | z`` for discrete data.

    Returns:
        the p-value; 1.0 when no stratum has two levels of both x and y.

    Examples:
        >>> rng = np.random.default_rng(0); x = rng.integers(0, 2, 1000)
        >>> chi2(x, x ^ (rng.random(1000) < 0.1)) < 1e-6, chi2(x, rng.integers(0, 3, 1000)) > 0.01
        (True, True)
    """
    cx, cy = _codes(x), _codes(y)
    cz = _codes(z) if _as2d(z) is not None else np.zeros_like(cx)
    kx, ky, kz = cx.max() + 1, cy.max() + 1, cz.max() + 1
    table = np.bincount((cz * kx + cx) * ky + cy, minlength=kz * kx * ky).reshape(kz, kx, ky)
    table = table.astype(float)
    rows = table.sum(axis=2, keepdims=True)
    cols = table.sum(axis=1, keepdims=True)
    tot = table.sum(axis=(1, 2), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = rows * cols / np.where(tot > 0, tot, 1)
        terms = np.where(table > 0, table * np.log(table / expected), 0.0)
    g = 2.0 * terms.sum()
    dof = ((rows[:, :, 0] > 0).sum(axis=1) - 1).clip(min=0) * ((cols[:, 0, :] > 0).sum(axis=1) - 1).clip(min=0)
    dof = int(dof.sum())
    if dof <= 0:
        return 1.0
    return float(stats.chi2.sf(g, dof))


def kernel(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """DoWhy's kernel-based (HSIC / KCI) test, for nonlinear continuous data (slow).

    Returns:
        the p-value.
    """
    from dowhy.gcm.independence_test import kernel_based

    return float(kernel_based(x, y, z) if _as2d(z) is not None else kernel_based(x, y))


# --------------------------------------------------------------------------- mixed data
def max_levels(n_rows: int) -> int:
    """The most distinct values a numeric column may have and still count as categorical.

    Returns:
        ``max(2, min(10, n_rows // 2))``.

    Examples:
        >>> max_levels(1000), max_levels(6)
        (10, 3)
    """
    return max(2, min(10, n_rows // 2))


def is_categorical(values: Any) -> bool:
    """True for a column of labels: non-numeric, boolean, or numeric with at most
    :func:`max_levels` distinct values.

    Returns:
        whether the column is categorical.

    Examples:
        >>> is_categorical(np.array(["low", "high"] * 5)), is_categorical(np.arange(100) / 7)
        (True, False)
    """
    s = pd.Series(np.asarray(values).reshape(-1)).infer_objects()  # numbers in an object array count as numbers
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return True
    return int(s.nunique()) <= max_levels(len(s))


def column_kinds(data: pd.DataFrame) -> dict[str, str]:
    """Each column's kind: ``"categorical"`` (see :func:`is_categorical`) or ``"continuous"``.

    Returns:
        ``{column: kind}``.

    Examples:
        >>> column_kinds(pd.DataFrame({"t": ["lo", "hi"] * 50, "x": np.arange(100.0)}))
        {'t': 'categorical', 'x': 'continuous'}
    """
    return {str(c): "categorical" if is_categorical(data[c]) else "continuous" for c in data.columns}


def choose_test(data: pd.DataFrame) -> str:
    """The test ``test="auto"`` uses: ``"fisher_z"`` when every column is continuous, ``"chi2"``
    when every column is categorical, else ``"mixed"``.

    Returns:
        the test name.

    Examples:
        >>> choose_test(pd.DataFrame({"t": ["lo", "hi"] * 50, "x": np.arange(100.0)}))
        'mixed'
    """
    kinds = set(column_kinds(data).values())
    if kinds == {"continuous"}:
        return "fisher_z"
    if kinds == {"categorical"}:
        return "chi2"
    return "mixed"


def _block(values: np.ndarray, categorical: bool) -> np.ndarray:
    """Design columns of one variable: one-hot codes (first level dropped) or the float values."""
    if not categorical:
        return values.astype(float).reshape(-1, 1)
    codes, levels = pd.factorize(pd.Series(values), sort=True)
    return np.eye(max(1, len(levels)))[codes][:, 1:]


def _design(blocks: list[np.ndarray], n: int) -> np.ndarray:
    return np.hstack([np.ones((n, 1)), *blocks]) if blocks else np.ones((n, 1))


def _f_test(x: np.ndarray, d0: np.ndarray, d1: np.ndarray) -> float:
    """Nested linear regressions of continuous ``x``: does ``d1`` explain more than ``d0``?"""
    n = len(x)
    rss = []
    for d in (d0, d1):
        coef, *_ = np.linalg.lstsq(d, x, rcond=None)
        r = x - d @ coef
        rss.append(float(r @ r))
    p0, p1 = np.linalg.matrix_rank(d0), np.linalg.matrix_rank(d1)
    df1, df2 = p1 - p0, n - p1
    scale = max(rss[0], 1e-300)
    if df1 <= 0 or df2 <= 0 or rss[0] <= 1e-12 * max(1.0, float(x @ x)):
        return 1.0  # nothing added, or x already fully explained: no evidence of dependence
    if rss[1] <= 1e-15 * scale:
        return 0.0
    f = max(0.0, (rss[0] - rss[1]) / df1) / (rss[1] / df2)
    return float(stats.f.sf(f, df1, df2))


def _logit_lr_test(x: np.ndarray, d0: np.ndarray, d1: np.ndarray) -> float:
    """Likelihood-ratio test of nested multinomial logistic regressions of categorical ``x``."""
    from sklearn.linear_model import LogisticRegression

    codes = pd.factorize(pd.Series(x), sort=True)[0]
    k = codes.max() + 1
    if k < 2:
        return 1.0
    ll = []
    for d in (d0, d1):
        if d.shape[1] == 1:  # intercept only: the marginal frequencies
            freq = np.bincount(codes) / len(codes)
            ll.append(float(np.log(freq[codes]).sum()))
            continue
        model = LogisticRegression(C=np.inf, max_iter=2000).fit(d[:, 1:], codes)
        prob = np.clip(model.predict_proba(d[:, 1:])[np.arange(len(codes)), codes], 1e-300, 1.0)
        ll.append(float(np.log(prob).sum()))
    dof = (k - 1) * (np.linalg.matrix_rank(d1) - np.linalg.matrix_rank(d0))
    if dof <= 0:
        return 1.0
    return float(stats.chi2.sf(max(0.0, 2.0 * (ll[1] - ll[0])), dof))


class Mixed:
    """Conditional-independence test for mixed continuous and categorical data, bound to one table.

    ``x ⊥ y | z`` by nested regressions: when ``x`` (or ``y``) is continuous it is regressed on
    ``z`` with and without the other variable (categorical regressors one-hot coded) and an F-test
    compares the fits; when both are categorical, the G-test :func:`chi2` is used if ``z`` is
    categorical too, else a likelihood-ratio test of multinomial logistic regressions. A
    categorical column is never treated as a number, and a continuous one is never put in a
    contingency table. Arrays from :attr:`frame` (a :class:`FastFrame`) carry their column
    indices, so the column kinds come from the whole table; other arrays are classified with
    :func:`is_categorical`.

    Examples:
        >>> rng = np.random.default_rng(0); s = rng.normal(size=600)
        >>> t = np.where(s + rng.normal(size=600) > 0, "high", "low")
        >>> c = (t == "high") + rng.normal(size=600)
        >>> m = Mixed(pd.DataFrame({"s": s, "t": t, "c": c})); f = m.frame
        >>> m(f["c"].values, f["s"].values) < 1e-3, m(f["c"].values, f["s"].values, f[["t"]].values) > 0.01
        (True, True)
    """

    def __init__(self, data: pd.DataFrame | None = None) -> None:
        self.frame = FastFrame(data) if data is not None else None
        self.kinds = [k == "categorical" for k in column_kinds(data).values()] if data is not None else []

    def _split(self, a: Any) -> list[tuple[np.ndarray, bool]]:
        """(values, is categorical) per variable (column) of an array argument."""
        if a is None:
            return []
        arr = _as2d(np.asarray(a))
        if arr is None:
            return []
        cols = getattr(a, "cols", None)
        if not self.kinds or cols is None or len(cols) != arr.shape[1]:
            return [(arr[:, j], is_categorical(arr[:, j])) for j in range(arr.shape[1])]
        return [(arr[:, j], self.kinds[c]) for j, c in enumerate(cols)]

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
        return _mixed_test(self._split(x), self._split(y), self._split(z))


Var = tuple[np.ndarray, bool]


def _mixed_test(xs: list[Var], ys: list[Var], zs: list[Var]) -> float:
    if len(xs) != 1 and len(ys) == 1:
        xs, ys = ys, xs
    if len(xs) != 1:  # several responses: Bonferroni over them
        ps = [_mixed_test([xv], ys, zs) for xv in xs]
        return float(min(1.0, min(ps) * len(ps)))
    (xv, xcat), = xs
    if xcat and len(ys) == 1 and not ys[0][1]:
        xs, ys = ys, xs  # regress the continuous one
        (xv, xcat), = xs
    n = len(xv)
    d0 = _design([_block(v, c) for v, c in zs], n)
    d1 = np.hstack([d0, *[_block(v, c) for v, c in ys]])
    if not xcat:
        return _f_test(xv.astype(float), d0, d1)
    if all(c for _, c in ys) and all(c for _, c in zs):
        zz = np.column_stack([v for v, _ in zs]) if zs else None
        return chi2(xv, np.column_stack([v for v, _ in ys]), zz)
    return _logit_lr_test(xv, d0, d1)


def mixed(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """:class:`Mixed` on plain arrays (each column's kind from its own values).

    Returns:
        the p-value.

    Examples:
        >>> rng = np.random.default_rng(0); a = rng.normal(size=300)
        >>> mixed(np.where(a > 0, "hi", "lo"), a + rng.normal(size=300)) < 1e-3
        True
    """
    return Mixed()(x, y, z)


TESTS: dict[str, CITest] = {"fisher_z": fisher_z, "chi2": chi2, "kernel": kernel, "mixed": mixed}


def is_discrete(data: pd.DataFrame) -> bool:
    """True when any column is non-numeric (categorical, strings, booleans).

    Returns:
        whether the chi-square test should be used.
    """
    return any(
        not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])
        for c in data.columns
    )


def _partial_corr_p(corr: np.ndarray, n: int, i: int, j: int, cond: tuple[int, ...]) -> float:
    idx = [i, j, *cond]
    sub = corr[np.ix_(idx, idx)]
    try:
        prec = np.linalg.inv(sub)
    except np.linalg.LinAlgError:
        prec = np.linalg.pinv(sub)
    denom = np.sqrt(abs(prec[0, 0] * prec[1, 1]))
    r = 0.0 if denom < 1e-15 else -prec[0, 1] / denom
    dof = n - len(cond) - 3
    if dof < 1:
        return 1.0
    r = min(abs(r), 1 - 1e-15)
    return float(special.erfc(np.sqrt(dof) * np.arctanh(r) / np.sqrt(2.0)))


def skeleton(
    data: pd.DataFrame,
    test: str = "auto",
    alpha: float = 0.05,
    max_cond: int = 2,
) -> tuple[nx.Graph, dict[frozenset, tuple[str, ...]], set[tuple[str, str]]]:
    """PC-stable adjacency search, then unshielded colliders.

    Args:
        data: one column per variable.
        test: ``"fisher_z"``, ``"chi2"`` or ``"auto"`` (chi2 when any column is non-numeric).
        alpha: significance level of each test.
        max_cond: largest conditioning set tried.

    Returns:
        (skeleton with edge attribute ``p_max``: the largest p-value seen for that pair,
        separating sets ``{frozenset({a, b}): (s, ...)}``, collider edges ``{(a, k), ...}``
        oriented by the data).

    Examples:
        >>> rng = np.random.default_rng(0); a, b = rng.normal(size=(2, 500))
        >>> df = pd.DataFrame({"a": a, "b": b, "c": a + b + rng.normal(size=500)})
        >>> g, sep, coll = skeleton(df)
        >>> sorted(g.edges), sep[frozenset(("a", "b"))], sorted(coll)
        ([('a', 'c'), ('b', 'c')], (), [('a', 'c'), ('b', 'c')])
    """
    cols = [str(c) for c in data.columns]
    if test == "auto":
        test = "chi2" if is_discrete(data) else "fisher_z"
    n = len(data)
    if test == "fisher_z":
        corr = np.corrcoef(data.to_numpy(dtype=float), rowvar=False)
        corr = np.nan_to_num(corr)

        def pval(i: int, j: int, cond: tuple[int, ...]) -> float:
            return _partial_corr_p(corr, n, i, j, cond)
    else:
        fn = TESTS[test]
        arr = data.to_numpy()
        if test == "chi2":
            arr = np.column_stack([_codes(arr[:, c]) for c in range(arr.shape[1])])

        def pval(i: int, j: int, cond: tuple[int, ...]) -> float:
            return fn(arr[:, i], arr[:, j], arr[:, list(cond)] if cond else None)

    d = len(cols)
    adj = {i: set(range(d)) - {i} for i in range(d)}
    pmax = {frozenset((i, j)): 0.0 for i in range(d) for j in range(i + 1, d)}
    sepsets: dict[frozenset, tuple[int, ...]] = {}
    for level in range(max_cond + 1):
        snapshot = {i: set(a) for i, a in adj.items()}  # PC-stable: order-independent
        removed = False
        for i in range(d):
            for j in sorted(snapshot[i]):
                if j <= i or j not in adj[i]:
                    continue
                key = frozenset((i, j))
                for base in (i, j):
                    others = sorted(snapshot[base] - {i, j})
                    if len(others) < level:
                        continue
                    done = False
                    for cond in combinations(others, level):
                        p = pval(i, j, cond)
                        pmax[key] = max(pmax[key], p)
                        if p > alpha:
                            adj[i].discard(j)
                            adj[j].discard(i)
                            sepsets[key] = cond
                            removed = done = True
                            break
                    if done:
                        break
        if not removed and all(len(a) - 1 < level + 1 for a in adj.values()):
            break
    g = nx.Graph()
    g.add_nodes_from(cols)
    for i in range(d):
        for j in adj[i]:
            if i < j:
                g.add_edge(cols[i], cols[j], p_max=float(pmax[frozenset((i, j))]))
    colliders: set[tuple[str, str]] = set()
    for k in range(d):
        for i, j in combinations(sorted(adj[k]), 2):
            if j in adj[i]:
                continue
            sep = sepsets.get(frozenset((i, j)))
            if sep is not None and k not in sep:
                colliders.add((cols[i], cols[k]))
                colliders.add((cols[j], cols[k]))
    # an edge claimed in both directions is a conflict: the data cannot orient it
    conflicted = {(a, b) for (a, b) in colliders if (b, a) in colliders}
    colliders -= conflicted
    named_sep = {frozenset((cols[a] for a in key)): tuple(cols[c] for c in s) for key, s in sepsets.items()}
    return g, named_sep, colliders


# --------------------------------------------------------------------------- fast path for DoWhy
class _Tagged(np.ndarray):
    """An array that remembers which data columns it holds (``cols``)."""

    cols: tuple[int, ...] = ()


class _Column:
    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values


class FastFrame:
    """A read-only stand-in for a DataFrame, for DoWhy's falsification loop.

    DoWhy indexes its data frame once per test (``data[X].values``), which costs far more than a
    Fisher-z test itself; this frame answers from a numpy array and tags the arrays with their
    column indices, so :class:`FisherZ` can use a precomputed correlation matrix.

    Examples:
        >>> f = FastFrame(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}))
        >>> f["b"].values.cols, "a" in f.columns
        ((1,), True)
    """

    def __init__(self, data: pd.DataFrame) -> None:
        self.columns = [str(c) for c in data.columns]
        self._index = {c: i for i, c in enumerate(self.columns)}
        self._arr = np.asarray(data.to_numpy())
        self.shape = self._arr.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> _Column:
        if isinstance(key, (list, tuple, set, frozenset)):
            idx = tuple(self._index[str(k)] for k in key)
            out = self._arr[:, list(idx)].view(_Tagged)
        else:
            idx = (self._index[str(key)],)
            out = self._arr[:, idx[0]].view(_Tagged)
        out.cols = idx
        return _Column(out)

    def to_numpy(self) -> np.ndarray:
        return self._arr


class FisherZ:
    """Fisher-z CI test bound to one data set: partial correlations from the inverse of a
    sub-matrix of the precomputed correlation matrix (microseconds per test); arrays that do not
    come from :class:`FastFrame` fall back to :func:`fisher_z`.

    Examples:
        >>> rng = np.random.default_rng(0); df = pd.DataFrame(rng.normal(size=(300, 3)), columns=list("abc"))
        >>> t = FisherZ(df); f = t.frame
        >>> abs(t(f["a"].values, f["b"].values, f["c"].values) - fisher_z(df.a, df.b, df.c)) < 1e-8
        True
    """

    def __init__(self, data: pd.DataFrame) -> None:
        self.frame = FastFrame(data)
        arr = self.frame.to_numpy().astype(float)
        self.n = arr.shape[0]
        self.corr = np.nan_to_num(np.corrcoef(arr, rowvar=False))

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
        cx, cy = getattr(x, "cols", None), getattr(y, "cols", None)
        cz = getattr(z, "cols", ()) if z is not None else ()
        if not cx or not cy or (z is not None and not cz):
            return fisher_z(np.asarray(x), np.asarray(y), None if z is None else np.asarray(z))
        ps = [_partial_corr_p(self.corr, self.n, i, j, tuple(cz)) for i in cx for j in cy]
        return float(min(1.0, min(ps) * len(ps)))
