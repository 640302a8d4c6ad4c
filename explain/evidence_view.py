"""Words and escaped HTML for people reading a :class:`~explain.signals.SignalReport`: plain score
names with their ranges, and each answer sentence with its verdict, risk and evidence.

Shared by ``whylm signals`` (text lines), the audit's ``evidence`` column (JSON rows) and the
dashboard's Signals and Audits pages (HTML), so the three say the same thing in the same words.
Every text from a model or a user is escaped before it becomes HTML.

Examples:
    >>> score_label("max_neg_logprob"), score_range("max_neg_logprob")
    ('surprise (-log p), highest token', '0 and up, nats')
    >>> NOTHING
    'nothing in the context supports this'
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Sequence

from explain.plots import escape
from explain.signals import SCORE_DOCS, SIGNALS
from explain.signals.evidence import LABELS as EVIDENCE_LABELS
from explain.signals.evidence import words_note
from explain.signals.registry import score_docs

NOTHING = "nothing in the context supports this"
"""What a sentence without evidence says, everywhere it is shown."""

NO_EVIDENCE = "no evidence computed (no context given, or evidence=False)"

VERDICT_COLOURS = {"supported": "#1a7f37", "uncertain": "#9a6700", "likely hallucinated": "#cf222e"}

CONSISTENCY_LABELS = {
    "inconsistency_embedding": "sampled answers disagree (embeddings)",
    "inconsistency_judge": "sampled answers disagree (judge)",
    "semantic_entropy": "spread of meanings across samples",
    "discrete_semantic_entropy": "spread of meanings across samples (counts)",
}
"""Plain names of the consistency scores (they come from samples, not from a registered signal)."""

_REDUCER_WORDS = {"mean": "average over tokens", "max": "highest token", "min": "lowest token",
                  "sum": "sum over tokens"}
_RANGE = re.compile(r"^\s*([\[(][^\]\)]*[\])])\s*([^:]*):")


def score_label(key: str) -> str:
    """A plain-language name for a sequence score, from the signal that produces it.

    Returns:
        the signal's label and how its tokens were rolled up; for a score no signal produces,
        the key with spaces.

    Examples:
        >>> score_label("mean_entropy"), score_label("semantic_entropy")
        ('model hesitation (entropy), average over tokens', 'spread of meanings across samples')
        >>> score_label("unsupported")
        'no context sentence supports it'
    """
    if key in EVIDENCE_LABELS:
        return EVIDENCE_LABELS[key]
    if key in CONSISTENCY_LABELS:
        return CONSISTENCY_LABELS[key]
    for spec in SIGNALS.values():
        if key in spec.aggregate:
            reducer = spec.aggregate[key]
            how = _REDUCER_WORDS.get(reducer, reducer) if isinstance(reducer, str) else "share of tokens"
            return f"{spec.label}, {how}"
    return key.replace("_", " ")


def score_doc(key: str) -> str:
    """Returns: the registered meaning of a score (``""`` when none is registered).

    Examples:
        >>> score_doc("mean_neg_logprob").startswith("[0, inf)")
        True
    """
    return {**SCORE_DOCS, **score_docs()}.get(key, "")


def score_range(key: str) -> str:
    """The range of a score in words, read from the interval its doc starts with.

    Returns:
        e.g. ``"0 to 1"``, ``"0 and up, nats"``; ``""`` when the doc states no range.

    Examples:
        >>> score_range("context_unused")
        '0 to 1'
    """
    match = _RANGE.match(score_doc(key))
    if not match:
        return ""
    bounds = [b.strip() for b in match.group(1)[1:-1].split(",")]
    unit = match.group(2).strip(" ,")
    if len(bounds) != 2:
        return ""
    lo, hi = bounds
    if hi in ("inf", "+inf", "∞"):
        words = "any value" if lo in ("-inf", "-∞") else f"{lo} and up"
    elif lo in ("-inf", "-∞"):
        words = f"up to {hi}"
    else:
        words = f"{lo} to {hi}"
    return f"{words}, {unit}" if unit else words


def shown_scores(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer-level scores as people read them: plain name, range, value; the key kept for tooltips.

    Returns:
        ``[{"name", "range", "value", "key"}]`` in the report's order, values that are not finite
        left out (a score that does not apply to this answer).

    Examples:
        >>> shown_scores({"mean_entropy": 0.5, "ungrounded_max": float("nan")})[0]["name"]
        'model hesitation (entropy), average over tokens'
    """
    out = []
    for key, value in scores.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out.append({"name": score_label(key), "range": score_range(key), "value": v, "key": key})
    return out


