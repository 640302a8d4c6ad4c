"""Audits page: open an audit (a folder under the data folder, or an uploaded Parquet file), filter and
sort its rows by risk, verdict and score, see the risk histogram, open one record (its sentences
coloured by risk with their evidence in the context, as on the Signals page, and its scores by
plain name) or open it in Signals, re-apply another calibration to the stored scores, and export
the rows shown to CSV. An audit still running (or interrupted) shows how far it got.

Only folders under the dashboard's data folder are read; every text from the audit is escaped.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.calibrations import calibration_label, calibration_picker, check_calibration_spec
from dashboard.common import escaped_text, md_escape, request_open, run_safely, show_html
from dashboard.store import default_path
from explain.audit.store import read_audit
from explain.errors import WhylmError
from explain.evidence_view import score_label, score_range

INPUT_KEYS = ("au_audit", "au_verdict", "au_risk", "au_score", "au_score_min", "au_errors", "au_record",
              "au_calibration", "au_sentence")
MANIFEST = "_manifest.json"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def data_dir() -> Path:
    """Returns: the dashboard's data folder (``$WHYLM_DATA_DIR``), the only place audits are read from."""
    return default_path().parent


def find_audits(root: Path, depth: int = 3) -> list[Path]:
    """Audit folders (holding ``_manifest.json``) under ``root``, at most ``depth`` levels down.

    Returns:
        paths relative to ``root``, sorted.
    """
    found: list[Path] = []
    if not root.is_dir():
        return found
    for level in range(1, depth + 1):
        for man in root.glob("/".join(["*"] * level) + "/" + MANIFEST):
            found.append(man.parent.relative_to(root))
    return sorted(set(found))


def inside(root: Path, rel: str) -> Path:
    """``root / rel`` resolved, refused when it leaves ``root``.

    Returns:
        the resolved path.

    Raises:
        ValueError: a path outside the data folder.

    Examples:
        >>> inside(Path("/data"), "../etc")
        Traceback (most recent call last):
        ...
        explain.errors.WhylmError: only audits under the data folder can be opened: '../etc' is outside it
    """
    base = root.resolve()
    path = (base / rel).resolve()
    if path != base and base not in path.parents:
        raise WhylmError(f"only audits under the data folder can be opened: {rel!r} is outside it")
    return path


def csv_safe(df: pd.DataFrame) -> str:
    """CSV text of ``df`` with cells that a spreadsheet would run as a formula prefixed by ``'``.

    Examples:
        >>> csv_safe(pd.DataFrame({"a": ["=1+1", "ok"]})).splitlines()
        ['a', "'=1+1", 'ok']
    """
    def cell(v: Any) -> Any:
        return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v

    buf = io.StringIO()
    df.map(cell).to_csv(buf, index=False)
    return buf.getvalue()


def filter_rows(df: pd.DataFrame, verdicts: list[str] | None, risk: tuple[float, float] | None,
                score: str | None, score_min: float | None, errors_only: bool) -> pd.DataFrame:
    """The rows that pass every filter (``None`` / empty: no filter).

    Returns:
        a DataFrame view of ``df``.

    Examples:
        >>> df = pd.DataFrame({"verdict": ["supported", None], "risk": [0.1, 0.9], "error": [None, "x"]})
        >>> len(filter_rows(df, ["none"], None, None, None, False)), len(filter_rows(df, None, (0.5, 1), None, None, False))
        (1, 1)
    """
    keep = pd.Series(True, index=df.index)
    if verdicts:
        keep &= df["verdict"].fillna("none").isin(verdicts)
    if risk is not None and "risk" in df:
        keep &= df["risk"].between(*risk) | (df["risk"].isna() & (risk == (0.0, 1.0)))
    if score and score_min is not None and score in df:
        keep &= df[score] >= score_min
    if errors_only:
        keep &= df["error"].notna()
    return df[keep]


def _load(path: Path) -> pd.DataFrame:
    return read_audit(path)  # regular part files inside the folder only; a damaged one named in one line


