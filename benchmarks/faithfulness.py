"""Faithfulness of every attribution method: deletion curves and AOPC on the embedded model.

For each built-in prompt the model first generates its greedy answer (the target). Each method
ranks the prompt tokens by their attribution to the whole target (``seq_attr``); the top k are
deleted for k = ceil(f * n), f = 0.1 .. 0.5, and the drop in the target's log-probability is
measured. AOPC is the mean drop over those k (higher = the method found the tokens the answer
depends on). A random ranking (mean of 3 orders) is the floor.

Every method runs under each baseline of ``--baselines``: ``default`` (the per-tokenizer neutral
token, :func:`explain.attribution.default_baseline`) and ``0`` (captum's id 0, on SmolLM2 the
``<|endoftext|>`` token). Two deletion curves per run: *replace* (the top tokens overwritten with
the same baseline the method used) and *remove* (the top tokens removed from the prompt: the same
yardstick for both baselines).

Usage:
    python benchmarks/faithfulness.py --n-prompts 30
    python benchmarks/faithfulness.py --methods ablation attention --n-prompts 10 --json faith.json
    python benchmarks/faithfulness.py --n-prompts 8 --threads 1   # benchmarks/results/faithfulness.json
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from _common import default_json, load_model, machine_line, markdown_table, table, write_report

PROMPTS = [
    "The capital of France is",
    "The chemical symbol for gold is",
    "Water boils at a temperature of",
    "The largest planet in our solar system is",
    "Shakespeare wrote the play Romeo and",
    "The Great Wall is located in",
    "The author of the Harry Potter books is",
    "The currency used in Japan is the",
    "Photosynthesis takes place in the",
    "The first man to walk on the moon was",
    "Mount Everest is the highest mountain in",
    "The Mona Lisa was painted by",
    "The speed of light is approximately",
    "The human heart has four",
    "The longest river in Africa is the",
    "Albert Einstein developed the theory of",
    "The main ingredient of guacamole is",
    "A triangle with three equal sides is called",
    "The opposite of hot is",
    "The Statue of Liberty was a gift from",
    "Bees make honey from the nectar of",
    "The freezing point of water in Fahrenheit is",
    "The planet known as the Red Planet is",
    "Tokyo is the capital city of",
    "The smallest prime number is",
    "Penguins mostly live in the",
    "In chess, the piece that can only move diagonally is the",
    "The language spoken in Brazil is",
    "The tallest animal in the world is the",
    "An octopus has eight",
    "The inventor of the telephone was",
    "The Pacific Ocean is the largest",
]
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
METHODS = {
    "ablation": {},
    "shapley": {"n_samples": 5},
    "kernelshap": {"n_samples": 200},
    "lime": {"n_samples": 200},
    "integrated_gradients": {"n_steps": 20},
    "input_x_gradient": {},
    "attention": {},
    "shap": {"max_evals": 500},
}


def deletion_drops(lm: Any, inp: Any, order: np.ndarray, baseline: int, remove: bool = False) -> np.ndarray:
    """Drop of the total target log-prob when the first k features of ``order`` are replaced by
    ``baseline`` (or removed), per fraction."""
    from dataclasses import replace

    from explain.attribution.batched_forward import BatchedForward

    fwd = BatchedForward(lm, replace(inp, removal=remove), baseline=baseline)
    keep = torch.ones(len(FRACTIONS), inp.n, dtype=torch.bool)
    for r, f in enumerate(FRACTIONS):
        keep[r, order[: max(1, math.ceil(f * inp.n))]] = False
    return (fwd.original.detach().sum() - fwd(keep).sum(1)).numpy()


def main(argv: list[str] | None = None) -> None:
    from explain import attribute
    from explain.attribution import build_input

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-prompts", type=int, default=30, help=f"number of prompts (up to {len(PROMPTS)})")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--target-len", type=int, default=8, help="greedy target length in tokens")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--baselines", nargs="+", default=["default", "0"],
                        help="'default' (per-tokenizer neutral token) and/or token ids")
    parser.add_argument("--json", "--out", dest="json", default=default_json("faithfulness"),
                        help="write the tables as JSON here (default: %(default)s; '' to skip)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from explain.attribution import default_baseline

    lm = load_model(args.threads)
    prompts = PROMPTS[: args.n_prompts]
    inputs = [build_input(lm, p, None, max_new_tokens=args.target_len) for p in prompts]
    default_id, rule = default_baseline(lm)
    baselines = {b: (default_id if b == "default" else int(b)) for b in args.baselines}
    print(f"model {lm.name}, {len(inputs)} prompts, mean n={np.mean([i.n for i in inputs]):.1f}, "
          f"mean m={np.mean([i.m for i in inputs]):.1f}, torch threads {torch.get_num_threads()}")
    print(f"default baseline: id {default_id}, {rule}")
    keys = [(name, b) for b in baselines for name in args.methods] + [("random", b) for b in baselines]
    curves: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {k: {"replace": [], "remove": []} for k in keys}
    cost: dict[tuple[str, str], list[tuple[float, int]]] = {k: [] for k in keys}
    rng = np.random.default_rng(0)
    for k, (prompt, inp) in enumerate(zip(prompts, inputs)):
        for b, bid in baselines.items():
            for name in args.methods:
                start = time.perf_counter()
                res = attribute(lm, prompt, inp.target, method=name, baseline=bid, progress=False,
                                max_seconds=1e6, **METHODS[name])
                cost[(name, b)].append((time.perf_counter() - start, int(res.info.get("forward_passes") or 0)))
                order = np.argsort(-res.seq_attr, kind="stable")
                curves[(name, b)]["replace"].append(deletion_drops(lm, inp, order, bid))
                curves[(name, b)]["remove"].append(deletion_drops(lm, inp, order, bid, remove=True))
            orders = [rng.permutation(inp.n) for _ in range(3)]
            for kind in ("replace", "remove"):
                curves[("random", b)][kind].append(
                    np.mean([deletion_drops(lm, inp, o, bid, remove=kind == "remove") for o in orders], 0))
            cost[("random", b)].append((0.0, 0))
        print(f"  prompt {k + 1}/{len(prompts)}: {prompt!r} -> {inp.target!r}", flush=True)
    rows, payload = [], {}
    for (name, b), per_kind in curves.items():
        replace_curve = np.mean(per_kind["replace"], 0)
        remove_curve = np.mean(per_kind["remove"], 0)
        secs = float(np.mean([c[0] for c in cost[(name, b)]]))
        passes = float(np.mean([c[1] for c in cost[(name, b)]]))
        label = f"{b} (id {baselines[b]})"
        rows.append([name, label, float(replace_curve.mean()), float(remove_curve.mean()),
                     *[float(v) for v in remove_curve], secs, passes])
        payload[f"{name}|{b}"] = {"baseline": baselines[b], "aopc_replace": float(replace_curve.mean()),
                                  "aopc_remove": float(remove_curve.mean()), "curve_replace": replace_curve.tolist(),
                                  "curve_remove": remove_curve.tolist(), "seconds_per_prompt": secs,
                                  "forward_passes_per_prompt": passes}
    rows.sort(key=lambda r: (r[1], -r[3]))
    header = ["method", "baseline", "AOPC replace (nats)", "AOPC remove (nats)",
              *[f"remove @{int(f * 100)}%" for f in FRACTIONS], "s / prompt", "fwd passes"]
    print()
    print(markdown_table(header, rows))
    tables = []
    for b, bid in baselines.items():
        label = f"{b} (id {bid})"
        floor = payload[f"random|{b}"]["aopc_remove"]
        tables.append(table(
            f"AOPC per method, baseline {label}: {len(inputs)} prompts, greedy {args.target_len}-token targets",
            ["method", "AOPC replace (nats)", "AOPC remove (nats)", "AOPC remove / random",
             *header[4:]],
            [[r[0], r[2], r[3], r[3] / floor if floor else None, *r[4:]] for r in rows if r[1] == label],
            notes=("AOPC = mean drop of the target's log-probability when the top 10-50% of prompt tokens are "
                   "overwritten by the baseline (replace) or removed (remove); higher is more faithful. 'random' "
                   "is the floor (mean of 3 seeded random orders). Seconds are wall time on a shared machine.")))
    write_report(args.json, None, tables, machine=machine_line(torch.get_num_threads()), default_baseline_rule=rule,
                 results=payload)


if __name__ == "__main__":
    main()
