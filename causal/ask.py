"""The questions whylm asks an LLM about causes, and the asker that counts and remembers them.

- :func:`pair_prompt`: Kıcıman et al.'s forced choice ("Which cause-and-effect relationship is more
  likely? A. changing a causes a change in b. B. changing b causes a change in a.");
- :func:`parents_prompt`: "which of these variables directly causes X?";
- :class:`Asker`: asks a pair in both orders and averages, so the answer depends neither on which
  variable is named first nor on a model's preference for the letter A.

Examples:
    >>> from causal.llm import ReplayBackend
    >>> llm = ReplayBackend({pair_prompt("a", "b"): [0.9, 0.1], pair_prompt("b", "a"): [0.3, 0.7]})
    >>> Asker(llm, None).pair("a", "b").round(2).tolist()
    [0.8, 0.2]
"""

from __future__ import annotations

import string
from typing import Any, Mapping, Sequence

import numpy as np

from causal.errors import CausalError

PAIR_HEADER = "Which cause-and-effect relationship is more likely?"


# --------------------------------------------------------------------------- prompts
def _context(names: Sequence[str], descriptions: Mapping[str, str] | None) -> str:
    if not descriptions:
        return ""
    lines = [f"- {n}: {descriptions[n]}" for n in names if descriptions.get(n)]
    return ("Variables:\n" + "\n".join(lines) + "\n\n") if lines else ""


def pair_prompt(x: str, y: str, descriptions: Mapping[str, str] | None = None, none_option: bool = False) -> str:
    """The forced-choice prompt with option A = "x causes y", B = "y causes x" (C = no direct edge).

    Returns:
        the prompt text.

    Examples:
        >>> print(pair_prompt("altitude", "temperature"))
        Which cause-and-effect relationship is more likely?
        A. changing altitude causes a change in temperature.
        B. changing temperature causes a change in altitude.
        Answer with the letter A or B.
    """
    lines = [
        _context([x, y], descriptions) + PAIR_HEADER,
        f"A. changing {x} causes a change in {y}.",
        f"B. changing {y} causes a change in {x}.",
    ]
    if none_option:
        lines.append(f"C. neither directly causes the other: changing {x} does not directly change {y} and changing {y} does not directly change {x}.")
        lines.append("Answer with the letter A, B or C.")
    else:
        lines.append("Answer with the letter A or B.")
    return "\n".join(lines)


def parents_prompt(
    target: str, candidates: Sequence[str], descriptions: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """A multiple-choice question: which candidate directly causes ``target`` (last option: none).

    Returns:
        (prompt, option labels).
    """
    labels = list(string.ascii_uppercase[: len(candidates) + 1])
    lines = [
        _context([*candidates, target], descriptions)
        + f"Which of the following variables is a direct cause of {target}? "
        f"(Changing it directly causes a change in {target}.)"
    ]
    lines += [f"{lab}. {c}" for lab, c in zip(labels, candidates)]
    lines.append(f"{labels[-1]}. none of these directly causes {target}")
    lines.append(f"Answer with one letter from A to {labels[-1]}.")
    return "\n".join(lines), labels


# --------------------------------------------------------------------------- asking
class Asker:
    """Counts questions and remembers pair answers within one proposal.

    Examples:
        >>> from causal.llm import ReplayBackend
        >>> a = Asker(ReplayBackend({pair_prompt("x", "y"): "A", pair_prompt("y", "x"): "B"}), None)
        >>> a.pair("y", "x").tolist(), a.first_order("x", "y"), a.queries
        ([0.0, 1.0], 1.0, 2)
    """

    def __init__(self, llm: Any, descriptions: Mapping[str, str] | None) -> None:
        self.llm = llm
        self.descriptions = descriptions
        self.queries = 0
        self._pairs: dict[tuple[str, str, bool], np.ndarray] = {}
        self._asked: dict[tuple[str, str, bool], np.ndarray] = {}  # (first named, second, C?) -> answer

    def choose(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        self.queries += 1
        _, probs = self.llm.choose(prompt, list(options))
        probs = np.asarray(probs, dtype=float)
        if probs.shape != (len(options),) or not np.all(np.isfinite(probs)) or probs.sum() <= 0:
            raise CausalError(f"LLM backend returned invalid probabilities {probs.tolist()}")
        return probs / probs.sum()

    def pair(self, a: str, b: str, none_option: bool = False) -> np.ndarray:
        """Order-invariant probabilities [a->b, b->a(, none)] from two prompts (both orders)."""
        lo, hi = sorted((a, b))
        key = (lo, hi, none_option)
        if key not in self._pairs:
            opts = ["A", "B", "C"] if none_option else ["A", "B"]
            p1 = self.choose(pair_prompt(lo, hi, self.descriptions, none_option), opts)
            p2 = self.choose(pair_prompt(hi, lo, self.descriptions, none_option), opts)
            self._asked[(lo, hi, none_option)], self._asked[(hi, lo, none_option)] = p1, p2
            fwd = (p1[0] + p2[1]) / 2.0
            bwd = (p1[1] + p2[0]) / 2.0
            out = [fwd, bwd] + ([(p1[2] + p2[2]) / 2.0] if none_option else [])
            self._pairs[key] = np.array(out)
        probs = self._pairs[key]
        if (a, b) == (lo, hi):
            return probs.copy()
        swapped = probs.copy()
        swapped[0], swapped[1] = probs[1], probs[0]
        return swapped

    def first_order(self, a: str, b: str, none_option: bool = False) -> float:
        """P(option A) of the single prompt naming ``a`` first (after :meth:`pair` asked it)."""
        self.pair(a, b, none_option)
        return float(self._asked[(a, b, none_option)][0])
