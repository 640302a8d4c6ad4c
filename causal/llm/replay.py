"""The replay backend: answers from a recording (for tests, demos and re-running a study offline).

Examples:
    >>> ReplayBackend({"Q?": [0.2, 0.8]}, cache=False).choose("Q?", ["A", "B"])[0]
    1
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from causal.errors import CausalError
from causal.llm.answers import parse_choice
from causal.llm.base import CachedBackend
from causal.llm.cache import AnswerCache


class ReplayBackend(CachedBackend):
    """Answers from a recording: a dict (or a JSON file holding one) from prompt to answer.

    An answer is an option label (``"B"``), an index, or a list of probabilities. A prompt with no
    recording is an error.

    Examples:
        >>> r = ReplayBackend({"Q?": [0.2, 0.8]}, cache=False)
        >>> r.choose("Q?", ["A", "B"])[0]
        1
    """

    name = "replay"

    def __init__(self, answers: dict[str, Any] | str | os.PathLike, cache: bool | AnswerCache = False) -> None:
        super().__init__(cache)
        if isinstance(answers, (str, os.PathLike)):
            path = Path(answers).expanduser()
            try:
                answers = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise CausalError(f"replay file not found: {path}") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CausalError(f"replay file {path} is not JSON: {exc}") from None
            self.model = path.name
        else:
            self.model = "dict"
        if not isinstance(answers, dict):
            raise CausalError("replay answers must be a JSON object from prompt to answer")
        self.answers = answers

    def _choose(self, prompt: str, options: list[str]) -> np.ndarray:
        if prompt not in self.answers:
            raise CausalError(f"no recorded answer for prompt {prompt[:60]!r}")
        ans = self.answers[prompt]
        if isinstance(ans, (list, tuple)):
            return np.asarray(ans, dtype=float)
        if isinstance(ans, int) and 0 <= ans < len(options):
            index = ans
        else:
            index = parse_choice(str(ans), options)
        if index is None:
            raise CausalError(f"recorded answer {ans!r} is not one of {options}")
        out = np.zeros(len(options))
        out[index] = 1.0
        return out
