"""The one error base of whylm, and how a command line or a page reports an error.

A :class:`WhylmError` is the user's fault or the world's (bad input, a missing file, an unreachable
server): its message is one line meant for the user. Anything else that escapes is a bug in whylm:
:func:`report_internal_error` writes its traceback to a log file and returns one line that says so.

Examples:
    >>> raise ExplainError("prompt is empty")
    Traceback (most recent call last):
    ...
    explain.errors.ExplainError: prompt is empty
    >>> issubclass(ExplainError, WhylmError) and issubclass(WhylmError, ValueError)
    True
    >>> one_line(WhylmError("bad column 'x'\\nsecond line"))
    "bad column 'x'"
"""

from __future__ import annotations

import datetime as _dt
import os
import traceback
from pathlib import Path


class WhylmError(ValueError):
    """Bad input or an unusable model, file or server: the message is one line meant for the user."""


class ExplainError(WhylmError):
    """A :class:`WhylmError` raised by :mod:`explain` (attribution, signals, audits)."""


def one_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message, or its class name when it has none.

    Returns:
        a single line of text.

    Examples:
        >>> one_line(ValueError(""))
        'ValueError'
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def log_dir() -> Path:
    """The folder internal-error logs go to: ``$WHYLM_LOG_DIR`` or the user log folder.

    Returns:
        the folder (created if needed).
    """
    env = os.environ.get("WHYLM_LOG_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_log_dir

        path = Path(user_log_dir("whylm", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def report_internal_error(exc: BaseException, where: str = "whylm") -> str:
    """Save ``exc``'s traceback to a new log file; return the one line to show the user.

    Returns:
        ``"internal error in <where> (<Type>: <first line>); the traceback is in <path>"``, or a line
        saying the log could not be written.

    Examples:
        >>> import tempfile, os
        >>> os.environ["WHYLM_LOG_DIR"] = tempfile.mkdtemp()
        >>> report_internal_error(KeyError("x"), "test").startswith("internal error in test (KeyError")
        True
        >>> del os.environ["WHYLM_LOG_DIR"]
    """
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    summary = f"internal error in {where} ({type(exc).__name__}: {one_line(exc)[:200]})"
    try:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = log_dir() / f"error-{stamp}-{os.getpid()}.log"
        path.write_text(text, encoding="utf-8")
    except OSError as log_exc:
        return f"{summary}; the traceback could not be saved ({one_line(log_exc)})"
    return f"{summary}; the traceback is in {path}"
