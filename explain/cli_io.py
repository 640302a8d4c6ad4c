"""Input and output checks shared by every ``whylm`` subcommand (explain, signals, causal, ...).

The command line refuses bad input in one line before any work starts: an argument that is not
valid UTF-8, an output path (``--json`` / ``--html`` / ``--out``) that is a folder or cannot be
written, an input file that is a folder, missing or not UTF-8 text. Results are written by
:func:`write_output` (``-`` is stdout), JSON through :func:`explain.serialize.dumps`.

Examples:
    >>> import tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> check_output_path(folder, "--json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    explain.errors.WhylmError: --json ... is a folder: give a file name
    >>> check_argv(["explain", "caf\\udce9"])
    Traceback (most recent call last):
    ...
    explain.errors.WhylmError: argument 2 is not valid UTF-8 text (b'caf\\xe9'): pass text encoded in UTF-8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from explain.errors import ExplainError, WhylmError
from explain.serialize import dumps

OUTPUT_FLAGS = ("json", "html", "out")  # argparse dests that name a file a subcommand writes


def check_argv(argv: Sequence[str]) -> None:
    """Refuse arguments that are not valid UTF-8 (Python hands them over surrogate-escaped).

    Returns:
        None when every argument is valid text.

    Raises:
        WhylmError: naming the first bad argument (1-based) and its bytes.

    Examples:
        >>> check_argv(["explain", "café"]) is None
        True
    """
    for i, arg in enumerate(argv, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "surrogateescape")
            shown = repr(raw) if len(raw) <= 60 else repr(raw[:60])[:-1] + "...'"
            raise WhylmError(f"argument {i} is not valid UTF-8 text ({shown}): pass text "
                             "encoded in UTF-8") from None


def check_output_path(path: str, flag: str) -> None:
    """Check before any work that ``path`` can be written (``-`` means stdout and always can).

    A file that does not exist yet is created to prove it and removed again; an existing file is
    left untouched.

    Returns:
        None when the path can be written.

    Raises:
        WhylmError: the path is a folder, its folder does not exist, or it cannot be written.

    Examples:
        >>> check_output_path("-", "--json") is None
        True
    """
    if path == "-":
        return
    target = Path(path).expanduser()
    if target.is_dir():
        raise WhylmError(f"{flag} {path} is a folder: give a file name")
    parent = target.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise WhylmError(f"{flag} {path}: the folder {parent} {what}")
    existed = target.exists()
    try:
        with open(target, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise WhylmError(f"{flag} {path} cannot be written: {exc.strerror or exc}") from None
    if not existed:
        target.unlink(missing_ok=True)


def check_outputs(args: argparse.Namespace) -> None:
    """Run :func:`check_output_path` on every output flag (:data:`OUTPUT_FLAGS`) that was given.

    Returns:
        None when all can be written.

    Examples:
        >>> check_outputs(argparse.Namespace(json="-", html=None)) is None
        True
    """
    for dest in OUTPUT_FLAGS:
        value = getattr(args, dest, None)
        if isinstance(value, str) and value:
            check_output_path(value, "--" + dest)


def write_output(path: str, text: str, flag: str = "--json") -> None:
    """Write ``text`` to ``path`` (``-``: stdout); say ``wrote PATH`` on stderr.

    Returns:
        None.

    Raises:
        WhylmError: the file cannot be written (one line, the OS's reason).

    Examples:
        >>> write_output("-", "{}")
        {}
    """
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        Path(path).expanduser().write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WhylmError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)


def write_json(path: str | None, payload: Any, flag: str = "--json") -> None:
    """Write ``payload`` as JSON (NaN and infinities as ``null``) when ``path`` is given.

    Returns:
        None.

    Examples:
        >>> write_json("-", {"x": float("nan")})
        {
         "x": null
        }
    """
    if path:
        write_output(path, dumps(payload, indent=1), flag)


def write_html(path: str | None, body: str) -> None:
    """Write an HTML page around ``body`` (already escaped by its builder) when ``path`` is given.

    Returns:
        None.
    """
    if path:
        write_output(path, f"<!doctype html><meta charset=utf-8><body>{body}</body>", "--html")


def read_text_file(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file given on the command line.

    Args:
        path: the file.
        what: how the error names it, e.g. ``"context file"``.

    Returns:
        the file's text.

    Raises:
        WhylmError: missing, a folder, unreadable or not UTF-8 text.

    Examples:
        >>> read_text_file("/", "context file")
        Traceback (most recent call last):
        ...
        explain.errors.WhylmError: context file '/' is a folder, not a text file
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise WhylmError(f"{what} '{path}' is a folder, not a text file")
    if not p.exists():
        raise WhylmError(f"{what} '{path}' does not exist")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WhylmError(f"{what} '{path}' is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise WhylmError(f"cannot read {what} '{path}': {exc.strerror or exc}") from None


def read_json_lines(path: str | Path, what: str, fields: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per non-empty line.

    Args:
        path: the file; what: how errors name it (``"labelled file"``); fields: the fields a line
            holds, in words, for the error on a line that is not an object.

    Returns:
        the rows as dicts.

    Raises:
        ExplainError: a missing or unreadable file, a line that is not a JSON object.

    Examples:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "l.jsonl")
        >>> _ = open(p, "w").write('{"q": 1}\\n\\n[2]\\n')
        >>> read_json_lines(p, "cases file", "q")
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: cases file '...l.jsonl', line 3: expected a JSON object with q
    """
    rows = []
    for k, line in enumerate(read_text_file(path, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise ExplainError(f"{what} '{path}', line {k}: not valid JSON") from None
        if not isinstance(row, dict):
            raise ExplainError(f"{what} '{path}', line {k}: expected a JSON object with {fields}")
        rows.append(row)
    return rows


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in a file (a calibration, head weights).

    Args:
        path: the file; what: how errors name it, e.g. ``"calibration file"``.

    Returns:
        the object as a dict.

    Raises:
        ExplainError: missing, not valid JSON, or not an object.

    Examples:
        >>> read_json_object("nowhere.json", "head weights file")
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: head weights file 'nowhere.json' does not exist
    """
    path = Path(path)
    if not path.is_file():
        raise ExplainError(f"{what} '{path}' does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ExplainError(f"{what} '{path}' is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ExplainError(f"{what} '{path}' holds no JSON object")
    return data
