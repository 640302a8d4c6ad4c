"""Issue 12's acceptance check on this machine: on a ~2k-token haystack, sentence-source ablation
ranks the needle sentence first within a few minutes and in bounded memory, and the token-level call
on the same prompt is refused at once with its estimate.

    python benchmarks/needle_2k.py --tokens 2048 --haystacks 1 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from long_context import cold_estimate, haystack  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--haystacks", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=1800, help="budget for the sentence run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from explain import LanguageModel, WhylmError, attribute

    lm = LanguageModel.load()
    print("| haystack | prompt tokens | sentences | estimate s | measured s | needle rank | peak RSS GB | token-level call |")
    print("|---|---|---|---|---|---|---|---|")
    for k in range(args.haystacks):
        h = haystack(lm, args.tokens, seed=k)
        est = cold_estimate(lm, h["prompt"], h["target"], sources="sentences")
        start = time.perf_counter()
        res = attribute(lm, h["prompt"], target=h["target"], sources="sentences", max_seconds=args.max_seconds,
                        progress=False)
        secs = time.perf_counter() - start
        order = sorted(range(len(res.input_tokens)), key=lambda i: -res.seq_attr[i])
        rank = 1 + next(r for r, i in enumerate(order) if h["needle"] in res.input_tokens[i])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
        start = time.perf_counter()
        try:
            attribute(lm, h["prompt"], target=h["target"], progress=False)
            refused = "ran (not refused)"
        except WhylmError as exc:
            refused = f"refused in {time.perf_counter() - start:.2f} s: {str(exc)[:90]}..."
        n = len(lm.encode(h["prompt"]))
        print(f"| {k} | {n} | {len(res.input_tokens)} | {est.seconds:.0f} | {secs:.0f} | {rank} | {rss:.2f} | {refused} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
