"""Hallucination benchmark: is whylm's calibrated risk right, and is it calibrated?

Data (``../shared/data``, see its README), each set split in half by position: the first half is
the *dev* split (the shipped calibration was fitted there, ``--fit-calibration``), the second half
the *test* split (reported here; nothing was tuned on it).

- **HaluEval QA** (500 items): a knowledge passage, a question, a right and a hallucinated answer.
  Each answer is scored twice: with the knowledge as context (``signals(lm, question,
  response=answer, context=knowledge)``, the *grounded* case) and without it (the model's own
  knowledge). Hallucinated answers are much longer than right ones, so the table also reports
  the *length-matched* subset (pairs whose token lengths differ by at most ``--max-length-gap``).
- **TruthfulQA** (817 questions), as it is: the best answer vs. the incorrect answer closest to
  it in characters, scored without a context (the question is the prompt).
- **Sample consistency** (``--consistency N``): on the first N HaluEval test items, 5 answers are
  sampled per question (with the knowledge) and each answer's ``inconsistency_embedding`` (MiniLM)
  and the question's semantic entropy are measured.

Metrics (hallucinated = positive): AUROC, Brier score, expected calibration error (10 equal bins)
and accuracy at risk >= 0.5, each with a 95% bootstrap CI over items (pairs kept together), beside
a random baseline (uniform risk) and an answer-length baseline (a logistic model of the token
length, fitted on the dev split). The verdict's coverage and accuracy (answers it did not call
"uncertain") are reported too.

Usage:
    python benchmarks/hallucination.py --fit-calibration explain/signals/calibration/smollm2-135m-instruct.json --n 160
    python benchmarks/hallucination.py --split test --consistency 100 --out /tmp/halu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p for p in (Path(os.environ.get("WHYLM_SHARED_DATA", "/nonexistent")), ROOT.parent / "shared" / "data",
                         ROOT.parent.parent / "shared" / "data") if p.is_dir()), ROOT.parent / "shared" / "data")
"""``$WHYLM_SHARED_DATA``, else ``../shared/data`` from the project root (one level further up in a worktree)."""
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from explain.signals.metrics import accuracy, auroc_labels, brier, ece  # noqa: E402


# ----------------------------------------------------------------------------- data
def load_halueval(split: str, n: int | None = None) -> list[dict[str, str]]:
    """HaluEval QA items of the split: dicts with context, prompt, right, wrong."""
    path = DATA / "halueval" / "qa_pairs.json"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [dict(context=r["knowledge"], prompt=r["question"], right=r["right_answer"],
                  wrong=r["hallucinated_answer"]) for r in rows]
    return _split(items, split, n)


def load_truthfulqa(split: str, n: int | None = None) -> list[dict[str, str]]:
    """TruthfulQA: the best answer vs the incorrect answer closest to it in length (characters)."""
    path = DATA / "truthfulqa" / "TruthfulQA.csv"
    items = []
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            best = r["Best Answer"].strip()
            wrong = [w.strip() for w in r["Incorrect Answers"].split(";") if w.strip()]
            if not best or not wrong:
                continue
            w = min(wrong, key=lambda x: (abs(len(x) - len(best)), x))
            items.append(dict(context=None, prompt=r["Question"].strip(), right=best, wrong=w))
    return _split(items, split, n)


def _split(items: list[dict[str, Any]], split: str, n: int | None) -> list[dict[str, Any]]:
    """dev = the first half, test = the second half (by position in the file)."""
    half = len(items) // 2
    chosen = items[:half] if split == "dev" else items[half:]
    return chosen[:n] if n else chosen


def labelled(items: list[dict[str, Any]], with_context: bool) -> list[dict[str, Any]]:
    """Both answers of every item as labelled examples for ``calibrate_signals`` (1 = hallucinated)."""
    out = []
    for it in items:
        for side, label in (("right", 0), ("wrong", 1)):
            out.append(dict(prompt=it["prompt"], response=it[side], label=label,
                            context=it["context"] if with_context else None))
    return out


# ----------------------------------------------------------------------------- metrics
def metric_row(p: np.ndarray, y: np.ndarray, pair: np.ndarray, boot: int, rng: np.random.Generator) -> dict[str, Any]:
    """AUROC, Brier, ECE and accuracy at 0.5 with 95% bootstrap CIs (resampling pairs)."""
    fns = {"auroc": auroc_labels, "brier": brier, "ece": ece, "accuracy": accuracy}
    out: dict[str, Any] = {k: f(p, y) for k, f in fns.items()}
    groups = np.unique(pair)
    index = {g: np.flatnonzero(pair == g) for g in groups}
    stats: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(boot):
        take = np.concatenate([index[g] for g in rng.choice(groups, len(groups))])
        for k, f in fns.items():
            stats[k].append(f(p[take], y[take]))
    for k in fns:
        lo, hi = np.nanpercentile(stats[k], [2.5, 97.5]) if boot else (np.nan, np.nan)
        out[k + "_ci"] = [float(lo), float(hi)]
    out["n"] = int(len(y))
    return out


def verdict_row(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Coverage (share not "uncertain") and accuracy of the decided verdicts."""
    from explain.signals import VERDICT_THRESHOLDS

    lo, hi = VERDICT_THRESHOLDS
    decided = (p < lo) | (p >= hi)
    acc = float(np.mean((p[decided] >= hi).astype(int) == y[decided])) if decided.any() else float("nan")
    return {"coverage": float(decided.mean()), "accuracy_decided": acc}


