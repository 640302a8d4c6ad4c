"""The whylm dashboard: ``streamlit run dashboard/app.py`` (or ``whylm dashboard``).

Pages: Explain (token attribution), Signals (hallucination signals), Causal (LLM-proposed causal
graphs checked with DoWhy), Audits (batch audits of datasets) and History (the audit store). Configuration comes from the environment
that ``whylm dashboard`` sets: ``$WHYLM_MODEL`` (default model) and ``$WHYLM_DATA_DIR`` (store folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ (not the repo root) on sys.path.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard.common import keep_inputs  # noqa: E402
from dashboard.nav import all_input_keys, build_pages  # noqa: E402


def main() -> None:
    """Configure the page and run the selected one."""
    # An emoji icon becomes a data: URL; a ":material/...:" one makes the browser fetch the favicon
    # from fonts.gstatic.com (the dashboard must work offline and tell no one it is open).
    st.set_page_config(page_title="whylm", page_icon="🔎", layout="wide")
    keep_inputs(all_input_keys())  # inputs survive switching pages
    page = st.navigation(list(build_pages().values()))
    with st.sidebar:
        st.caption("whylm · explain what a language model did and why")
    page.run()


main()
