"""Reading a multiple-choice answer out of what an LLM returned: strict text parsing and the first
answer token's log-probs.

Examples:
    >>> parse_choice(" **B**.", ["A", "B"])
    1
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from causal.errors import CausalError


def validate_options(options: Sequence[str]) -> list[str]:
    """Check the options of a multiple-choice question.

    Returns:
        the options as strings.

    Examples:
        >>> validate_options(["A", "B"])
        ['A', 'B']
    """
    opts = [str(o) for o in options]
    if len(opts) < 2:
        raise CausalError("a multiple-choice question needs at least two options")
    if len(set(o.strip().upper() for o in opts)) != len(opts) or any(not o.strip() for o in opts):
        raise CausalError(f"options must be distinct and non-empty: {opts}")
    return opts


def check_probs(probs: Any, n: int) -> np.ndarray:
    """Validate option probabilities (finite, non-negative, right length, positive sum).

    Returns:
        the probabilities normalised to sum 1.

    Examples:
        >>> check_probs([1, 3], 2).tolist()
        [0.25, 0.75]
    """
    try:
        arr = np.asarray(probs, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise CausalError(f"LLM returned an invalid answer distribution {str(probs)[:60]}") from None
    if arr.shape[0] != n or not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
        raise CausalError(f"LLM returned an invalid answer distribution {arr.tolist()[:8]}")
    return arr / arr.sum()


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Strictly parse a constrained answer: the text must be one option label, optionally wrapped
    in punctuation, markdown or an ``<Answer>`` tag.

    Returns:
        the option's index, or None when the text is not exactly one option.

    Examples:
        >>> parse_choice(" **B**.", ["A", "B"]), parse_choice("A or B", ["A", "B"])
        (1, None)
    """
    t = re.sub(r"</?answer>", " ", str(text), flags=re.I)
    t = re.sub(r"^\s*(final\s+)?answer\s*[:\-]\s*", "", t.strip(), flags=re.I)
    t = t.strip().strip("*_`'\"()[]{}.:;!, \n\t")
    upper = [o.strip().upper() for o in options]
    return upper.index(t.upper()) if t.upper() in upper else None


class NonAnswerError(CausalError):
    """The LLM's reply is not one of the options (never cached; asking again may succeed)."""


def _label(token: Any) -> str:
    return str(token).strip().strip("*_`'\"().:").upper()


def probs_from_logprobs(logprobs: Any, options: Sequence[str]) -> np.ndarray | None:
    """Option probabilities from the first answer token's top log-probs, used only when that token
    (the one the model actually produced) is an option label.

    Returns:
        unnormalised probabilities over ``options`` (options missing from the top list get 1e-6),
        or None when there are no log-probs or the first token is not an option label (then the
        text must be parsed).

    Raises:
        ValueError: a log-probability above 0 (not a log-probability; 1000 would overflow).

    Examples:
        >>> lp = lambda tok, tops: {"content": [{"token": tok, "logprob": tops[0][1],
        ...     "top_logprobs": [{"token": t, "logprob": v} for t, v in tops]}]}
        >>> probs_from_logprobs(lp("B", [("B", -0.1), ("A", -2.4)]), ["A", "B"]).round(2).tolist()
        [0.09, 0.9]
        >>> probs_from_logprobs(lp("The", [("The", -0.01), ("A", -9.0)]), ["A", "B"]) is None
        True
    """
    try:
        first = logprobs["content"][0]
        produced = first["token"]
        tops = first.get("top_logprobs") or [first]
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    upper = [o.strip().upper() for o in options]
    if _label(produced) not in upper:
        return None
    mass = np.zeros(len(options))
    for entry in tops:
        try:
            tok = _label(entry["token"])
            lp = float(entry["logprob"])
        except (TypeError, KeyError, ValueError, AttributeError):
            continue
        if lp > 1e-3:  # rounding may give +0.0001; anything more is not a log-probability
            raise ValueError(f"the answer holds a log-probability of {lp:g} for {tok!r} (log-probabilities are <= 0)")
        if tok in upper and math.isfinite(lp):
            mass[upper.index(tok)] += math.exp(lp)
    if mass.sum() <= 0:
        return None
    floor = 1e-6  # options outside the top list get a tiny mass, not zero
    return np.maximum(mass, floor)
