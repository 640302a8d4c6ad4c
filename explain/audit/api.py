"""``audit()``: score a dataset of model outputs with signals and/or attributions, resumably.

Examples:
    >>> import tempfile
    >>> from explain import LanguageModel, audit
    >>> lm = LanguageModel.load()                                                # doctest: +SKIP
    >>> s = audit([{"prompt": "Who wrote Hamlet?", "response": "Charles Dickens."}], lm,
    ...           out=tempfile.mkdtemp() + "/audit.parquet")                     # doctest: +SKIP
    >>> s.processed, s.errors                                                    # doctest: +SKIP
    (1, 0)
"""

from __future__ import annotations

import html as _html
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from explain.audit.engines import make_engine
from explain.audit.records import read_records, record_id
from explain.audit.store import PartStore, read_audit
from explain.audit.work import calibration_setting, make_settings, score_names
from explain.budget import Cost, check_budget, format_seconds, record_run, speed
from explain.errors import ExplainError
from explain.progress import bar, want_progress
from explain.serialize import Result

TEMPLATE_TOKENS = 12
"""Tokens a chat template adds around a prompt (estimate only)."""

DECODE_STEP_POSITIONS = 16
"""A one-token decoding step costs about as much as this many positions of a batched pass (estimate)."""


@dataclass
class AuditSummary(Result):
    """What an audit did: counts, verdicts, errors, slowest records, throughput, and where it is.

    Attributes:
        out: the output folder (read it with ``pd.read_parquet(out)``).
        records: records in the input.
        skipped: records already in ``out`` before this run (resumed).
        processed: records audited by this run.
        errors: rows in ``out`` with an ``error``.
        by_verdict: rows per verdict (``"none"`` where the signals give no verdict).
        slowest: the slowest rows, ``[{"id", "seconds"}]``.
        seconds: wall time of this run; throughput: records per second of this run.
        engine, workers, settings: how it ran; estimate: the cost estimate stated first.
        notes: one line per repair made before the run (a damaged part moved aside, records that
            changed or left the input since the last run).

    Examples:
        >>> s = AuditSummary(out="a.parquet", records=3, skipped=1, processed=2, errors=0,
        ...                  by_verdict={"supported": 2, "none": 1}, seconds=4.0, throughput=0.5)
        >>> AuditSummary.from_json(s.to_json()) == s
        True
        >>> print(s.summary().splitlines()[0])
        audit of 3 records in a.parquet: 2 audited now (1 already done), 0 errors, 0.50 records/s
    """

    out: str
    records: int
    skipped: int
    processed: int
    errors: int
    by_verdict: dict[str, int] = field(default_factory=dict)
    slowest: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    throughput: float = 0.0
    engine: str = "local"
    workers: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Returns: a JSON-ready dict; inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AuditSummary":
        """Returns: the summary rebuilt from :meth:`to_dict` output."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def table(self) -> list[tuple[str, str]]:
        """Returns: the summary as (label, value) rows: verdicts, errors, slowest, throughput."""
        rows = [("records", f"{self.records:,}"), ("audited now", f"{self.processed:,}"),
                ("already done", f"{self.skipped:,}"), ("errors", f"{self.errors:,}")]
        rows += [(f"verdict: {k}", f"{v:,}") for k, v in sorted(self.by_verdict.items(), key=lambda kv: -kv[1])]
        rows += [(f"slow: {s['id']}", f"{s['seconds']:.2f} s") for s in self.slowest]
        rows += [("throughput", f"{self.throughput:.2f} records/s ({self.engine}, {self.workers} worker(s))"),
                 ("wall time", format_seconds(self.seconds))]
        return rows

    def summary(self) -> str:
        """Returns: a short text: the headline line, then the table."""
        head = (f"audit of {self.records:,} records in {self.out}: {self.processed:,} audited now "
                f"({self.skipped:,} already done), {self.errors:,} errors, {self.throughput:.2f} records/s")
        width = max((len(k) for k, _ in self.table()), default=0)
        notes = [f"note: {n}" for n in self.notes]
        return "\n".join([head] + notes + [f"  {k:<{width}}  {v}" for k, v in self.table()])

    def html(self) -> str:
        """Returns: an escaped HTML table of :meth:`table`."""
        rows = "".join(f"<tr><td>{_html.escape(k)}</td><td>{_html.escape(v)}</td></tr>" for k, v in self.table())
        notes = "".join(f"<p>note: {_html.escape(n)}</p>" for n in self.notes)
        return (f"<div class='whylm-audit'><b>audit {_html.escape(self.out)}</b>{notes}"
                f"<table>{rows}</table></div>")

    def frame(self) -> Any:
        """Returns: the output as a pandas DataFrame (``pd.read_parquet(out)``, read only from the
        folder's regular part files)."""
        return read_audit(self.out)

    def figure(self) -> Any:
        """A histogram of ``risk`` over the audited rows (of ``score.mean_neg_logprob`` when no row
        has a risk, which the title then says).

        Returns:
            a ``plotly.graph_objects.Figure``.
        """
        return risk_histogram(self.frame())


def risk_histogram(df: Any) -> Any:
    """A plotly histogram of a DataFrame's ``risk`` column (a score column when risk is all null).

    Returns:
        a ``plotly.graph_objects.Figure``.

    Examples:
        >>> import pandas as pd
        >>> risk_histogram(pd.DataFrame({"risk": [0.1, 0.9, None]})).data[0].type
        'histogram'
    """
    import plotly.graph_objects as go

    col, title = "risk", "risk (calibrated P(not supported))"
    if "risk" not in df or df["risk"].notna().sum() == 0:
        scores = [c for c in df.columns if c.startswith("score.") and df[c].notna().any()]
        col = "score.ungrounded_max" if "score.ungrounded_max" in scores else (scores[0] if scores else None)
        title = f"{col} (no calibrated risk in this audit)" if col else "no scores in this audit"
    values = df[col].dropna().tolist() if col else []
    fig = go.Figure(go.Histogram(x=values, nbinsx=30))
    fig.update_layout(title={"text": _html.escape(title)}, xaxis_title=_html.escape(col or ""),
                      yaxis_title="records", height=320, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def estimate(lm: Any, records: list[dict[str, Any]], settings: Mapping[str, Any], workers: int) -> Cost:
    """The predicted cost of auditing ``records`` with ``workers`` workers: each record's forward
    passes (signals with and without the context, the evidence pass over the context's sentences,
    the attribution), their token positions and attention pairs, timed by the machine's speed model
    (:func:`explain.budget.speed`: its per-pass overhead, its re-check of the current load and the
    range it states); generation and sampling methods are counted roughly.

    Returns:
        a :class:`explain.Cost` in records (``passes`` counts the records).
    """
    from explain.attribution import METHODS
    from explain.attribution.sources import sentence_spans

    method = settings.get("method")
    new = int(settings.get("max_new_tokens", 64))
    positions = pairs = passes = 0.0

    def run(rows: float, length: float, steps: float = 1) -> None:
        nonlocal positions, pairs, passes
        positions += rows * length
        pairs += rows * length * (length + 1) / 2
        passes += steps

    for rec in records:
        n = TEMPLATE_TOKENS + sum(len(lm.encode(rec[k], special=False)) for k in ("prompt", "context")
                                  if isinstance(rec.get(k), str))
        m = len(lm.encode(rec["response"], special=False)) if isinstance(rec.get("response"), str) else new
        context = rec.get("context") if isinstance(rec.get("context"), str) else None
        if not isinstance(rec.get("response"), str):  # greedy generation first: one cached step per token
            run(1, n)
            positions += m * DECODE_STEP_POSITIONS
            passes += m
        if settings.get("signals", True):
            run(2 if context else 1, n + m)                 # with and without the context, one pass
            if context:                                     # evidence: one row per removed sentence
                run(len(sentence_spans(context)), n + m)
        if method:
            features = 2 if context else n
            family = getattr(METHODS.get(method), "family", "")
            rows = features + 1 if method == "ablation" else (3 if family == "gradient" else 2 * (features + 1))
            run(rows, n + m, 3 if family == "gradient" else 1)
    pace = speed(lm)
    seconds = pace.seconds(positions, pairs, passes, method="audit") / max(1, workers) if records else 0.0
    what = f"audit of {len(records):,} records" + (f" with {method} attribution" if method else "")
    return Cost(what, seconds=seconds, passes=len(records), positions=int(positions), unit="records",
                cheaper="audit fewer records, use more workers, or drop attribute=", spread=pace.spread,
                note=pace.note)


def audit(
    records: str | os.PathLike | Iterable[Mapping[str, Any]],
    lm: Any = None,
    *,
    out: str | os.PathLike,
    attribute: str | None = None,
    signals: bool = True,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    resume: bool = True,
    seed: int = 0,
    max_seconds: float | None = None,
    progress: bool | None = None,
    chunk_size: int = 8,
    chat: bool = True,
    max_new_tokens: int = 64,
    top_k: int = 5,
    engine_options: Mapping[str, Any] | None = None,
    on_estimate: Any = None,
    on_note: Any = None,
    calibration: Any = None,
) -> AuditSummary:
    """Audit a dataset of prompts (and answers): one Parquet row per record, resumable.

    Args:
        records: a ``.jsonl``/``.csv``/``.parquet`` path, or an iterable of dicts with ``prompt``
            and optionally ``id``, ``response`` (scored as given; generated when absent), ``context``.
        lm: an :class:`explain.LanguageModel`, a model folder / cached hub id, or ``None`` (embedded).
        out: the output folder (e.g. ``"audit.parquet"``); ``pd.read_parquet(out)`` reads it.
        attribute: an attribution method (``"ablation"``, ...) to add attributions (over the
            segments ``{context, question}`` when a record has a context); ``None``: none.
        signals: compute hallucination signals (:func:`explain.signals`).
        engine: ``"local"``, ``"processes"`` or ``"ray"``; workers: how many (processes/actors).
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); default: a local Ray.
        resume: complete an existing output made with the same settings (else refuse to touch it).
        seed: seed of every record's run (each record runs from it, so engines agree).
        max_seconds: the budget the cost estimate must fit (default 600 s).
        progress: a bar with an ETA (default: on a terminal for long runs).
        chunk_size: records per committed part (at most this many are redone after a kill).
        chat, max_new_tokens, top_k: passed to signals/attribute; top features kept per row.
        engine_options: e.g. ``{"cpus_per_worker": 1, "gpus_per_worker": 1}`` for Ray;
            ``{"threads_per_worker": 1}`` for any engine (default: the free cores split between workers).
        on_estimate: called with the :class:`explain.Cost` before the run starts (default: printed to
            standard error when the progress bar is shown).
        on_note: called with each one-line note on what was repaired before the run (default: printed
            to standard error); the notes are also in the summary.

    One run at a time writes ``out``: a second one is refused with one line naming the first. A
    record whose content changed since it was audited is audited again; rows of records no longer in
    the input are moved to ``out/_replaced/``; a damaged part is moved to ``out/_damaged/`` and its
    records audited again.
        calibration: the risk's calibration, as for :func:`explain.signals`: ``None`` (the one shipped
            for the model), ``False`` (no risk), a calibration JSON file (``whylm signals
            calibrate``), a dict or a :class:`~explain.signals.Calibration`; read once here and sent
            to every worker as plain data. A resumed run must use the same one.

    Returns:
        an :class:`AuditSummary`.

    Raises:
        ExplainError: a malformed or non-UTF-8 input file (with its line), duplicate ids, an output
            made with other settings or holding another dataset, an output folder that is not an
            audit, cannot be written or is being written by another run, a run over the budget, an
            unknown engine, Ray not installed, a calibration file that is missing or not a calibration.

    Examples:
        >>> s = audit("outputs.jsonl", lm, out="audit.parquet", engine="processes", workers=2)  # doctest: +SKIP
        >>> pd.read_parquet("audit.parquet").columns[:3].tolist()                             # doctest: +SKIP
        ['id', 'prompt', 'response']
    """
    from explain.attribution import METHODS

    if attribute is not None and attribute not in METHODS:
        raise ExplainError(f"unknown attribution method '{attribute}': choose one of {', '.join(METHODS)}")
    if not signals and attribute is None:
        raise ExplainError("nothing to audit: signals=False and no attribute= method")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ExplainError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    calibration = calibration_setting(calibration)[0]  # a bad file stops here, before any work
    recs = _read_input(records)
    eng = make_engine(engine, lm, workers=workers, address=address, **dict(engine_options or {}))
    store = PartStore(out)
    store.lock()  # before any work: a folder in use, not an audit, or not writable is refused now
    try:
        return _run(store, recs, eng, lm, attribute, signals, resume, seed, max_seconds, progress, chunk_size,
                    chat, max_new_tokens, top_k, calibration, on_estimate, on_note)
    finally:
        store.close()


def _run(store: PartStore, recs: list[dict[str, Any]], eng: Any, lm: Any, attribute: str | None, signals: bool,
         resume: bool, seed: int, max_seconds: float | None, progress: bool | None, chunk_size: int, chat: bool,
         max_new_tokens: int, top_k: int, calibration: Any, on_estimate: Any, on_note: Any) -> AuditSummary:
    from explain.model import LanguageModel

    engine = eng.name
    local_lm = lm if isinstance(lm, LanguageModel) else LanguageModel.load(lm)
    if engine == "local":
        eng.model = local_lm
    settings = make_settings(local_lm.name, signals, attribute, seed, chat, max_new_tokens, top_k, calibration)
    store.open(settings, score_names(), resume=resume, total=len(recs))
    hashes = {r["id"]: input_hash(r) for r in recs}
    store.reconcile(hashes)
    for note in store.notes:
        (on_note or _print_note)(note)
    done = store.done_ids()
    todo = [r for r in recs if r["id"] not in done]
    cost = check_budget(estimate(local_lm, todo, settings, eng.workers), max_seconds)
    show = want_progress(progress, cost.seconds)
    if on_estimate is not None:
        on_estimate(cost)
    elif show:  # someone is watching: the cost comes before the bar
        print(f"estimate: {cost.summary()}", file=sys.stderr)
    start = time.perf_counter()
    processed = 0
    with bar(len(todo), f"audit ({engine})", show=show, unit="rec") as pbar:
        for rows in eng.run(todo, settings, chunk_size):
            store.commit([{**row, "input_hash": hashes.get(row.get("id"))} for row in rows])
            processed += len(rows)
            pbar.update(len(rows))
    seconds = time.perf_counter() - start
    if engine == "local" and processed == len(todo):  # a timed run corrects the audit's own factor
        record_run(local_lm, "audit", predicted=cost.seconds, measured=seconds)
    summary = _summarise(store, len(recs), len(recs) - len(todo), processed, seconds, eng, settings, cost)
    summary.notes = list(store.notes)
    return summary


def input_hash(record: Mapping[str, Any]) -> str:
    """The hash of a record's content (prompt, response, context) kept on its row, so that a later
    run on an edited input audits the records whose content changed again.

    Returns:
        16 hex digits (what :func:`explain.audit.records.record_id` hashes, without its ``r-``).

    Examples:
        >>> input_hash({"id": "a", "prompt": "2+2="}) == input_hash({"id": "b", "prompt": "2+2="})
        True
    """
    return record_id(record)[2:]


def _print_note(note: str) -> None:
    print(f"note: {note}", file=sys.stderr)


def _read_input(records: Any) -> list[dict[str, Any]]:
    """:func:`read_records`, with a file that is not UTF-8 text named in one line (its first bad line)."""
    try:
        return read_records(records)
    except UnicodeDecodeError as exc:
        path = Path(records)
        line = 0
        with path.open("rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = n
                    break
        where = f"line {line}" if line else f"byte {exc.start}"
        raise ExplainError(f"records file '{path}' is not UTF-8 text ({where} has byte 0x{exc.object[exc.start]:02x}): "
                           "save it as UTF-8") from None


def summarise(out: str | os.PathLike) -> AuditSummary:
    """The summary of an existing audit folder (counts, verdicts, errors, slowest), without running.

    Returns:
        an :class:`AuditSummary` (``processed`` 0, throughput 0).
    """
    store = PartStore(out)
    if not (Path(out) / "_manifest.json").exists():
        raise ExplainError(f"'{out}' is not an audit folder (no _manifest.json)")
    store.check_readable()
    man = store.read_manifest()
    return _summarise(store, int(man.get("total", 0)), 0, 0, 0.0, None, man.get("settings", {}), None)


def _summarise(store: PartStore, total: int, skipped: int, processed: int, seconds: float, eng: Any,
               settings: Mapping[str, Any], cost: Cost | None) -> AuditSummary:
    table = store.read(columns=["id", "verdict", "error", "seconds"]).to_pydict()
    verdicts: dict[str, int] = {}
    for v in table["verdict"]:
        key = v if v else "none"
        verdicts[key] = verdicts.get(key, 0) + 1
    order = sorted(range(len(table["id"])), key=lambda i: -(table["seconds"][i] or 0.0))[:5]
    return AuditSummary(
        out=str(store.path), records=total, skipped=skipped, processed=processed,
        errors=sum(e is not None for e in table["error"]), by_verdict=verdicts,
        slowest=[{"id": table["id"][i], "seconds": round(float(table["seconds"][i] or 0.0), 4)} for i in order],
        seconds=round(seconds, 4), throughput=round(processed / seconds, 4) if seconds > 0 else 0.0,
        engine=getattr(eng, "name", "") or "", workers=int(getattr(eng, "workers", 0) or 0),
        settings=dict(settings), estimate=cost.to_dict() if cost is not None else {},
    )
