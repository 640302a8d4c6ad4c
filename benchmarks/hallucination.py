"""Hallucination-signal benchmark: can whylm's scores tell a right answer from a made-up one?

Two pair sets from ``../shared/data`` (see its README), each split in half: the first half is the
*dev* split (where the score choices below were made), the second half the *test* split (reported;
nothing was tuned on it).

- **HaluEval QA** (500 items): knowledge passage, question, a right and a hallucinated answer. Each
  answer is scored by ``explain.signals(lm, question, response=answer, context=knowledge)``: one
  teacher-forced pass holding the with-knowledge and the without-knowledge rows. Hallucinated
  answers are much longer than right ones, so an answer-length baseline is strong; the
  *similar-length* columns keep only pairs whose token lengths differ by at most
  ``--max-length-gap`` tokens.
- **TruthfulQA** (817 questions): the best answer vs the incorrect answer closest to it in
  characters. The "context" here is the question itself: ``signals(lm, INSTRUCTION,
  response=answer, context=question)``, so "with/without the question" is the context contrast.

Metrics: AUROC (hallucinated/incorrect = positive) with a 95% bootstrap CI over items, pairwise
accuracy (the hallucinated answer of a pair scores higher), both on the similar-length pairs,
and cost per item (seconds, forward passes). Baselines in the same table: random, answer length,
mean -log p with and without the context, 1 - max softmax probability.

Choices frozen on the dev split before any test run (SmolLM2-135M-Instruct): the context template
``"Context: {context}\\n\\n{prompt}"`` (vs. ``"{context}\\n\\n{prompt}"`` and a
``Question:``-labelled one, HaluEval dev items 0-59) and the headline grounding score
``ungrounded_max`` (HaluEval dev items 0-209: AUROC 0.936, pairwise 0.943, similar-length pairwise
0.893 on 28 pairs; mean contrast ``ungrounded`` 0.837; mean log-prob 0.474). On the TruthfulQA dev
split (150 pairs) no score beat chance (all AUROC 0.41-0.53): the 135M model finds the imitative
falsehoods at least as likely as the truth, with or without the question; the headline stays
``ungrounded_max`` for both sets (see :data:`HEADLINE`).

Usage:
    python benchmarks/hallucination.py --split dev --n 50 --out /tmp/halu-dev.json
    python benchmarks/hallucination.py --split test --n 120 --threads 2 --out bench-halu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
sys.path.insert(0, str(ROOT))

TRUTHFULQA_INSTRUCTION = "Answer the question in one sentence."
HEADLINE = {"halueval": "ungrounded_max", "truthfulqa": "ungrounded_max"}
"""The score each dataset's verdict is read from, chosen on the dev split before the test run."""

# name -> (label, function of a SignalReport giving a score, higher = more likely hallucinated)
Score = Callable[[Any], float]


def _scores(context_name: str) -> dict[str, tuple[str, Score]]:
    def no_ctx_nlp(rep: Any) -> float:
        return float(-(rep.token_logprob - rep.token_context_contrast).mean())

    return {
        "random": ("random", lambda rep: float("nan")),  # filled per item from a seeded generator
        "length": ("answer length (tokens)", lambda rep: float(len(rep.tokens))),
        "nlp_without": (f"mean -log p, without {context_name}", no_ctx_nlp),
        "mean_neg_logprob": (f"mean -log p, with {context_name}", lambda r: r.scores["mean_neg_logprob"]),
        "max_neg_logprob": (f"max -log p, with {context_name}", lambda r: r.scores["max_neg_logprob"]),
        "mean_one_minus_max_prob": (f"1 - max softmax prob, with {context_name}",
                                    lambda r: r.scores["mean_one_minus_max_prob"]),
        "mean_entropy": (f"mean entropy, with {context_name}", lambda r: r.scores["mean_entropy"]),
        "ungrounded": ("ungrounded (-mean context contrast)", lambda r: r.scores["ungrounded"]),
        "ungrounded_max": ("ungrounded_max (-min context contrast)", lambda r: r.scores["ungrounded_max"]),
        "ungrounded_fraction": ("ungrounded_fraction (tokens not lifted by context)",
                                lambda r: r.scores["ungrounded_fraction"]),
        "context_unused": ("context_unused (1 - attribution share)",
                           lambda r: r.scores.get("context_unused", float("nan"))),
    }


