"""How often `check_graph` rejects a true and a wrong graph on mixed continuous/categorical data.

Data: smoking -> tar -> cancer, tar recorded as "low"/"high" (cancer depends on the recorded
tar, so the chain is the truth for the observed columns). Graphs: the true chain, the fork
smoking -> {tar, cancer}, and the collider smoking -> tar <- cancer. Rejection rates over seeds
(local-test verdict: binomial excess or a Bonferroni-strong violation; DoWhy's permutation test is
not informative on three nodes and is left out), for

- ours: ``test="auto"`` (picks ``mixed``: nested regressions),
- main before this change: ``auto`` picked chi2 for every column once one was categorical, so the
  continuous columns went into contingency tables (reproduced here with DoWhy's validate_lmc),
- a user's workaround: tar coded 0/1 and Fisher-z on everything.

A calibrated check rejects the true graph in about alpha (5%) of the seeds or fewer and the
wrong graphs in (nearly) all.

Then, as a calibration check of the verdict itself on a larger true graph (6 continuous nodes,
15 local tests), how often each criterion rejects it: the binomial count of violations treats the
local tests as independent, which they are not, so it rejects a true graph more often than alpha.

Usage:
    python benchmarks/causal_check_mixed.py --seeds 50 --rows 1000
"""

from __future__ import annotations

import argparse
import time
import warnings

import networkx as nx
import numpy as np
import pandas as pd

from causal import check_graph
from causal.check import _binom_excess
from causal.citests import chi2

GRAPHS = {
    "chain (true)": nx.DiGraph([("smoking", "tar"), ("tar", "cancer")]),
    "fork (wrong)": nx.DiGraph([("smoking", "tar"), ("smoking", "cancer")]),
    "collider (wrong)": nx.DiGraph([("smoking", "tar"), ("cancer", "tar")]),
}


def data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    smoking = rng.normal(size=n)
    high = 1.5 * smoking + rng.normal(size=n) > 0
    cancer = 1.0 * high + rng.normal(size=n)
    return pd.DataFrame({"smoking": smoking, "tar": np.where(high, "high", "low"), "cancer": cancer})


def old_chi2_verdict(g: nx.DiGraph, df: pd.DataFrame, alpha: float = 0.05) -> bool:
    from dowhy.gcm.falsify import FalsifyConst, validate_lmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = validate_lmc(g, df, independence_test=chi2, conditional_independence_test=chi2,
                           significance_level=alpha, n_jobs=1)[FalsifyConst.P_VALUES]
    ps = [p for p, _ in res.values()]
    k = sum(p <= alpha for p in ps)
    return _binom_excess(k, len(ps), alpha) < alpha or any(p <= alpha / max(1, len(ps)) for p in ps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args()
    methods = {
        "ours: auto -> mixed": lambda g, df: check_graph(g, df, permutation_test=False).falsified,
        "main: chi2 on every column": old_chi2_verdict,
        "tar as 0/1 + fisher_z": lambda g, df: check_graph(
            g, df.assign(tar=(df.tar == "high").astype(float)), test="fisher_z", permutation_test=False).falsified,
    }
    rejected = {(m, gname): 0 for m in methods for gname in GRAPHS}
    seconds = {m: 0.0 for m in methods}
    for seed in range(args.seeds):
        df = data(args.rows, seed)
        for m, fn in methods.items():
            t0 = time.perf_counter()
            for gname, g in GRAPHS.items():
                rejected[(m, gname)] += bool(fn(g, df))
            seconds[m] += time.perf_counter() - t0
    print(f"rejection rate over {args.seeds} seeds, {args.rows} rows, alpha 0.05")
    print(f"{'method':30s}" + "".join(f"{g:>18s}" for g in GRAPHS) + f"{'s / check':>12s}")
    for m in methods:
        row = "".join(f"{rejected[(m, g)] / args.seeds:>18.0%}" for g in GRAPHS)
        print(f"{m:30s}{row}{seconds[m] / (args.seeds * len(GRAPHS)):>12.3f}")
    null_calibration(args.seeds)


def null_calibration(seeds: int, n: int = 500) -> None:
    g = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "f")])
    counts = {"binomial excess": 0, "Bonferroni-strong violation": 0, "verdict (either)": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(2, n))
        c = a + b + rng.normal(size=n)
        d = 0.8 * c + rng.normal(size=n)
        df = pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "e": 0.5 * d + rng.normal(size=n),
                           "f": 0.5 * a + rng.normal(size=n)})
        chk = check_graph(g, df, permutation_test=False)
        counts["binomial excess"] += chk.excess_p_value < chk.alpha
        counts["Bonferroni-strong violation"] += chk.strong_violations > 0
        counts["verdict (either)"] += chk.falsified
    print(f"\ntrue 6-node graph (15 local tests), {n} rows, {seeds} seeds: rejected by")
    for name, k in counts.items():
        print(f"  {name:30s}{k / seeds:>6.0%}   (nominal 5%)")


if __name__ == "__main__":
    main()
