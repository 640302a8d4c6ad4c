"""Audits page: open an audit (a folder under the data folder, or an uploaded Parquet file), filter and
sort its rows by risk, verdict and score, see the risk histogram, open one record's report, and
export the rows shown to CSV. An audit still running (or interrupted) shows how far it got.

Only folders under the dashboard's data folder are read; every text from the audit is escaped.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.common import escaped_text, md_escape, run_safely, show_html
from dashboard.store import default_path
from explain.audit.store import read_audit
from explain.errors import WhylmError

INPUT_KEYS = ("au_audit", "au_verdict", "au_risk", "au_score", "au_score_min", "au_errors", "au_record")
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

    Example:
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

    Example:
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

    Example:
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
    _table(df)


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


def _table(df: pd.DataFrame) -> None:
    scores = [c for c in df.columns if c.startswith("score.") and df[c].notna().any()]
    verdicts = sorted(df["verdict"].fillna("none").unique().tolist()) if "verdict" in df else []
    c1, c2, c3, c4 = st.columns(4)
    chosen = c1.multiselect("Verdict", verdicts, key="au_verdict")
    has_risk = "risk" in df and df["risk"].notna().any()
    risk = c2.slider("Risk", 0.0, 1.0, (0.0, 1.0), 0.01, key="au_risk") if has_risk else None
    score = c3.selectbox("Score", scores, key="au_score", index=0 if scores else None)
    score_min = c4.number_input("Score at least", value=None, key="au_score_min", format="%.4f")
    errors_only = st.checkbox("Only rows with an error", key="au_errors")
    rows = filter_rows(df, chosen, risk, score, score_min, errors_only)
    n_err = int(df["error"].notna().sum())
    st.caption(f"{len(rows):,} of {len(df):,} rows shown · {n_err:,} with an error · click a column header to "
               "sort, a row to open it")
    cols = [c for c in ("id", "risk", "verdict", *scores, "error", "seconds", "prompt", "response") if c in rows]
    event = st.dataframe(rows[cols], hide_index=True, width="stretch", key="au_table", on_select="rerun",
                         selection_mode="single-row")
    picked = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    if picked and picked != st.session_state.get("_au_picked"):  # a click on a row opens that record
        st.session_state["au_record"] = str(rows["id"].iloc[picked[0]])
    st.session_state["_au_picked"] = picked
    st.download_button(f"Export the {len(rows):,} rows shown (CSV)", data=csv_safe(rows.drop(
        columns=[c for c in ("report", "attribution") if c in rows])), file_name="whylm-audit-flagged.csv",
        mime="text/csv", key="au_export")
    from explain.audit.api import risk_histogram

    st.plotly_chart(risk_histogram(rows), key="au_hist", width="stretch")
    if len(rows):
        _record(rows)


def _record(rows: pd.DataFrame) -> None:
    """One record, in the same views as the Signals and Explain pages."""
    ids = rows["id"].astype(str).tolist()
    if st.session_state.get("au_record") not in ids:
        st.session_state.pop("au_record", None)
    rid = st.selectbox("Open a record", ids, key="au_record")
    row = rows[rows["id"].astype(str) == rid].iloc[0]
    escaped_text(str(row.get("prompt") or ""), label="Prompt")
    if isinstance(row.get("context"), str):
        escaped_text(row["context"], label="Context")
    if isinstance(row.get("error"), str):
        st.error(md_escape(row["error"]))
    if isinstance(row.get("report"), str):
        from explain.signals import SignalReport

        rep = run_safely("Reading the report", SignalReport.from_json, row["report"])
        if rep is not None:
            show_html(rep.html())
    elif isinstance(row.get("response"), str):
        escaped_text(row["response"], label="Response")
    if isinstance(row.get("attribution"), str):
        from explain.result import AttributionResult

        res = run_safely("Reading the attribution", AttributionResult.from_json, row["attribution"])
        if res is not None:
            show_html(res.html())


if __name__ == "__main__":
    render()