# ----------------------------------------------------------------------------- data
def load_halueval(split: str, n: int | None) -> list[dict[str, str]]:
    """HaluEval QA pairs of the split: dicts with context, prompt, right, wrong."""
    path = DATA / "halueval" / "qa_pairs.json"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [dict(context=r["knowledge"], prompt=r["question"], right=r["right_answer"],
                  wrong=r["hallucinated_answer"]) for r in rows]
    return _split(items, split, n)


def load_truthfulqa(split: str, n: int | None) -> list[dict[str, str]]:
    """TruthfulQA: best answer vs the incorrect answer closest to it in length (characters)."""
    path = DATA / "truthfulqa" / "TruthfulQA.csv"
    items = []
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            best = r["Best Answer"].strip()
            wrong = [w.strip() for w in r["Incorrect Answers"].split(";") if w.strip()]
            if not best or not wrong:
                continue
            w = min(wrong, key=lambda x: (abs(len(x) - len(best)), x))
            items.append(dict(context=r["Question"].strip(), prompt=TRUTHFULQA_INSTRUCTION, right=best, wrong=w))
    return _split(items, split, n)


def _split(items: list[dict[str, str]], split: str, n: int | None) -> list[dict[str, str]]:
    half = len(items) // 2
    chosen = items[:half] if split == "dev" else items[half:]
    return chosen[:n] if n else chosen


# ----------------------------------------------------------------------------- metrics
def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability a positive outscores a negative (ties count half): Mann-Whitney AUROC."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    values = np.concatenate([pos, neg])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_v = values[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pair_metrics(right: np.ndarray, wrong: np.ndarray, boot: int, rng: np.random.Generator) -> dict[str, float]:
    """AUROC with a 95% bootstrap CI (items resampled, pairs kept together) and pairwise accuracy."""
    if not len(right):
        return dict(auroc=float("nan"), lo=float("nan"), hi=float("nan"), pairwise=float("nan"), n=0)
    value = auroc(wrong, right)
    stats = []
    for _ in range(boot):
        idx = rng.integers(0, len(right), len(right))
        stats.append(auroc(wrong[idx], right[idx]))
    lo, hi = (np.nanpercentile(stats, [2.5, 97.5]) if boot else (np.nan, np.nan))
    pairwise = float(np.mean(np.where(wrong > right, 1.0, np.where(wrong == right, 0.5, 0.0))))
    return dict(auroc=value, lo=float(lo), hi=float(hi), pairwise=pairwise, n=int(len(right)))