def scores_html(scores: dict[str, Any]) -> str:
    """The answer-level scores as a table that wraps to its column: plain name, range, value; the
    score's key and meaning in each row's tooltip.

    Returns:
        an escaped ``<table class="whylm-score-table">`` string (``""`` when no score is finite).

    Examples:
        >>> html = scores_html({"mean_entropy": 0.5})
        >>> "model hesitation (entropy), average over tokens" in html, "<td>0.500</td>" in html
        (True, True)
    """
    rows = [f'<tr title="{escape(sc["key"] + ": " + score_doc(sc["key"]))}"><td>{escape(sc["name"])}</td>'
            f'<td>{escape(sc["range"] or "—")}</td><td>{sc["value"]:.3f}</td></tr>'
            for sc in shown_scores(scores)]
    if not rows:
        return ""
    return ('<table class="whylm-score-table" style="width:100%;table-layout:fixed;border-collapse:collapse;'
            'overflow-wrap:anywhere"><colgroup><col style="width:58%"><col style="width:27%">'
            '<col style="width:15%"></colgroup><tr><th>score (higher = more suspicious)</th><th>range</th>'
            f'<th>value</th></tr>{"".join(rows)}</table>')


def has_evidence(rep: Any) -> bool:
    """Returns: whether the report holds evidence (a context was given and evidence was computed).

    Examples:
        >>> from types import SimpleNamespace as NS
        >>> has_evidence(NS(context="a.", context_sentences=["a."])), has_evidence(NS(context=None, context_sentences=[]))
        (True, False)
    """
    # getattr: reports saved before evidence existed have no context_sentences
    return rep.context is not None and bool(getattr(rep, "context_sentences", None))


def evidence_rows(rep: Any) -> list[dict[str, Any]]:
    """Each answer sentence with its verdict, risk and evidence, as JSON-ready dicts.

    Returns:
        ``[{"sentence", "risk", "verdict", "evidence": [{"source", "text", "start", "end", "score",
        "basis"}], "conflicts": [{..., "differs"}]}]``, evidence best first (``[]``: nothing in the
        context supports the sentence; ``basis``: ``"removal"`` or ``"words"``), conflicts: the
        context sentence that says the same with other names/numbers; ``[]`` when the report holds
        no evidence (see :func:`has_evidence`).

    Examples:
        >>> evidence_rows(_demo())[1]["evidence"], evidence_rows(_demo())[0]["evidence"][0]["basis"]
        ([], 'removal')
    """
    if not has_evidence(rep):
        return []

    def row(e: Any) -> dict[str, Any]:
        out = {"source": int(e.source), "text": e.text, "start": int(e.start), "end": int(e.end),
               "score": _num(e.score), "basis": getattr(e, "basis", "removal")}
        if out["basis"] == "conflict":
            out["differs"] = list(getattr(e, "differs", []))
        return out

    return [{"sentence": s.text, "risk": _num(s.risk), "verdict": s.verdict,
             "evidence": [row(e) for e in s.evidence], "conflicts": [row(e) for e in getattr(s, "conflicts", [])]}
            for s in rep.sentences]


def evidence_json(rep: Any) -> str | None:
    """Returns: :func:`evidence_rows` as JSON text, or None when the report holds no evidence."""
    return json.dumps(evidence_rows(rep), ensure_ascii=False) if has_evidence(rep) else None


def n_unsupported(rep: Any) -> int | None:
    """Returns: how many answer sentences no context sentence supports (nothing listed, or judged
    likely hallucinated: their listed sentence is only the closest, as :func:`evidence_words` says);
    None without evidence.

    Examples:
        >>> n_unsupported(_demo())
        1
        >>> from types import SimpleNamespace as NS
        >>> w = NS(text="Paris is the capital.", source=0, score=0.1)
        >>> n_unsupported(NS(context="Paris is the capital.", context_sentences=["Paris is the capital."], sentences=[
        ...     NS(evidence=[w], verdict="likely hallucinated"), NS(evidence=[w], verdict="supported")]))
        1
    """
    if not has_evidence(rep):
        return None
    return sum(not s.evidence or getattr(s, "verdict", None) == "likely hallucinated" for s in rep.sentences)


