"""An audit inside an evaluation script: score every prompt/response pair of a JSONL file, then gate.

Each input line is ``{"id": ..., "prompt": ..., "response": ..., "context": ...}`` (``response`` and
``context`` optional). :func:`explain.audit` writes one Parquet row per record and is resumable: run
the script again after an interruption and only the missing ids are audited. The script then reads
the rows with pandas, prints the riskiest answers, and exits 1 when too many records failed.

Run:
    python examples/evaluation_loop.py examples/data/eval_pairs.jsonl audit.parquet
    python examples/evaluation_loop.py pairs.jsonl audit.parquet --attribute ablation --engine processes --workers 2
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from explain import WhylmError, audit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", help="JSONL, CSV or Parquet with prompt (and id, response, context)")
    parser.add_argument("out", help="audit output folder (Parquet dataset)")
    parser.add_argument("--attribute", default=None, help="add attributions, e.g. ablation")
    parser.add_argument("--engine", default="local", choices=("local", "processes", "ray"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--model", default=None, help="model folder (default: embedded SmolLM2)")
    parser.add_argument("--max-error-rate", type=float, default=0.5, help="fail the evaluation above this")
    args = parser.parse_args(argv)
    try:
        summary = audit(args.pairs, args.model, out=args.out, attribute=args.attribute, engine=args.engine,
                        workers=args.workers, max_seconds=3600)
    except WhylmError as exc:  # bad input file, other settings in out, over budget: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.summary())
    rows = pd.read_parquet(args.out)
    score = "risk" if rows["risk"].notna().any() else "score.mean_neg_logprob"
    print(f"\nriskiest answers by {score}:")
    for _, r in rows.sort_values(score, ascending=False).head(3).iterrows():
        print(f"  {r['id']}: {r[score]:.3f}  {r['response']!r}")
    return 1 if summary.errors > args.max_error_rate * max(1, summary.records) else 0


if __name__ == "__main__":
    sys.exit(main())
