"""Errors raised by :mod:`causal`: one class, one line, naming the problem.

Examples:
    >>> raise CausalError("graph has a cycle: a -> b -> a")
    Traceback (most recent call last):
    ...
    causal.errors.CausalError: graph has a cycle: a -> b -> a
    >>> from explain.errors import WhylmError
    >>> issubclass(CausalError, WhylmError)
    True
"""

from __future__ import annotations

import difflib

from explain.errors import WhylmError


class CausalError(WhylmError):
    """Bad input, an unusable graph or an unreachable LLM: the message is one line for the user."""


def did_you_mean(name: str, options: list[str]) -> str:
    """A "; did you mean 'X'?" hint naming the closest option (case-insensitive match first).

    Returns:
        the hint, or "" when there are no options.

    Examples:
        >>> did_you_mean("age", ["Age", "sex"])
        "; did you mean 'Age'?"
    """
    if not options:
        return ""
    same = [o for o in options if o.lower() == str(name).lower()]
    close = same or difflib.get_close_matches(str(name).lower(), [o.lower() for o in options], n=1, cutoff=0.0)
    if not close:
        return ""
    best = close[0] if same else next(o for o in options if o.lower() == close[0])
    return f"; did you mean '{best}'?"