def render() -> None:
    """Draw the Audits page."""
    st.title("Audits")
    root = data_dir()
    st.caption(f"Audits are folders made by `whylm audit … --out DIR` or `explain.audit()`, under the data folder "
               f"`{md_escape(str(root))}` (set it with `whylm dashboard --data-dir`); or upload a Parquet file.")
    audits = [str(p) for p in find_audits(root)]
    c1, c2 = st.columns([2, 1])
    choice = c1.selectbox("Audit under the data folder", audits, key="au_audit", index=0 if audits else None,
                          placeholder="no audit folder found")
    upload = c2.file_uploader("or upload a Parquet file", type=["parquet"], key="au_upload")
    df = None
    if upload is not None:
        df = run_safely("Reading the upload", pd.read_parquet, io.BytesIO(upload.getvalue()))
    elif choice:
        path = run_safely("Opening the audit", inside, root, choice)
        if path is None:
            return
        _progress(path)
        df = run_safely("Reading the audit", _load, path)
    if df is None:
        if not audits:
            st.info("No audit yet: run `whylm audit outputs.jsonl --out DATA_DIR/my-audit` first.")
        return
    if "id" not in df or "error" not in df:
        st.error("This file is not an audit (no 'id' and 'error' columns).")
        return
    cal = calibration_picker("au_calibration", "Calibration", default_label="As audited (default)")
    if cal is not None:
        recal = run_safely("Applying the calibration", recalibrate, df, check_calibration_spec(cal))
        if recal is None:
            return
        df = recal
        st.caption(md_escape(f"risk and verdict re-computed from each row's stored scores with "
                             f"{calibration_label(cal)}; the record's report below is as audited"))
    _table(df, source=f"audit {upload.name if upload is not None else choice}")


def recalibrate(df: pd.DataFrame, calibration: Any) -> pd.DataFrame:
    """``df`` with ``risk`` and ``verdict`` re-computed from its ``score.<name>`` columns.

    Args:
        df: audit rows.
        calibration: a calibration file's path, a dict or a :class:`~explain.signals.Calibration`.

    Returns:
        a copy of ``df``; a row whose scores lack a feature of the calibration gets no risk.

    Examples:
        >>> from explain.signals import Calibration
        >>> from explain.signals.calibration import Case
        >>> cal = Calibration("m", {"no_context": Case(["s"], [0.0], 2.0, [0.0], [1.0])})
        >>> recalibrate(pd.DataFrame({"score.s": [1.0], "context": [None]}), cal)["verdict"].tolist()
        ['likely hallucinated']
    """
    from explain.signals import load_calibration, verdict

    cal, _ = load_calibration(calibration)
    names = [c for c in df.columns if c.startswith("score.")]
    out = df.copy()
    risks = []
    for _, row in df.iterrows():
        scores = {c[len("score."):]: row[c] for c in names if pd.notna(row[c])}
        has_context = isinstance(row.get("context"), str)
        risks.append(cal.predict(scores, has_context=has_context) if scores else None)
    out["risk"] = pd.array(risks, dtype="Float64").astype(float)
    out["verdict"] = [verdict(r) for r in risks]
    return out


def column_label(col: str) -> str:
    """A plain name for an audit column (a score's label and range; the key for other columns).

    Examples:
        >>> column_label("score.mean_entropy"), column_label("n_unsupported_sentences")
        ('model hesitation (entropy), average over tokens (0 to log V, nats)', 'sentences without support')
    """
    if col.startswith("score."):
        key = col[len("score."):]
        rng = score_range(key)
        return score_label(key) + (f" ({rng})" if rng else "")
    return COLUMN_LABELS.get(col, col)


COLUMN_LABELS = {"n_unsupported_sentences": "sentences without support",
                 "risk": "risk (P not supported)"}


def _progress(path: Path) -> None:
    """How far the audit in ``path`` got (it may be running in the background, or interrupted)."""
    try:
        man = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        done = sum(pd.read_parquet(p, columns=["id"]).shape[0] for p in path.glob("part-*.parquet"))
    except (OSError, ValueError):
        return
    total = int(man.get("total") or 0)
    s = man.get("settings", {})
    st.caption(md_escape(f"model {s.get('model')} · signals {s.get('signals')} · attribution "
                         f"{s.get('method') or 'none'} · seed {s.get('seed')}"))
    if total and done < total:
        st.progress(done / total, text=f"{done:,} of {total:,} records committed (running, or interrupted: "
                                       "run the same command again to complete it) · reload to refresh")


