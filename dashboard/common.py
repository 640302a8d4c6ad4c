"""Helpers shared by the dashboard pages: the audit store, safe runs, escaped HTML, reopening runs.

Nothing here computes results: it only wires ``explain``/``causal`` calls into Streamlit, turns
their errors into one-line messages (a :class:`explain.errors.WhylmError` is the user's to fix;
anything else is an internal error whose traceback goes to a log file), and keeps model or user
text escaped wherever it becomes HTML.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import streamlit as st

from dashboard.store import (
    AuditStore, Run, StoreCorruptError, StoreError, default_path, move_aside,
)
from explain.errors import WhylmError, report_internal_error

log = logging.getLogger("whylm.dashboard")
T = TypeVar("T")
REOPEN_KEY = "_whylm_reopen"
OPEN_KEY = "_whylm_open"
NEW_STORE_KEY = "store_start_new"


@st.cache_resource(show_spinner=False)
def _store(path: str) -> AuditStore:
    return AuditStore(path)


def get_store() -> AuditStore:
    """The process's :class:`AuditStore` at :func:`dashboard.store.default_path` (``$WHYLM_DATA_DIR``).

    Returns:
        the store, opened once per process.

    Raises:
        StoreError: it cannot be opened (``StoreCorruptError`` when the file is damaged).
    """
    return _store(str(default_path()))


def open_store() -> AuditStore | None:
    """The store for the History page, or ``None`` after showing why it cannot be used.

    A damaged store is shown as one line with a button that starts a new one; the old file is
    moved aside (:func:`dashboard.store.move_aside`), never deleted.

    Returns:
        the store, or ``None`` when it is unusable and the page should stop.
    """
    try:
        store = get_store()
        store.count()  # a damaged page shows up on the first read, not always on open
        return store
    except StoreCorruptError as exc:
        if st.session_state.get(NEW_STORE_KEY):  # the button below was clicked
            kept = move_aside(exc.path)
            _store.clear()
            st.success(md_escape(f"Started a new history; the damaged file is kept as {kept}."))
            return run_safely("Opening History", get_store)
        st.error(md_escape(one_line(str(exc))))
        st.button("Start a new history (keep the damaged file aside)", key=NEW_STORE_KEY)
        return None
    except StoreError as exc:
        st.error(md_escape(one_line(str(exc))))
        return None


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, at most ``limit`` characters.

    Returns:
        the line (``""`` when there is none).

    Examples:
        >>> one_line("\\n  first\\nsecond", limit=4)
        'fir…'
    """
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


_MD_SPECIAL = "\\`*_[]<>#|~$"


def md_escape(text: str) -> str:
    r"""Backslash-escape Markdown (and LaTeX ``$``) so user text in captions/errors shows verbatim.

    Examples:
        >>> print(md_escape("a*b* [x](y) $1"))
        a\*b\* \[x\](y) \$1
    """
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))


def error_message(exc: BaseException, what: str) -> str:
    """The one line a page shows for an error.

    Returns:
        the message of a :class:`explain.errors.WhylmError` (bad input: the user's to fix); for
        anything else (a bug in whylm or a library, whatever its type, ``ValueError`` included)
        ``internal error in dashboard: <what> (...); the traceback is in <log file>``.

    Examples:
        >>> error_message(WhylmError("prompt is empty\\nmore"), "Explain")
        'prompt is empty'
        >>> import os, tempfile; os.environ["WHYLM_LOG_DIR"] = tempfile.mkdtemp()
        >>> error_message(ValueError("operands could not be broadcast"), "Explain").split(";")[0]
        'internal error in dashboard: Explain (ValueError: operands could not be broadcast)'
        >>> del os.environ["WHYLM_LOG_DIR"]
    """
    if isinstance(exc, WhylmError):
        return one_line(str(exc)) or f"{what} failed: invalid input"
    return one_line(report_internal_error(exc, f"dashboard: {what}"))


def run_safely(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; on an error show ``st.error`` with one line (never a traceback).

    Returns:
        ``fn``'s value, or ``None`` after an error (see :func:`error_message` for the line).

    Examples:
        >>> run_safely("Explain", int, "x")   # doctest: +SKIP
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        if not isinstance(exc, WhylmError):
            log.error("%s failed: %s", what, one_line(str(exc)))
        st.error(md_escape(error_message(exc, what)))
        return None


@contextmanager
def progress_bar(text: str) -> Iterator[Any]:
    """An ``st.progress`` bar that is removed when the block ends, also on an error."""
    bar = st.progress(0.0, text=text)
    try:
        yield bar
    finally:
        bar.empty()


def save_run(kind: str, inputs: dict[str, Any], result: dict[str, Any], model: str = "",
             method: str = "", title: str | None = None) -> int | None:
    """Save a run in the audit store; a failure to save shows a one-line warning, never breaks
    the page.

    Returns:
        the run's id, or ``None`` when it was not saved.
    """
    try:
        return get_store().save(kind, inputs=inputs, result=result, model=model, method=method,
                                title=title)
    except Exception as exc:  # noqa: BLE001
        st.warning(md_escape("The run was not saved to History: " + error_message(exc, "Saving")))
        return None


def show_html(fragment: str) -> None:
    """Render an HTML fragment built by ``explain.plots`` (whose text is already escaped)."""
    st.html(fragment)


def escaped_text(text: str, label: str | None = None) -> None:
    """Show model or user text verbatim (escaped), in a monospace box, optionally labelled."""
    from explain.plots import escape

    head = f'<div style="font-weight:600;margin-bottom:4px">{escape(label)}</div>' if label else ""
    st.html(
        f'<div class="whylm-text">{head}<div style="font-family:ui-monospace,monospace;'
        f'white-space:pre-wrap;border:1px solid #ddd;border-radius:4px;padding:6px">'
        f"{escape(text)}</div></div>"
    )


def keep_inputs(keys: tuple[str, ...]) -> None:
    """Keep these input widgets' values when the user visits another page and comes back.

    Streamlit forgets the state of widgets that a run does not draw; re-assigning the values at
    the top of the page turns them into plain session values that survive page switches.
    """
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def request_reopen(run: Run) -> None:
    """Ask the run's page to show ``run`` on its next render."""
    st.session_state[REOPEN_KEY] = {"kind": run.kind, "id": run.id}


def take_reopen(kind: str) -> Run | None:
    """The run the History page asked this page (``kind``) to reopen, once; else ``None``."""
    req = st.session_state.get(REOPEN_KEY)
    if not req or req.get("kind") != kind:
        return None
    del st.session_state[REOPEN_KEY]
    run = get_store().get(int(req["id"]))
    if run is None:
        st.warning(f"Run {int(req['id'])} is no longer in History.")
    return run


def request_open(kind: str, inputs: dict[str, Any], result: dict[str, Any], source: str) -> None:
    """Ask the page of ``kind`` to show ``result`` (made from ``inputs``) on its next render, e.g. an
    audit record opened in Signals; ``source`` says where it comes from (shown on the page)."""
    st.session_state[OPEN_KEY] = {"kind": kind, "inputs": inputs, "result": result, "source": source}


def take_open(kind: str) -> dict[str, Any] | None:
    """The result another page asked this page (``kind``) to show, once; else ``None``.

    Returns:
        ``{"inputs", "result", "source"}``.
    """
    req = st.session_state.get(OPEN_KEY)
    if not req or req.get("kind") != kind:
        return None
    del st.session_state[OPEN_KEY]
    return req


def json_download(label: str, data: str, file_name: str, key: str) -> None:
    """A download button for JSON text."""
    st.download_button(label, data=data, file_name=file_name, mime="application/json", key=key)
