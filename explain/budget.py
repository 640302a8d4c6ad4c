"""Cost guards: a long run states its cost first and never starts silently.

Every call that can run for long (attribution, signals with samples, graph proposal, audits) builds
a :class:`Cost` *before* it starts and passes it to :func:`check_budget`, which refuses a run over
its budget in one line naming the estimate and the cheaper option. ``max_seconds=`` raises it.

Examples:
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
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from explain.errors import ExplainError
from explain.model import cache_dir
from explain.serialize import Result

# Long enough for a sentence-level attribution of a 2k-token prompt on a 2-core machine (about
# 6 min), short enough to stop the hour- and day-long runs before they start.
DEFAULT_MAX_SECONDS = 600.0
# An estimate's range ("could be 6-24 min") is shown from this spread on.
SHOWN_SPREAD = 1.5


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
        spread: the factor either way the run may land from ``seconds`` on this machine now
            (:attr:`Speed.spread`); ``None`` or below :data:`SHOWN_SPREAD` is not shown.
        note: a caveat on the estimate, shown with its counts (why it is rougher than usual, or
            that it is a lower bound); "" when there is none.

    Examples:
        >>> Cost("IG of 37 tokens", seconds=720, spread=2.0).summary()
        'IG of 37 tokens: about 12 min (could be 6-24 min on this machine now)'
    """

    what: str
    seconds: float
    passes: int = 0
    positions: int = 0
    memory_bytes: int | None = None
    cheaper: str = ""
    unit: str = "forward passes"
    spread: float | None = None
    note: str = ""

    def uncertainty(self) -> str:
        """Returns: ``"could be 6-24 min on this machine now"`` where the spread is worth saying, else ""."""
        spread = self.spread or 1.0
        if spread < SHOWN_SPREAD:
            return ""
        low, high = format_seconds(self.seconds / spread), format_seconds(self.seconds * spread)
        unit = high.split(" ", 1)[1]
        if low.endswith(" " + unit):
            low = low.rsplit(" ", 1)[0]
        return f"could be {low}-{high} on this machine now"

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
        extra = "; ".join(p for p in (self.uncertainty(), self.details()) if p)
        return f"{self.what}: about {format_seconds(self.seconds)}" + (f" ({extra})" if extra else "")

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
    if not math.isfinite(cost.seconds) or cost.seconds < 0:  # never a guard switched off by a bad number
        raise ExplainError(f"{cost.what}: the cost estimate is {cost.seconds!r} seconds, not a duration; "
                           f"delete '{_speed_file()}' to measure this machine again")
    if cost.seconds > limit:
        extra = "; ".join(p for p in (cost.uncertainty(), cost.details(), cost.note) if p)
        what = f"{cost.what} would take about {format_seconds(cost.seconds)}"
        if extra:
            what += f" ({extra})"
        cheaper = f"{cost.cheaper}, or raise" if cost.cheaper else "raise"
        need = int(math.ceil(cost.seconds / 10.0) * 10)
        raise ExplainError(f"{what}, over the {format_seconds(limit)} budget: {cheaper} max_seconds= ({need} would do)")
    return cost


