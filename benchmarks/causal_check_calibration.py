"""Is `check_graph`'s verdict calibrated? False rejections of correct graphs against alpha, and power
on wrong versions of them, on continuous, categorical and mixed data.

For each of three true graphs, data are simulated from the graph (a fresh seed per repetition) and
`check_graph(..., permutation_test=False)` is run on the true graph and on wrong versions of it (an
edge reversed so that a collider appears or disappears, an edge missing). Printed per graph:

- the false-rejection rate of the true graph with its Monte Carlo standard error, beside alpha and
  the bound alpha + 2 SE (SE = sqrt(alpha (1 - alpha) / seeds), the spread a calibrated test shows);
- the same rate for the verdict whylm used before (binomial count of violations, or a
  Bonferroni-strong one), computed from the same checks: the baseline;
- power: the rejection rate of each wrong version (the target is >= 0.9).

With ``--dowhy-seeds K`` (default 0: off, it re-runs every test per permutation) it also reports how
often DoWhy's own permutation verdict (``falsify_graph``'s "falsified") calls the *true* graph
falsified over the first K seeds, which is why that verdict informs but does not decide.

Usage:
    python benchmarks/causal_check_calibration.py --seeds 100 --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import networkx as nx
import numpy as np
import pandas as pd

DEFAULT_JSON = Path(__file__).parent / "results" / "causal_check_calibration.json"


# --------------------------------------------------------------------------- graphs and data
def continuous(n: int, rng: np.random.Generator) -> pd.DataFrame:
    a, b = rng.normal(size=(2, n))
    c = a + b + rng.normal(size=n)
    d = 0.8 * c + rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "e": 0.5 * d + rng.normal(size=n),
                         "f": 0.5 * a + rng.normal(size=n)})


def _copy_or_random(src: np.ndarray, keep: float, levels: int, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(len(src)) < keep, src, rng.integers(0, levels, len(src)))


def categorical(n: int, rng: np.random.Generator) -> pd.DataFrame:
    a, b = rng.integers(0, 3, size=(2, n))
    u = rng.random(n)
    c = np.where(u < 0.45, a, np.where(u < 0.9, b, rng.integers(0, 3, n)))  # depends on both parents
    d = _copy_or_random(c, 0.6, 3, rng)
    e = _copy_or_random(d, 0.6, 3, rng)
    lab = np.array(["low", "mid", "high"])
    return pd.DataFrame({"a": lab[a], "b": lab[b], "c": lab[c], "d": lab[d], "e": lab[e]})


def mixed(n: int, rng: np.random.Generator) -> pd.DataFrame:
    a = rng.normal(size=n)
    b = rng.random(n) < 0.5
    c = a + 1.2 * b + rng.normal(size=n)
    d = np.digitize(c + 0.5 * rng.normal(size=n), [0.0, 1.5])  # three ordered labels from c
    e = np.array([-0.5, 0.5, 1.5])[d] + rng.normal(size=n)
    f = rng.random(n) < 1 / (1 + np.exp(-1.5 * a))
    return pd.DataFrame({"a": a, "b": np.where(b, "yes", "no"), "c": c,
                         "d": np.array(["low", "mid", "high"])[d], "e": e, "f": np.where(f, "on", "off")})


CASES: dict[str, dict] = {
    "continuous 6 nodes (fisher_z)": {
        "data": continuous, "rows": 500,
        "true": [("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "f")],
        "wrong": {
            "a->c reversed (collider gone)": [("c", "a"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "f")],
            "c->d missing": [("a", "c"), ("b", "c"), ("d", "e"), ("a", "f")],
            "d->e reversed (new collider)": [("a", "c"), ("b", "c"), ("c", "d"), ("e", "d"), ("a", "f")],
        },
    },
    "categorical 5 nodes (chi2)": {
        "data": categorical, "rows": 1500,
        "true": [("a", "c"), ("b", "c"), ("c", "d"), ("d", "e")],
        "wrong": {
            "a->c reversed (collider gone)": [("c", "a"), ("b", "c"), ("c", "d"), ("d", "e")],
            "c->d missing": [("a", "c"), ("b", "c"), ("d", "e")],
            "d->e reversed (new collider)": [("a", "c"), ("b", "c"), ("c", "d"), ("e", "d")],
        },
    },
    "mixed 6 nodes (mixed)": {
        "data": mixed, "rows": 800,
        "true": [("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "f")],
        "wrong": {
            "a->c reversed (collider gone)": [("c", "a"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "f")],
            "c->d missing": [("a", "c"), ("b", "c"), ("d", "e"), ("a", "f")],
            "d->e reversed (new collider)": [("a", "c"), ("b", "c"), ("c", "d"), ("e", "d"), ("a", "f")],
        },
    },
}


def _graph(edges: list[tuple[str, str]], nodes: list[str]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


# --------------------------------------------------------------------------- run
def run_case(name: str, case: dict, seeds: int, alpha: float, dowhy_seeds: int,
             check: Callable) -> dict:
    t0 = time.perf_counter()
    nodes = list(case["data"](10, np.random.default_rng(0)).columns)
    true_g = _graph(case["true"], nodes)
    wrong = {k: _graph(v, nodes) for k, v in case["wrong"].items()}
    false_rej = old_false_rej = dowhy_false = dowhy_runs = 0
    power = {k: 0 for k in wrong}
    test = None
    for seed in range(seeds):
        df = case["data"](case["rows"], np.random.default_rng(1000 + seed))
        chk = check(true_g, df, alpha=alpha, permutation_test=False)
        test = chk.test
        false_rej += chk.falsified
        old_false_rej += chk.falsified or chk.excess_p_value < alpha  # the verdict before Holm
        for k, g in wrong.items():
            power[k] += check(g, df, alpha=alpha, permutation_test=False).falsified
        if seed < dowhy_seeds:
            d = check(true_g, df, alpha=alpha, permutation_test=True)
            dowhy_runs += d.dowhy_falsified is not None
            dowhy_false += bool(d.dowhy_falsified)
    rate = false_rej / seeds
    bound = alpha + 2 * _se(alpha, seeds)
    return {
        "graph": name, "test": test, "rows": case["rows"], "seeds": seeds, "alpha": alpha,
        "n_tests": len(list(_lmc_pairs(true_g))),
        "false_rejection": rate, "false_rejection_se": _se(rate, seeds), "bound": bound,
        "calibrated": rate <= bound,
        "baseline_false_rejection": old_false_rej / seeds,
        "baseline_false_rejection_se": _se(old_false_rej / seeds, seeds),
        "power": {k: v / seeds for k, v in power.items()},
        "min_power": min(power.values()) / seeds,
        "dowhy_false_rejection": (dowhy_false / dowhy_runs) if dowhy_runs else None,
        "dowhy_seeds": dowhy_runs,
        "seconds": time.perf_counter() - t0,
    }


def _lmc_pairs(g: nx.DiGraph):
    for node in g.nodes:
        others = set(g.nodes) - nx.descendants(g, node) - set(g.predecessors(node)) - {node}
        for o in others:
            yield node, o


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=100, help="repetitions per graph (default 100)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--dowhy-seeds", type=int, default=0,
                    help="also run DoWhy's permutation verdict on the true graphs for this many seeds")
    ap.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (default 1)")
    ap.add_argument("--only", default=None, help="run only the graphs whose name contains this text")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the JSON (default {DEFAULT_JSON})")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    from causal import check_graph

    rows = []
    for name, case in CASES.items():
        if args.only and args.only not in name:
            continue
        rows.append(run_case(name, case, args.seeds, args.alpha, args.dowhy_seeds, check_graph))
        r = rows[-1]
        print(f"\n{name}: {r['rows']} rows, {r['n_tests']} implied independences, test {r['test']}, "
              f"{r['seeds']} seeds, {r['seconds']:.0f} s")
        print(f"  false rejection of the true graph   ours (Holm) {r['false_rejection']:.3f} "
              f"± {r['false_rejection_se']:.3f}   baseline (binomial or Bonferroni) "
              f"{r['baseline_false_rejection']:.3f} ± {r['baseline_false_rejection_se']:.3f}   "
              f"alpha {args.alpha}, bound alpha + 2 SE = {r['bound']:.3f}  "
              f"{'OK' if r['calibrated'] else 'ABOVE BOUND'}")
        if r["dowhy_false_rejection"] is not None:
            print(f"  DoWhy's permutation verdict on the true graph: falsified in "
                  f"{r['dowhy_false_rejection']:.2f} of {r['dowhy_seeds']} seeds")
        for k, p in r["power"].items():
            print(f"  power, {k:32s} {p:.3f}")
    out = {"benchmark": "causal_check_calibration", "alpha": args.alpha, "seeds": args.seeds,
           "threads": args.threads, "rows": rows}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")
    return out


if __name__ == "__main__":
    main()
