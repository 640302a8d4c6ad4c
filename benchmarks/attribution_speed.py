"""Attribution speed on the embedded model: every method against its captum counterpart.

For prompts of 32/64/128 tokens (the first N tokens of a fixed passage) and a 16-token target,
each row times one way of computing an attribution and gives its max |difference| to a reference:

- ablation: ours, captum ``FeatureAblation`` default path (``forward_in_tokens=True``), captum's
  single-pass path (``forward_in_tokens=False``), and one plain batched forward over the n + 1
  perturbed sequences (no cache reuse, full LM head); reference: brute-force teacher-forced LOO.
- shapley / kernelshap / lime: ours (prefix-tree engine) vs captum ``LLMAttribution`` single-pass
  with the same seed and samples; reference: captum (token matrix for shapley, sequence vector for
  kernelshap / lime). For shapley also ours with the prefix tree off (the plain batched engine).
- integrated_gradients / input_x_gradient: ours vs captum ``LLMGradientAttribution`` on the
  embedding layer; reference: captum's token matrix.
- attention / shap: ours only (no captum counterpart).

Usage:
    python benchmarks/attribution_speed.py --quick
    python benchmarks/attribution_speed.py --lengths 32 64 128 --target-len 16 --json speed.json
    python benchmarks/attribution_speed.py --lengths 32 64 --methods ablation shapley --sampling-max-n 32 \
        --captum-default-max-n 0 --threads 1      # benchmarks/results/attribution_speed.json
    python benchmarks/attribution_speed.py --lengths 32 64 --threads 1 \
        --methods shapley kernelshap lime integrated_gradients       # the sampling and IG rows
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import default_json, load_model, machine_line, markdown_table, prompt_of_length, table, write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from reference import leave_one_out  # noqa: E402  the tests' brute force: plain forwards, no library code

METHODS = ("ablation", "shapley", "kernelshap", "lime", "integrated_gradients", "input_x_gradient",
           "attention", "shap")


def settings(quick: bool) -> dict[str, dict[str, Any]]:
    """Per-method options, the same for ours and captum's."""
    if quick:
        return {"shapley": {"n_samples": 2}, "kernelshap": {"n_samples": 60}, "lime": {"n_samples": 60},
                "integrated_gradients": {"n_steps": 8}, "shap": {"max_evals": 200}}
    return {"shapley": {"n_samples": 3}, "kernelshap": {"n_samples": 64}, "lime": {"n_samples": 64},
            "integrated_gradients": {"n_steps": 16}, "shap": {"max_evals": 500}}


def without_prefix_tree(fn: Any) -> Any:
    """Run ``fn`` with the sampling methods on the plain batched engine (the prefix tree off)."""
    from explain.attribution import perturbation_sampling

    class Off(perturbation_sampling.PrefixTreeForward):
        def __init__(self, fwd: Any, **kw: Any) -> None:
            super().__init__(fwd, **kw)
            self.usable = False

    real = perturbation_sampling.PrefixTreeForward
    perturbation_sampling.PrefixTreeForward = Off
    try:
        return fn()
    finally:
        perturbation_sampling.PrefixTreeForward = real


