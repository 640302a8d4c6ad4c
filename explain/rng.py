"""Randomness without side effects: every seeded call of whylm runs inside :func:`seeded`.

Examples:
    >>> import torch
    >>> _ = torch.manual_seed(123); before = torch.rand(1)
    >>> _ = torch.manual_seed(123)
    >>> with seeded(0):
    ...     inside = torch.rand(1)
    >>> bool(torch.equal(torch.rand(1), before))     # the caller's stream is untouched
    True
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block from ``seed`` (torch CPU, and numpy's and Python's legacy global generators), then
    restore every global random state the caller had. ``seed=None`` only restores.

    Yields:
        nothing; use as ``with seeded(seed): ...``.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            random.seed(int(seed))
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def generator(seed: int | None) -> np.random.Generator:
    """A numpy ``Generator`` of its own (never the global one).

    Examples:
        >>> int(generator(0).integers(10)) == int(generator(0).integers(10))
        True
    """
    return np.random.default_rng(seed)
