"""Calibration picking for the dashboard: only calibration files under the folders it was started with.

A calibration is a JSON file written by ``whylm signals calibrate`` (or ``Calibration.save``).
The dashboard offers the ones it finds in its data folder (``--data-dir``) and its model roots
(``--model-dir``), at most one folder level down, beside "the one shipped for the model" and
"none". Nothing typed in the browser reaches the file system: a spec that is not one of the
offered files is refused with the same message whether or not the path exists; a file is offered
only when it is a regular file inside its root (a link pointing outside is skipped), small, and
holds a calibration.

Examples:
    >>> import json, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "cal.json").write_text(json.dumps({"model": "m", "cases": {}}))
    >>> _ = (root / "config.json").write_text("{}")
    >>> list(available_calibrations([root]))
    ['cal.json (for m)']
    >>> check_calibration_spec("/etc/passwd", [root])
    Traceback (most recent call last):
    ...
    explain.errors.WhylmError: calibration '/etc/passwd' is not one of this dashboard's calibration files: pick one from the list (files under --data-dir or --model-dir)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import streamlit as st

from dashboard.store import default_path
from explain.errors import WhylmError

SHIPPED = "The one shipped for the model (default)"
NONE = "None: no risk"
MAX_BYTES = 1_000_000


def calibration_roots() -> list[Path]:
    """Returns: the folders calibration files are offered from: the data folder, then the model roots."""
    from dashboard.models import model_roots

    return [default_path().parent.expanduser().resolve(), *model_roots()]


def _calibration_model(path: Path) -> str | None:
    """The model a calibration file is for, or None when the file is not a calibration."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("cases"), dict):
        return str(data.get("model") or "?")
    return None


def available_calibrations(roots: Iterable[Path] | None = None) -> dict[str, str]:
    """The calibration files the dashboard offers.

    Args:
        roots: the folders to scan; default :func:`calibration_roots`.

    Returns:
        ``{label: path}`` (path resolved, label the path under its root and the model it is for),
        sorted by label.

    Examples:
        >>> available_calibrations([Path("/no/such/root")])
        {}
    """
    out: dict[str, str] = {}
    for root in calibration_roots() if roots is None else roots:
        base = Path(root).expanduser().resolve()
        try:
            files = sorted([*base.glob("*.json"), *base.glob("*/*.json")]) if base.is_dir() else []
        except OSError:
            files = []
        for f in files:
            real = f.resolve()
            if base not in real.parents or not real.is_file() or str(real) in out.values():
                continue
            model = _calibration_model(real)
            if model is not None:
                out[f"{f.relative_to(base)} (for {model})"] = str(real)
    return dict(sorted(out.items()))


def check_calibration_spec(spec: Any, roots: Iterable[Path] | None = None) -> Any:
    """The calibration to use when it is ``None`` (shipped), ``False`` (none) or an offered file.

    Returns:
        ``None``, ``False`` or the file's resolved path.

    Raises:
        WhylmError: any other spec (one message whether or not the path exists).

    Examples:
        >>> check_calibration_spec(None) is None, check_calibration_spec(False)
        (True, False)
    """
    if spec is None or spec is False:
        return spec
    offered = available_calibrations(roots)
    if str(spec) in offered.values():
        return str(spec)
    shown = str(spec) if len(str(spec)) <= 80 else str(spec)[:79] + "…"
    raise WhylmError(f"calibration '{shown}' is not one of this dashboard's calibration files: pick one from "
                     "the list (files under --data-dir or --model-dir)")


def calibration_label(spec: Any) -> str:
    """Returns: how a calibration spec is shown (the file name, or the shipped/none choice).

    Examples:
        >>> calibration_label(None), calibration_label("/a/cal.json")
        ('The one shipped for the model (default)', 'cal.json')
    """
    if spec is None:
        return SHIPPED
    if spec is False:
        return NONE
    return Path(str(spec)).name


SHIPPED_KEY, NONE_KEY = "shipped", "none"


def picker_value(spec: Any) -> str:
    """The picker's value for a calibration spec (a selectbox cannot hold ``None``: it would show
    no choice at all).

    Examples:
        >>> picker_value(None), picker_value(False), picker_value("/a/cal.json")
        ('shipped', 'none', '/a/cal.json')
    """
    return SHIPPED_KEY if spec is None else NONE_KEY if spec is False else str(spec)


def calibration_picker(key: str, label: str = "Calibration", default_label: str | None = None) -> Any:
    """A selectbox: the shipped calibration, none, or a file under the dashboard's folders.

    Args:
        key: the widget key; its value is :func:`picker_value` of the choice.
        label: the widget's label.
        default_label: when given, the choices are "keep what is there" shown as this label, then
            the files (no "none" choice), and that first choice returns ``None``.

    Returns:
        the chosen spec for ``calibration=``: ``None`` (shipped / keep), ``False`` (none) or a file's path.
    """
    files = available_calibrations()
    names = {v: k for k, v in files.items()}
    options = [SHIPPED_KEY, *files.values()] if default_label else [SHIPPED_KEY, NONE_KEY, *files.values()]
    labels = {SHIPPED_KEY: default_label or SHIPPED, NONE_KEY: NONE, **names}
    if st.session_state.get(key) not in options:  # a file that went away, or a reopened run's
        st.session_state[key] = SHIPPED_KEY
    choice = st.selectbox(
        label, options, key=key, format_func=lambda o: labels.get(o, o),
        help="The risk is a calibrated probability only for the model its calibration was fitted on. "
             "Fit one with `whylm signals calibrate labelled.jsonl --out cal.json` and put the file in "
             "the dashboard's --data-dir or --model-dir to see it here.",
    )
    return None if choice == SHIPPED_KEY else False if choice == NONE_KEY else choice