def _risk_words(risk: float | None, verdict: str | None) -> str:
    return "no calibrated risk" if risk is None else f"{verdict} (risk {risk:.2f})"


def sentence_lines(rep: Any) -> list[str]:
    """Plain text for a terminal: each answer sentence with its verdict, risk and best evidence.

    Returns:
        two lines per sentence (the sentence; its best evidence or :data:`NOTHING`); without
        evidence, one line per sentence.

    Examples:
        >>> print("\\n".join(sentence_lines(_demo())))
        1. "Paris is the capital." supported (risk 0.10)
           evidence: "Paris is the capital of France." (context sentence 1, support 2.50 nats)
        2. "It has 90 million people." likely hallucinated (risk 0.90)
           evidence: nothing in the context supports this
    """
    lines = []
    show = has_evidence(rep)
    for k, s in enumerate(rep.sentences, start=1):
        lines.append(f"{k}. \"{s.text.strip()}\" {_risk_words(s.risk, s.verdict)}")
        if show:
            lines.append(f"   {evidence_words(s)}")
    return lines


def evidence_words(s: Any) -> str:
    """One answer sentence's evidence in a line: a conflict first; support read with the verdict.

    A likely-hallucinated sentence's closest context sentence is named as closest, not as support;
    evidence listed by its words (``basis="words"``) says that removing it changes little.

    Returns:
        ``"evidence: ..."``, ``"conflicts with: ..."``, ``"not supported; closest: ..."`` or
        ``"evidence: " + NOTHING``.

    Examples:
        >>> from types import SimpleNamespace as NS
        >>> e = NS(source=0, text="Built in 1874.", score=1.2, basis="conflict", differs=["1847"])
        >>> evidence_words(NS(evidence=[], conflicts=[e], verdict="likely hallucinated"))
        'conflicts with: "Built in 1874." (context sentence 1; it does not say 1847)'
        >>> w = NS(source=0, text="Paris is the capital.", score=0.1, basis="words")
        >>> evidence_words(NS(evidence=[w], conflicts=[], verdict="supported"))
        'evidence: "Paris is the capital." (context sentence 1, states it in the same words; removing it changes the answer little (0.10 nats): the model may know it already)'
        >>> evidence_words(NS(evidence=[w], conflicts=[], verdict="likely hallucinated"))
        'not supported; closest: "Paris is the capital." (context sentence 1, 0.10 nats)'
    """
    clash = getattr(s, "conflicts", None) or []
    if clash:
        c = clash[0]
        return (f"conflicts with: \"{c.text.strip()}\" (context sentence {int(c.source) + 1}; it does not say "
                f"{', '.join(getattr(c, 'differs', [])) or 'the same'})")
    if not s.evidence:
        return f"evidence: {NOTHING}"
    e = s.evidence[0]
    where = f"context sentence {int(e.source) + 1}"
    if s.verdict == "likely hallucinated":
        return f"not supported; closest: \"{e.text.strip()}\" ({where}, {float(e.score):.2f} nats)"
    if getattr(e, "basis", "removal") == "words":
        return f"evidence: \"{e.text.strip()}\" ({where}, {words_note(float(e.score))})"
    return f"evidence: \"{e.text.strip()}\" ({where}, support {float(e.score):.2f} nats)"


def risk_colour(risk: float | None) -> str:
    """The background of a sentence: white (risk 0) to red (risk 1); grey without a risk.

    Examples:
        >>> risk_colour(None), risk_colour(1.0)
        ('rgba(140, 140, 140, 0.15)', 'rgba(220, 38, 38, 0.600)')
    """
    if risk is None or not math.isfinite(float(risk)):
        return "rgba(140, 140, 140, 0.15)"
    return f"rgba(220, 38, 38, {min(max(float(risk), 0.0), 1.0) * 0.6:.3f})"