def format_seconds(seconds: float) -> str:
    """Seconds in the unit a person reads best.

    Examples:
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


# The bounds a stored speed must lie within to be believed (anything else is re-measured): a
# position between a tenth of a nanosecond (a tiny model on a large GPU) and ten seconds (a 70B
# model on a laptop CPU), a pass's overhead under a minute, a method's factor as record_run keeps it.
PER_POSITION_RANGE = (1e-10, 10.0)
PER_PAIR_MAX = 1.0
PER_PASS_MAX = 60.0
SCALE_RANGE = (0.1, 10.0)
# The machine's state is re-checked (a forward of about REPROBE_SECONDS) when the last check is
# older than REPROBE_AFTER seconds or the load per core moved by more than REPROBE_LOAD.
REPROBE_AFTER = 30.0
REPROBE_LOAD = 0.5
REPROBE_SECONDS = 0.1
# A re-check this far from the stored probe means the probe does not describe this machine: measure again.
NOW_RANGE = (0.05, 20.0)


@dataclass(frozen=True)
class Speed:
    """Measured costs on this machine: seconds per position, per attention pair, per pass; per
    method the ratio of measured to predicted seconds of the runs timed so far (:func:`record_run`);
    and ``now``, the machine's current pace relative to the probe (a short re-check, shared by every
    method), with ``spread``, the factor either way that the prediction may be off by.

    Examples:
        >>> Speed(1e-3, 0.0, 0.01).seconds(1000, 0, 2)
        1.02
        >>> Speed(1e-3, 0.0, 0.01, {"ablation": 2.0}).seconds(1000, 0, 2, method="ablation")
        2.04
        >>> Speed(1e-3, 0.0, 0.01, now=3.0).seconds(1000, 0, 2)
        3.06
    """

    per_position: float
    per_pair: float
    per_pass: float
    scales: Mapping[str, float] = field(default_factory=dict)
    now: float = 1.0
    spread: float = 1.0
    note: str = ""
    measured_at: float = 0.0
    load: float = 0.0
    checked_at: float = 0.0
    checked_load: float = 0.0
    check_seconds: float = 0.0

    def raw(self, positions: float, pairs: float, passes: float) -> float:
        """Seconds the probe alone predicts (no method factor, no current pace). Returns: a float."""
        return self.per_position * positions + self.per_pair * pairs + self.per_pass * passes

    def seconds(self, positions: float, pairs: float, passes: float, method: str | None = None) -> float:
        """Predicted seconds of a run with these counts, at the machine's current pace, times
        ``method``'s correction. Returns: a float."""
        return self.raw(positions, pairs, passes) * float(self.scales.get(method or "", 1.0)) * self.now

    def stored(self) -> dict[str, Any]:
        """Returns: what the speed file keeps (the probe, the method factors, when and at what load)."""
        return {"per_position": self.per_position, "per_pair": self.per_pair, "per_pass": self.per_pass,
                "scales": dict(self.scales), "measured_at": self.measured_at, "load": self.load}


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


def load_per_core() -> float:
    """The machine's 1-minute load average per usable core (0 where the platform has none).

    Returns:
        a float >= 0; 1.0 means every core is busy.
    """
    from explain.threads import cores

    try:
        return max(0.0, os.getloadavg()[0] / cores())
    except (AttributeError, OSError):
        return 0.0


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def parse_speed(entry: Any) -> tuple[Speed | None, str]:
    """Read one entry of the speed file, believing only values a real machine could have measured.

    Returns:
        (the :class:`Speed`, "") or (None, what is wrong with it in words).

    Examples:
        >>> parse_speed({"per_position": 1e-4, "per_pair": 0.0, "per_pass": 0.01})[0].per_position
        0.0001
        >>> parse_speed({"per_position": float("nan"), "per_pair": 0.0, "per_pass": 0.01})
        (None, 'per_position is nan')
        >>> parse_speed({"per_position": 1e-4, "per_pair": 0.0, "per_pass": 0.01, "scales": {"ig": 1e-9}})
        (None, "scales['ig'] is 1e-09")
    """
    if not isinstance(entry, Mapping):
        return None, f"the entry is a {type(entry).__name__}, not an object"
    values = {}
    for name, low, high in (("per_position", *PER_POSITION_RANGE), ("per_pair", 0.0, PER_PAIR_MAX),
                            ("per_pass", 0.0, PER_PASS_MAX)):
        values[name] = _number(entry.get(name), low, high)
        if values[name] is None:
            return None, f"{name} is {entry.get(name)!r}"
    scales = entry.get("scales", {})
    if not isinstance(scales, Mapping):
        return None, f"scales is {scales!r}"
    clean = {}
    for method, value in scales.items():
        clean[str(method)] = _number(value, *SCALE_RANGE)
        if clean[str(method)] is None:
            return None, f"scales[{method!r}] is {value!r}"
    when = _number(entry.get("measured_at", 0.0), 0.0, math.inf) or 0.0
    load = _number(entry.get("load", 0.0), 0.0, 1e3) or 0.0
    return Speed(values["per_position"], values["per_pair"], values["per_pass"], clean,
                 measured_at=when, load=load), ""


