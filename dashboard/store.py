"""The audit store: every dashboard run saved in one SQLite file, transactionally.

Each run is a row: kind (``explain`` / ``signals`` / ``causal``), a short title, the model, the
method, the inputs and the result (JSON), and the time. Writes happen in one transaction each, the
database runs in WAL mode with full fsync, so a crash or restart loses nothing already saved.

API keys are never stored: input fields whose name looks like a secret are dropped, and any string
that looks like a key (``sk-...``, ``Bearer ...``, ``api_key=...``) is replaced by ``[redacted]``
everywhere in the inputs and the result before the row is written.

Example:
    >>> store = AuditStore(":memory:")
    >>> run_id = store.save("explain", inputs={"prompt": "hi"}, result={"x": 1}, model="tiny")
    >>> store.get(run_id).inputs
    {'prompt': 'hi'}
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

DATA_DIR_ENV = "WHYLM_DATA_DIR"
DB_NAME = "audits.sqlite"
KINDS = ("explain", "signals", "causal")

_SECRET_FIELD = re.compile(r"(api[_-]?key|secret|password|passwd|token_?key|auth|bearer|credential)", re.I)
_SECRET_VALUE = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),                       # OpenAI-style keys
    re.compile(r"\b(?:ghp|gho|ghs|github_pat|hf|xox[abp]|AKIA)_?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]{12,}"),
    re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|secret)\s*[=:]\s*['\"]?[^\s'\",;&]{8,}"),
]
REDACTED = "[redacted]"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    created  REAL    NOT NULL,
    kind     TEXT    NOT NULL,
    title    TEXT    NOT NULL,
    model    TEXT    NOT NULL DEFAULT '',
    method   TEXT    NOT NULL DEFAULT '',
    inputs   TEXT    NOT NULL,
    result   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
"""


def default_path() -> Path:
    """The store file: ``$WHYLM_DATA_DIR/audits.sqlite``, else the platform's user data dir.

    Example:
        >>> default_path().name
        'audits.sqlite'
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser() / DB_NAME
    from platformdirs import user_data_dir

    return Path(user_data_dir("whylm")) / DB_NAME


def scrub(value: Any) -> Any:
    """Return ``value`` with secret-looking fields dropped and key-looking strings redacted.

    Example:
        >>> scrub({"prompt": "use sk-abcdefghijklmnopqrstuv", "api_key": "x"})
        {'prompt': 'use [redacted]'}
    """
    if isinstance(value, dict):
        return {
            k: scrub(v) for k, v in value.items()
            if not (isinstance(k, str) and _SECRET_FIELD.search(k))
        }
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        for pattern in _SECRET_VALUE:
            value = pattern.sub(REDACTED, value)
        return value
    return value


@dataclass
class Run:
    """One saved run.

    Attributes:
        id: row id.
        created: UNIX time of the save.
        kind: ``explain``, ``signals`` or ``causal``.
        title: a short label (the prompt's start, or the variables).
        model: the model or LLM backend used.
        method: the method (attribution method, CI test, ...).
        inputs: what the user entered (scrubbed).
        result: the result's dict (scrubbed).
    """

    id: int
    created: float
    kind: str
    title: str
    model: str
    method: str
    inputs: dict[str, Any]
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the run."""
        return asdict(self)

    @property
    def when(self) -> str:
        """The save time as local ``YYYY-MM-DD HH:MM:SS``."""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created))


class AuditStore:
    """A SQLite file of runs: save, list, search, get, delete, export.

    Args:
        path: the database file (created with its folder); default :func:`default_path`.
            ``":memory:"`` gives a throwaway store.

    Example:
        >>> s = AuditStore(":memory:")
        >>> _ = s.save("signals", inputs={"prompt": "Why?"}, result={})
        >>> [r.title for r in s.list()]
        ['Why?']
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = str(path) if path is not None else str(default_path())
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"cannot create the audit store folder for {self.path}: {exc}") from None
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError(f"cannot open the audit store {self.path}: {exc}") from None
        return conn

    def close(self) -> None:
        """Close the connection (later calls fail)."""
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ writing
    def _tx(self) -> "_Transaction":
        return _Transaction(self._conn, self._lock)

    def save(
        self,
        kind: str,
        inputs: dict[str, Any],
        result: dict[str, Any],
        model: str = "",
        method: str = "",
        title: str | None = None,
    ) -> int:
        """Save one run in its own transaction and return its id.

        Raises:
            ValueError: unknown ``kind`` or inputs/results that are not JSON-serialisable.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown run kind '{kind}': use one of {', '.join(KINDS)}")
        inputs, result = scrub(dict(inputs)), scrub(dict(result))
        if title is None:
            title = str(inputs.get("prompt") or inputs.get("variables") or kind)
        title = " ".join(str(scrub(title)).split())[:120]
        try:
            inputs_json = json.dumps(inputs, ensure_ascii=False, default=_json_default)
            result_json = json.dumps(result, ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cannot save run: {exc}") from None
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO runs (created, kind, title, model, method, inputs, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), kind, title, str(scrub(model or "")), str(method or ""),
                 inputs_json, result_json),
            )
            return int(cur.lastrowid)

    def delete(self, run_id: int) -> bool:
        """Delete a run; return whether it existed."""
        with self._tx() as cur:
            cur.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))
            return cur.rowcount > 0

    def clear(self) -> int:
        """Delete every run; return how many there were."""
        with self._tx() as cur:
            cur.execute("DELETE FROM runs")
            return cur.rowcount

    # ------------------------------------------------------------------ reading
    def get(self, run_id: int) -> Run | None:
        """The run with this id, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, created, kind, title, model, method, inputs, result FROM runs WHERE id = ?",
                (int(run_id),),
            ).fetchone()
        return _row_to_run(row) if row else None

    def list(self, query: str = "", kind: str | None = None, limit: int = 200) -> list[Run]:
        """Newest runs first; ``query`` matches (case-insensitively) title, model, method and inputs."""
        sql = "SELECT id, created, kind, title, model, method, inputs, result FROM runs"
        where, params = [], []
        if kind:
            where.append("kind = ?")
            params.append(kind)
        for word in query.split():
            like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(title LIKE ? ESCAPE '\\' OR model LIKE ? ESCAPE '\\' OR method LIKE ? ESCAPE '\\' "
                "OR inputs LIKE ? ESCAPE '\\')"
            )
            params += [like] * 4
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        params.append(int(limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_row_to_run(r) for r in rows]

    def count(self) -> int:
        """How many runs are stored."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def export(self, run_ids: list[int] | None = None) -> str:
        """JSON text of the given runs (all when ``None``), oldest first."""
        if run_ids is None:
            runs = list(reversed(self.list(limit=10**9)))
        else:
            runs = [r for r in (self.get(i) for i in run_ids) if r is not None]
        return json.dumps({"whylm_audit": 1, "runs": [r.to_dict() for r in runs]},
                          ensure_ascii=False, indent=1)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.list(limit=10**9))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) under the store's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self.conn, self.lock = conn, lock

    def __enter__(self) -> sqlite3.Cursor:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn.cursor()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()


def _row_to_run(row: tuple) -> Run:
    return Run(
        id=int(row[0]), created=float(row[1]), kind=row[2], title=row[3], model=row[4],
        method=row[5], inputs=json.loads(row[6]), result=json.loads(row[7]),
    )


def _json_default(obj: Any) -> Any:
    """JSON for numpy scalars/arrays and other simple objects."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")
