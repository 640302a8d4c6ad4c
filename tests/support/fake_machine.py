"""A machine whose forward passes take a known time: speed-model tests that do not depend on how
busy the real machine is."""

from __future__ import annotations

import pytest


class FakeMachine:
    """Forward passes that take ``pace`` times a fixed cost model: what a probe would time on a
    machine that is quiet (pace 1) or busy (pace > 1); ``load`` is the load per core it reports."""

    per_position, per_pair, per_pass = 1e-5, 1e-8, 1e-3

    def __init__(self) -> None:
        self.pace, self.load, self.forwards = 1.0, 0.0, 0

    def true_seconds(self, positions: float, pairs: float, passes: float) -> float:
        return self.pace * (self.per_position * positions + self.per_pair * pairs + self.per_pass * passes)

    def timed(self, lm, batch: int, length: int, repeats: int = 2, pick=min) -> float:
        self.forwards += repeats
        return self.true_seconds(batch * length, batch * length * (length + 1) / 2, 1)


def install(monkeypatch: pytest.MonkeyPatch) -> FakeMachine:
    """Time every speed probe on a :class:`FakeMachine`. Returns: the machine."""
    from explain import budget

    fake = FakeMachine()
    monkeypatch.setattr(budget, "_timed", fake.timed)
    monkeypatch.setattr(budget, "load_per_core", lambda: fake.load)
    return fake