# ----------------------------------------------------------------------------- runner
def run_dataset(lm: Any, name: str, items: list[dict[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """Score every pair of ``items``; return per-score metrics, costs and per-item scores."""
    from tqdm.auto import tqdm

    from explain import signals

    context_name = "knowledge" if name == "halueval" else "question"
    table = _scores(context_name)
    if not args.context_share:
        table.pop("context_unused")
    per_item: list[dict[str, Any]] = []
    rng = np.random.default_rng(args.seed)
    seconds, passes = [], []
    for item in tqdm(items, desc=name, disable=not args.progress):
        row: dict[str, Any] = {}
        spent, fwd = 0.0, 0
        for side in ("right", "wrong"):
            t = time.perf_counter()
            rep = signals(lm, item["prompt"], response=item[side], context=item["context"], progress=False,
                          context_share=args.context_share)
            spent += time.perf_counter() - t
            fwd += int(rep.cost["forward_passes"])
            row[side] = {key: float(fn(rep)) for key, (_, fn) in table.items()}
            row[side]["random"] = float(rng.random())
        seconds.append(spent)
        passes.append(fwd)
        per_item.append(row)
    lengths = np.array([[r["right"]["length"], r["wrong"]["length"]] for r in per_item])
    similar = np.abs(lengths[:, 0] - lengths[:, 1]) <= args.max_length_gap
    results: dict[str, Any] = {}
    boot_rng = np.random.default_rng(args.seed + 1)
    for key, (label, _) in table.items():
        right = np.array([r["right"][key] for r in per_item])
        wrong = np.array([r["wrong"][key] for r in per_item])
        results[key] = dict(
            label=label,
            all=pair_metrics(right, wrong, args.boot, boot_rng),
            similar_length=pair_metrics(right[similar], wrong[similar], args.boot, boot_rng),
        )
    return dict(
        items=len(items), similar_length_pairs=int(similar.sum()), scores=results,
        cost=dict(seconds_per_item=float(np.mean(seconds)) if seconds else 0.0,
                  forward_passes_per_item=float(np.mean(passes)) if passes else 0.0),
        mean_length=dict(right=float(lengths[:, 0].mean()), wrong=float(lengths[:, 1].mean())),
        per_item=per_item,
    )


def markdown(name: str, res: dict[str, Any], model: str, split: str, gap: int) -> str:
    """A markdown table of one dataset's results."""
    head = HEADLINE.get(name)
    lines = [
        f"### {name} ({split} split, {res['items']} pairs, {model})",
        "",
        f"Mean answer length: right {res['mean_length']['right']:.1f} tokens, "
        f"{'hallucinated' if name == 'halueval' else 'incorrect'} {res['mean_length']['wrong']:.1f}. "
        f"Similar length: |gap| <= {gap} tokens, {res['similar_length_pairs']} pairs. "
        f"Cost: {res['cost']['seconds_per_item']:.2f} s and {res['cost']['forward_passes_per_item']:.1f} "
        "forward passes per pair (two answers).",
        "",
        "| score | AUROC [95% CI] | pairwise acc. | similar-length AUROC [95% CI] | similar-length pairwise acc. |",
        "|---|---|---|---|---|",
    ]
    for key, r in res["scores"].items():
        a, s = r["all"], r["similar_length"]
        label = f"**{r['label']}** (headline)" if key == head else r["label"]
        lines.append(
            f"| {label} | {a['auroc']:.3f} [{a['lo']:.3f}, {a['hi']:.3f}] | {a['pairwise']:.3f} | "
            f"{s['auroc']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}] | {s['pairwise']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python benchmarks/hallucination.py --split test --n 120 --out bench-halu.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--split", choices=("dev", "test"), default="dev",
                        help="dev = first half of each set (choices were made there); test = second half")
    parser.add_argument("--n", type=int, default=None, help="pairs per dataset (default: the whole split)")
    parser.add_argument("--datasets", default="halueval,truthfulqa", help="comma-separated: halueval, truthfulqa")
    parser.add_argument("--model", default=None, help="model path or hub id (default: embedded SmolLM2-135M)")
    parser.add_argument("--out", default=None, help="write the JSON results here")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    parser.add_argument("--max-length-gap", type=int, default=2, help="similar-length pairs: token gap at most this")
    parser.add_argument("--context-share", action="store_true",
                        help="also compute the attribution share of the context (about 4x slower)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from explain import LanguageModel
    from explain.errors import ExplainError

    try:
        lm = LanguageModel.load(args.model)
    except ExplainError as exc:
        parser.exit(2, f"error: {exc}\n")
    loaders = {"halueval": load_halueval, "truthfulqa": load_truthfulqa}
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in loaders]
    if unknown:
        parser.exit(2, f"error: unknown dataset {unknown[0]!r}: use halueval, truthfulqa\n")
    started = time.perf_counter()
    out: dict[str, Any] = dict(model=lm.name, split=args.split, n=args.n, threads=torch.get_num_threads(),
                               headline=HEADLINE, datasets={})
    for name in names:
        res = run_dataset(lm, name, loaders[name](args.split, args.n), args)
        out["datasets"][name] = res
        print(markdown(name, res, lm.name, args.split, args.max_length_gap), "\n", flush=True)
    out["seconds_total"] = time.perf_counter() - started
    print(f"total {out['seconds_total']:.0f} s on {torch.get_num_threads()} CPU threads")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, allow_nan=True), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
