"""History page: every run saved in the audit store; list, search, reopen, export, delete."""

from __future__ import annotations

import html

import streamlit as st

from dashboard.common import (
    escaped_text, get_store, json_download, open_store, request_reopen, run_safely,
)
from dashboard.models import display_model
from dashboard.store import KINDS, Run

ALL = "all"
INPUT_KEYS = ("hi_query", "hi_kind", "hi_run")



def render() -> None:
    """Draw the History page."""
    st.title("History")
    store = open_store()
    if store is None:
        return
    deleted = st.session_state.pop("_hi_deleted", None)
    if deleted is not None:
        st.session_state["hi_confirm"] = False
        st.success(f"Deleted run {deleted}.")
    st.caption(f"Every run is saved automatically in `{store.path}` (set the folder with "
               "`whylm dashboard --data-dir DIR` or $WHYLM_DATA_DIR). API keys are never stored.")
    c1, c2 = st.columns([3, 1])
    query = c1.text_input("Search", key="hi_query", placeholder="words in the prompt, model, method…")
    kind = c2.selectbox("Page", (ALL, *KINDS), key="hi_kind")
    runs = run_safely("Reading History", store.list, query=query, kind=None if kind == ALL else kind)
    if runs is None:
        return
    if not runs:
        st.info("No runs yet." if not query and kind == ALL else "No run matches.")
        return
    st.caption(f"{len(runs)} run(s), newest first" + (" (the 200 newest)" if len(runs) >= 200 else ""))
    st.dataframe(
        {"id": [r.id for r in runs], "time": [r.when for r in runs], "page": [r.kind for r in runs],
         "title": [r.title for r in runs], "model": [display_model(r.model) for r in runs],
         "method": [r.method for r in runs]},
        hide_index=True, width="stretch", key="hi_table",
    )
    json_download(f"Export {len(runs)} run(s) shown (JSON)", store.export([r.id for r in runs]),
                  "whylm-history.json", key="hi_export_all")

    by_label = {f"{r.id} · {r.kind} · {r.title[:60]}": r for r in runs}
    if st.session_state.get("hi_run") not in by_label:
        st.session_state.pop("hi_run", None)
    label = st.selectbox("Run", list(by_label), key="hi_run")
    run = by_label[label]
    _details(run)


def _saved_text(text: str, label: str) -> None:
    """A saved multi-line text, escaped, with its line breaks as line breaks (``escaped_text`` marks
    them with ↵, which suits tokens, not a summary)."""
    st.html(f'<div class="whylm-text"><div style="font-weight:600;margin-bottom:4px">{html.escape(label)}</div>'
            '<div style="font-family:ui-monospace,monospace;white-space:pre-wrap;border:1px solid #ddd;'
            f'border-radius:4px;padding:6px">{html.escape(text)}</div></div>')


def _graph_text(run: Run) -> str:
    """A causal run's stored graph as lines ``a -> b``, with the user's edits; "" for other runs.

    Examples:
        >>> r = Run(1, 0.0, "causal", "t", "", "", {"edits": ["add a -> b"]},
        ...         {"graph": {"nodes": ["a", "b", "c"], "edges": [{"source": "a", "target": "b"}]}})
        >>> print(_graph_text(r))
        a -> b
        not connected: c
        your edits: add a -> b
    """
    graph = run.result.get("graph") if run.kind == "causal" and isinstance(run.result, dict) else None
    if not isinstance(graph, dict):
        return ""
    edges = [f"{e.get('source')} -> {e.get('target')}" for e in graph.get("edges") or [] if isinstance(e, dict)]
    names = [n if isinstance(n, str) else str(n.get("id")) for n in graph.get("nodes") or []]
    linked = {str(e.get(k)) for e in graph.get("edges") or [] if isinstance(e, dict) for k in ("source", "target")}
    linked |= {str(u.get(k)) for u in graph.get("undecided") or [] if isinstance(u, dict) for k in ("source", "target")}
    lines = edges or ["no arrows"]
    lines += [f"undecided: {u.get('source')} - {u.get('target')}" for u in graph.get("undecided") or []
              if isinstance(u, dict)]
    alone = [n for n in names if n not in linked]
    if alone:
        lines.append("not connected: " + ", ".join(alone))
    if run.inputs.get("edits"):
        lines.append("your edits: " + "; ".join(map(str, run.inputs["edits"])))
    return "\n".join(lines)


def _details(run: Run) -> None:
    """One run's inputs, with reopen / export / delete."""
    store = get_store()
    st.markdown(f"**Run {run.id}** · {run.kind} · {run.when}")
    escaped_text(run.title, label="Title")
    with st.expander("Inputs"):
        st.json(run.inputs)
    graph_text = _graph_text(run)
    if graph_text:
        _saved_text(graph_text, "Graph (as edited; Reopen to check or estimate it again)")
    for part in ("check", "effect"):  # a causal run's stored verdicts, readable without reopening
        text = (run.result.get(part) or {}).get("summary") if isinstance(run.result, dict) else None
        if text:
            _saved_text(str(text), f"Saved {part} summary")
    c1, c2, c3 = st.columns(3)
    if c1.button("Reopen in its page", key="hi_reopen", type="primary"):
        request_reopen(run)
        from dashboard.nav import switch_to

        switch_to(run.kind)
    with c2:
        json_download("Export this run (JSON)", store.export([run.id]),
                      f"whylm-run-{run.id}.json", key="hi_export_one")
    confirm = c3.checkbox("Confirm delete", key="hi_confirm")
    if c3.button("Delete", key="hi_delete", disabled=not confirm):
        if run_safely("Deleting", store.delete, run.id):
            st.session_state["_hi_deleted"] = run.id
            st.rerun()


if __name__ == "__main__":
    render()
