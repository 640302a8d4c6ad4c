"""Cost guards: a long run states its cost first and never starts silently.

Every call that can run for long (attribution, signals with samples, graph proposal, audits) builds
a :class:`Cost` *before* it starts and passes it to :func:`check_budget`, which refuses a run over
its budget in one line naming the estimate and the cheaper option. ``max_seconds=`` raises it.

Example:
    >>> c = Cost("token-level ablation of 5,250 tokens", seconds=3.5 * 3600, passes=5251,
    ...          positions=27_575_000, cheaper='use sources="sentences"')
    >>> c.summary()
    'token-level ablation of 5,250 tokens: about 3.5 h (5,251 forward passes, 27,575,000 token positions)'
    >>> check_budget(c, max_seconds=None)
    Traceback (most recent call last):
    ...
    explain.errors.ExplainError: token-level ablation of 5,250 tokens would take about 3.5 h (5,251 forward passes, 27,575,000 token positions), over the 5 min budget: use sources="sentences", or raise max_seconds= (12600 would do)
    >>> check_budget(c, max_seconds=4 * 3600) is c
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from explain.errors import ExplainError
from explain.serialize import Result

DEFAULT_MAX_SECONDS = 300.0

_SPEED: dict[tuple[str, str, int], float] = {}


@dataclass
class Cost(Result):
    """The predicted cost of one run.

    Attributes:
        what: the run in words ("token-level ablation of 812 tokens").
        seconds: predicted wall time on this machine.
        passes: forward passes (or LLM questions, for graph proposal).
        positions: token positions computed.
        memory_bytes: predicted peak memory of the run, if known.
        cheaper: the cheaper choice to suggest when the run is refused.
        unit: what ``passes`` counts ("forward passes", "questions", "records").
    """

    what: str
    seconds: float
    passes: int = 0
    positions: int = 0
    memory_bytes: int | None = None
    cheaper: str = ""
    unit: str = "forward passes"

    def details(self) -> str:
        """The counts behind the estimate, e.g. ``"12 forward passes, 3,000 token positions"``."""
        parts = []
        if self.passes:
            parts.append(f"{self.passes:,} {self.unit}")
        if self.positions:
            parts.append(f"{self.positions:,} token positions")
        if self.memory_bytes:
            parts.append(f"peak memory about {format_bytes(self.memory_bytes)}")
        return ", ".join(parts)

    def summary(self) -> str:
        """One line: what, how long, and the counts. Returns: the line."""
        details = self.details()
        return f"{self.what}: about {format_seconds(self.seconds)}" + (f" ({details})" if details else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Cost":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def __getitem__(self, key: str) -> Any:  # estimate["seconds"] reads like the dict it replaced
        return getattr(self, key)


def check_budget(cost: Cost, max_seconds: float | None) -> Cost:
    """Refuse ``cost`` when it is over ``max_seconds`` (``None``: :data:`DEFAULT_MAX_SECONDS`).

    Returns:
        ``cost`` unchanged when it fits.

    Raises:
        ExplainError: one line with the estimate, the budget and the cheaper choice.
    """
    limit = DEFAULT_MAX_SECONDS if max_seconds is None else float(max_seconds)
    if not limit > 0:
        raise ExplainError(f"max_seconds must be positive, got {max_seconds!r}")
    if cost.seconds > limit:
        details = cost.details()
        what = f"{cost.what} would take about {format_seconds(cost.seconds)}"
        if details:
            what += f" ({details})"
        cheaper = f"{cost.cheaper}, or raise" if cost.cheaper else "raise"
        need = int(math.ceil(cost.seconds / 10.0) * 10)
        raise ExplainError(f"{what}, over the {format_seconds(limit)} budget: {cheaper} max_seconds= ({need} would do)")
    return cost


def format_seconds(seconds: float) -> str:
    """Seconds in the unit a person reads best.

    Example:
        >>> [format_seconds(s) for s in (0.4, 42, 300, 5400, 3 * 86400)]
        ['0.4 s', '42 s', '5 min', '1.5 h', '3.0 days']
    """
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_bytes(n: float) -> str:
    """Bytes as MB / GB. Example: ``format_bytes(3.2e9)`` is ``'3.2 GB'``."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def seconds_per_position(lm: Any, length: int = 128, batch: int = 4) -> float:
    """Measured wall seconds per token position of a no-grad forward pass of ``lm`` on this machine.

    One short measurement (a batch of ``batch`` x ``length`` tokens, best of two) cached per model,
    device and thread count for the life of the process.

    Returns:
        seconds per position (a forward of B sequences of L tokens costs about B * L times this).
    """
    import torch

    key = (str(getattr(lm, "name", id(lm))), str(getattr(lm, "device", "cpu")), torch.get_num_threads())
    if key not in _SPEED:
        vocab = lm.model.get_input_embeddings().num_embeddings
        ids = torch.arange(batch * length, device=lm.device).reshape(batch, length) % max(vocab - 1, 1) + 1
        best = math.inf
        with torch.inference_mode():
            for _ in range(2):
                start = time.perf_counter()
                lm.model(input_ids=ids, use_cache=False)
                best = min(best, time.perf_counter() - start)
        _SPEED[key] = best / (batch * length)
    return _SPEED[key]
