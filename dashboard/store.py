"""The audit store: every dashboard run saved in one SQLite file, transactionally.

Each run is a row: kind (``explain`` / ``signals`` / ``causal``), a short title, the model, the
method, the inputs and the result (JSON), and the time. Writes happen in one transaction each, the
database runs in WAL mode with full fsync, so a crash or restart loses nothing already saved.

API keys are never stored: input fields whose name looks like a secret are dropped, and any string
that looks like a key (``sk-...``, ``Bearer ...``, ``api_key=...``) is replaced by ``[redacted]``
everywhere in the inputs and the result before the row is written.

Examples:
    >>> store = AuditStore(":memory:")
    >>> run_id = store.save("explain", inputs={"prompt": "hi"}, result={"x": 1}, model="tiny")
    >>> store.get(run_id).inputs
    {'prompt': 'hi'}
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from explain.errors import WhylmError, one_line
from explain.serialize import dumps

DATA_DIR_ENV = "WHYLM_DATA_DIR"
BUSY_TIMEOUT = 10.0   # seconds SQLite waits for another writer
OPEN_TIMEOUT = 30.0   # seconds opening a store being created by other processes is retried
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


class StoreError(WhylmError):
    """The history store cannot be opened, read or written; the message is one line."""


class StoreFullError(StoreError):
    """The disk is full: the run being saved was not saved; earlier runs are intact."""


class StoreCorruptError(StoreError):
    """The store file is damaged. ``path`` is the file; :func:`move_aside` starts a new one.

    Examples:
        >>> str(StoreCorruptError("/d/audits.sqlite", "file is not a database")).split(";")[0]
        'the history store /d/audits.sqlite is damaged (file is not a database)'
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(
            f"the history store {path} is damaged ({reason}); start a new one: the old file is "
            f"moved aside to {Path(path).name}.corrupt-<time>, never deleted")


def default_path() -> Path:
    """The store file: ``$WHYLM_DATA_DIR/audits.sqlite``, else the platform's user data dir.

    Examples:
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

    Examples:
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

    Examples:
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
                raise StoreError(f"cannot create the folder of the history store {self.path}: "
                                 f"{exc.strerror or exc}") from None
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        """Open the file and create the schema; processes creating it at once wait for each other.

        Switching to WAL and creating the tables take an exclusive lock that SQLite's busy timeout
        does not always wait for (a fresh file being set up by another process), so the whole
        set-up is retried until :data:`OPEN_TIMEOUT` seconds have passed.
        """
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            conn = None
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=BUSY_TIMEOUT)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                return conn
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(random.uniform(0.02, 0.2))
                    continue
                raise self._error(exc, "open") from None

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """The one-line :class:`StoreError` for a SQLite error met while ``doing``."""
        text = one_line(exc)
        if _is_full(exc):
            return StoreFullError(
                f"the disk holding the history store {self.path} is full: this run was not saved "
                "(the runs saved before are kept); free some space and run again")
        if _is_corrupt(exc):
            return StoreCorruptError(self.path, text)
        if _is_busy(exc):
            return StoreError(f"the history store {self.path} is busy ({text}); try again")
        return StoreError(f"cannot {doing} the history store {self.path}: {text}")

    @contextmanager
    def _sqlite_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from None

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

        The inputs and the result go through :func:`explain.serialize.jsonable` (numpy values made
        plain, NaN and infinities stored as ``null``).

        Raises:
            StoreError: unknown ``kind``; ``StoreFullError`` when the disk is full (nothing saved
                before is lost); ``StoreCorruptError`` when the file is damaged.
        """
        if kind not in KINDS:
            raise StoreError(f"unknown run kind '{kind}': use one of {', '.join(KINDS)}")
        inputs, result = scrub(dict(inputs)), scrub(dict(result))
        if title is None:
            title = str(inputs.get("prompt") or inputs.get("variables") or kind)
        title = " ".join(str(scrub(title)).split())[:120]
        try:
            inputs_json, result_json = dumps(inputs), dumps(result)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cannot save run: {one_line(exc)}") from None
        with self._sqlite_errors("save a run in"), self._tx() as cur:
            cur.execute(
                "INSERT INTO runs (created, kind, title, model, method, inputs, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), kind, title, str(scrub(model or "")), str(method or ""),
                 inputs_json, result_json),
            )
            return int(cur.lastrowid)

    def delete(self, run_id: int) -> bool:
        """Delete a run; return whether it existed."""
        with self._sqlite_errors("delete a run from"), self._tx() as cur:
            cur.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))
            return cur.rowcount > 0

    def clear(self) -> int:
        """Delete every run; return how many there were."""
        with self._sqlite_errors("clear"), self._tx() as cur:
            cur.execute("DELETE FROM runs")
            return cur.rowcount

    # ------------------------------------------------------------------ reading
    def get(self, run_id: int) -> Run | None:
        """The run with this id, or ``None``."""
        with self._sqlite_errors("read"), self._lock:
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
        with self._sqlite_errors("read"), self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_row_to_run(r) for r in rows]

    def count(self) -> int:
        """How many runs are stored."""
        with self._sqlite_errors("read"), self._lock:
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
            if exc_type is None:
                self.conn.execute("COMMIT")
            else:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back (e.g. after SQLITE_FULL); keep the first error
        finally:
            self.lock.release()


def _row_to_run(row: tuple) -> Run:
    return Run(
        id=int(row[0]), created=float(row[1]), kind=row[2], title=row[3], model=row[4],
        method=row[5], inputs=json.loads(row[6]), result=json.loads(row[7]),
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower()


def _is_corrupt(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("not a database", "malformed", "corrupt", "encrypted"))


def move_aside(path: str | os.PathLike) -> Path:
    """Rename a damaged store (and its ``-wal`` / ``-shm`` files) out of the way; delete nothing.

    Returns:
        the new name of the store file, ``<path>.corrupt-<YYYYmmdd-HHMMSS>``.

    Examples:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / DB_NAME
        >>> _ = bad.write_bytes(b"not sqlite")
        >>> kept = move_aside(bad)
        >>> kept.read_bytes(), bad.exists()
        (b'not sqlite', False)
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            side.rename(Path(str(target) + suffix))
    if path.exists():
        path.rename(target)
    return target
