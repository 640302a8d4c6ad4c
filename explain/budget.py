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
    explain.errors.ExplainError: token-level ablation of 5,250 tokens would take about 3.5 h (5,251 forward passes, 27,575,000 token positions), over the 10 min budget: use sources="sentences", or raise max_seconds= (12600 would do)
    >>> check_budget(c, max_seconds=4 * 3600) is c
    True
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from explain.errors import ExplainError
from explain.model import cache_dir
from explain.serialize import Result

# Long enough for a sentence-level attribution of a 2k-token prompt on a 2-core machine (about
# 6 min), short enough to stop the hour- and day-long runs before they start.
DEFAULT_MAX_SECONDS = 600.0


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
        note: a caveat on the estimate, shown with its counts (e.g. that it is a lower bound).
    """

    what: str
    seconds: float
    passes: int = 0
    positions: int = 0
    memory_bytes: int | None = None
    cheaper: str = ""
    unit: str = "forward passes"
    note: str = ""

    def details(self) -> str:
        """The counts behind the estimate, e.g. ``"12 forward passes, 3,000 token positions"``."""
        parts = []
        if self.passes:
            parts.append(f"{self.passes:,} {self.unit}")
        if self.positions:
            parts.append(f"{self.positions:,} token positions")
        if self.memory_bytes:
            parts.append(f"peak memory about {format_bytes(self.memory_bytes)}")
        return ", ".join(parts) + (f"; {self.note}" if self.note else "")

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
    """Predicted wall seconds per token position of a no-grad forward of ``batch`` x ``length`` tokens.

    Returns:
        seconds per position, from :func:`speed` (a forward of B sequences of L tokens costs about
        B * L times this).
    """
    positions = batch * length
    return speed(lm).seconds(positions, batch * length * (length + 1) / 2, 1) / positions


@dataclass(frozen=True)
class Speed:
    """Measured costs on this machine: seconds per position, per attention pair, per pass, and per
    method the ratio of measured to predicted seconds of the runs timed so far (:func:`record_run`).

    Example:
        >>> Speed(1e-3, 0.0, 0.01).seconds(1000, 0, 2)
        1.02
        >>> Speed(1e-3, 0.0, 0.01, {"ablation": 2.0}).seconds(1000, 0, 2, method="ablation")
        2.04
    """

    per_position: float
    per_pair: float
    per_pass: float
    scales: Mapping[str, float] = field(default_factory=dict)

    def seconds(self, positions: float, pairs: float, passes: float, method: str | None = None) -> float:
        """Predicted seconds of a run with these counts (times ``method``'s correction). Returns: a float."""
        raw = self.per_position * positions + self.per_pair * pairs + self.per_pass * passes
        return raw * float(self.scales.get(method or "", 1.0))


_SPEEDS: dict[tuple[str, str, int], Speed] = {}
# Runs predicted shorter than this are dominated by fixed overheads: they do not correct the model.
MIN_RECORDED_SECONDS = 2.0


def _speed_file() -> Path:
    return Path(os.environ.get("WHYLM_SPEED_CACHE") or cache_dir() / "speed.json")


def _speed_key(lm: Any) -> tuple[str, str, int]:
    import platform

    import torch

    n_params = sum(p.numel() for p in lm.model.parameters())
    return (f"{lm.name}|{n_params}|{lm.device}|{torch.get_num_threads()}|{platform.node()}|{torch.__version__}", "", 0)


def _store_speed(key: tuple[str, str, int], value: Speed) -> None:
    """Keep ``value`` for the process and in the speed file (best effort: a read-only folder only
    costs a new measurement next time)."""
    _SPEEDS[key] = value
    path = _speed_file()
    try:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        stored = stored if isinstance(stored, dict) else {}
        stored[key[0]] = asdict(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stored, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def record_run(lm: Any, method: str, predicted: float, measured: float) -> float:
    """Correct the speed model from a timed run: ``method``'s factor moves halfway (in log terms)
    toward measured / predicted, so a first measurement taken on a busy machine, or a method the
    three probe forwards describe badly, stops misleading the estimates after a few runs.

    Returns:
        the new factor for ``method`` (1.0 = the probe forwards alone), kept within 0.1-10.

    Example:
        >>> import tempfile, types, torch
        >>> from unittest import mock
        >>> lm = types.SimpleNamespace(name="doc", device="cpu", model=torch.nn.Linear(1, 1))
        >>> _SPEEDS[_speed_key(lm)] = Speed(1e-3, 0.0, 0.0)
        >>> with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, {"WHYLM_SPEED_CACHE": d + "/s.json"}):
        ...     record_run(lm, "ablation", predicted=10.0, measured=40.0)
        2.0
        >>> del _SPEEDS[_speed_key(lm)]
    """
    current = speed(lm)
    old = float(current.scales.get(method, 1.0))
    if predicted < MIN_RECORDED_SECONDS or measured <= 0:
        return old
    new = float(np.clip(old * math.sqrt(measured / predicted), 0.1, 10.0))
    _store_speed(_speed_key(lm), Speed(current.per_position, current.per_pair, current.per_pass,
                                       {**current.scales, method: new}))
    return new


def speed(lm: Any) -> Speed:
    """Measure (once per model, device and torch thread count) what a forward pass costs here.

    Three no-grad forwards, best of two each: 4 x 64 tokens (mostly per-position cost), 1 x 384
    tokens (adds attention over a longer context), 1 x 4 tokens (the fixed cost of a pass). The
    result is kept for the process and in ``speed.json`` in whylm's cache folder
    (``$WHYLM_SPEED_CACHE`` overrides the path), so a machine is measured once; every timed
    attribution run then corrects its method's factor (:func:`record_run`).

    Returns:
        a :class:`Speed`.

    Example:
        >>> speed(lm).per_position > 0   # doctest: +SKIP
        True
    """
    import torch

    key = _speed_key(lm)
    if key in _SPEEDS:
        return _SPEEDS[key]
    try:
        stored = json.loads(_speed_file().read_text(encoding="utf-8"))
        if key[0] in stored:
            _SPEEDS[key] = Speed(**stored[key[0]])
            return _SPEEDS[key]
    except (OSError, ValueError, TypeError):
        pass
    vocab = lm.model.get_input_embeddings().num_embeddings
    longest = max(16, min(384, lm.max_length))

    def timed(batch: int, length: int) -> float:
        ids = (torch.arange(batch * length, device=lm.device).reshape(batch, length) * 7919) % max(vocab - 1, 1) + 1
        best = math.inf
        with torch.inference_mode():
            for _ in range(2):
                start = time.perf_counter()
                lm.model(input_ids=ids, use_cache=False, logits_to_keep=1)
                best = min(best, time.perf_counter() - start)
        return best

    per_pass = timed(1, 4)
    short = timed(4, 64)
    long = timed(1, longest)
    # short - c = a * 256 + b * pairs_short;  long - c = a * longest + b * pairs_long
    pos = np.array([[256.0, 4 * 64 * 65 / 2], [float(longest), longest * (longest + 1) / 2]])
    rhs = np.array([short - per_pass, long - per_pass])
    per_position, per_pair = np.linalg.solve(pos, rhs)
    if per_pair < 0 or per_position <= 0:  # noisy timings: fall back to a per-position rate alone
        per_position, per_pair = max(short - per_pass, 1e-6) / 256, 0.0
    _store_speed(key, Speed(float(per_position), float(per_pair), float(per_pass)))
    return _SPEEDS[key]
