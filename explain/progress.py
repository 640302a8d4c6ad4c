"""Progress bars with an ETA, on by default only when someone is watching and the work is long.

``progress=None`` everywhere in whylm means: a bar when standard error is a terminal and the work
is estimated at more than :data:`LONG_SECONDS`; ``True``/``False`` force it.

Examples:
    >>> want_progress(None, seconds=100.0, interactive=False)
    False
    >>> want_progress(None, seconds=100.0, interactive=True)
    True
    >>> want_progress(True, seconds=0.1)
    True
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

LONG_SECONDS = 5.0


def want_progress(progress: bool | None, seconds: float | None = None, interactive: bool | None = None) -> bool:
    """Resolve a ``progress=`` argument. Returns: whether to show a bar."""
    if progress is not None:
        return bool(progress)
    if interactive is None:
        interactive = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return interactive and (seconds is None or seconds > LONG_SECONDS)


def bar(total: int | None, desc: str, show: bool, unit: str = "it", **kw: Any) -> tqdm:
    """A tqdm bar (elapsed, rate and ETA) that is a no-op when ``show`` is False.

    Examples:
        >>> with bar(3, "work", show=False) as b:
        ...     b.update(3)
    """
    return tqdm(total=total, desc=desc, disable=not show, unit=unit, leave=False, dynamic_ncols=True, **kw)
