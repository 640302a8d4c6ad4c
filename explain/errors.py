"""Errors raised by :mod:`explain`: one class, one line, naming the problem."""

from __future__ import annotations


class ExplainError(ValueError):
    """Bad input or an unusable model: the message is one line meant for the user.

    Example:
        >>> raise ExplainError("prompt is empty")
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: prompt is empty
    """