def sentences_html(rep: Any, selected: int | None = None) -> str:
    """The answer's sentences, each coloured by its risk, the selected one outlined (escaped).

    Returns:
        a ``<div class="whylm-sentences">`` string; each sentence's tooltip gives its verdict and risk.

    Examples:
        >>> "whylm-sent-selected" in sentences_html(_demo(), selected=1)
        True
    """
    spans = []
    for k, s in enumerate(rep.sentences):
        outline = "outline:2px solid #0969da;" if k == selected else ""
        cls = "whylm-sent whylm-sent-selected" if k == selected else "whylm-sent"
        spans.append(f'<span class="{cls}" title="{escape(_risk_words(s.risk, s.verdict))}" '
                     f'style="background:{risk_colour(s.risk)};{outline}border-radius:3px;padding:1px 2px;'
                     f'white-space:pre-wrap">{escape(s.text)}</span>')
    return ('<div class="whylm-sentences" style="line-height:2;overflow-wrap:anywhere">'
            + " ".join(spans) + "</div>")


def sentence_table_html(rep: Any) -> str:
    """A table of the answer's sentences: verdict, risk and best evidence; it wraps to its column.

    Returns:
        an escaped ``<table class="whylm-sentence-table">`` string (the evidence column only when
        the report holds evidence).

    Examples:
        >>> html = sentence_table_html(_demo())
        >>> html.count("<tr>"), NOTHING in html
        (3, True)
    """
    show = has_evidence(rep)
    head = "<th>sentence</th><th>verdict</th><th>risk</th>" + ("<th>best evidence</th>" if show else "")
    rows = []
    for s in rep.sentences:
        risk = "—" if s.risk is None else f"{float(s.risk):.2f}"
        cells = f"<td>{escape(s.text.strip())}</td><td>{escape(s.verdict or '—')}</td><td>{risk}</td>"
        if show:
            cells += f"<td>{escape(_best_cell(s))}</td>"
        rows.append(f"<tr>{cells}</tr>")
    widths = ("38%", "17%", "7%", "38%") if show else ("70%", "20%", "10%")
    cols = "".join(f'<col style="width:{w}">' for w in widths)
    return ('<table class="whylm-sentence-table" style="width:100%;table-layout:fixed;border-collapse:collapse;'
            f'overflow-wrap:anywhere"><colgroup>{cols}</colgroup><tr>{head}</tr>{"".join(rows)}</table>')


def _best_cell(s: Any) -> str:
    """The table's best-evidence cell: the evidence text, a conflict or a closest sentence said as such."""
    clash = getattr(s, "conflicts", None) or []
    if clash:
        return f"conflicts: {clash[0].text.strip()}"
    if not s.evidence:
        return NOTHING
    if s.verdict == "likely hallucinated":
        return f"closest, not support: {s.evidence[0].text.strip()}"
    return s.evidence[0].text.strip()


def _span(context: str, e: Any) -> tuple[int, int] | None:
    """The characters of ``e`` in ``context``: its start/end when they hold its text, else where the text is."""
    start, end = int(e.start), int(e.end)
    if 0 <= start < end <= len(context) and context[start:end].strip() == str(e.text).strip():
        return start, end
    found = context.find(str(e.text).strip())
    return (found, found + len(str(e.text).strip())) if found >= 0 and str(e.text).strip() else None


