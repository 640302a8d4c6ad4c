"""Context attribution at interactive speed (issue 17): screens + exact top-K against exact leave-one-out.

For each haystack (invented facts, :mod:`explain.attribution.haystacks`: one needle, two needles, two-part answers;
development seeds and held-out seeds) of about 1k, 2k, 4k and 8k context tokens, and for each screen
and K, the table gives: seconds, full-pass equivalents (seconds / one plain forward over the same
text, measured in the same run), peak RSS (psutil, sampled), recall of the exact top-3 in the
screened top-K, Spearman of the run's values (exact for the K, estimates for the rest) against exact
leave-one-out (up to ``--exact-max`` tokens), and whether the needles are in the exact top-K with
the key first. Exact leave-one-out (our engine, every sentence) and captum's FeatureAblation over
the same sentence mask (up to ``--captum-max`` tokens) are rows of the same table; above those
lengths their time is the cost model's estimate, and the row says so.

    python benchmarks/context_attribution.py --threads 2 --json benchmarks/results/context_attribution.json
    python benchmarks/context_attribution.py --quick
    python benchmarks/context_attribution.py --lengths 8192 --kinds two --haystacks 1 --exact-max 0 --screens attention
    python benchmarks/context_attribution.py --merge results/a.json results/b.json --json results/c.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import load_model, markdown_table, write_json, write_report
from long_context import captum_run, measured
from scipy.stats import spearmanr

from explain import attribute, estimate_cost
from explain.attribution.haystacks import make_haystack
from explain.attribution.inputs import build_input
from explain.model import with_context

HELD_OUT_SEED = 1000
MATERIAL = 0.1  # a source "matters" when its exact drop is at least this share of the largest


def plain_forward_seconds(lm: Any, text: str, target: str) -> float:
    """Seconds of one plain forward over ``text`` + target (the best of two). Returns: seconds."""
    ids = torch.tensor([lm.encode(text) + lm.encode(target, special=False)[:-1]])
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        with torch.no_grad():
            lm.forward_logits(ids, 1)
        best = min(best, time.perf_counter() - start)
    return best


def needle_check(res: Any, h: dict[str, Any], k: int, needles: list[str] | None = None) -> tuple[bool, bool]:
    """(every needle, or every one of ``needles``, is among the top-k sources and exact, the key
    needle is first)."""
    order = list(np.argsort(-res.seq_attr, kind="stable"))[:k]
    exact = res.exact if res.exact is not None else np.ones(len(res.input_tokens), bool)
    top = [res.input_tokens[i] for i in order if exact[i]]
    wanted = h["needles"] if needles is None else needles
    return all(n in top for n in wanted), bool(top) and top[0] == h["key"]


def needle_drops(lm: Any, inp: Any, h: dict[str, Any], exact: Any = None,
                 names: list[str] | None = None) -> list[float]:
    """Exact leave-one-out drop of each needle, in nats: read from the full exact run (``exact`` over
    ``names``) where there is one, else one removal row per needle. Returns: drops, as ``h["needles"]``."""
    if exact is not None and names is not None:
        return [float(exact[names.index(n)]) for n in h["needles"]]
    from explain.attribution.batched_forward import BatchedForward

    where = [next(f for f in range(inp.n) if inp.feature_names[f].strip() == n.strip()) for n in h["needles"]]
    engine = BatchedForward(lm, inp, baseline=0, max_rows=1)
    keep = ~torch.eye(inp.n, dtype=torch.bool)[where]
    return [float(d) for d in (engine.original[None, :] - engine(keep)).sum(-1)]


def run_haystack(lm: Any, h: dict[str, Any], args: argparse.Namespace, n_tokens: int) -> list[dict[str, Any]]:
    """All rows (exact, captum, each screen x K) for one haystack. Returns: the rows."""
    q, ctx, ans = h["question"], h["context"], h["answer"]
    fwd = plain_forward_seconds(lm, with_context(q, ctx), ans)
    base = {"tokens": n_tokens, "kind": h["kind"], "seed": h["seed"],
            "held_out": h["seed"] >= HELD_OUT_SEED, "plain_forward_s": fwd}
    rows: list[dict[str, Any]] = []
    exact_vals = None
    exact_res = None
    n_src = None
    if n_tokens <= args.exact_max:
        res, secs, peak, _ = measured(lambda: attribute(lm, q, ans, context=ctx, sources="sentences",
                                                        max_seconds=1e9, progress=False))
        exact_vals, exact_res = res.seq_attr, res
        n_src = len(res.input_tokens)
        both, key_first = needle_check(res, h, 5)
        rows.append({**base, "method": "exact LOO (ours)", "K": n_src, "seconds": secs, "measured": True,
                     "fp_equiv": secs / fwd, "peak_gb": peak / 1e9, "recall3": 1.0, "recall_material": 1.0,
                     "spearman": 1.0,
                     "needles_top5": both, "key_first": key_first})
    else:
        cost = estimate_cost(lm, q, ans, context=ctx, sources="sentences")
        rows.append({**base, "method": "exact LOO (ours)", "K": None, "seconds": cost.seconds, "measured": False,
                     "fp_equiv": cost.seconds / fwd, "peak_gb": cost.memory_bytes / 1e9})
    inp = build_input(lm, q, ans, sources="sentences", context=ctx)
    # a needle "is used" when removing it costs at least MATERIAL of the largest needle's drop: at 8k
    # the model can ignore a linking fact, and then exact leave-one-out does not rank it either
    drops = needle_drops(lm, inp, h, exact_vals, None if exact_res is None else list(exact_res.input_tokens))
    used = [n for n, d in zip(h["needles"], drops) if d >= MATERIAL * max(drops)]
    base.update(needle_drops=[round(d, 4) for d in drops], needles_used=f"{len(used)}/{len(drops)}")
    for r in rows:
        r.update(needle_drops=base["needle_drops"], needles_used=base["needles_used"])
    if exact_res is not None:
        rows[0]["used_top5"] = needle_check(exact_res, h, 5, used)[0]
    if n_tokens <= args.captum_max:
        _, secs, peak, _ = measured(lambda: captum_run(lm, inp, "ablation", 0, baseline=0))
        rows.append({**base, "method": "captum FeatureAblation (same mask, replacement)", "K": inp.n,
                     "seconds": secs, "measured": True, "fp_equiv": secs / fwd, "peak_gb": peak / 1e9})
    else:  # one full-length sequence per source, at batch 8: about n / 8 passes of 8 rows
        rows.append({**base, "method": "captum FeatureAblation (same mask, replacement)", "K": inp.n,
                     "seconds": (inp.n + 1) * fwd, "measured": False, "fp_equiv": float(inp.n + 1)})
    top3 = set(np.argsort(-exact_vals, kind="stable")[:3]) if exact_vals is not None else None
    # the sources that matter: past the needles, exact drops are a flat floor (0.1-1 nats apart)
    material = set(np.flatnonzero(exact_vals >= MATERIAL * exact_vals.max())) if exact_vals is not None else None
    for screen in args.screens:
        for k in args.top_k:
            opts = {"head_weights": args.head_weights} if screen == "fitted_attention" and args.head_weights else {}
            res, secs, peak, _ = measured(lambda: attribute(lm, q, ans, context=ctx, sources="sentences",
                                                            top_k=k, screen=screen, max_seconds=1e9,
                                                            progress=False, **opts))
            chosen = res.info["screen_rank"][:k]
            row = {**base, "method": f"screen {screen}", "K": k, "seconds": secs, "measured": True,
                   "fp_equiv": secs / fwd, "peak_gb": peak / 1e9, "sources": len(res.input_tokens),
                   "screen_s": res.info.get("screen_seconds"),
                   "estimated_s": res.info.get("estimated_seconds")}
            if row["estimated_s"]:
                row["estimate_ratio"] = row["estimated_s"] / secs
            row["needles_top5"], row["key_first"] = needle_check(res, h, 5)
            row["used_top5"] = needle_check(res, h, 5, used)[0]
            if top3 is not None:
                row["recall3"] = len(top3 & set(chosen)) / 3
                row["recall_material"] = len(material & set(chosen)) / len(material)
                row["spearman"] = float(spearmanr(res.seq_attr, exact_vals)[0])
                row["max_err_exact"] = float(np.abs(res.seq_attr[res.exact] - exact_vals[res.exact]).max())
            rows.append(row)
            print(f"  {h['kind']} seed {h['seed']} {n_tokens}: {screen} K={k} {secs:.1f}s "
                  f"({secs / fwd:.1f} fwd) recall3={row.get('recall3')} needles={row['needles_top5']} "
                  f"key_first={row['key_first']}", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """One line per (length, method, K): means over haystacks. Returns: table rows."""
    keys = sorted({(r["tokens"], r["method"], r["K"] if r["method"].startswith("screen") else -1, r["held_out"])
                   for r in rows}, key=lambda t: (t[0], t[3], t[1], t[2]))
    out = []
    for tokens, method, k, held in keys:
        rs = [r for r in rows if r["tokens"] == tokens and r["method"] == method
              and (k == -1 or r["K"] == k) and r["held_out"] == held]
        mean = lambda key: (float(np.mean([r[key] for r in rs if r.get(key) is not None]))  # noqa: E731
                            if any(r.get(key) is not None for r in rs) else None)
        frac = lambda key: (f"{sum(bool(r[key]) for r in rs if key in r)}/{sum(key in r for r in rs)}"  # noqa: E731
                            if any(key in r for r in rs) else None)
        # runs from before needle drops were kept: every needle in the top 5 implies every used one
        used = [r.get("used_top5", True if r.get("needles_top5") else None) for r in rs]
        used_cell = f"{sum(map(bool, used))}/{len(used)}" if None not in used else None
        out.append([tokens, "held-out" if held else "dev", method, None if k == -1 else k, len(rs), mean("seconds"),
                    mean("fp_equiv"), mean("peak_gb"), mean("recall3"), mean("recall_material"), mean("spearman"),
                    frac("needles_top5"), used_cell, frac("key_first"), mean("estimate_ratio"),
                    "measured" if all(r["measured"] for r in rs) else "estimated"])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048], help="context tokens")
    p.add_argument("--kinds", nargs="+", default=["one", "two", "multi"], choices=["one", "two", "multi"])
    p.add_argument("--haystacks", type=int, default=1, help="development haystacks per kind and length")
    p.add_argument("--held-out", type=int, default=1, help="held-out haystacks per kind and length")
    p.add_argument("--screens", nargs="+", default=["fitted_attention", "hierarchical", "block_attention", "attention",
                                                    "gradient"])
    p.add_argument("--top-k", type=int, nargs="+", default=[5])
    p.add_argument("--head-weights", default=None, help="head weights for fitted_attention (default: the shipped file)")
    p.add_argument("--exact-max", type=int, default=2048, help="longest context with a measured exact run")
    p.add_argument("--captum-max", type=int, default=0, help="longest context with a measured captum run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="512 tokens, one haystack per kind, attention screen")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "context_attribution.json"))
    p.add_argument("--merge", nargs="+", metavar="JSON", help="only merge the rows of earlier runs into --json")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.json)
    if args.quick:
        args.lengths, args.haystacks, args.held_out, args.screens = [512], 1, 0, ["attention"]
    lm = load_model(args.threads)
    count = lambda s: lm.encode(s, special=False)  # noqa: E731
    rows: list[dict[str, Any]] = []
    window = getattr(lm.model.config, "max_position_embeddings", None) or 1 << 30
    for n_tokens in args.lengths:
        n_ctx = min(n_tokens, window - 96)  # the question and answer must fit the model's window
        for kind in args.kinds:
            seeds = list(range(args.haystacks)) + list(range(HELD_OUT_SEED, HELD_OUT_SEED + args.held_out))
            for seed in seeds:
                h = make_haystack(count, n_ctx, seed, kind)
                rows += run_haystack(lm, h, args, n_tokens)
                if args.json:
                    write_json(args.json, {"settings": vars(args), "rows": rows})
    report(rows, args.json, machine=f"{args.threads} torch threads, {lm.device}")


HEADER = ["context tokens", "haystacks' seeds", "method", "K", "haystacks", "seconds", "full-pass equiv.",
          "peak RSS GB", "recall exact top-3 in top-K", "recall of sources >= 10% of the top", "Spearman vs exact",
          "needles in exact top-5", "needles used in exact top-5", "key first", "cost estimate / measured", "time"]
PER_HAYSTACK = ["tokens", "kind", "seed", "held_out", "method", "K", "seconds", "fp_equiv", "peak_gb", "recall3",
                "recall_material", "needles_top5", "needles_used", "needle_drops", "used_top5", "key_first",
                "estimate_ratio"]


def report(rows: list[dict[str, Any]], path: str | None, command: str | None = None,
           machine: str | None = None) -> None:
    """Print the summary and write the report JSON (summary and per-haystack tables, raw rows)."""
    table = summarise(rows)
    print(markdown_table(HEADER, table))
    per = [[r.get(c) for c in PER_HAYSTACK] for r in rows]
    write_report(path, command, [{"title": "Means per context length, seed set, screen and K",
                                  "columns": HEADER, "rows": table},
                                 {"title": "Per haystack", "columns": PER_HAYSTACK, "rows": per}],
                 machine=machine, rows=rows)


def merge(paths: list[str], out: str) -> None:
    """One report from the raw rows of several runs (each run's command is kept). Returns: None."""
    import json
    import shlex

    rows, commands = [], []
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows += data["rows"]
        settings = data.get("settings")
        commands.append(data.get("command") or "python benchmarks/context_attribution.py " + " ".join(
            f"--{k.replace('_', '-')} " + " ".join(shlex.quote(str(x)) for x in (v if isinstance(v, list) else [v]))
            for k, v in (settings or {}).items() if k not in ("json", "quick") and v is not None))
    report(rows, out, command=" ; ".join(commands) + " ; python benchmarks/context_attribution.py --merge "
           + " ".join(paths) + f" --json {out}")


if __name__ == "__main__":
    main()
