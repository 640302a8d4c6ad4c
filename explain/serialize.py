"""One result contract: every result type of whylm serialises, summarises and shows itself the same way.

A result class defines ``to_dict``, ``from_dict`` and ``summary``; :class:`Result` adds ``to_json`` /
``from_json`` (exact round trip, NaN and infinities as ``null``, through :func:`jsonable`) and an
escaped ``_repr_html_`` so that the result shows itself in a notebook cell.

Examples:
    >>> jsonable({"a": np.float32(0.5), "b": [np.nan, np.inf, 1], "c": np.arange(2)})
    {'a': 0.5, 'b': [None, None, 1], 'c': [0, 1]}
    >>> from_jsonable_array([[1.0, None]]).tolist()
    [[1.0, nan]]
"""

from __future__ import annotations

import html as _html
import json
import math
from pathlib import Path
from typing import Any, Mapping, TypeVar

import numpy as np

R = TypeVar("R", bound="Result")


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values made plain and NaN / +-inf made ``None``, recursively.

    Returns:
        an object ``json.dumps(..., allow_nan=False)`` accepts (dict keys become strings; sets
        become sorted lists; paths become strings; other objects their ``str``).

    Examples:
        >>> jsonable((np.int64(3), float("nan"), {1: {2}}))
        [3, None, {'1': [2]}]
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return [jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return jsonable(tolist())
    return str(obj)


def dumps(obj: Any, indent: int | None = None) -> str:
    """JSON text of ``jsonable(obj)`` (never ``NaN`` or ``Infinity`` in the text).

    Examples:
        >>> dumps({"x": float("inf")})
        '{"x": null}'
    """
    return json.dumps(jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def from_jsonable_array(values: Any) -> np.ndarray:
    """A float array from :func:`jsonable` output (``None`` back to NaN).

    Examples:
        >>> from_jsonable_array([1, None]).tolist()
        [1.0, nan]
    """
    return np.array(values, dtype=float)


class Result:
    """Mixin for every result type: JSON round trip and a notebook view from ``to_dict``/``summary``.

    Subclasses define ``to_dict()``, ``from_dict(d)`` and ``summary()``; a subclass with a richer
    view overrides ``html()``. ``_repr_html_`` shows ``html()`` (escaped by its builder) or, by
    default, the escaped summary.
    """

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - defined by every subclass
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[R], d: Mapping[str, Any]) -> R:  # pragma: no cover
        raise NotImplementedError

    def summary(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def to_json(self, indent: int | None = None) -> str:
        """The result as JSON text (NaN and infinities as ``null``). Returns: the text."""
        return dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls: type[R], text: str) -> R:
        """Rebuild a result from :meth:`to_json` output. Returns: the result."""
        return cls.from_dict(json.loads(text))

    def html(self) -> str:
        """An escaped HTML view; by default the summary in a ``<pre>`` block."""
        return f"<pre class='whylm-summary'>{_html.escape(self.summary())}</pre>"

    def _repr_html_(self) -> str:
        return self.html()
