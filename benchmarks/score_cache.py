"""Score labelled answers with ``explain.signals`` once and keep what every score is computed from.

The embedded model is slow on shared CPUs; the calibration fit and the benchmark tables read the
per-answer arrays cached here (token log-probs, context contrast, entropies, the leave-one-out
matrix of the context sentences), and :func:`rescore` recomputes every score from them with the
current code, so changing a score's definition or refitting never reruns the model.

Usage (a module of the benchmarks; ``hallucination.py`` and ``grounded_cases.py`` call it):
    rows = cached_reports(lm, examples, Path("benchmarks/results/cache/halueval-dev.jsonl"))
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

KEEP = ("tokens", "token_ids", "token_logprob", "token_entropy", "token_margin", "token_context_contrast",
        "token_evidence", "context_sentences", "prompt", "context", "response")


def example_key(ex: Mapping[str, Any]) -> str:
    """Returns: a stable key of an example's texts (prompt, context, response)."""
    blob = json.dumps([ex.get("prompt"), ex.get("context"), ex.get("response")], ensure_ascii=False)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


_WARNED: set[str] = set()


def read_cache(path: Path) -> list[dict[str, Any]]:
    """The cache's rows. A line that is not a JSON row with a ``key`` (the last line of a scorer that
    was stopped, or a hand edit) is skipped and counted in one line on stderr: its answer is scored
    again, or left out of a ``--cached-only`` table.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "c.jsonl"
        >>> _ = p.write_text('{"key": "a"}\\n{"key": "b", bro\\n\\n')
        >>> read_cache(p)
        [{'key': 'a'}]
    """
    rows, bad = [], 0
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
            else:
                bad += 1
    if bad and str(path) not in _WARNED:  # the benchmark reads a cache once per set: say it once
        _WARNED.add(str(path))
        print(f"{path}: {bad} unreadable line(s) skipped; their answers are scored again "
              "(left out with --cached-only)", file=sys.stderr)
    return rows


def cached_reports(lm: Any, examples: Iterable[Mapping[str, Any]], cache: Path, progress: bool = False,
                   desc: str = "scoring") -> list[dict[str, Any]]:
    """The slim report of each example (from ``cache`` when there, else scored and appended to it).

    Returns:
        per example, a dict with the fields in :data:`KEEP` plus ``seconds``.
    """
    from tqdm.auto import tqdm

    from explain import signals

    cache.parent.mkdir(parents=True, exist_ok=True)
    have = {row["key"]: row for row in read_cache(cache)}
    out = []
    examples = list(examples)
    with cache.open("a", encoding="utf-8") as fh:
        if cache.stat().st_size and not cache.read_bytes().endswith(b"\n"):
            fh.write("\n")  # a scorer stopped mid-line: the next row starts on a line of its own
        for ex in tqdm(examples, desc=desc, disable=not progress):
            key = example_key(ex)
            if key not in have:
                t = time.perf_counter()
                rep = signals(lm, ex["prompt"], response=ex["response"], context=ex.get("context"),
                              calibration=False, progress=False)
                d = rep.to_dict()
                row = {"key": key, "seconds": time.perf_counter() - t, **{k: d.get(k) for k in KEEP}}
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                have[key] = row
            out.append(have[key])
    return out


def rescore(row: Mapping[str, Any]) -> tuple[dict[str, float], list[dict[str, float]], list[tuple[int, int]]]:
    """Every score of a cached report, recomputed with the current code (no model needed).

    Returns:
        (answer scores, per-sentence scores, sentence token spans).
    """
    from explain.attribution.sources import token_sentence_spans
    from explain.signals.evidence import answer_scores, evidence_scores
    from explain.signals.registry import SignalContext, compute_signals, sentence_scores

    arr = lambda k: None if row.get(k) is None else np.asarray(row[k], dtype=np.float64)  # noqa: E731
    tokens = list(row["tokens"])
    lp = arr("token_logprob")
    ent = arr("token_entropy")
    ctx = SignalContext(tokens=tokens, token_ids=list(row["token_ids"]), token_logprob=lp, token_entropy=ent,
                        token_margin=arr("token_margin"), token_top1=np.exp(lp),
                        token_context_contrast=arr("token_context_contrast"), prompt=row["prompt"],
                        response=row["response"], context=row.get("context"))
    values, scores = compute_signals(ctx)
    spans = token_sentence_spans(tokens)
    sent = sentence_scores(values, spans, tokens)
    deltas = arr("token_evidence")
    if deltas is not None and row.get("context"):
        ev = evidence_scores(deltas.reshape(len(row["context_sentences"]), len(tokens)), spans, tokens,
                             row["context"], prompt=row.get("prompt"))
        scores.update(answer_scores(ev))
        for sc, e in zip(sent, ev):
            sc.update(e)
    return scores, sent, spans
