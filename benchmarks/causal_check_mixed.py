"""How often `check_graph` rejects a true and a wrong graph on mixed continuous/categorical data.

Data: smoking -> tar -> cancer, tar recorded as "low"/"high" (cancer depends on the recorded
tar, so the chain is the truth for the observed columns). Graphs: the true chain, the fork
smoking -> {tar, cancer}, and the collider smoking -> tar <- cancer. Rejection rates over seeds
(local-test verdict; DoWhy's permutation test is not informative on three nodes and is left out), for

- ours: ``test="auto"`` (picks ``mixed``: nested regressions),
- an older whylm: ``auto`` picked chi2 for every column once one was categorical, so the
  continuous columns went into contingency tables (reproduced here with DoWhy's validate_lmc and
  the same Holm verdict),
- a user's workaround: tar coded 0/1 and Fisher-z on everything.

A calibrated check rejects the true graph in about alpha (5%) of the seeds or fewer and the
wrong graphs in (nearly) all.

Then, on a larger true graph (6 continuous nodes, 15 local tests), how often each criterion
rejects it: the binomial count of violations (whylm's verdict before Holm, together with a
Bonferroni-strong violation) treats the local tests as independent, which they are not, so it
rejects a true graph more often than alpha; Holm's correction (the verdict now) does not.
``benchmarks/causal_check_calibration.py`` does this over three graphs and data kinds with power.

Usage:
    python benchmarks/causal_check_mixed.py --seeds 50 --rows 1000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from causal import check_graph
from causal.citests import chi2

DEFAULT_JSON = Path(__file__).parent / "results" / "causal_check_mixed.json"

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
    return bool(ps) and min(ps) * len(ps) <= alpha  # Holm's global verdict, as check_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the JSON (default {DEFAULT_JSON})")
    args = ap.parse_args()
    methods = {
        "ours: auto -> mixed": lambda g, df: check_graph(g, df, permutation_test=False).falsified,
        "old: chi2 on every column": old_chi2_verdict,
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
    null = null_calibration(args.seeds)
    out = {"benchmark": "causal_check_mixed", "seeds": args.seeds, "rows": args.rows, "alpha": 0.05,
           "rejection_rate": [{"method": m, "graph": g, "rate": rejected[(m, g)] / args.seeds} for m in methods
                              for g in GRAPHS],
           "seconds_per_check": {m: seconds[m] / (args.seeds * len(GRAPHS)) for m in methods},
           "true_6_node_graph": null}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


def null_calibration(seeds: int, n: int = 500) -> dict[str, float]:
    g = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "f")])
    counts = {"binomial excess": 0, "old verdict (binomial or Bonferroni)": 0, "Holm (the verdict)": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(2, n))
        c = a + b + rng.normal(size=n)
        d = 0.8 * c + rng.normal(size=n)
        df = pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "e": 0.5 * d + rng.normal(size=n),
                           "f": 0.5 * a + rng.normal(size=n)})
        chk = check_graph(g, df, permutation_test=False)
        counts["binomial excess"] += chk.excess_p_value < chk.alpha
        counts["old verdict (binomial or Bonferroni)"] += chk.excess_p_value < chk.alpha or chk.falsified
        counts["Holm (the verdict)"] += chk.falsified
    print(f"\ntrue 6-node graph (15 local tests), {n} rows, {seeds} seeds: rejected by")
    for name, k in counts.items():
        print(f"  {name:38s}{k / seeds:>6.0%}   (nominal 5%)")
    return {name: k / seeds for name, k in counts.items()}


if __name__ == "__main__":
    main()
