"""Engines run the records of an audit and hand back committed-size chunks of rows.

Every engine has the same interface, :class:`Engine`: ``run(records, settings, chunk_size)`` yields
lists of rows (in any order) as they finish; :func:`explain.audit.audit` commits each list as one
part of the output. A thin registry maps the ``engine=`` name to its class; Ray is imported only
when its engine is used.

Examples:
    >>> sorted(ENGINES)
    ['local', 'processes', 'ray']
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Iterator, Mapping, Protocol

from explain.errors import ExplainError

ENGINES: dict[str, str] = {
    "local": "explain.audit.engines.local:LocalEngine",
    "processes": "explain.audit.engines.processes:ProcessEngine",
    "ray": "explain.audit.engines.ray_engine:RayEngine",
}


class Engine(Protocol):
    """What an engine offers: a name, its worker count, and ``run``."""

    name: str
    workers: int

    def run(self, records: list[dict[str, Any]], settings: Mapping[str, Any],
            chunk_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yields: lists of output rows, one list per finished chunk."""
        ...


def make_engine(name: str, model: Any, workers: int | None = None, address: str | None = None,
                **options: Any) -> Engine:
    """Build the engine called ``name`` for ``model`` (a LanguageModel, a model path/id, or None).

    Returns:
        the engine.

    Raises:
        ExplainError: an unknown name, a bad worker count, or options the engine does not take.

    Examples:
        >>> make_engine("gpu", None)
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: unknown engine 'gpu': choose local, processes or ray
    """
    target = ENGINES.get(name)
    if target is None:
        raise ExplainError(f"unknown engine '{name}': choose local, processes or ray")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ExplainError(f"workers must be a positive integer, got {workers!r}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(model, workers=workers, address=address, **options)


def load_model(spec: Any) -> Any:
    """The LanguageModel a worker uses: ``spec`` itself, or ``LanguageModel.load(spec)``.

    Returns:
        an :class:`explain.LanguageModel`.
    """
    from explain.model import LanguageModel

    if isinstance(spec, LanguageModel):
        return spec
    return LanguageModel.load(spec)


def default_threads(workers: int) -> int:
    """CPU threads per worker: the cores split between ``workers``, less those other programs keep busy
    now (the 1-minute load average). On a busy machine torch's default of one thread per core ran a
    local audit 4.5-10x slower than one thread: threads that wait for a busy core stall the others.

    Returns:
        an int >= 1.

    Examples:
        >>> 1 <= default_threads(1) <= (os.cpu_count() or 1)
        True
    """
    from explain.threads import cores, worker_threads

    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    free = max(1, int(cores() - busy + 0.5))
    return max(1, min(worker_threads(workers), free // max(1, int(workers))))


def chunks(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """``records`` cut into lists of at most ``size``.

    Examples:
        >>> [len(c) for c in chunks([{}] * 5, 2)]
        [2, 2, 1]
    """
    size = max(1, int(size))
    return [records[i:i + size] for i in range(0, len(records), size)]