def context_html(rep: Any, selected: int) -> str:
    """The context with the evidence of answer sentence ``selected`` highlighted (escaped).

    The best evidence sentence is marked strongest; a sentence without evidence gets a line saying
    :data:`NOTHING` above the plain context.

    Returns:
        a ``<div class="whylm-context">`` string.

    Examples:
        >>> html = context_html(_demo(), 0)
        >>> html.count("<mark"), "support 2.50 nats" in html
        (1, True)
        >>> NOTHING in context_html(_demo(), 1)
        True
    """
    context = rep.context or ""
    sent = rep.sentences[selected]
    clash = list(getattr(sent, "conflicts", None) or [])
    refuted = sent.verdict == "likely hallucinated"
    marks: list[tuple[int, int, int, Any]] = []
    for rank, e in enumerate(clash + list(sent.evidence)):
        span = _span(context, e)
        if span and not any(a < span[1] and span[0] < b for a, b, _, _ in marks):
            marks.append((*span, rank, e))
    pieces, pos = [], 0
    for start, end, rank, e in sorted(marks):
        alpha = 0.55 if rank == 0 else 0.25
        if getattr(e, "basis", "removal") == "conflict":
            cls, colour = "whylm-conflict", f"rgba(207, 34, 46, {alpha})"
            tip = (f"conflicts: context sentence {int(e.source) + 1} says this with other names/numbers "
                   f"(it does not say {', '.join(getattr(e, 'differs', []))})")
        elif refuted:
            cls, colour = "whylm-closest", "rgba(154, 103, 0, 0.25)"
            tip = f"closest context sentence {int(e.source) + 1}, support {float(e.score):.2f} nats: not enough to support it"
        else:
            cls, colour = "whylm-evidence", f"rgba(26, 127, 55, {alpha})"
            tip = f"evidence {rank + 1}: context sentence {int(e.source) + 1}, support {float(e.score):.2f} nats"
            if getattr(e, "basis", "removal") == "words":
                tip += f" ({words_note(float(e.score))})"
        pieces.append(escape(context[pos:start]))
        pieces.append(f'<mark class="{cls}" title="{escape(tip)}" '
                      f'style="background:{colour};border-radius:3px">'
                      f"{escape(context[start:end])}</mark>")
        pos = end
    pieces.append(escape(context[pos:]))
    if clash:
        c = clash[0]
        head = (f"Sentence {selected + 1} conflicts with context sentence {int(c.source) + 1}: it does not say "
                f"{', '.join(getattr(c, 'differs', [])) or 'the same'}")
    elif sent.evidence and refuted:
        head = (f"Sentence {selected + 1}: not supported; the closest is context sentence "
                f"{int(sent.evidence[0].source) + 1} (support {float(sent.evidence[0].score):.2f} nats)")
    elif sent.evidence:
        best = sent.evidence[0]
        head = (f"Evidence for sentence {selected + 1}: best is context sentence {int(best.source) + 1} "
                f"(support {float(best.score):.2f} nats: how much less likely the sentence is without it)")
        if getattr(best, "basis", "removal") == "words":
            head += "; it states the sentence in the same words, the model may know it already"
    else:
        head = f"Sentence {selected + 1}: {NOTHING}."
    return (f'<div class="whylm-context"><div class="whylm-evidence-head" style="font-weight:600;'
            f'margin-bottom:4px">{escape(head)}</div><div style="white-space:pre-wrap;border:1px solid #ddd;'
            f'border-radius:4px;padding:6px;overflow-wrap:anywhere">{"".join(pieces)}</div></div>')


def sentence_option(rep: Any, k: int) -> str:
    """The label of answer sentence ``k`` in a picker: number, verdict/risk and the start of its text.

    Examples:
        >>> sentence_option(_demo(), 1)
        '2 · likely hallucinated (risk 0.90) · It has 90 million people.'
    """
    s = rep.sentences[k]
    text = " ".join(s.text.split())
    return f"{k + 1} · {_risk_words(s.risk, s.verdict)} · {text if len(text) <= 80 else text[:79] + '…'}"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _demo() -> Any:
    """A two-sentence report with evidence for the one right sentence (docstring examples)."""
    from types import SimpleNamespace as NS

    ctx = "Paris is the capital of France. It is on the Seine."
    ev = NS(source=0, text="Paris is the capital of France.", start=0, end=31, score=2.5)
    return NS(context=ctx, context_sentences=["Paris is the capital of France.", "It is on the Seine."],
              sentences=[NS(text="Paris is the capital.", risk=0.1, verdict="supported", evidence=[ev]),
                         NS(text=" It has 90 million people.", risk=0.9, verdict="likely hallucinated",
                            evidence=[])])


__all__: Sequence[str] = [
    "NOTHING", "context_html", "evidence_json", "evidence_rows", "evidence_words", "has_evidence", "n_unsupported", "score_label",
    "score_range", "scores_html", "sentence_lines", "sentence_option", "sentence_table_html", "sentences_html", "shown_scores",
]