def timed(fn: Any) -> tuple[Any, tuple[float, float]]:
    """Run ``fn`` once. Returns: (its result, (wall seconds, this process's CPU seconds)).

    CPU seconds are what the ratios use: with ``--threads 1`` they barely move when other jobs
    share the machine, while wall time does.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall, time.process_time() - cpu)


def plain_batched_loo(lm: Any, inp: Any, batch: int = 8) -> np.ndarray:
    """LOO with plain batched forwards over the n + 1 sequences: full LM head, no cache reuse."""
    seq = torch.tensor(inp.sequence)
    ids = seq.repeat(inp.n + 1, 1)
    for f, positions in enumerate(inp.features):
        ids[f + 1, positions] = 0
    tgt = torch.tensor(inp.target_ids)
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), batch):
            logits = lm.model(input_ids=ids[start:start + batch], use_cache=False).logits[:, -inp.m:]
            logp = torch.log_softmax(logits.float(), -1)
            out.append(logp.gather(-1, tgt[None, :, None].expand(len(logp), -1, 1))[..., 0].double())
    lp = torch.cat(out)
    return (lp[0][None] - lp[1:]).T.numpy()


def captum_perturbation(lm: Any, cls: Any, prompt: str, target_ids: list[int], in_tokens: bool,
                        **kw: Any) -> Any:
    from captum.attr import LLMAttribution, TextTokenInput

    torch.manual_seed(0)
    return LLMAttribution(cls(lm.model), lm.tokenizer).attribute(
        TextTokenInput(prompt, lm.tokenizer), target=torch.tensor(target_ids), forward_in_tokens=in_tokens, **kw
    )


def captum_gradient(lm: Any, cls: Any, prompt: str, target_ids: list[int], **kw: Any) -> Any:
    from captum.attr import LLMGradientAttribution, TextTokenInput

    layer = cls(lm.model, lm.model.get_input_embeddings())
    return LLMGradientAttribution(layer, lm.tokenizer).attribute(
        TextTokenInput(prompt, lm.tokenizer), target=torch.tensor(target_ids), **kw
    )


def maxdiff(a: Any, b: Any) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def bench_length(lm: Any, n: int, m: int, methods: list[str], opts: dict, args: argparse.Namespace) -> list[dict]:
    from captum.attr import (FeatureAblation, KernelShap, LayerGradientXActivation, LayerIntegratedGradients,
                             Lime, ShapleyValueSampling)

    from explain import attribute
    from explain.attribution import build_input

    prompt, target = prompt_of_length(lm, n, m)
    inp = build_input(lm, prompt, target)
    rows: list[dict] = []

    def row(method: str, impl: str, seconds: tuple[float, float], diff: float | None,
            ours_s: tuple[float, float] | None, info: dict | None = None, ref: str = "") -> None:
        rows.append({"n": inp.n, "m": inp.m, "method": method, "impl": impl, "seconds": seconds[0],
                     "cpu_seconds": seconds[1],
                     "speedup_of_ours": None if ours_s is None else seconds[1] / ours_s[1],
                     "max_abs_diff": diff, "reference": ref,
                     "forward_passes": (info or {}).get("forward_passes"),
                     "token_positions": (info or {}).get("token_positions")})
        print(f"  n={inp.n} {method:<20} {impl:<34} {seconds[0]:8.2f}s wall {seconds[1]:8.2f}s cpu  diff={diff}",
              flush=True)

    for method in methods:
        if method in ("shapley", "kernelshap", "lime") and args.sampling_max_n and inp.n > args.sampling_max_n:
            continue
        kw = opts.get(method, {})
        ours, t_ours = timed(lambda: attribute(lm, prompt, target, method=method, baseline=0, progress=False, **kw))
        if method == "ablation":
            ref, t_ref = timed(lambda: leave_one_out(lm.model, inp.prompt_ids, inp.target_ids, inp.features, 0))
            row(method, "ours", t_ours, maxdiff(ours.token_attr, ref), None, ours.info, "brute-force LOO")
            row(method, "brute-force LOO (n+1 passes)", t_ref, 0.0, t_ours, ref="brute-force LOO")
            plain, t_plain = timed(lambda: plain_batched_loo(lm, inp))
            row(method, "plain batched forward", t_plain, maxdiff(plain, ref), t_ours, ref="brute-force LOO")
            single, t_single = timed(lambda: captum_perturbation(lm, FeatureAblation, prompt, inp.target_ids, False))
            row(method, "captum forward_in_tokens=False", t_single, maxdiff(single.token_attr, ref), t_ours,
                ref="brute-force LOO")
            if inp.n <= args.captum_default_max_n:
                default, t_def = timed(lambda: captum_perturbation(lm, FeatureAblation, prompt, inp.target_ids, True))
                row(method, "captum default (in tokens, cache)", t_def, maxdiff(default.token_attr, ref), t_ours,
                    ref="brute-force LOO")
        elif method in ("shapley", "kernelshap", "lime"):
            cls = {"shapley": ShapleyValueSampling, "kernelshap": KernelShap, "lime": Lime}[method]
            ref, t_ref = timed(lambda: captum_perturbation(lm, cls, prompt, inp.target_ids, False, **kw))
            if method == "shapley":
                diff = maxdiff(ours.token_attr, ref.token_attr)
            else:
                diff = maxdiff(ours.seq_attr, ref.seq_attr)
            row(method, f"ours {kw}", t_ours, diff, None, ours.info, "captum (same seed)")
            if method == "shapley":
                plain, t_plain = timed(lambda: without_prefix_tree(
                    lambda: attribute(lm, prompt, target, method=method, baseline=0, progress=False, **kw)))
                row(method, "ours without the prefix tree", t_plain, maxdiff(plain.token_attr, ref.token_attr),
                    t_ours, plain.info, "captum (same seed)")
            row(method, "captum forward_in_tokens=False", t_ref, 0.0, t_ours, ref="captum (same seed)")
        elif method in ("integrated_gradients", "input_x_gradient"):
            cls = LayerIntegratedGradients if method == "integrated_gradients" else LayerGradientXActivation
            ref, t_ref = timed(lambda: captum_gradient(lm, cls, prompt, inp.target_ids, **kw))
            row(method, f"ours {kw}", t_ours, maxdiff(ours.token_attr, ref.token_attr), None, ours.info, "captum")
            row(method, "captum LLMGradientAttribution", t_ref, 0.0, t_ours, ref="captum")
        else:
            row(method, f"ours {kw}", t_ours, None, None, ours.info, "")
    return rows


def tree_plan_table(lengths: list[int], target_len: int, opts: dict) -> str:
    """Token positions the prefix tree computes vs one full pass per mask, from captum's own mask
    draws (seed 0; no model needed: the masks do not depend on the model's answers).

    Returns: a markdown table.
    """
    from types import SimpleNamespace

    from captum.attr import KernelShap, Lime, ShapleyValueSampling

    from explain.attribution.perturbation_sampling import PERTURBATIONS_PER_EVAL, MaskTable, _seeded
    from explain.attribution.prefix_tree import distinct_prefixes, plan

    out = []
    for n in lengths:
        bounds, length = np.arange(n + 1), n + target_len - 1
        for name, cls in (("shapley", ShapleyValueSampling), ("kernelshap", KernelShap), ("lime", Lime)):
            table = MaskTable(SimpleNamespace(inp=SimpleNamespace(n=n, m=target_len)), multi_output=name == "shapley")
            method = cls(table)
            _seeded(0, lambda: method.attribute(torch.ones(1, n), n_samples=opts[name]["n_samples"],
                                                perturbations_per_eval=PERTURBATIONS_PER_EVAL))
            bits = torch.stack(list(table.pending.values())).numpy()
            d = distinct_prefixes(bits)
            levels = plan(d, bounds, length)
            tree = sum(d[hi] * (bounds[hi] - bounds[lo]) for lo, hi in zip(levels, levels[1:]))
            tree += len(bits) * (length - bounds[levels[-1]])
            full = len(bits) * length
            trie = int(d[1:].sum()) + len(bits) * (target_len - 1)
            out.append([n, name, opts[name]["n_samples"], len(bits), len(levels), tree, full, full / tree, full / trie])
    return markdown_table(["n", "method", "n_samples", "distinct masks", "tree levels", "positions (tree)",
                           "positions (one pass per mask)", "fewer by", "fewer by (every level)"], out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128], help="prompt lengths in tokens")
    parser.add_argument("--target-len", type=int, default=16, help="target length in tokens")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--quick", action="store_true", help="one length (32), fewer samples and steps")
    parser.add_argument("--captum-default-max-n", type=int, default=64,
                        help="skip captum's slow default FeatureAblation path above this prompt length")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--sampling-max-n", type=int, default=0,
                        help="skip shapley / kernelshap / lime above this prompt length (0: never skip)")
    parser.add_argument("--json", "--out", dest="json", default=default_json("attribution_speed"),
                        help="write the tables as JSON here (default: %(default)s; '' to skip)")
    parser.add_argument("--plan-only", action="store_true",
                        help="print the prefix tree's position counts for the sampling methods (no model)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    lengths = [32] if args.quick else args.lengths
    if args.plan_only:
        print(tree_plan_table(lengths, args.target_len, settings(args.quick)))
        return
    lm = load_model(args.threads)
    # untimed: the machine's speed probe (estimate_cost measures it once) and torch's first-call set-up
    from explain import attribute

    attribute(lm, "Warm up.", " Done", method="shapley", n_samples=1, progress=False)
    print(f"model {lm.name}, torch threads {torch.get_num_threads()}, lengths {lengths}, target {args.target_len}")
    rows: list[dict] = []
    for n in lengths:
        rows += bench_length(lm, n, args.target_len, list(args.methods), settings(args.quick), args)
    header = ["n", "m", "method", "implementation", "wall s", "CPU s", "CPU time / ours", "max abs diff", "vs",
              "fwd passes", "positions"]
    cells = [[r["n"], r["m"], r["method"], r["impl"], r["seconds"], r["cpu_seconds"], r["speedup_of_ours"],
              r["max_abs_diff"], r["reference"], r["forward_passes"], r["token_positions"]] for r in rows]
    print()
    print(markdown_table(header, cells))
    tables = []
    for method in dict.fromkeys(r["method"] for r in rows):
        ref = next(r["reference"] for r in rows if r["method"] == method)
        ns = dict.fromkeys(r["n"] for r in rows if r["method"] == method)
        options = settings(args.quick).get(method)
        tables.append(table(
            f"{method}: {args.target_len}-token target, prompts of {', '.join(map(str, ns))} tokens",
            header[:2] + header[3:8] + header[9:],
            [c[:2] + c[3:8] + c[9:] for c, r in zip(cells, rows) if r["method"] == method],
            notes=(f"Max abs diff against {ref or 'nothing'}. 'CPU time / ours' = this row's process CPU seconds "
                   f"over ours at the same n (above 1: ours is faster); CPU seconds move less than wall seconds "
                   f"on a shared machine." + (f" Options: {options}." if options else ""))))
    write_report(args.json, None, tables, machine=machine_line(torch.get_num_threads()), rows=rows)


if __name__ == "__main__":
    main()