def _table(df: pd.DataFrame, source: str) -> None:
    scores = [c for c in df.columns if c.startswith("score.") and df[c].notna().any()]
    verdicts = sorted(df["verdict"].fillna("none").unique().tolist()) if "verdict" in df else []
    c1, c2, c3, c4 = st.columns(4)
    chosen = c1.multiselect("Verdict", verdicts, key="au_verdict")
    has_risk = "risk" in df and df["risk"].notna().any()
    risk = c2.slider("Risk", 0.0, 1.0, (0.0, 1.0), 0.01, key="au_risk") if has_risk else None
    score = c3.selectbox("Score", scores, key="au_score", index=0 if scores else None, format_func=column_label)
    score_min = c4.number_input("Score at least", value=None, key="au_score_min", format="%.4f")
    errors_only = st.checkbox("Only rows with an error", key="au_errors")
    rows = filter_rows(df, chosen, risk, score, score_min, errors_only)
    n_err = int(df["error"].notna().sum())
    st.caption(f"{len(rows):,} of {len(df):,} rows shown · {n_err:,} with an error · click a column header to "
               "sort, a row to open it")
    cols = [c for c in ("id", "risk", "verdict", "n_unsupported_sentences", *scores, "error", "seconds",
                        "prompt", "response") if c in rows]
    config = {c: st.column_config.Column(column_label(c), help=f"column `{c}`") for c in cols}
    event = st.dataframe(rows[cols], hide_index=True, width="stretch", key="au_table", on_select="rerun",
                         selection_mode="single-row", column_config=config)
    picked = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    if picked and picked != st.session_state.get("_au_picked"):  # a click on a row opens that record
        st.session_state["au_record"] = str(rows["id"].iloc[picked[0]])
    st.session_state["_au_picked"] = picked
    st.download_button(f"Export the {len(rows):,} rows shown (CSV)", data=csv_safe(rows.drop(
        columns=[c for c in ("report", "attribution") if c in rows])), file_name="whylm-audit-flagged.csv",
        mime="text/csv", key="au_export")
    from explain.audit.api import risk_histogram

    fig = risk_histogram(rows)
    col = fig.layout.xaxis.title.text or ""
    if col.startswith("score."):  # no risk in this audit: the score shown instead, by its plain name
        from explain.plots import escape

        fig.update_layout(title={"text": escape(f"{column_label(col)} (no calibrated risk in this audit)")},
                          xaxis_title=escape(column_label(col)))
    st.plotly_chart(fig, key="au_hist", width="stretch")
    if len(rows):
        _record(rows, source)


def _record(rows: pd.DataFrame, source: str) -> None:
    """One record, in the same views as the Signals page: verdict, sentences with their evidence,
    tokens, scores by plain name; an "Open in Signals" button; its attribution as on Explain."""
    from dashboard.pages.signals_page import show_sentences, verdict_html

    ids = rows["id"].astype(str).tolist()
    if st.session_state.get("au_record") not in ids:
        st.session_state.pop("au_record", None)
    rid = st.selectbox("Open a record", ids, key="au_record")
    if st.session_state.get("_au_shown") != rid:  # another record: its own first sentence
        st.session_state.pop("au_sentence", None)
        st.session_state["_au_shown"] = rid
    row = rows[rows["id"].astype(str) == rid].iloc[0]
    escaped_text(str(row.get("prompt") or ""), label="Prompt")
    rep = None
    if isinstance(row.get("report"), str):
        from explain.signals import SignalReport

        rep = run_safely("Reading the report", SignalReport.from_json, row["report"])
    if isinstance(row.get("context"), str) and (rep is None or not rep.sentences):
        escaped_text(row["context"], label="Context")
    if isinstance(row.get("error"), str):
        st.error(md_escape(row["error"]))
    if rep is not None:
        if st.button("Open in Signals", key="au_open_signals",
                     help="Show this record on the Signals page, its inputs filled in, to re-run or vary it"):
            _open_in_signals(row, rep, source)
        show_html(verdict_html(rep))
        if rep.sentences:
            show_sentences(rep, key="au_sentence")
        show_html(f'<div class="whylm-signals">{rep.token_html("risk")}</div>')
        _scores(rep.scores)
    elif isinstance(row.get("response"), str):
        escaped_text(row["response"], label="Response")
    if isinstance(row.get("attribution"), str):
        from explain.result import AttributionResult

        res = run_safely("Reading the attribution", AttributionResult.from_json, row["attribution"])
        if res is not None:
            show_html(res.html())


def _scores(scores: dict[str, Any]) -> None:
    """The record's scores as a table that wraps to the page's column: plain name, range, value."""
    from explain.evidence_view import scores_html

    html = scores_html(dict(scores or {}))
    if html:
        show_html(html)


def _open_in_signals(row: pd.Series, rep: Any, source: str) -> None:
    """Show this record's report on the Signals page, its inputs in the widgets."""
    from dashboard.nav import switch_to

    from dashboard.models import check_model_spec
    from explain.errors import WhylmError

    try:  # the audit's model when this dashboard offers it, else the embedded one
        model = check_model_spec(row.get("model")) if isinstance(row.get("model"), str) else None
    except WhylmError:
        model = None
    inputs = {"model": model, "prompt": rep.prompt, "context": rep.context, "response": rep.response,
              "n_samples": 0, "chat": True, "calibration": None}
    request_open("signals", inputs, rep.to_dict(), source=f"Record {row['id']} of {source} (as audited)")
    switch_to("signals")


if __name__ == "__main__":
    render()
