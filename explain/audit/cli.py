"""``whylm audit``: audit a JSONL / CSV / Parquet file of model outputs into a resumable Parquet folder.

Examples:
    $ whylm audit outputs.jsonl --out audit.parquet --engine processes --workers 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLE = """examples:
  whylm audit outputs.jsonl --out audit.parquet
  whylm audit qa.csv --out audit.parquet --attribute ablation --engine processes --workers 4
  whylm audit logs.parquet --out audit.parquet --engine ray --address auto --gpus-per-worker 1
  whylm audit outputs.jsonl --out audit.parquet --max-seconds 7200     # accept a 2 h estimate
  whylm audit outputs.jsonl --out audit.parquet --calibration cal.json  # from `whylm signals calibrate`

Each input record has "prompt" and optionally "id", "response" (scored as given, generated when
absent) and "context". Run the same command again after an interruption: only the missing ids run,
and records whose content changed since are audited again. One run at a time writes a folder.
Read the result with pandas.read_parquet("audit.parquet") or open it on the dashboard's Audits page.
With a context, each row's "evidence" column (JSON) gives every answer sentence its verdict, risk and
the context sentences that support it; "n_unsupported_sentences" counts those nothing supports
(or judged likely hallucinated).
"""


def add_parser(subparsers: Any) -> None:
    """Register ``audit`` on an argparse subparsers object."""
    from explain.attribution import METHODS

    p = subparsers.add_parser(
        "audit", help="audit a dataset of model outputs (signals, attributions) into Parquet, resumably",
        description="Batch audit: hallucination signals and/or attributions for every record of a "
                    "JSONL, CSV or Parquet file, committed in small atomic chunks (resumable).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, help="records: .jsonl, .csv or .parquet with a 'prompt' column")
    # dest out_dir: a dataset folder, not a file (the CLI's output-file pre-check does not apply)
    p.add_argument("--out", dest="out_dir", required=True, help="output folder (read it with pandas.read_parquet)")
    p.add_argument("--attribute", metavar="METHOD", choices=sorted(METHODS),
                   help=f"add attributions with this method ({', '.join(sorted(METHODS))})")
    p.add_argument("--no-signals", action="store_true", help="skip hallucination signals")
    p.add_argument("--engine", default="local", choices=("local", "processes", "ray"), help="default: local")
    p.add_argument("--workers", type=int, default=None, help="worker processes or Ray actors")
    p.add_argument("--address", default=None, help="Ray cluster to join ('auto', 'ray://host:10001')")
    p.add_argument("--cpus-per-worker", type=float, default=None, help="Ray: CPUs per actor (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=None, help="Ray: GPUs per actor (default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per worker (default: the free cores split between the workers)")
    p.add_argument("--max-seconds", type=float, default=None, help="budget for the cost estimate (default 600)")
    p.add_argument("--model", default=None, help="local model folder or cached hub id (default: embedded)")
    p.add_argument("--calibration", metavar="FILE", type=Path, default=None,
                   help="calibration JSON for the risk (from `whylm signals calibrate`; default: the one "
                        "shipped for the model, if any)")
    p.add_argument("--seed", type=int, default=0, help="seed of every record's run (default 0)")
    p.add_argument("--chunk-size", type=int, default=8, help="records per committed part (default 8)")
    p.add_argument("--no-resume", action="store_true", help="refuse an output that already holds results")
    p.add_argument("--json", metavar="OUT", help="write the summary as JSON to OUT ('-' for stdout)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    """Handler of ``whylm audit``: estimate, run with a progress bar, print the summary table.

    Returns:
        0 (also when some records failed: their errors are in their rows and in the summary).
    """
    from explain.audit.api import audit
    from explain.errors import ExplainError

    options = {k: v for k, v in (("cpus_per_worker", args.cpus_per_worker),
                                 ("gpus_per_worker", args.gpus_per_worker)) if v is not None}
    if options and args.engine != "ray":
        raise ExplainError("--cpus-per-worker / --gpus-per-worker are for --engine ray")
    if args.threads is not None:
        options["threads_per_worker"] = args.threads

    def show(cost: Any) -> None:
        print(f"estimate: {cost.summary()}", file=sys.stderr)

    print(f"loading {args.model or 'embedded model'} ...", file=sys.stderr)
    summary = audit(
        args.input, args.model, out=args.out_dir, attribute=args.attribute, signals=not args.no_signals,
        engine=args.engine, workers=args.workers, address=args.address, resume=not args.no_resume,
        seed=args.seed, max_seconds=args.max_seconds, progress=False if args.no_progress else None,
        chunk_size=args.chunk_size, engine_options=options, on_estimate=show, calibration=args.calibration,
    )
    if args.json == "-":
        print(summary.to_json(indent=2))
    else:
        print(summary.summary())
        if args.json:
            Path(args.json).write_text(summary.to_json(indent=2), encoding="utf-8")
            print(f"wrote {args.json}", file=sys.stderr)
    return 0
