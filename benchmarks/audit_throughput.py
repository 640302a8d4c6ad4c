"""Audit throughput: records/s of a plain ``signals()`` loop beside the audit engines, same run.

Records are the first N HaluEval QA pairs (``/work/shared/data/halueval/qa_pairs.json``): the question
as prompt, the knowledge as context, the right answer for even indices and the hallucinated one for
odd indices (a fixed, documented choice). Every configuration audits the same records with the same
settings on the embedded SmolLM2-135M-Instruct with 1 torch thread per worker:

- ``loop signals``: ``for r in records: signals(lm, ...)`` (the baseline, ratio 1.00);
- ``loop signals+attribute``: the same plus ``attribute(..., method="ablation")`` over {context, question};
- ``audit local`` / ``audit processes`` / ``audit ray`` (``--workers`` workers), writing the Parquet
  output; their wall time includes starting workers and loading the model in each;
- ``audit local +attribute``: beside the second loop.

Then a capacity model: the measured per-record cost of one worker, and hours for 1M records on K
workers, scaled by the parallel efficiency measured here (processes speed-up / workers).

Run:
    python benchmarks/audit_throughput.py --n 200 --workers 2 --markdown bench-audit.md
    python benchmarks/audit_throughput.py --n 8 --workers 2 --no-attribute   # benchmarks/results/audit_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import default_json, write_report  # noqa: E402
from _common import table as report_table  # noqa: E402

DATA = Path("/work/shared/data/halueval/qa_pairs.json")
KS = (1, 2, 8, 32, 128)


def halueval_records(n: int, path: Path = DATA) -> list[dict]:
    """The first ``n`` pairs as audit records (right answer at even, hallucinated at odd indices)."""
    out = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            d = json.loads(line)
            out.append({"id": f"halueval-{i}", "prompt": d["question"], "context": d["knowledge"],
                        "response": d["right_answer"] if i % 2 == 0 else d["hallucinated_answer"]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="records (default 200)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="local,processes,ray")
    parser.add_argument("--no-attribute", action="store_true", help="skip the signals+attribute pair")
    parser.add_argument("--markdown", help="write the table here")
    parser.add_argument("--json", default=default_json("audit_throughput"),
                        help="write the tables as JSON here (default: %(default)s; '' to skip)")
    args = parser.parse_args(argv)

    import torch

    from explain import LanguageModel, attribute, audit, signals

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lm = LanguageModel.load()
    recs = halueval_records(args.n)
    tmp = Path(tempfile.mkdtemp(prefix="whylm-audit-bench-"))
    rows: list[tuple[str, float, str]] = []  # (config, seconds, baseline name)

    def timed(name: str, base: str, fn) -> None:
        start = time.perf_counter()
        fn()
        rows.append((name, time.perf_counter() - start, base))
        print(f"{name}: {rows[-1][1]:.1f} s", file=sys.stderr)

    def loop(with_attr: bool) -> None:
        for r in recs:
            rep = signals(lm, r["prompt"], response=r["response"], context=r["context"], progress=False)
            if with_attr:
                attribute(lm, {"context": r["context"], "question": r["prompt"]}, target=rep.response,
                          method="ablation", chat=True, progress=False)

    def run_audit(engine: str, method: str | None) -> None:
        out = tmp / f"{engine}-{method}"
        workers = None if engine == "local" else args.workers
        opts = {"cpus_per_worker": 1} if engine == "ray" else {"threads_per_worker": 1} if engine == "processes" else {}
        s = audit(recs, lm, out=out, engine=engine, workers=workers, attribute=method, progress=False,
                  max_seconds=1e9, engine_options=opts)
        assert s.processed == len(recs) and s.errors == 0, s.summary()

    timed("loop signals", "loop signals", lambda: loop(False))
    for engine in args.engines.split(","):
        timed(f"audit {engine} ({1 if engine == 'local' else args.workers} worker(s))", "loop signals",
              lambda e=engine: run_audit(e, None))
    if not args.no_attribute:
        timed("loop signals+attribute", "loop signals+attribute", lambda: loop(True))
        timed("audit local +attribute (1 worker)", "loop signals+attribute", lambda: run_audit("local", "ablation"))
    shutil.rmtree(tmp, ignore_errors=True)

    secs = {name: s for name, s, _ in rows}
    table = ["| configuration | seconds | records/s | ratio to its loop |", "|---|---|---|---|"]
    for name, s, base in rows:
        table.append(f"| {name} | {s:.1f} | {len(recs) / s:.3f} | {secs[base] / s:.2f}x |")
    per_record = secs["loop signals"] / len(recs)
    proc = next((s for n, s, _ in rows if n.startswith("audit processes")), None)
    eff = min(1.0, (secs["loop signals"] / proc) / args.workers) if proc else 1.0
    cap = ["", f"Capacity model (signals with context, one worker = 1 CPU thread): {per_record:.2f} s per record "
               f"measured here; parallel efficiency {eff:.2f} measured with processes x {args.workers} here. "
               "Hours for 1M records = 1e6 x per-record seconds / K, ideal and at the measured efficiency:", "",
           "| workers K | hours, ideal scaling | hours at measured efficiency |", "|---|---|---|"]
    for k in KS:
        at_eff = 1e6 * per_record / (k * (eff if k > 1 else 1.0)) / 3600
        cap.append(f"| {k} | {1e6 * per_record / k / 3600:,.1f} | {at_eff:,.1f} |")
    if "loop signals+attribute" in secs:
        pa = secs["loop signals+attribute"] / len(recs)
        cap += ["", f"With ablation attribution over {{context, question}}: {pa:.2f} s per record -> "
                    f"{1e6 * pa / 8 / 3600:,.1f} h for 1M records on 8 workers (ideal scaling)."]
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([f"{len(recs)} HaluEval records, torch threads 1 per worker, {os.cpu_count()} CPUs, "
                      f"1-min load average {load_before:.1f} at the start and {load_after:.1f} at the end", ""]
                     + table + cap)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    ks = [[k, 1e6 * per_record / k / 3600, 1e6 * per_record / (k * (eff if k > 1 else 1.0)) / 3600] for k in KS]
    tables = [
        report_table(f"Audit throughput: {len(recs)} HaluEval records, 1 torch thread per worker",
              ["configuration", "seconds", "records/s", "ratio to its loop"],
              [[name, s, len(recs) / s, secs[base] / s] for name, s, base in rows],
              notes=(f"Ratio above 1: faster than the plain loop it sits beside (same run). Engine times include "
                     f"starting workers and loading the model in each. 1-min load average {load_before:.1f} at "
                     f"the start, {load_after:.1f} at the end, on {os.cpu_count()} CPUs shared with other jobs.")),
        report_table("Capacity model: hours for 1M records (signals with context)",
              ["workers K", "hours, ideal scaling", "hours at measured efficiency"], ks,
              notes=(f"{per_record:.2f} s per record measured here for one worker; parallel efficiency {eff:.2f} "
                     f"measured with processes x {args.workers} in the same run, start-up included (a model load "
                     f"per worker), which weighs most when --n is small ({len(recs)} records here): for long runs "
                     "the efficiency column is pessimistic, the ideal column optimistic.")),
    ]
    write_report(args.json, None, tables, machine=(f"{os.cpu_count()}-core CPU, 1-min load average {load_before:.1f} "
                                                   f"at the start and {load_after:.1f} at the end, 1 torch thread "
                                                   "per worker"),
                 n=len(recs), seconds=secs, per_record=per_record, efficiency=eff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
