"""Long prompts: sentence sources, the cost model, memory, and a needle-in-a-haystack test.

Three parts, all on the embedded model, in one run:

1. **Timing** (``--lengths``, default 512 1024 2048 4096 tokens): haystack prompts from our own
   filler text. Per length: sentence-source ablation, LIME (ContextCite's recipe: a sparse linear
   surrogate over ``--samples`` random source ablations) and KernelSHAP on our engine, beside
   captum's ``FeatureAblation`` / ``Lime`` / ``KernelShap`` run on the same feature mask (token ->
   sentence) with their own forward (one full teacher-forced pass per perturbation batch). Captum
   replaces a sentence's tokens with the baseline id (it cannot remove them), ours removes them;
   the work per perturbation is the same. Each row gives seconds, the estimate made before the run
   (:func:`explain.estimate_cost`, from the probe forwards alone: no correction from earlier runs)
   and their ratio, and the peak resident memory of the process
   during the call (sampled every 20 ms, minus the memory before it). Captum rows are skipped
   when their estimate exceeds ``--captum-max-seconds``.
2. **Memory** (``--memory-lengths``, default 2048 4096): peak RSS of sentence ablation's heaviest
   pass (the batch holding the most cache and activations, run alone; every other pass holds less).
3. **Cost model** (``--cost-lengths``, default 32 128 512 1024 2048 4096): predicted vs measured
   seconds of ``sources="sentences"`` ablation and, up to ``--token-max`` tokens, token-level
   ablation; and whether ``attribute`` refuses the token-level run at the default budget.
4. **Needle** (``--haystacks`` haystacks of ``--needle-tokens`` tokens): one sentence holds the
   answer, a distractor sentence has the same form with another colour and code; target = the
   answer. Top-1 hit rate of each method (the needle ranked first among all sources).

Usage (the figures in the README come from the first line; the second is the quick check):
    python benchmarks/long_context.py --threads 1 --out long.json
    python benchmarks/long_context.py --threads 1 --lengths 512 --cost-lengths 32 128 512 --haystacks 5 \
        --needle-tokens 512 --samples 32
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import warnings
from typing import Any, Callable

import numpy as np
import psutil
import torch
from _common import load_model, markdown_table, write_json

SUBJECTS = ["The harbour", "A village council", "The old library", "Our orchard", "The night train",
            "A small bakery", "The museum", "The river ferry", "A weather station", "The school choir",
            "The market square", "A mountain hut", "The city archive", "The lighthouse", "A paper mill"]
VERBS = ["reopened", "was repainted", "hosted a fair", "closed early", "was crowded", "stayed quiet",
         "ordered new maps", "lost its roof", "counted visitors", "planted trees", "changed its hours"]
WHEN = ["in spring", "after the storm", "on most Sundays", "during the festival", "last winter",
        "before the harvest", "in 1904", "around noon", "every other year", "at dawn"]
DETAILS = ["and nobody minded.", "while the bells rang.", "although it rained for days.",
           "as the records show.", "to general surprise.", "despite the cost.", "for the third time.",
           "which pleased the mayor.", "so the road was busy.", "with help from volunteers."]
COLOURS = ["blue", "red", "green", "amber", "violet", "silver", "orange", "white"]


def filler_sentence(rng: random.Random) -> str:
    """One sentence of neutral filler text. Returns: the sentence (no leading space)."""
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(WHEN)}, {rng.choice(DETAILS)}"


def haystack(lm: Any, n_tokens: int, seed: int) -> dict[str, Any]:
    """A prompt of about ``n_tokens`` tokens: filler, one needle, one distractor, then the question.

    Returns:
        dict with ``prompt``, ``target`` (the answer code), ``needle`` (the needle's text),
        ``distractor``.
    """
    rng = random.Random(seed)
    colour, other = rng.sample(COLOURS, 2)
    code, wrong = rng.sample(range(1000, 10000), 2)
    needle = f"The code for the {colour} vault is {code}."
    distractor = f"The code for the {other} vault is {wrong}."
    question = f"\nQuestion: what is the code for the {colour} vault?\nAnswer: The code for the {colour} vault is"
    budget = n_tokens - len(lm.encode(question, special=False)) - 2 * len(lm.encode(" " + needle, special=False))
    sentences: list[str] = []
    used = 0
    while used < budget:
        s = filler_sentence(rng)
        used += len(lm.encode(" " + s, special=False))
        sentences.append(s)
    sentences.insert(rng.randrange(len(sentences) + 1), needle)
    sentences.insert(rng.randrange(len(sentences) + 1), distractor)
    return {"prompt": " ".join(sentences) + question, "target": f" {code}", "needle": needle,
            "distractor": distractor}


class PeakMemory:
    """Context manager: the peak resident memory (bytes) above the level at entry, sampled."""

    def __enter__(self) -> "PeakMemory":
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def rss(self) -> int:
        """Peak RSS of the process during the block, bytes."""
        return self.peak

    @property
    def extra(self) -> int:
        """Peak RSS above the level at entry, bytes."""
        return self.peak - self.base


def measured(fn: Callable[[], Any]) -> tuple[Any, float, int, int]:
    """Run ``fn``. Returns: (result, seconds, peak RSS, peak RSS above the start), bytes."""
    with PeakMemory() as mem:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    return out, seconds, mem.rss, mem.extra


def captum_run(lm: Any, inp: Any, name: str, samples: int, baseline: int) -> np.ndarray:
    """captum's algorithm over the same token -> sentence feature mask, its own forward: the whole
    teacher-forced sequence per perturbation, ``perturbations_per_eval=8``. Returns: (n,) attributions."""
    from captum.attr import FeatureAblation, KernelShap, Lime

    seq = torch.tensor([inp.sequence])
    target = torch.tensor(inp.target_ids)
    mask = torch.full_like(seq, -1)
    for f, positions in enumerate(inp.features):
        mask[0, positions] = f
    fixed = mask < 0
    mask[fixed] = inp.n  # captum needs every position in some group: one extra group, never ablated
    m = inp.m

    def forward(ids: torch.Tensor) -> torch.Tensor:
        ids = torch.where(fixed.expand_as(ids), seq.expand_as(ids), ids)
        logits = lm.model(input_ids=ids, use_cache=False).logits[:, -m:].float()
        lp = torch.log_softmax(logits, -1).gather(-1, target[None, :, None].expand(ids.shape[0], -1, 1))
        return lp[..., 0].sum(-1)

    cls = {"ablation": FeatureAblation, "lime": Lime, "kernelshap": KernelShap}[name]
    kw: dict[str, Any] = {"baselines": baseline, "feature_mask": mask, "perturbations_per_eval": 8}
    if name != "ablation":
        kw["n_samples"] = samples
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        attr = cls(forward).attribute(seq, **kw)
    return np.array([float(attr[0, inp.features[f][0]]) for f in range(inp.n)])


OURS = {"ablation": {}, "lime": {"n_samples": 64}, "kernelshap": {"n_samples": 64}}


def timing(lm: Any, lengths: list[int], samples: int, captum_max: float,
           ablation_max: int = 10**9) -> list[list[Any]]:
    from explain import attribute
    from explain.attribution import build_input

    rows = []
    for n_tokens in lengths:
        h = haystack(lm, n_tokens, seed=10_000 + n_tokens)
        inp = build_input(lm, h["prompt"], h["target"], sources="sentences")
        for name in OURS:
            opts = {"n_samples": samples} if name != "ablation" else {}
            est = cold_estimate(lm, h["prompt"], h["target"], method=name, sources="sentences", **opts)
            if name == "ablation" and len(inp.prompt_ids) > ablation_max:  # estimated only (--ablation-max)
                rows.append([len(inp.prompt_ids), inp.n, f"ours {name}", float("nan"), est.seconds, float("nan"),
                             float("nan"), float("nan")])
                continue
            res, secs, rss, extra = measured(lambda: attribute(
                lm, h["prompt"], h["target"], method=name, sources="sentences", progress=False,
                max_seconds=1e6, **opts))
            rows.append([len(inp.prompt_ids), inp.n, f"ours {name}", secs, est.seconds, est.seconds / secs,
                         rss / 1e9, extra / 1e9])
            print(f"  {len(inp.prompt_ids)} tokens, {name}: {secs:.1f} s (estimate {est.seconds:.1f} s), "
                  f"peak RSS {rss / 1e9:.2f} GB", flush=True)
            # captum: estimated as a plain full pass per perturbation, 8 per batch
            n_pert = inp.n + 1 if name == "ablation" else samples
            ours_per_pos = est.seconds / max(1, est.positions)
            guess = n_pert * len(inp.sequence) * ours_per_pos
            if guess > captum_max:
                rows.append([len(inp.prompt_ids), inp.n, f"captum {name}", float("nan"), guess, float("nan"),
                             float("nan"), float("nan")])
                continue
            _, c_secs, c_rss, c_extra = measured(lambda: captum_run(lm, inp, name, samples, res.info["baseline"]))
            rows.append([len(inp.prompt_ids), inp.n, f"captum {name}", c_secs, float("nan"), float("nan"),
                         c_rss / 1e9, c_extra / 1e9])
            print(f"  {len(inp.prompt_ids)} tokens, captum {name}: {c_secs:.1f} s", flush=True)
    return rows


def cold_estimate(lm: Any, *args: Any, **kwargs: Any) -> Any:
    """``estimate_cost`` from the probe forwards alone, without the corrections earlier timed runs
    made (:func:`explain.budget.record_run`): the estimate a user gets on a fresh machine."""
    from dataclasses import replace

    from explain import budget, estimate_cost

    key = budget._speed_key(lm)
    current = budget.speed(lm)
    budget._SPEEDS[key] = replace(current, scales={})
    try:
        return estimate_cost(lm, *args, **kwargs)
    finally:
        budget._SPEEDS[key] = current


def cost_model(lm: Any, lengths: list[int], token_max: int, measure_max: int = 10**9) -> list[list[Any]]:
    from explain import ExplainError, attribute

    rows = []
    for n_tokens in lengths:
        h = haystack(lm, max(n_tokens, 40), seed=20_000 + n_tokens)
        for sources in ("sentences", "tokens"):
            est = cold_estimate(lm, h["prompt"], h["target"], sources=sources)
            n_prompt = int(est.what.split(" of ")[1].split(" ")[0].replace(",", ""))
            if sources == "tokens" and n_prompt > token_max:
                try:
                    start = time.perf_counter()
                    attribute(lm, h["prompt"], h["target"], sources="tokens", progress=False)
                    verdict = "ran"
                except ExplainError as err:
                    verdict = f"refused in {time.perf_counter() - start:.1f} s: {str(err)[:60]}..."
                rows.append([n_prompt, sources, est.seconds, float("nan"), float("nan"), verdict])
                continue
            if n_prompt > measure_max:
                rows.append([n_prompt, sources, est.seconds, float("nan"), float("nan"), "estimated only"])
                continue
            _, secs, _, _ = measured(lambda: attribute(lm, h["prompt"], h["target"], sources=sources,
                                                       progress=False, max_seconds=1e6))
            rows.append([n_prompt, sources, est.seconds, secs, est.seconds / secs, "ran"])
            print(f"  cost {n_prompt} tokens {sources}: estimate {est.seconds:.1f} s, measured {secs:.1f} s",
                  flush=True)
    return rows


def memory(lm: Any, lengths: list[int]) -> list[list[Any]]:
    """Peak memory of sentence-source ablation's heaviest pass, run alone: the batch of the engine's
    plan that holds the most key/value cache and activations (rows x (row length x cache per
    position + suffix x activations per position)); every other pass holds less."""
    from explain.attribution import build_input
    from explain.attribution.batched_forward import BatchedForward, plan_batches

    rows = []
    for n_tokens in lengths:
        h = haystack(lm, n_tokens, seed=30_000 + n_tokens)
        inp = build_input(lm, h["prompt"], h["target"], sources="sentences")

        def heaviest_pass() -> int:
            fwd = BatchedForward(lm, inp)
            keep = ~torch.eye(inp.n, dtype=torch.bool)
            starts = fwd.starts(keep)
            rows_all = fwd.removed_rows(keep)
            starts = torch.minimum(starts, torch.tensor([len(r) - inp.m for r in rows_all]))
            order = torch.argsort(starts, stable=True)
            lengths_sorted = [len(rows_all[int(r)]) for r in order]
            plan = plan_batches([int(starts[r]) for r in order], lengths_sorted, fwd.cap(inp.n), fwd.rows_for)

            def held(batch: tuple[int, int, int]) -> int:
                start, lo, hi = batch
                longest = max(lengths_sorted[lo:hi])
                return (hi - lo) * (longest * fwd.kv_bytes + (longest - start) * fwd.act_bytes)

            start, lo, hi = max(plan, key=held)
            fwd(keep[order[lo:hi]])
            return hi - lo

        n_rows, secs, rss, extra = measured(heaviest_pass)
        rows.append([len(inp.prompt_ids), inp.n, n_rows, secs, rss / 1e9, extra / 1e9])
        print(f"  memory {len(inp.prompt_ids)} tokens: heaviest pass of {n_rows} rows, peak RSS {rss / 1e9:.2f} GB",
              flush=True)
    return rows


def needle(lm: Any, n_haystacks: int, n_tokens: int, samples: int,
           methods: tuple[str, ...] = ("ablation", "lime", "kernelshap"),
           first: int = 0) -> tuple[list[list[Any]], dict[str, Any]]:
    from explain import attribute

    hits: dict[str, list[int]] = {**{m: [] for m in methods}, "random": []}
    secs: dict[str, list[float]] = {k: [] for k in hits}
    rng = np.random.default_rng(first)
    for k in range(first, first + n_haystacks):
        h = haystack(lm, n_tokens, seed=k)
        for name in methods:
            opts = {"n_samples": samples} if name != "ablation" else {}
            res, s, _, _ = measured(lambda: attribute(lm, h["prompt"], h["target"], method=name,
                                                      sources="sentences", progress=False, max_seconds=1e6, **opts))
            top = res.top_features(1)[0][0]
            hits[name].append(int(top == h["needle"]))
            secs[name].append(s)
        hits["random"].append(int(rng.integers(len(res.input_tokens)) == res.input_tokens.index(h["needle"])))
        print(f"  haystack {k + 1}/{first + n_haystacks} ({len(res.input_tokens)} sources): "
              + ", ".join(f"{n} {'hit' if hits[n][-1] else 'miss'}" for n in hits), flush=True)
    rows = [[name, float(np.mean(v)), sum(v), len(v), float(np.mean(secs[name])) if secs[name] else float("nan")]
            for name, v in hits.items()]
    return rows, {name: v for name, v in hits.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="*", default=[512, 1024, 2048, 4096])
    parser.add_argument("--cost-lengths", type=int, nargs="*", default=[32, 128, 512, 1024, 2048, 4096])
    parser.add_argument("--token-max", type=int, default=256, help="longest prompt for a measured token-level run")
    parser.add_argument("--measure-max", type=int, default=10**9,
                        help="cost model: longer prompts are estimated, not run")
    parser.add_argument("--memory-lengths", type=int, nargs="*", default=[2048, 4096],
                        help="peak memory of sentence ablation's largest pass at these lengths")
    parser.add_argument("--haystacks", type=int, default=20)
    parser.add_argument("--needle-methods", nargs="+", default=["ablation", "lime", "kernelshap"],
                        choices=["ablation", "lime", "kernelshap"])
    parser.add_argument("--needle-tokens", type=int, default=1024)
    parser.add_argument("--first-haystack", type=int, default=0,
                        help="seed of the first haystack (split the needle test over processes)")
    parser.add_argument("--samples", type=int, default=64, help="LIME / KernelSHAP source ablations")
    parser.add_argument("--captum-max-seconds", type=float, default=600.0)
    parser.add_argument("--ablation-max", type=int, default=10**9,
                        help="timing: longer prompts get the ablation estimate only (the 4k run takes about an hour)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the tables as JSON here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    lm = load_model(args.threads)
    print(f"model {lm.name}, torch threads {torch.get_num_threads()}, {psutil.cpu_count()} CPUs")
    payload: dict[str, Any] = {}
    if args.lengths:
        rows = timing(lm, args.lengths, args.samples, args.captum_max_seconds, args.ablation_max)
        header = ["prompt tokens", "sources", "run", "seconds", "estimate s", "estimate / measured",
                  "peak RSS GB", "RSS above start GB"]
        print("\n" + markdown_table(header, rows))
        payload["timing"] = [dict(zip(header, r)) for r in rows]
    if args.cost_lengths:
        rows = cost_model(lm, args.cost_lengths, args.token_max, args.measure_max)
        header = ["prompt tokens", "sources", "estimate s", "measured s", "estimate / measured", "outcome"]
        print("\n" + markdown_table(header, rows))
        payload["cost_model"] = [dict(zip(header, r)) for r in rows]
    if args.memory_lengths:
        rows = memory(lm, args.memory_lengths)
        header = ["prompt tokens", "sources", "rows in the heaviest pass", "seconds", "peak RSS GB",
                  "RSS above start GB"]
        print("\n" + markdown_table(header, rows))
        payload["memory"] = [dict(zip(header, r)) for r in rows]
    if args.haystacks:
        rows, hits = needle(lm, args.haystacks, args.needle_tokens, args.samples, tuple(args.needle_methods),
                            args.first_haystack)
        header = ["method (sentence sources)", "top-1 hit rate", "hits", "haystacks", "s / haystack"]
        print(f"\nneedle test: {args.haystacks} haystacks of about {args.needle_tokens} tokens")
        print(markdown_table(header, rows))
        payload["needle"] = {"rows": [dict(zip(header, r)) for r in rows], "hits": hits}
    write_json(args.out, payload)


if __name__ == "__main__":
    main()
