"""The dashboard's pages, built in one place so any page can switch to another.

Each page is a file in ``dashboard/pages/`` whose ``render()`` runs when Streamlit executes it as a
page (``__name__ == "__main__"``); importing it (tests, other pages) runs nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "pages"
PAGES = (
    # kind, title, icon, file
    ("explain", "Explain", ":material/insights:", "explain_page.py"),
    ("signals", "Signals", ":material/report:", "signals_page.py"),
    ("causal", "Causal", ":material/account_tree:", "causal_page.py"),
    ("audits", "Audits", ":material/fact_check:", "audits_page.py"),
    ("history", "History", ":material/history:", "history_page.py"),
)


def build_pages() -> dict[str, "st.Page"]:
    """``kind -> st.Page`` for every page; Explain is the default."""
    return {
        kind: st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=kind, default=k == 0)
        for k, (kind, title, icon, file) in enumerate(PAGES)
    }


def switch_to(kind: str) -> None:
    """Switch to the page of ``kind`` (``explain``, ``signals``, ``causal``, ``audits``, ``history``)."""
    st.switch_page(build_pages()[kind])


def all_input_keys() -> tuple[str, ...]:
    """The input widget keys of every page (each page module's ``INPUT_KEYS``)."""
    keys: list[str] = []
    for _, _, _, file in PAGES:
        module = importlib.import_module(f"dashboard.pages.{file[:-3]}")
        keys += list(getattr(module, "INPUT_KEYS", ()))
    return tuple(keys)
