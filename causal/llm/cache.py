"""The on-disk answer cache of the LLM backends (SQLite, JSON values, hashed keys).

Examples:
    >>> c = AnswerCache(":memory:")
    >>> c.put(("local", "m", "p"), {"probs": [1.0]}); c.get(("local", "m", "p"))
    {'probs': [1.0]}
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence


def cache_path() -> Path:
    """Path of the SQLite answer cache: ``$WHYLM_LLM_CACHE`` or the user cache dir.

    Returns:
        the path (the file may not exist yet).

    Examples:
        >>> cache_path().suffix
        '.sqlite'
    """
    env = os.environ.get("WHYLM_LLM_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("whylm")) / "llm-cache.sqlite"


class AnswerCache:
    """A small SQLite key-value store of LLM answers (JSON values under a SHA-256 of the key parts).

    Examples:
        >>> c = AnswerCache(":memory:")
        >>> c.put(("local", "m", "p"), [0.5, 0.5]); c.get(("local", "m", "p"))
        [0.5, 0.5]
    """

    _lock = threading.Lock()

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = str(path) if path is not None else str(cache_path())
        self._conn: sqlite3.Connection | None = None
        self._warned = False

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        return self._conn

    @staticmethod
    def key(parts: Sequence[Any]) -> str:
        """A stable hash of the key parts.

        Returns:
            a hex digest.

        Examples:
            >>> len(AnswerCache.key(("a", 1)))
            64
        """
        return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).hexdigest()

    def get(self, parts: Sequence[Any]) -> Any | None:
        """The cached value for ``parts``.

        Returns:
            the decoded JSON value, or None when there is none or the entry is corrupt.

        Examples:
            >>> AnswerCache(":memory:").get(("nothing",)) is None
            True
        """
        with self._lock:
            try:
                row = self._db().execute(
                    "SELECT value FROM answers WHERE key = ?", (self.key(parts),)
                ).fetchone()
            except sqlite3.Error as exc:
                self._unusable(exc)
                return None
        if not row:
            return None
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            return None  # a corrupt entry is a miss; the next answer overwrites it

    def put(self, parts: Sequence[Any], value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``parts``; a locked or read-only cache is skipped.

        Returns:
            None.

        Examples:
            >>> c = AnswerCache(":memory:"); c.put(("k",), "v"); c.get(("k",))
            'v'
        """
        with self._lock:
            try:
                db = self._db()
                db.execute(
                    "INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)",
                    (self.key(parts), json.dumps(value)),
                )
                db.commit()
            except sqlite3.Error as exc:
                self._unusable(exc)  # a read-only, locked or corrupt cache must not break a run

    def _unusable(self, exc: sqlite3.Error) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"LLM answer cache {self.path} is not usable ({exc}); answers are not "
                          "cached", RuntimeWarning, stacklevel=3)