def length_model(dev_len: np.ndarray, dev_y: np.ndarray) -> Any:
    """The answer-length baseline: a logistic model of token length fitted on the dev split."""
    from explain.signals.calibration import fit_case

    case = fit_case(["length"], dev_len[:, None], dev_y, description="dev answer lengths", drop_wrong_way=False)
    return lambda lengths: np.array([case.predict({"length": float(v)}) for v in lengths])


# ----------------------------------------------------------------------------- runner
def score(lm: Any, items: list[dict[str, Any]], with_context: bool, progress: bool) -> dict[str, np.ndarray]:
    """Risk, raw scores and token length of both answers of each item, via ``explain.signals``."""
    from tqdm.auto import tqdm

    from explain import signals

    risk, y, pair, length, seconds, raw = [], [], [], [], [], []
    for k, it in enumerate(tqdm(items, desc="context" if with_context else "no context", disable=not progress)):
        for side, label in (("right", 0), ("wrong", 1)):
            t = time.perf_counter()
            rep = signals(lm, it["prompt"], response=it[side], context=it["context"] if with_context else None,
                          progress=False, context_share=False)
            seconds.append(time.perf_counter() - t)
            risk.append(np.nan if rep.risk is None else rep.risk)
            y.append(label)
            pair.append(k)
            length.append(len(rep.tokens))
            raw.append(rep.scores)
    return dict(risk=np.array(risk), y=np.array(y), pair=np.array(pair), length=np.array(length, float),
                seconds=np.array(seconds), raw=raw, note=rep.risk_note)


