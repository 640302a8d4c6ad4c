"""Fit a :class:`~explain.signals.calibration.Calibration` for a model from labelled answers.

Users auditing their own model have labels (this answer was right, that one made up); scoring
them with :func:`explain.signals` and fitting a logistic model over the scores makes the risk
theirs. ``whylm signals calibrate labelled.jsonl --out cal.json`` is the command-line form.

Examples:
    >>> examples = [{"prompt": "Q?", "response": "A.", "context": "A.", "label": 0}] * 8   # doctest: +SKIP
    >>> cal = calibrate_signals(lm, examples)                                            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from explain.errors import ExplainError
from explain.progress import bar, want_progress
from explain.signals.api import signals
from explain.signals.calibration import CANDIDATES, Calibration, fit_case


def read_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read labelled examples from a JSON-lines file (``prompt``, ``response``, ``context``, ``label``).

    Returns:
        the rows as dicts.

    Raises:
        ExplainError: a missing or unreadable file, a line that is not a JSON object.

    Examples:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "l.jsonl")
        >>> _ = open(p, "w").write('{"prompt": "Q?", "response": "A", "label": 1}\\n\\n')
        >>> read_examples(p)
        [{'prompt': 'Q?', 'response': 'A', 'label': 1}]
    """
    from explain.cli_io import read_json_lines

    return read_json_lines(path, "labelled file", "prompt, response, context, label")


def _label(row: Mapping[str, Any], k: int) -> int:
    value = row.get("label")
    if isinstance(value, bool) or value in (0, 1):
        return int(value)
    raise ExplainError(f"example {k}: label must be 1 (hallucinated / not supported) or 0 (supported), got {value!r}")


def calibrate_signals(
    lm: Any, examples: Iterable[Mapping[str, Any]], *, chat: bool = True, progress: bool | None = None,
    description: str = "", features: Mapping[str, list[str]] | None = None,
) -> Calibration:
    """Score labelled answers with :func:`explain.signals` and fit a calibration for ``lm``.

    Args:
        lm: the :class:`explain.LanguageModel` the calibration is for.
        examples: dicts with ``prompt``, ``response``, ``context`` (None or absent for the
            no-context case) and ``label`` (1 = hallucinated / not supported, 0 = supported).
            Each case (with / without context) needs at least 4 examples of each label.
        chat: as in :func:`explain.signals` (use the same setting when reading the risk).
        progress: a progress bar; None = when interactive.
        description: the data in words, stored in the file.
        features: case -> candidate score names (default :data:`~explain.signals.calibration.CANDIDATES`);
            candidates pointing the wrong way on these examples are dropped.

    Returns:
        a :class:`Calibration` with a case per context setting present in the examples.

    Raises:
        ExplainError: bad rows, or no case with enough examples of both labels.
    """
    rows = list(examples)
    if not rows:
        raise ExplainError("no labelled examples given")
    features = dict(features or CANDIDATES)
    by_case: dict[str, tuple[list[dict[str, float]], list[int]]] = {"context": ([], []), "no_context": ([], [])}
    with bar(len(rows), "calibrating", want_progress(progress, 0.2 * len(rows))) as b:
        for k, row in enumerate(rows, 1):
            if not isinstance(row, Mapping):
                raise ExplainError(f"example {k}: expected a dict with prompt, response, context, label")
            label = _label(row, k)
            context = row.get("context") or None
            try:
                rep = signals(lm, row.get("prompt", ""), response=row.get("response", ""), context=context,
                              calibration=False, progress=False, chat=chat)
            except ExplainError as exc:
                raise ExplainError(f"example {k}: {exc}") from None
            scores, labels = by_case["context" if context else "no_context"]
            scores.append(rep.scores)
            labels.append(label)
            b.update(1)
    cases = {}
    skipped = []
    for name, (scores, labels) in by_case.items():
        if not labels:
            continue
        names = [f for f in features.get(name, []) if all(f in s for s in scores)]
        x = np.array([[s[f] for f in names] for s in scores], dtype=np.float64)
        what = description or f"{len(labels)} labelled answers"
        try:
            cases[name] = fit_case(names, x, np.array(labels), description=what)
        except ExplainError as exc:
            skipped.append(f"{name}: {exc}")
    if not cases:
        raise ExplainError("cannot calibrate: " + "; ".join(skipped))
    notes = [f"signals(chat={chat}, evidence=True)"] + [f"case skipped, {s}" for s in skipped]
    return Calibration(model=getattr(lm, "name", ""), cases=cases, notes=notes)
