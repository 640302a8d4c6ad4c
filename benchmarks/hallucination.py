"""Hallucination benchmark: is whylm's calibrated risk right, is it calibrated, and does it transfer?

Data (``../shared/data``, see its README, and ``benchmarks/grounded_cases.py``), each set split in
half: the *dev* half is what the shipped calibration was fitted on (``--fit-calibration``), the
*test* half is reported here (nothing was tuned on it).

- **HaluEval QA** (500 items): a knowledge passage, a question, a right and a hallucinated answer.
  Grounded case: ``signals(lm, question, response=answer, context=knowledge)``. Hallucinated answers
  are much longer than right ones, so the table also reports the *length-matched* pairs (token
  lengths differ by at most ``--max-length-gap``). ``--datasets halueval-nocontext`` adds the case
  without the knowledge, ``truthfulqa`` TruthfulQA without a context.
- **Grounded cases** (``grounded_cases.py``): fictional towns, so the model cannot know the facts;
  short answers, copied sentences, paraphrases, a user's plain one-sentence answers, and
  multi-sentence answers with one swapped name/number/date in half of them. Besides the answer
  metrics: *evidence top-1* (is the best evidence of each correct answer sentence, as ``signals``
  lists it, the passage sentence it was built from?), *localisation* (is the swapped sentence the
  riskiest of its answer, and not called "supported"?) and *conflicts* (share of wrong sentences
  that name the passage sentence they contradict, and of correct ones wrongly said to).
- **Transfer**: the calibration is refitted on the dev data without one distribution and measured
  on that distribution's test half, beside the calibration fitted on everything.

Metrics (not supported = positive): AUROC, Brier score, expected calibration error (10 bins) and
accuracy at risk >= 0.5, with 95% bootstrap CIs over items (pairs kept together), beside a random
baseline and an answer-length baseline (a logistic model of the token length, fitted on the same
distribution's dev half). Every answer's signals are cached (``--cache``; ``score_cache.py``), so
refits and reruns do not run the model again.

Usage:
    python benchmarks/hallucination.py --threads 1 --split test --score-only multi,halueval,short   # fill the cache
    python benchmarks/hallucination.py --threads 1 --cached-only --fit-calibration explain/signals/calibration/smollm2-135m-instruct.json
    python benchmarks/hallucination.py --threads 1 --cached-only --json benchmarks/results/hallucination.json
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

from explain.errors import ExplainError  # noqa: E402
from explain.signals.metrics import accuracy, auroc_labels, brier, ece  # noqa: E402
from grounded_cases import KINDS, make_cases  # noqa: E402
from score_cache import cached_reports, read_cache, rescore  # noqa: E402

CACHE = ROOT / "benchmarks" / "results" / "cache"


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


def with_ci(value: float, ci: Any = None) -> str:
    """A figure with its 95% interval, as every table here prints it.

    Examples:
        >>> with_ci(0.9, [0.8, 0.95]), with_ci(0.9)
        ('0.900 [0.800, 0.950]', '0.900')
    """
    return f"{value:.3f}" if ci is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def metric_table(rows: dict[str, Any], ece: str, counted: bool) -> list[str]:
    """Markdown table lines of an evaluation's rows (``"subset|predictor"`` -> figures with CIs):
    AUROC, Brier, ECE (headed ``ece``), accuracy and the verdict's coverage; ``counted`` puts each
    subset's size beside its name."""
    lines = [f"| subset | predictor | AUROC [95% CI] | Brier [CI] | {ece} [CI] | accuracy at 0.5 [CI] | "
             "verdict coverage / accuracy |", "|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        subset, label = key.split("|")
        cell = lambda k: with_ci(r[k], r[k + "_ci"])  # noqa: E731
        verdict = f"{r['coverage']:.2f} / {r['accuracy_decided']:.3f}" if "coverage" in r else ""
        name = f"{subset} ({r['n']})" if counted else subset
        lines.append(f"| {name} | {label} | {cell('auroc')} | {cell('brier')} | {cell('ece')} | "
                     f"{cell('accuracy')} | {verdict} |")
    return lines


def markdown(title: str, ev: dict[str, Any]) -> str:
    """A markdown table of one evaluation."""
    lines = [f"#### {title}", "",
             f"{ev['pairs']} pairs ({2 * ev['pairs']} answers), {ev['length_matched_pairs']} length-matched pairs; "
             f"{ev['seconds_per_answer']:.2f} s per answer.", "",
             *metric_table(ev["rows"], "ECE (10 bins)", counted=False)]
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


# ----------------------------------------------------------------------------- cached, evidence-based sets
def grounded_sets(split: str, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """The labelled answers of one split by distribution: ``halueval`` and each grounded-case kind."""
    sets: dict[str, list[dict[str, Any]]] = {}
    items = load_halueval(split, args.n)
    rows = []
    for k, it in enumerate(items):
        for side, label in (("right", 0), ("wrong", 1)):
            rows.append(dict(prompt=it["prompt"], context=it["context"], response=it[side], label=label, item=k))
    sets["halueval"] = rows
    cases = make_cases(split, args.per_kind)
    for kind in KINDS:
        sets[kind] = [c for c in cases if c["kind"] == kind]
    return sets


def scored(lm: Any, sets: dict[str, list[dict[str, Any]]], split: str, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Each example with its cached report's rescored answer and sentence scores (only cached ones
    when ``lm`` is None)."""
    out = {}
    for name, rows in sets.items():
        path = CACHE / f"{'halueval' if name == 'halueval' else 'grounded'}-{split}.jsonl"
        if lm is None:
            from score_cache import example_key

            have = {r["key"]: r for r in read_cache(path)}
            pairs = [(ex, have.get(example_key(ex))) for ex in rows]
            pairs = [(ex, r) for ex, r in pairs if r is not None]
        else:
            reps = cached_reports(lm, rows, path, progress=args.progress, desc=f"{name} {split}")
            pairs = list(zip(rows, reps))
        full = []
        for ex, rep in pairs:
            scores, sent_scores, spans = rescore(rep)
            full.append(dict(ex, rep=rep, scores=scores, sent_scores=sent_scores, spans=spans,
                             length=float(len(rep["tokens"]))))
        if name == "halueval" or any(ex["kind"] != "multi" for ex in full):  # keep right/wrong pairs whole
            keyed: dict[int, list[dict[str, Any]]] = {}
            for ex in full:
                keyed.setdefault(ex["item"], []).append(ex)
            full = [ex for grp in keyed.values() if len(grp) == 2 for ex in grp]
        out[name] = full
    return out


def fit_from_rows(by_set: dict[str, list[dict[str, Any]]], description: str) -> Any:
    """A context calibration fitted on the rows of every set, each set weighing the same in all."""
    from explain.signals.calibration import CANDIDATES, Calibration, fit_case

    by_set = {k: v for k, v in by_set.items() if v}
    rows = [r for rs in by_set.values() for r in rs]
    # two sources weigh the same: HaluEval, and the grounded cases (each kind an equal share of them)
    sources = {"halueval" if k == "halueval" else "grounded" for k in by_set}
    kinds = sum(k != "halueval" for k in by_set)
    share = {k: (1.0 if k == "halueval" else 1.0 / kinds) / len(sources) for k in by_set}
    weights = np.concatenate([np.full(len(rs), share[k] * len(rows) / len(rs)) for k, rs in by_set.items()])
    names = [f for f in CANDIDATES["context"] if all(f in r["scores"] for r in rows)]
    x = np.array([[r["scores"][f] for f in names] for r in rows], dtype=np.float64)
    y = np.array([r["label"] for r in rows])
    case = fit_case(names, x, y, description=description, weights=weights)
    return Calibration(model="SmolLM2-135M-Instruct", cases={"context": case})


def risks(cal: Any, rows: list[dict[str, Any]]) -> tuple[np.ndarray, list[list[float]]]:
    """Answer risk and per-sentence risks of cached rows under ``cal`` (as ``signals`` computes them)."""
    from explain.signals.api import answer_risk

    answer, per_sentence = [], []
    for r in rows:
        sent = [cal.predict(sc, True) for sc in r["sent_scores"]]
        per_sentence.append(sent)
        answer.append(answer_risk(cal.predict(r["scores"], True), sent))
    return np.array(answer, dtype=float), per_sentence


def pair_ids(rows: list[dict[str, Any]]) -> np.ndarray:
    """Bootstrap groups: a right/wrong pair shares its item; a multi answer is its own group."""
    return np.array([r.get("item", k) for k, r in enumerate(rows)])


def evaluate_rows(name: str, rows: list[dict[str, Any]], cal: Any, dev_rows: list[dict[str, Any]],
                  args: argparse.Namespace) -> dict[str, Any]:
    """Answer metrics (all, and length-matched pairs for HaluEval) beside the length and random baselines."""
    rng = np.random.default_rng(args.seed)
    y = np.array([r["label"] for r in rows])
    length = np.array([r["length"] for r in rows])
    groups = pair_ids(rows)
    p, _ = risks(cal, rows)
    dev_y = np.array([r["label"] for r in dev_rows])
    try:
        len_fn = length_model(np.array([r["length"] for r in dev_rows]), dev_y)
        len_label = "answer length (logistic, dev-fitted)"
    except ExplainError:  # too few dev answers of this set: the baseline is fitted on the test rows (optimistic)
        try:
            len_fn = length_model(np.array([r["length"] for r in rows]), np.array([r["label"] for r in rows]))
            len_label = "answer length (logistic, fitted on these test rows)"
        except ExplainError:
            len_fn, len_label = (lambda v: np.full(len(v), np.nan)), "answer length (too few answers)"
    subsets = {"all": np.ones(len(y), bool)}
    if name == "halueval":
        by_item: dict[Any, list[int]] = {}
        for k, g in enumerate(groups):
            by_item.setdefault(g, []).append(k)
        matched = [g for g, ks in by_item.items() if len(ks) == 2 and abs(length[ks[0]] - length[ks[1]]) <= args.max_length_gap]
        subsets["length_matched"] = np.isin(groups, matched)
    out: dict[str, Any] = {"answers": int(len(y)), "positives": int(y.sum()), "rows": {},
                           "seconds_per_answer": float(np.mean([r["rep"]["seconds"] for r in rows])) if rows else float("nan")}
    predictors = {"whylm risk": p, len_label: len_fn(length),
                  "random (uniform risk)": rng.random(len(y))}
    for subset, mask in subsets.items():
        out[f"{subset}_answers"] = int(mask.sum())
        for label, pred in predictors.items():
            if mask.sum() < 4 or len(set(y[mask])) < 2 or not np.isfinite(pred[mask]).all():
                continue
            row = metric_row(pred[mask], y[mask], groups[mask], args.boot, rng)
            row.update(verdict_row(pred[mask], y[mask]) if label == "whylm risk" else {})
            out["rows"][f"{subset}|{label}"] = row
    keys = sorted(set().union(*[set(r["scores"]) for r in rows])) if rows else []
    out["raw_auroc"] = {k: auroc_labels(np.array([r["scores"].get(k, np.nan) for r in rows]), y) for k in keys}
    return out


def evidence_metrics(rows: list[dict[str, Any]], cal: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Evidence top-1 on correct sentences and localisation of the swapped sentence (grounded cases)."""
    from explain.signals import verdict
    from explain.signals.evidence import context_sentences, sentence_conflicts, sentence_evidence

    rng = np.random.default_rng(args.seed)
    hits, aligned, misaligned = [], 0, 0
    local, not_supported = [], []
    clash_wrong, clash_right = [], []
    _, sent_risks = risks(cal, rows)
    for r, srisk in zip(rows, sent_risks):
        rep = r["rep"]
        _, ctx_spans = context_sentences(r["context"])
        deltas = np.asarray(rep["token_evidence"], dtype=float).reshape(len(ctx_spans), len(rep["tokens"]))
        # as signals() lists it: leave-one-out and words, conflicting sentences left out
        ev = sentence_evidence(deltas, r["spans"], r["context"], ctx_spans, rep["tokens"])
        clashes = sentence_conflicts(deltas, r["spans"], rep["tokens"], r["context"], ctx_spans)
        if len(ev) != len(r["sentences"]):
            misaligned += 1
            continue
        aligned += 1
        for truth, found, clash in zip(r["sentences"], ev, clashes):
            if not truth["wrong"]:
                hits.append(bool(found) and found[0].source == truth["source"])
                clash_right.append(bool(clash))
            else:
                clash_wrong.append(bool(clash))
        wrong = [k for k, t in enumerate(r["sentences"]) if t["wrong"]]
        if wrong and len(r["sentences"]) > 1 and all(v is not None for v in srisk):
            k = wrong[0]
            local.append(int(np.argmax(srisk)) == k)
            not_supported.append(verdict(srisk[k]) != "supported")

    def share(v: list[bool]) -> dict[str, Any]:
        v_arr = np.array(v, dtype=float)
        if not len(v_arr):
            return {"value": float("nan"), "ci": [float("nan")] * 2, "n": 0}
        boot = [rng.choice(v_arr, len(v_arr)).mean() for _ in range(args.boot)]
        return {"value": float(v_arr.mean()), "ci": [float(x) for x in np.percentile(boot, [2.5, 97.5])], "n": len(v_arr)}

    both = [a and b for a, b in zip(local, not_supported)]
    return {"evidence_top1_correct_sentences": share(hits), "swapped_riskiest": share(local),
            "swapped_not_supported": share(not_supported), "swapped_riskiest_and_not_supported": share(both),
            "conflict_found_in_wrong_sentences": share(clash_wrong),
            "conflict_claimed_in_correct_sentences": share(clash_right),
            "answers_aligned": aligned, "answers_misaligned": misaligned}


def transfer(dev: dict[str, list[dict[str, Any]]], test: dict[str, list[dict[str, Any]]],
             cal_all: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Per distribution: fitted on all dev sets vs fitted without it, measured on its test half."""
    out = {}
    for name in dev:
        if not test.get(name) or not dev.get(name):
            continue
        others = {k: v for k, v in dev.items() if k != name and v}
        y = np.array([r["label"] for r in test[name]])
        if not others or len(set(y)) < 2:
            continue
        row = {}
        try:
            without = fit_from_rows(others, f"dev sets without {name}")
        except ExplainError as exc:
            print(f"transfer to {name} skipped: {exc}")
            continue
        for label, cal in (("fitted on all dev sets", cal_all), ("fitted without it", without)):
            p, _ = risks(cal, test[name])
            row[label] = {"auroc": auroc_labels(p, y), "brier": brier(p, y), "accuracy": accuracy(p, y)}
        out[name] = row
    return out


def evidence_markdown(ev: dict[str, Any]) -> str:
    """The evidence / localisation table."""
    lines = ["| measure | value [95% CI] | n |", "|---|---|---|"]
    for key, r in ev.items():
        if isinstance(r, dict):
            lines.append(f"| {key.replace('_', ' ')} | {with_ci(r['value'], r['ci'])} | {r['n']} |")
    lines.append(f"\n{ev['answers_aligned']} answers aligned sentence by sentence ({ev['answers_misaligned']} split differently, left out).")
    return "\n".join(lines)


def grounded_markdown(name: str, ev: dict[str, Any]) -> str:
    """A markdown table of one cached evaluation."""
    lines = [f"#### {name}", "", f"{ev['answers']} answers ({ev['positives']} not supported); "
             f"{ev['seconds_per_answer']:.2f} s per answer when scored.", "",
             *metric_table(ev["rows"], "ECE", counted=True)]
    lines += ["", "Raw score AUROCs: " + ", ".join(f"{k} {v:.3f}" for k, v in ev["raw_auroc"].items()) + "."]
    return "\n".join(lines)


def report_tables(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's tables in the docs' shape (``{"title", "columns", "rows"}``), from its results.

    Example:
        >>> r = {"auroc": 0.9, "auroc_ci": [0.8, 0.95], "brier": 0.1, "brier_ci": [0.05, 0.2], "n": 10}
        >>> report_tables({"results": {"set": {"rows": {"all|whylm risk": r}}}})[0]["rows"]
        [['all', 'whylm risk', 10, '0.900 [0.800, 0.950]', '0.100 [0.050, 0.200]']]
    """
    def ci(r: dict[str, Any], k: str) -> str:
        return with_ci(r[k], r.get(k + "_ci"))

    tables = []
    for name, ev in out.get("results", {}).items():
        rows = []
        for key, r in ev.get("rows", {}).items():
            subset, label = key.split("|")
            rows.append([subset, label, r.get("n", ev.get("answers")), ci(r, "auroc"), ci(r, "brier")])
        if rows:
            tables.append({"title": f"{name}: held-out test half", "rows": rows,
                           "columns": ["subset", "predictor", "answers", "AUROC [95% CI]", "Brier [95% CI]"]})
    for name, ev in out.get("evidence", {}).items():
        rows = [[k.replace("_", " "), with_ci(r["value"], r["ci"]), r["n"]]
                for k, r in ev.items() if isinstance(r, dict)]
        tables.append({"title": f"Evidence and localisation: {name}", "rows": rows,
                       "columns": ["measure", "value [95% CI]", "n"]})
    if out.get("transfer"):
        rows = [[name, f"{r['fitted on all dev sets']['auroc']:.3f} / {r['fitted on all dev sets']['brier']:.3f}",
                 f"{r['fitted without it']['auroc']:.3f} / {r['fitted without it']['brier']:.3f}"]
                for name, r in out["transfer"].items()]
        tables.append({"title": "Transfer: AUROC / Brier on each test set", "rows": rows,
                       "columns": ["test set", "calibration fitted on all dev sets", "fitted without its dev half"]})
    return tables


def score_only(lm: Any, args: argparse.Namespace) -> int:
    """Score the named sets of ``args.split`` into the cache (resuming it), printing the cost first."""
    sets = grounded_sets(args.split, args)
    order = [n.strip() for n in args.score_only.split(",") if n.strip()]
    unknown = [n for n in order if n not in sets]
    if unknown:
        print(f"error: --score-only: unknown set(s) {', '.join(unknown)}; known: {', '.join(sets)}", file=sys.stderr)
        return 2
    from score_cache import example_key

    for name in order:
        path = CACHE / f"{'halueval' if name == 'halueval' else 'grounded'}-{args.split}.jsonl"
        rows = read_cache(path)
        have = {r["key"] for r in rows}
        missing = sum(example_key(ex) not in have for ex in sets[name])
        per = float(np.median([r["seconds"] for r in rows])) if rows else 25.0  # this machine's recent pace
        print(f"{name} {args.split}: {len(sets[name])} answers, {missing} to score "
              f"(about {missing * per / 60:.0f} min at {per:.1f} s per answer, the cache's median)", flush=True)
        t = time.perf_counter()
        cached_reports(lm, sets[name], path, progress=args.progress, desc=f"{name} {args.split}")
        print(f"{name} {args.split}: done in {time.perf_counter() - t:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--n", type=int, default=None, help="HaluEval items per split (default: the whole half)")
    parser.add_argument("--per-kind", type=int, default=32, help="grounded cases per kind and label")
    parser.add_argument("--datasets", default="halueval,grounded",
                        help="halueval, grounded (cached, evidence-based), halueval-nocontext, truthfulqa")
    parser.add_argument("--cached-only", action="store_true",
                        help="use only answers already in the cache (no model run): a bounded run")
    parser.add_argument("--fit-calibration", metavar="OUT", default=None,
                        help="fit the context calibration on the dev halves (HaluEval + grounded cases), write OUT, stop")
    parser.add_argument("--calibration", default=None, help="calibration file to evaluate (default: the shipped one)")
    parser.add_argument("--score-only", metavar="SETS", default=None,
                        help="only score these sets of --split into the cache, in this order, and stop "
                             "(e.g. multi,halueval,short: a long run that later runs read with --cached-only)")
    parser.add_argument("--consistency", type=int, default=0, metavar="N",
                        help="also measure sample consistency (5 samples) on N HaluEval items")
    parser.add_argument("--sample-tokens", type=int, default=32, help="max tokens of a sampled answer")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--max-length-gap", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", "--out", dest="json", default=str(ROOT / "benchmarks" / "results" / "hallucination.json"),
                        help="write the JSON results here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from explain import LanguageModel
    from explain.signals.calibration import load_calibration

    if args.score_only and args.cached_only:
        print("error: --score-only scores answers with the model; it cannot run --cached-only", file=sys.stderr)
        return 2
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    needs_model = not args.cached_only or any(n in names for n in ("halueval-nocontext", "truthfulqa")) or args.consistency
    lm = LanguageModel.load() if needs_model else None
    started = time.perf_counter()
    if args.score_only:
        return score_only(lm, args)
    dev_sets = {k: v for k, v in grounded_sets("dev", args).items()
                if (k == "halueval" and "halueval" in names) or (k != "halueval" and "grounded" in names)}
    dev = scored(None if args.cached_only else lm, dev_sets, "dev", args)
    if args.fit_calibration:
        counts = ", ".join(f"{k} {len(v)}" for k, v in dev.items())
        cal = fit_from_rows(dev, f"dev halves, HaluEval and the grounded cases weighing the same: {counts} answers (HaluEval QA dev items "
                                 "from the first half of qa_pairs.json; grounded_cases.py dev split)")
        cal.notes = ["signals(chat=True, evidence=True)",
                     "case skipped, no_context: no signal score separates the labels in the right direction: cannot calibrate",
                     f"fitted by: python benchmarks/hallucination.py --fit-calibration OUT --per-kind {args.per_kind}"
                     + (f" --n {args.n}" if args.n else "") + (" --cached-only" if args.cached_only else "")]
        cal.save(args.fit_calibration)
        print(cal.summary())
        for name, case in cal.cases.items():
            print(name, "directions (dev AUROC of each candidate):",
                  ", ".join(f"{k} {v:.3f}" for k, v in case.directions.items()))
        print(f"wrote {args.fit_calibration} in {time.perf_counter() - started:.0f} s")
        return 0

    cal, note = load_calibration(args.calibration if args.calibration else None, "SmolLM2-135M-Instruct")
    out: dict[str, Any] = {"model": "SmolLM2-135M-Instruct", "split": args.split, "threads": torch.get_num_threads(),
                           "calibration": cal.to_dict(), "results": {}}
    test = scored(None if args.cached_only else lm, {k: v for k, v in grounded_sets(args.split, args).items() if k in dev},
                  args.split, args)
    for name, rows in test.items():
        if not rows:
            continue
        title = "HaluEval QA, grounded (knowledge as context)" if name == "halueval" else f"grounded cases: {name}"
        ev = evaluate_rows(name, rows, cal, dev[name] or rows, args)
        out["results"][title] = ev
        print(grounded_markdown(f"{title}: {args.split} split", ev), "\n", flush=True)
    if "grounded" in names:
        multi = test.get("multi", [])
        ev = evidence_metrics([r for k in KINDS for r in test.get(k, [])], cal, args)
        ev_multi = evidence_metrics(multi, cal, args)
        out["evidence"] = {"all grounded kinds": ev, "multi": ev_multi}
        print(f"#### Evidence and localisation, grounded cases ({args.split} split)\n\nAll kinds:\n")
        print(evidence_markdown(ev), "\n\nMulti-sentence answers:\n")
        print(evidence_markdown(ev_multi), "\n")
        all_grounded = [r for k in KINDS for r in test.get(k, [])]
        if all_grounded:
            ev_all = evaluate_rows("grounded", all_grounded, cal, [r for k in KINDS for r in dev.get(k, [])], args)
            out["results"]["grounded cases: all kinds"] = ev_all
            print(grounded_markdown(f"grounded cases, all kinds: {args.split} split", ev_all), "\n")
    tr = transfer(dev, test, cal, args)
    out["transfer"] = tr
    print("#### Transfer: AUROC / Brier on each test set, calibration fitted with and without its dev half\n")
    print("| test set | fitted on all dev sets | fitted without it |\n|---|---|---|")
    for name, row in tr.items():
        a, b = row["fitted on all dev sets"], row["fitted without it"]
        print(f"| {name} | {a['auroc']:.3f} / {a['brier']:.3f} | {b['auroc']:.3f} / {b['brier']:.3f} |")
    print()

    legacy = []
    if "halueval-nocontext" in names:
        legacy.append(("HaluEval QA, no context", load_halueval(args.split, args.n), False))
    if "truthfulqa" in names:
        legacy.append(("TruthfulQA (no context; as it is)", load_truthfulqa(args.split, args.n), False))
    if legacy:
        dev_len = labelled(load_halueval("dev"), False)
        lens = np.array([len(lm.encode(e["response"], special=False)) for e in dev_len], float)
        len_fn = length_model(lens, np.array([e["label"] for e in dev_len]))
        for title, items, with_ctx in legacy:
            ev = evaluate(title, score(lm, items, with_ctx, args.progress), len_fn, args)
            out["results"][title] = ev
            print(markdown(f"{title}: {args.split} split", ev), "\n", flush=True)
    if args.consistency:
        res = consistency(lm, load_halueval(args.split, args.consistency), 5, args)
        out["consistency"] = res
        print(f"#### Sample consistency, HaluEval {args.split} items 0-{res['items'] - 1} (with knowledge), "
              f"{res['samples']} samples of <= {args.sample_tokens} tokens per question, "
              f"{res['seconds_per_item']:.1f} s per item\n")
        print("| score | AUROC [95% CI] |\n|---|---|")
        for key in ("inconsistency_embedding", "semantic_entropy", "discrete_semantic_entropy"):
            r = res[key]
            print(f"| {key} | {with_ci(r['auroc'], r['ci'])} |")
        print()
    out["seconds_total"] = time.perf_counter() - started
    out["command"] = "python benchmarks/hallucination.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"total {out['seconds_total']:.0f} s on {torch.get_num_threads()} CPU threads")
    out["tables"] = report_tables(out)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, allow_nan=True, default=float), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
