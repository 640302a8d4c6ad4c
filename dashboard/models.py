"""Model picking and loading for the dashboard: one load per process, and the page says so.

The model is a ``st.cache_resource``: the embedded SmolLM2 (default) or a local folder loads once
per server process and is shared by every session and page. ``whylm dashboard --model PATH`` sets
``$WHYLM_MODEL``, which becomes the picker's default.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

MODEL_ENV = "WHYLM_MODEL"
EMBEDDED_LABEL = "Embedded SmolLM2-135M-Instruct"
LOCAL_LABEL = "Local folder"


def default_model_spec() -> str | None:
    """The model the dashboard starts with: ``$WHYLM_MODEL`` or ``None`` (embedded)."""
    spec = os.environ.get(MODEL_ENV, "").strip()
    return spec or None


def model_label(spec: str | None) -> str:
    """A short, human label for a model spec (``None`` is the embedded model)."""
    return EMBEDDED_LABEL if not spec else spec


@st.cache_resource(show_spinner=False, max_entries=3)
def _load(spec: str | None) -> Any:
    from explain import LanguageModel

    return LanguageModel.load(spec)


_LOADED: set[str | None] = set()


def load_model(spec: str | None) -> Any:
    """Return the cached :class:`explain.LanguageModel` for ``spec``, showing a spinner while it loads.

    Args:
        spec: ``None`` for the embedded model, else a local folder (or cached hub id).

    Raises:
        ValueError: an empty folder name; (``ExplainError``) unknown path or not a causal LM.
    """
    if spec is not None:
        spec = spec.strip()
        if not spec:
            raise ValueError("enter a model folder, or pick the embedded model")
    if spec in _LOADED:
        return _load(spec)
    note = (
        " The first start converts the embedded GGUF (about 20 s); later starts take seconds."
        if spec is None else ""
    )
    with st.spinner(f"Loading model {model_label(spec)} (once per server process).{note}"):
        lm = _load(spec)
    _LOADED.add(spec)
    return lm


def model_picker(key: str, default: str | None = None) -> str | None:
    """Widgets to pick the embedded model or a local folder; return the spec (``None`` = embedded).

    Args:
        key: a prefix for the widget keys, unique per page.
        default: the spec to preselect (a reopened run's model); else :func:`default_model_spec`.
    """
    default = default if default is not None else default_model_spec()
    if default in (None, "", EMBEDDED_LABEL, "SmolLM2-135M-Instruct", "embedded"):
        default = None
    choice_key, path_key = f"{key}_model_choice", f"{key}_model_path"
    if choice_key not in st.session_state:
        st.session_state[choice_key] = LOCAL_LABEL if default else EMBEDDED_LABEL
    if path_key not in st.session_state:
        st.session_state[path_key] = default or ""
    choice = st.radio(
        "Model", [EMBEDDED_LABEL, LOCAL_LABEL], key=choice_key, horizontal=True,
        help="The embedded model ships with whylm; any Hugging Face causal LM saved in a local "
             "folder works too.",
    )
    if choice == LOCAL_LABEL:
        path = st.text_input(
            "Model folder", key=path_key, placeholder="/path/to/a/hf-causal-lm",
            help="A folder with config.json, weights and tokenizer files (save_pretrained output).",
        )
        return path.strip() or ""
    return None
