"""How close the cost estimates land to the measured time, on a quiet and on a loaded machine.

For each run (token ablation, integrated gradients, sentence ablation, signals with samples, a
small local audit on the embedded model) the run is timed twice: with the machine as it is
("quiet") and under synthetic load (``--busy`` processes spinning on the CPU, each stopping by
itself after ``--load-seconds``). Two speed probes are taken beforehand, one quiet and one loaded,
and each run is predicted from each probe in two ways:

- **old**: the probe kept as it was taken (whylm before the re-check: a probe is taken once per
  machine and every later estimate scales it);
- **new**: :func:`explain.budget.speed` as it is now: the kept probe plus a short re-check of the
  machine's current pace, with the spread it states ("could be A-B on this machine now").

Printed: predicted / measured for old and new, and whether the measured time lies in the stated
range; written as JSON (``--json``, default ``benchmarks/results/estimate_accuracy.json``).

Usage:
    python benchmarks/estimate_accuracy.py --threads 1 --busy 2 --quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TEXT, markdown_table, timed, write_json  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "estimate_accuracy.json"


def _spin(until: float) -> None:
    """Burn one core until the wall clock passes ``until`` (then exit by itself)."""
    x = 0
    while time.time() < until:
        x = (x * 1103515245 + 12345) % 2147483648


class Load:
    """``n`` busy processes for at most ``seconds``; stopped on exit of the block as well."""

    def __init__(self, n: int, seconds: float) -> None:
        self.n, self.seconds, self.procs = n, seconds, []

    def __enter__(self) -> "Load":
        until = time.time() + self.seconds
        ctx = mp.get_context("spawn")
        self.procs = [ctx.Process(target=_spin, args=(until,), daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        time.sleep(1.0)  # let them reach full speed
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in self.procs:
            p.terminate()
            p.join(timeout=5)


def runs(lm: Any, tmp: Path, quick: bool) -> dict[str, tuple[Callable[[], float], Callable[[], None]]]:
    """name -> (predict: the estimate's seconds now, run: the run itself)."""
    from explain import attribute, audit, estimate_cost
    from explain.signals.api import sampling_cost, signals

    short = lm.tokenizer.decode(lm.encode(TEXT, special=False)[:37])
    long_text = TEXT if quick else TEXT + " " + TEXT
    steps = 8 if quick else 20
    samples, new_tokens = (2, 16) if quick else (4, 24)
    records = [{"id": str(i), "prompt": q, "response": a} for i, (q, a) in enumerate([
        ("Who designed the Eiffel Tower?", " Gustave Eiffel's company."),
        ("How tall is the Eiffel Tower?", " About 330 metres."),
        ("When was the Eiffel Tower built?", " Between 1887 and 1889."),
        ("Where is the Eiffel Tower?", " On the Champ de Mars in Paris."),
    ][: 2 if quick else 4])]
    n_prompt = len(lm.prompt_ids("Who wrote Hamlet?", chat=True)[0])
    audit_cost: dict[str, float] = {}

    def audit_predict() -> float:
        audit_cost.clear()
        out = tmp / f"audit-{time.time_ns()}"
        try:  # the estimate comes through on_estimate; refusing it stops the run before any work
            audit(records, lm, out=out, on_estimate=lambda c: (audit_cost.update(s=c.seconds), _stop()), progress=False)
        except _Stop:
            pass
        return audit_cost["s"]

    def audit_run() -> None:
        audit(records, lm, out=tmp / f"audit-{time.time_ns()}", on_estimate=lambda c: None, progress=False)

    return {
        "token ablation (37 tokens)": (
            lambda: estimate_cost(lm, short, " Paris").seconds,
            lambda: attribute(lm, short, " Paris", progress=False, max_seconds=1e6)),
        f"integrated gradients, {steps} steps (37 tokens)": (
            lambda: estimate_cost(lm, short, " Paris", method="integrated_gradients", n_steps=steps).seconds,
            lambda: attribute(lm, short, " Paris", method="integrated_gradients", n_steps=steps, progress=False,
                              max_seconds=1e6)),
        "sentence ablation": (
            lambda: estimate_cost(lm, long_text, " Eiffel", sources="sentences").seconds,
            lambda: attribute(lm, long_text, " Eiffel", sources="sentences", progress=False, max_seconds=1e6)),
        f"signals, {samples} samples": (
            lambda: sampling_cost(lm, n_prompt, samples, new_tokens).seconds,
            lambda: signals(lm, "Who wrote Hamlet?", n_samples=samples, max_new_tokens=new_tokens,
                            progress=False, max_seconds=1e6, response=" Shakespeare.")),
        f"local audit, {len(records)} records": (audit_predict, audit_run),
    }


class _Stop(Exception):
    pass


def _stop() -> None:
    raise _Stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1; 2 is torch's default on a 2-core machine)")
    ap.add_argument("--busy", type=int, default=2, help="busy processes for the loaded runs")
    ap.add_argument("--load-seconds", type=float, default=900.0, help="the longest the load may last")
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the JSON")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="whylm-estimates-"))
    os.environ["WHYLM_SPEED_CACHE"] = str(tmp / "speed.json")  # never the user's speed file
    os.environ["WHYLM_DATA_DIR"] = str(tmp / "data")
    from explain import LanguageModel, budget

    lm = LanguageModel.load()
    print(f"loaded {lm.name}", flush=True)
    key = budget._speed_key(lm)
    jobs = runs(lm, tmp, args.quick)
    for name, (_, run) in jobs.items():  # first-call overheads (imports, the embedder) out of the way
        if not name.startswith("integrated"):
            _, seconds = timed(run)
            print(f"warm-up: {name} {seconds:.1f} s", flush=True)

    def probe() -> budget.Speed:
        budget._SPEEDS.pop(key, None)
        Path(os.environ["WHYLM_SPEED_CACHE"]).unlink(missing_ok=True)
        return budget.speed(lm)

    def predict(base: budget.Speed, fn: Callable[[], float], recheck: bool) -> tuple[float, float]:
        base = replace(base, scales={})  # no per-method correction in either: the probe alone
        if recheck:  # as a later process finds it: a probe from the file, checked against the machine now
            budget._SPEEDS[key] = replace(base, now=1.0, spread=1.0, checked_at=0.0)
        else:  # the old behaviour: the probe as kept
            budget._SPEEDS[key] = replace(base, now=1.0, spread=1.0, checked_at=time.time(),
                                          checked_load=budget.load_per_core())
        seconds = fn()
        return seconds, budget._SPEEDS[key].spread

    probes = {"quiet": probe()}
    with Load(args.busy, args.load_seconds):
        probes["loaded"] = probe()
    print(f"model {lm.name}, torch threads {torch.get_num_threads()}, busy processes {args.busy}; "
          f"probe per position: quiet {probes['quiet'].per_position:.2e} s, loaded {probes['loaded'].per_position:.2e} s")

    rows, table = [], []
    for condition in ("quiet", "loaded"):
        load = Load(args.busy, args.load_seconds) if condition == "loaded" else None
        if load:
            load.__enter__()
        try:
            for name, (fn, run) in jobs.items():
                preds = {}
                for probe_name, base in probes.items():
                    old, _ = predict(base, fn, recheck=False)
                    new, spread = predict(base, fn, recheck=True)
                    preds[probe_name] = (old, new, spread)
                start = time.perf_counter()
                run()
                measured = time.perf_counter() - start
                for probe_name, (old, new, spread) in preds.items():
                    inside = new / spread <= measured <= new * spread
                    row = {"run": name, "machine": condition, "probe": probe_name, "measured_s": measured,
                           "old_predicted_s": old, "new_predicted_s": new, "new_spread": spread,
                           "old_ratio": old / measured, "new_ratio": new / measured,
                           "measured_in_stated_range": inside}
                    rows.append(row)
                    table.append([name, condition, probe_name, measured, old / measured, new / measured,
                                  f"x{spread:.1f}", "yes" if inside else "no"])
                    print(json.dumps(row), flush=True)
        finally:
            if load:
                load.__exit__()
    print()
    print(markdown_table(["run", "machine now", "probe taken", "measured s", "old predicted/measured",
                          "new predicted/measured", "new states spread", "measured in range"], table))
    within = [r for r in rows if 0.5 <= r["new_ratio"] <= 2.0 or r["measured_in_stated_range"]]
    old_within = [r for r in rows if 0.5 <= r["old_ratio"] <= 2.0]
    print(f"\nwithin 2x or inside the stated range: new {len(within)}/{len(rows)}; "
          f"old within 2x: {len(old_within)}/{len(rows)}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, {"model": lm.name, "threads": args.threads, "busy": args.busy, "quick": args.quick,
                           "cpus": os.cpu_count(), "probes": {k: v.stored() for k, v in probes.items()},
                           "rows": rows})


if __name__ == "__main__":
    main()