def evaluate(name: str, res: dict[str, Any], len_fn: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Metric rows of the risk and its baselines, on all pairs and on the length-matched pairs."""
    rng = np.random.default_rng(args.seed)
    y, pair, length = res["y"], res["pair"], res["length"]
    gap = np.abs(length[0::2] - length[1::2])
    matched_pairs = np.flatnonzero(gap <= args.max_length_gap)
    subsets = {"all": np.ones(len(y), bool), "length_matched": np.isin(pair, matched_pairs)}
    predictors = {
        "whylm risk": res["risk"],
        "answer length (logistic, dev-fitted)": len_fn(length),
        "random (uniform risk)": rng.random(len(y)),
    }
    out: dict[str, Any] = {"pairs": int(len(y) // 2), "length_matched_pairs": int(len(matched_pairs)),
                           "seconds_per_answer": float(res["seconds"].mean()), "rows": {}}
    if not np.isfinite(res["risk"]).any():
        out["risk_note"] = res["note"]
        predictors.pop("whylm risk")
    for subset, mask in subsets.items():
        for label, p in predictors.items():
            ok = mask & np.isfinite(p)
            row = metric_row(p[ok], y[ok], pair[ok], args.boot, rng)
            row.update(verdict_row(p[ok], y[ok]) if label == "whylm risk" else {})
            out["rows"][f"{subset}|{label}"] = row
    # each raw score's direction on this split (AUROC > 0.5: higher = more hallucinated, as documented)
    keys = sorted(set().union(*[set(r) for r in res["raw"]]))
    out["raw_auroc"] = {k: auroc_labels(np.array([r.get(k, np.nan) for r in res["raw"]]), y) for k in keys}
    return out


def markdown(title: str, ev: dict[str, Any]) -> str:
    """A markdown table of one evaluation."""
    lines = [f"#### {title}", "",
             f"{ev['pairs']} pairs ({2 * ev['pairs']} answers), {ev['length_matched_pairs']} length-matched pairs; "
             f"{ev['seconds_per_answer']:.2f} s per answer.", "",
             "| subset | predictor | AUROC [95% CI] | Brier [CI] | ECE (10 bins) [CI] | accuracy at 0.5 [CI] | verdict coverage / accuracy |",
             "|---|---|---|---|---|---|---|"]
    for key, r in ev["rows"].items():
        subset, label = key.split("|")
        cell = lambda k: f"{r[k]:.3f} [{r[k + '_ci'][0]:.3f}, {r[k + '_ci'][1]:.3f}]"  # noqa: E731
        verdict = (f"{r['coverage']:.2f} / {r['accuracy_decided']:.3f}" if "coverage" in r else "")
        lines.append(f"| {subset} | {label} | {cell('auroc')} | {cell('brier')} | {cell('ece')} | "
                     f"{cell('accuracy')} | {verdict} |")
    if "risk_note" in ev:
        lines.append(f"| all | whylm risk | none: {ev['risk_note']} | | | | |")
    raw = ", ".join(f"{k} {v:.3f}" for k, v in ev["raw_auroc"].items())
    lines += ["", f"Raw score AUROCs (> 0.5 = points the documented way): {raw}."]
    return "\n".join(lines)


def consistency(lm: Any, items: list[dict[str, Any]], n_samples: int, args: argparse.Namespace) -> dict[str, Any]:
    """Sample consistency and semantic entropy on HaluEval items (samples drawn once per question)."""
    from tqdm.auto import tqdm

    from explain import signals

    rows, seconds = [], []
    for it in tqdm(items, desc="consistency", disable=not args.progress):
        t = time.perf_counter()
        right = signals(lm, it["prompt"], response=it["right"], context=it["context"], n_samples=n_samples,
                        max_new_tokens=args.sample_tokens, progress=False, context_share=False, seed=args.seed)
        wrong = signals(lm, it["prompt"], response=it["wrong"], context=it["context"], sample_texts=right.samples,
                        progress=False, context_share=False)
        seconds.append(time.perf_counter() - t)
        rows.append((right.scores, wrong.scores))
    y = np.array([0, 1] * len(rows))
    out: dict[str, Any] = {"items": len(rows), "samples": n_samples, "seconds_per_item": float(np.mean(seconds))}
    rng = np.random.default_rng(args.seed)
    for key in ("inconsistency_embedding", "semantic_entropy", "discrete_semantic_entropy"):
        s = np.array([v for r in rows for v in (r[0][key], r[1][key])])
        auc = auroc_labels(s, y)
        boot = []
        for _ in range(args.boot):
            idx = rng.integers(0, len(rows), len(rows))
            take = np.concatenate([[2 * i, 2 * i + 1] for i in idx])
            boot.append(auroc_labels(s[take], y[take]))
        out[key] = {"auroc": auc, "ci": [float(v) for v in np.nanpercentile(boot, [2.5, 97.5])]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--n", type=int, default=None, help="items per dataset (default: the whole split)")
    parser.add_argument("--datasets", default="halueval,truthfulqa")
    parser.add_argument("--fit-calibration", metavar="OUT", default=None,
                        help="fit a calibration on the HaluEval dev split with explain.calibrate_signals, write OUT, stop")
    parser.add_argument("--consistency", type=int, default=0, metavar="N",
                        help="also measure sample consistency (5 samples) on N HaluEval items")
    parser.add_argument("--sample-tokens", type=int, default=32, help="max tokens of a sampled answer")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--max-length-gap", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the JSON results here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from explain import LanguageModel, calibrate_signals

    lm = LanguageModel.load()
    started = time.perf_counter()
    if args.fit_calibration:
        items = load_halueval("dev", args.n)
        examples = labelled(items, True) + labelled(items, False)
        what = (f"HaluEval QA dev split (items 0-{len(items) - 1} of the first half of qa_pairs.json): the right "
                f"and the hallucinated answer of each item, label 1 = hallucinated")
        cal = calibrate_signals(lm, examples, progress=args.progress, description=what)
        cal.notes.append(f"fitted by: python benchmarks/hallucination.py --fit-calibration OUT --n {args.n}")
        cal.save(args.fit_calibration)
        print(cal.summary())
        for name, case in cal.cases.items():
            print(name, "directions (dev AUROC of each candidate):",
                  ", ".join(f"{k} {v:.3f}" for k, v in case.directions.items()))
        print(f"wrote {args.fit_calibration} in {time.perf_counter() - started:.0f} s")
        return 0

    out: dict[str, Any] = {"model": lm.name, "split": args.split, "threads": torch.get_num_threads(), "results": {}}
    dev_len = labelled(load_halueval("dev"), False)
    lens = np.array([len(lm.encode(e["response"], special=False)) for e in dev_len], float)
    len_fn = length_model(lens, np.array([e["label"] for e in dev_len]))
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    runs = []
    if "halueval" in names:
        items = load_halueval(args.split, args.n)
        runs += [("HaluEval QA, grounded (knowledge as context)", items, True),
                 ("HaluEval QA, no context", items, False)]
    if "truthfulqa" in names:
        runs.append(("TruthfulQA (no context; as it is)", load_truthfulqa(args.split, args.n), False))
    for title, items, with_ctx in runs:
        ev = evaluate(title, score(lm, items, with_ctx, args.progress), len_fn, args)
        out["results"][title] = ev
        print(markdown(f"{title}: {args.split} split, {lm.name}", ev), "\n", flush=True)
    if args.consistency:
        res = consistency(lm, load_halueval(args.split, args.consistency), 5, args)
        out["consistency"] = res
        print(f"#### Sample consistency, HaluEval {args.split} items 0-{res['items'] - 1} (with knowledge), "
              f"{res['samples']} samples of <= {args.sample_tokens} tokens per question, "
              f"{res['seconds_per_item']:.1f} s per item\n")
        print("| score | AUROC [95% CI] |\n|---|---|")
        for key in ("inconsistency_embedding", "semantic_entropy", "discrete_semantic_entropy"):
            r = res[key]
            print(f"| {key} | {r['auroc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] |")
        print()
    out["seconds_total"] = time.perf_counter() - started
    print(f"total {out['seconds_total']:.0f} s on {torch.get_num_threads()} CPU threads")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, allow_nan=True, default=float), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
