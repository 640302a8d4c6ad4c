"""CPU threads for one run: :func:`threads` sets torch's thread count and puts it back after.

torch's default (one thread per core) is the fastest on a quiet machine and far the slowest on a
busy one: a local audit on a loaded 2-core machine ran 4.5-10x slower with the default than with
one thread, because each of torch's threads waits for the slowest. A run that is given a thread
count uses it inside ``with threads(n):`` and leaves the process as it found it; audit workers and
benchmarks call it once per worker.

Examples:
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    >>> with threads(None):            # None: leave torch's setting as it is
    ...     torch.get_num_threads() == before
    True
"""

from __future__ import annotations

import functools
import inspect
import operator
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from explain.errors import ExplainError

R = TypeVar("R")


def check_threads(n: object) -> int | None:
    """Validate a ``threads=`` argument.

    Returns:
        ``None`` (keep torch's setting) or the thread count as an int >= 1.

    Raises:
        ExplainError: not a whole number >= 1.

    Examples:
        >>> check_threads(2), check_threads(None)
        (2, None)
        >>> check_threads(0)
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: threads must be a whole number >= 1 (or None for torch's setting), got 0
    """
    if n is None:
        return None
    message = f"threads must be a whole number >= 1 (or None for torch's setting), got {n!r}"
    if isinstance(n, bool):
        raise ExplainError(message)
    try:
        value = operator.index(n)  # int and numpy integers; not floats or strings
    except TypeError:
        raise ExplainError(message) from None
    if value < 1:
        raise ExplainError(message)
    return value


def cores() -> int:
    """The CPU cores this process may run on. Returns: an int >= 1.

    Examples:
        >>> cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_threads(workers: int) -> int:
    """Threads each of ``workers`` processes should use so that together they fill the cores once.

    Returns:
        ``max(1, cores // workers)``.

    Examples:
        >>> worker_threads(10**6)
        1
    """
    return max(1, cores() // max(1, int(workers)))


@contextmanager
def threads(n: int | None) -> Iterator[int]:
    """Run the block with torch using ``n`` CPU threads, then restore the previous count.

    Args:
        n: threads for the block; ``None`` keeps the current setting.

    Yields:
        the thread count in force inside the block.

    Raises:
        ExplainError: ``n`` is not a whole number >= 1.
    """
    import torch

    n = check_threads(n)
    before = torch.get_num_threads()
    if n is None or n == before:
        yield before
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def accepts_threads(fn: Callable[..., R]) -> Callable[..., R]:
    """Give ``fn`` a ``threads=`` keyword: the call runs inside :func:`threads` (its estimate too,
    since the speed model is kept per thread count), and torch's setting is restored after.

    Returns:
        the wrapped function; its signature shows ``threads``.

    Examples:
        >>> import torch
        >>> @accepts_threads
        ... def count() -> int:
        ...     return torch.get_num_threads()
        >>> count(threads=1), "threads" in str(inspect.signature(count))
        (1, True)
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, threads: int | None = None, **kwargs: Any) -> R:
        with use_threads(threads):
            return fn(*args, **kwargs)

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    extra = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="int | None")
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    wrapper.__signature__ = sig.replace(parameters=[*params[:at], extra, *params[at:]])  # type: ignore[attr-defined]
    return wrapper


use_threads = threads
