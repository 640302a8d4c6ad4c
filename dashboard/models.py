"""Model picking and loading for the dashboard: only folders under the roots it was started with.

The dashboard never opens a path or a hub id typed in the browser. Whoever starts it names the
model roots (``whylm dashboard --model-dir DIR``, repeatable; ``$WHYLM_MODEL_DIRS``, joined with
``os.pathsep``); default: the user's whylm cache (``<cache>/models``). Each root that is itself a
model folder, and each direct subfolder holding a ``config.json``, is offered in a selectbox beside
the embedded SmolLM2; ``--model PATH`` (``$WHYLM_MODEL``) adds one folder and preselects it.
A spec that is not in that list is refused with the same message whether or not the path exists.

The model is a ``st.cache_resource``: it loads once per server process and is shared by every
session and page.

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "tiny").mkdir(); (root / "tiny" / "config.json").write_text("{}")
    2
    >>> list(available_models([root]).values()) == [str((root / "tiny").resolve())]
    True
    >>> check_model_spec("/etc/shadow", [root])
    Traceback (most recent call last):
    ...
    explain.errors.WhylmError: model '/etc/shadow' is not one of this dashboard's model folders: pick one from the list (whoever starts the dashboard adds folders with --model-dir DIR)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import streamlit as st

from dashboard.common import md_escape
from explain.errors import WhylmError

MODEL_ENV = "WHYLM_MODEL"
MODEL_DIRS_ENV = "WHYLM_MODEL_DIRS"
EMBEDDED_LABEL = "Embedded SmolLM2-135M-Instruct"
LOCAL_LABEL = "Local folder"  # what older sessions and reopened runs store in the choice key
_EMBEDDED_SPECS = (None, "", EMBEDDED_LABEL, "SmolLM2-135M-Instruct", "embedded")


def model_roots() -> list[Path]:
    """The folders the dashboard may load models from.

    Returns:
        ``$WHYLM_MODEL_DIRS`` split on ``os.pathsep`` (set by ``--model-dir``), else
        ``[<whylm cache>/models]``; each resolved.

    Examples:
        >>> os.environ[MODEL_DIRS_ENV] = os.pathsep.join(["/a", "/b"])
        >>> [str(p) for p in model_roots()]
        ['/a', '/b']
        >>> del os.environ[MODEL_DIRS_ENV]
    """
    env = os.environ.get(MODEL_DIRS_ENV, "")
    if env.strip():
        return [Path(p).expanduser().resolve() for p in env.split(os.pathsep) if p.strip()]
    from explain.model import cache_dir

    return [(cache_dir() / "models").resolve()]


def _is_model_folder(path: Path) -> bool:
    try:
        return path.is_dir() and (path / "config.json").is_file()
    except OSError:
        return False


def available_models(roots: Iterable[Path] | None = None) -> dict[str, str]:
    """The model folders the dashboard offers.

    Args:
        roots: the roots to scan; default :func:`model_roots`.

    Returns:
        ``{label: folder}`` (folder a resolved path string): every root that is a model folder,
        every direct subfolder of a root with a ``config.json``, and ``$WHYLM_MODEL`` when it is a
        model folder; the embedded model's converted copy in the cache is left out (it is the
        embedded choice).

    Examples:
        >>> available_models([Path("/no/such/root")])
        {}
    """
    from explain.model import EMBEDDED_NAME, cache_dir

    embedded_copy = (cache_dir() / "models" / EMBEDDED_NAME).resolve()
    found: list[Path] = []
    extra = os.environ.get(MODEL_ENV, "").strip()
    if extra and _is_model_folder(Path(extra).expanduser()):
        found.append(Path(extra).expanduser().resolve())
    for root in model_roots() if roots is None else roots:
        root = Path(root)
        if _is_model_folder(root):
            found.append(root.resolve())
            continue
        try:
            children = sorted(root.iterdir()) if root.is_dir() else []
        except OSError:
            children = []
        found += [c.resolve() for c in children if _is_model_folder(c)]
    out: dict[str, str] = {}
    for folder in found:
        if folder == embedded_copy or str(folder) in out.values():
            continue
        label = folder.name if folder.name not in out else f"{folder.name} ({folder})"
        out[label] = str(folder)
    return out


def check_model_spec(spec: str | None, roots: Iterable[Path] | None = None) -> str | None:
    """The spec to load when it is the embedded model or one of :func:`available_models`.

    The check compares strings only: nothing typed by a user reaches the file system or the hub.

    Returns:
        ``None`` (embedded) or the folder's resolved path.

    Raises:
        WhylmError: any other spec, with one message that does not tell whether the path exists.

    Examples:
        >>> check_model_spec("embedded") is None
        True
    """
    if spec in _EMBEDDED_SPECS:
        return None
    spec = str(spec).strip()
    models = available_models(roots)
    if spec in models.values():
        return spec
    if spec in models:  # a label
        return models[spec]
    shown = spec if len(spec) <= 80 else spec[:79] + "…"
    raise WhylmError(
        f"model '{shown}' is not one of this dashboard's model folders: pick one from the list "
        "(whoever starts the dashboard adds folders with --model-dir DIR)"
    )


def default_model_spec() -> str | None:
    """The model the dashboard starts with.

    Returns:
        ``$WHYLM_MODEL`` when it is an offered folder, else ``None`` (embedded).

    Examples:
        >>> os.environ.pop(MODEL_ENV, None); default_model_spec() is None
        True
    """
    spec = os.environ.get(MODEL_ENV, "").strip()
    if not spec:
        return None
    try:
        return check_model_spec(str(Path(spec).expanduser().resolve()))
    except WhylmError:
        return None


def model_label(spec: str | None) -> str:
    """A short, human label for a model spec.

    Returns:
        :data:`EMBEDDED_LABEL` for ``None``, else the spec.

    Examples:
        >>> model_label(None)
        'Embedded SmolLM2-135M-Instruct'
    """
    return EMBEDDED_LABEL if not spec else spec


@st.cache_resource(show_spinner=False, max_entries=3)
def _load(spec: str | None) -> Any:
    from explain import LanguageModel

    return LanguageModel.load(spec)


_LOADED: set[str | None] = set()


def load_model(spec: str | None) -> Any:
    """Load (once per process) the embedded model or one of the offered folders.

    Args:
        spec: ``None`` for the embedded model, else a folder from :func:`available_models`.

    Returns:
        the cached :class:`explain.LanguageModel`.

    Raises:
        WhylmError: a spec that is not offered (see :func:`check_model_spec`); ``ExplainError``
            when an offered folder holds no causal LM.

    Examples:
        >>> load_model("/etc/shadow")
        Traceback (most recent call last):
        ...
        explain.errors.WhylmError: model '/etc/shadow' is not one of this dashboard's model folders: pick one from the list (whoever starts the dashboard adds folders with --model-dir DIR)
    """
    spec = check_model_spec(spec)
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


def _no_folders_hint() -> str:
    """The caption shown when no folder besides the embedded model is offered.

    Returns:
        one sentence; the embedded model's converted copy in the cache is named as the embedded
        choice, not counted as missing.

    Examples:
        >>> os.environ[MODEL_DIRS_ENV] = "/no/such/root"
        >>> _no_folders_hint().split(".")[0]
        'No model folders besides the embedded model under /no/such/root'
        >>> del os.environ[MODEL_DIRS_ENV]
    """
    from explain.model import EMBEDDED_NAME

    roots = model_roots()
    where = ", ".join(str(r) for r in roots)
    embedded_there = any((r / EMBEDDED_NAME / "config.json").is_file() for r in roots)
    note = f" (its converted copy in {where} is the '{EMBEDDED_LABEL}' choice)" if embedded_there else ""
    return (f"No model folders besides the embedded model under {where}{note}. Start the dashboard with "
            "`--model-dir DIR` to offer the models saved there.")


def display_model(name: str | None) -> str:
    """The label History shows for a stored model name: one spelling for the embedded model
    (pages saved it as "embedded SmolLM2-135M-Instruct", "Embedded ...", "embedded").

    Returns:
        :data:`EMBEDDED_LABEL` for any spelling of the embedded model, else ``name`` unchanged.

    Examples:
        >>> display_model("embedded SmolLM2-135M-Instruct") == display_model("embedded") == EMBEDDED_LABEL
        True
        >>> display_model("/models/qwen")
        '/models/qwen'
    """
    text = "" if name is None else str(name)
    spellings = {str(s).lower() for s in _EMBEDDED_SPECS if s} | {"local:smollm2-135m-instruct"}
    return EMBEDDED_LABEL if text.strip().lower() in spellings else text


def folder_picker(key: str, label: str = "Model folder") -> str:
    """A selectbox of :func:`available_models` (nothing to type).

    Args:
        key: the widget key.
        label: the widget label.

    Returns:
        the chosen folder, or ``""`` when there is none (a caption then says how to add one).
    """
    models = available_models()
    if not models:
        st.caption(_no_folders_hint())
        return ""
    folders = list(models.values())
    if st.session_state.get(key) not in folders:
        st.session_state.pop(key, None)
    names = {v: k for k, v in models.items()}
    return st.selectbox(label, folders, key=key, format_func=lambda f: names.get(f, f),
                        help="Model folders under the roots this dashboard was started with.")


def model_picker(key: str, default: str | None = None) -> str | None:
    """A selectbox with the embedded model and every offered folder.

    Args:
        key: a prefix for the widget keys, unique per page (the selectbox is ``{key}_model_choice``).
        default: the spec to preselect (a reopened run's model); else :func:`default_model_spec`.

    Returns:
        the spec: ``None`` for the embedded model, else the folder's path.
    """
    models = available_models()
    names = {v: k for k, v in models.items()}
    options = [EMBEDDED_LABEL, *models.values()]
    choice_key, path_key = f"{key}_model_choice", f"{key}_model_path"
    current = st.session_state.get(choice_key)
    if current not in options:
        # a fresh session, or a reopened run that stored "Local folder" + the path
        wanted = st.session_state.get(path_key) if current == LOCAL_LABEL else None
        wanted = wanted or (default if default is not None else default_model_spec())
        wanted = None if wanted in _EMBEDDED_SPECS else str(wanted)
        if wanted is not None and wanted not in options:
            st.warning(md_escape(f"The model '{wanted[:80]}' is not among this dashboard's model "
                                 "folders; the embedded model is selected."))
            wanted = None
        st.session_state[choice_key] = wanted or EMBEDDED_LABEL
    choice = st.selectbox(
        "Model", options, key=choice_key, format_func=lambda f: names.get(f, f),
        help="The embedded model ships with whylm; other models are the folders under the roots "
             "this dashboard was started with (whylm dashboard --model-dir DIR).",
    )
    if not models:
        st.caption(_no_folders_hint())
    return None if choice == EMBEDDED_LABEL else choice