def _store_speed(key: tuple[str, str, int], value: Speed) -> None:
    """Keep ``value`` for the process and in the speed file (best effort: a read-only folder only
    costs a new measurement next time). Entries of the file that are not believable are dropped, so
    nothing unreadable or not finite is written back."""
    _SPEEDS[key] = value
    path = _speed_file()
    try:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            stored = {}
        stored = stored if isinstance(stored, dict) else {}
        kept = {k: v for k, v in stored.items() if parse_speed(v)[0] is not None}
        kept[key[0]] = value.stored()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(kept, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def record_run(lm: Any, method: str, predicted: float, measured: float) -> float:
    """Correct the speed model from a timed run: ``method``'s factor moves halfway (in log terms)
    toward measured / predicted, so a method the three probe forwards describe badly stops
    misleading the estimates after a few runs. (The machine's own pace, busy or quiet, is followed
    by :func:`speed`'s re-checks, for every method at once.)

    Returns:
        the new factor for ``method`` (1.0 = the probe forwards alone), kept within 0.1-10; a run
        whose times are not finite positive numbers changes nothing.

    Examples:
        >>> import tempfile, types, torch
        >>> from unittest import mock
        >>> lm = types.SimpleNamespace(name="doc", device="cpu", model=torch.nn.Linear(1, 1))
        >>> _SPEEDS[_speed_key(lm)] = Speed(1e-3, 0.0, 0.0, checked_at=time.time(), checked_load=load_per_core())
        >>> with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, {"WHYLM_SPEED_CACHE": d + "/s.json"}):
        ...     record_run(lm, "ablation", predicted=10.0, measured=40.0)
        2.0
        >>> del _SPEEDS[_speed_key(lm)]
    """
    current = speed(lm)
    old = float(current.scales.get(method, 1.0))
    if not (math.isfinite(predicted) and math.isfinite(measured)) or predicted < MIN_RECORDED_SECONDS or measured <= 0:
        return old
    new = float(np.clip(old * math.sqrt(measured / predicted), *SCALE_RANGE))
    _store_speed(_speed_key(lm), replace(current, scales={**current.scales, method: new}))
    return new


def _timed(lm: Any, batch: int, length: int, repeats: int = 2, pick: Any = min) -> float:
    """Seconds of a no-grad forward of ``batch`` x ``length`` tokens (``pick`` of ``repeats``; a
    forward over a second is timed once: on a machine that slow the repeats cost more than they tell)."""
    import torch

    vocab = lm.model.get_input_embeddings().num_embeddings
    ids = (torch.arange(batch * length, device=lm.device).reshape(batch, length) * 7919) % max(vocab - 1, 1) + 1
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            lm.model(input_ids=ids, use_cache=False, logits_to_keep=1)
            times.append(time.perf_counter() - start)
            if times[-1] > 1.0:
                break
    return float(pick(times))


def _probe(lm: Any) -> Speed:
    """Three no-grad forwards, best of two each: 4 x L/2... tokens (mostly per-position cost),
    1 x L tokens (adds attention over a longer context), 1 x 4 tokens (a pass's fixed cost), with
    L = min(384, the model's window). Returns: a :class:`Speed` (``now`` = 1)."""
    longest = max(8, min(384, int(lm.max_length)))
    width = max(4, min(64, longest // 2))
    per_pass = _timed(lm, 1, 4)
    short = _timed(lm, 4, width)
    long = _timed(lm, 1, longest)
    # short - c = a * 4w + b * pairs_short;  long - c = a * longest + b * pairs_long
    pos = np.array([[4.0 * width, 4 * width * (width + 1) / 2], [float(longest), longest * (longest + 1) / 2]])
    rhs = np.array([short - per_pass, long - per_pass])
    try:
        per_position, per_pair = np.linalg.lstsq(pos, rhs, rcond=None)[0]
    except np.linalg.LinAlgError:
        per_position, per_pair = -1.0, -1.0
    if not (per_pair >= 0 and per_position > 0):  # noisy timings: a per-position rate alone
        per_position, per_pair = max(short - per_pass, 1e-6) / (4 * width), 0.0
    per_position = float(np.clip(per_position, *PER_POSITION_RANGE))
    return Speed(per_position, float(min(per_pair, PER_PAIR_MAX)), float(min(max(per_pass, 0.0), PER_PASS_MAX)),
                 measured_at=time.time(), load=load_per_core())


def rough_speed(lm: Any, why: str) -> Speed:
    """A speed from the model's size alone (two multiply-adds per weight per position at about
    10 GFLOP/s), for when it cannot be measured. Returns: a :class:`Speed` with a note and a spread
    of 4 either way.

    Examples:
        >>> import types, torch
        >>> s = rough_speed(types.SimpleNamespace(model=torch.nn.Linear(1000, 1000)), "no probe")
        >>> round(s.per_position, 6), s.spread, s.note
        (0.0002, 4.0, 'rough estimate from the model size (no probe)')
    """
    n_params = sum(p.numel() for p in lm.model.parameters())
    per_position = float(np.clip(2.0 * n_params / 1e10, *PER_POSITION_RANGE))
    return Speed(per_position, 0.0, 0.01, spread=4.0, note=f"rough estimate from the model size ({why})",
                 checked_at=time.time(), checked_load=load_per_core())


def _recheck(lm: Any, base: Speed, repeats: int = 3) -> Speed:
    """Time one short forward now and set ``base.now`` to measured / predicted, with a spread
    that widens on a loaded machine. Returns: the updated :class:`Speed` (same probe)."""
    # a forward of about REPROBE_SECONDS by the probe's own numbers: cheap for any model size
    per_token = base.per_position + base.per_pair * 32
    length = int(np.clip(REPROBE_SECONDS / max(per_token, 1e-12), 8, min(256, int(lm.max_length))))
    predicted = base.raw(length, length * (length + 1) / 2, 1)
    began = time.perf_counter()
    measured = _timed(lm, 1, length, repeats=repeats, pick=lambda t: float(np.median(t)))
    now = measured / predicted if predicted > 0 else 1.0
    load = load_per_core()
    # How far a run may land from the estimate: the probe's own noise, more when the machine is
    # busy (other processes come and go during a run) and when its pace moved since the last check.
    spread = 1.3
    if load > 0.75:
        spread = max(spread, 2.0)
    if base.checked_at:
        moved = max(now / base.now, base.now / now) if base.now > 0 and now > 0 else 1.0
        spread = max(spread, min(moved, 4.0))
    spread = max(spread, base.spread if base.note else 1.0)
    return replace(base, now=float(now), spread=float(spread), checked_at=time.time(), checked_load=load,
                   check_seconds=time.perf_counter() - began)


def speed(lm: Any) -> Speed:
    """What a forward pass costs here, now.

    The probe (:func:`_probe`: three small no-grad forwards) is taken once per model, device and
    torch thread count, and kept for the process and in ``speed.json`` in whylm's cache folder
    (``$WHYLM_SPEED_CACHE`` overrides the path). Because the machine's pace changes (other work
    starts and stops), one short forward re-checks it whenever the last check is older than
    :data:`REPROBE_AFTER` seconds or the load per core moved by more than :data:`REPROBE_LOAD`:
    ``now`` (measured / predicted) then scales every method's estimate, and ``spread`` says how far
    off it may be. A speed-file entry with values no machine could have measured (NaN, negative,
    zero, absurdly large, strings) is measured again with a warning naming the file; a probe that
    fails gives a rough estimate from the model's size with a note, never an exception.

    Returns:
        a :class:`Speed`.

    Examples:
        >>> speed(lm).per_position > 0   # doctest: +SKIP
        True
    """
    key = _speed_key(lm)
    current = _SPEEDS.get(key)
    if current is None:
        path = _speed_file()
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            stored = None
        entry = stored.get(key[0]) if isinstance(stored, dict) else None
        if entry is not None:
            current, problem = parse_speed(entry)
            if current is None:
                warnings.warn(f"speed file '{path}': {problem} for this model, not a measurable speed; "
                              "measuring again", stacklevel=3)
    elif current.note:
        return current
    try:
        # a re-check that took long itself (a very busy machine) is repeated less often: at most
        # about 5% of the time goes to re-checking
        every = max(REPROBE_AFTER, 20.0 * current.check_seconds) if current is not None else 0.0
        if current is not None and time.time() - current.checked_at < every \
                and (abs(load_per_core() - current.checked_load) <= REPROBE_LOAD or every > REPROBE_AFTER):
            return current
        fresh = current is None
        if fresh:
            current = _probe(lm)
        checked = _recheck(lm, current)
        if not NOW_RANGE[0] <= checked.now <= NOW_RANGE[1]:  # the stored probe is not this machine's
            current, fresh = _probe(lm), True
            checked = _recheck(lm, current)
        if fresh:
            _store_speed(key, checked)
        _SPEEDS[key] = checked
    except Exception as exc:  # noqa: BLE001 - a cost estimate must never be why a run fails
        _SPEEDS[key] = rough_speed(lm, f"the speed probe failed: {type(exc).__name__}: {exc}".splitlines()[0])
    return _SPEEDS[key]
