"""The resumable output of an audit: a Parquet dataset folder of atomically committed part files.

Layout of ``out`` (a folder, whatever its name; ``pd.read_parquet(out)`` reads it whole)::

    out/_manifest.json            the settings of the run (model, signals, method, seed, columns)
    out/part-000000-<tag>.parquet one file per committed chunk of rows
    out/.tmp-...                  a chunk being written (ignored by readers, removed on resume)
    out/_lock                     held (``fcntl.flock``) by the run writing the folder: its pid, host, start
    out/_damaged/                 parts that could not be read, or were not regular files, moved aside
    out/_replaced/                rows of records that changed or left the input since they were audited

A chunk is written to a hidden temporary name, flushed to disk, then renamed with ``os.replace``
(atomic on POSIX and Windows): after a kill at any moment a part is either whole or absent, so the
ids in the parts are exactly the records done, and a resumed run does only the others. Readers
(pyarrow, pandas) skip names that start with ``_`` or ``.``.

One run at a time writes a folder: :meth:`PartStore.lock` takes an exclusive lock on ``_lock``
(released by the kernel when its holder dies, so a killed run's lock is taken over) and refuses a
second run with one line naming the holder. Each row keeps ``input_hash``, a hash of the record's
content, so a run on an edited input re-audits the records that changed and moves aside the rows of
records that left it (:meth:`PartStore.reconcile`).

Examples:
    >>> import tempfile, pandas as pd
    >>> s = PartStore(Path(tempfile.mkdtemp()) / "a.parquet")
    >>> s.open({"model": "m", "seed": 0}, score_names=["mean_neg_logprob"], resume=True)
    >>> _ = s.commit([{"id": "x", "prompt": "p", "score.mean_neg_logprob": 1.5}])
    >>> sorted(s.done_ids()), pd.read_parquet(s.path)["score.mean_neg_logprob"].tolist()
    (['x'], [1.5])
    >>> s.close()
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from explain.errors import ExplainError

MANIFEST = "_manifest.json"
LOCK = "_lock"
DAMAGED = "_damaged"
REPLACED = "_replaced"
FORMAT = 2

BASE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("id", pa.string()), ("prompt", pa.string()), ("response", pa.string()), ("context", pa.string()),
    ("generated", pa.bool_()), ("risk", pa.float64()), ("verdict", pa.string()),
)
TAIL_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("top_features", pa.string()), ("model", pa.string()), ("method", pa.string()), ("seed", pa.int64()),
    ("versions", pa.string()), ("seconds", pa.float64()), ("error", pa.string()), ("report", pa.string()),
    ("attribution", pa.string()), ("evidence", pa.string()), ("n_unsupported_sentences", pa.int64()),
    ("input_hash", pa.string()),
)
SETTINGS_CHECKED = ("model", "signals", "method", "seed", "chat", "max_new_tokens", "top_k", "calibration_id")


def schema(score_names: Sequence[str]) -> pa.Schema:
    """The fixed schema of every part: inputs, risk, verdict, ``score.<name>`` columns, the rest.

    Returns:
        a ``pyarrow.Schema`` (the same for every part of a run, so the folder reads as one table).

    Examples:
        >>> schema(["max_neg_logprob"]).names[5:9]
        ['risk', 'verdict', 'score.max_neg_logprob', 'top_features']
    """
    cols = list(BASE_COLUMNS) + [(f"score.{n}", pa.float64()) for n in score_names] + list(TAIL_COLUMNS)
    return pa.schema(cols)


class PartStore:
    """An audit's output folder: lock, manifest, committed parts, the ids already done.

    Args:
        path: the output folder (created on :meth:`lock`); an existing plain file is refused.

    ``notes`` collects one line per repair made on opening (a damaged part moved aside, changed or
    deleted records); the audit shows them.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self.schema: pa.Schema | None = None
        self.notes: list[str] = []
        self._next = 0
        self._lock_fd: int | None = None

    # ---------------------------------------------------------------- locking
    def lock(self) -> None:
        """Check that the folder may hold this audit, create it, and hold its lock until :meth:`close`.

        Raises:
            ExplainError: ``path`` is a file, a non-empty folder that is not an audit, cannot be
                written, or is being written by another run (its pid, host and start named).
        """
        if self._lock_fd is not None:
            return
        if self.path.exists() and not self.path.is_dir():
            raise ExplainError(f"--out '{self.path}' is an existing file, not an audit folder: choose another path")
        if self.path.is_dir() and not (self.path / MANIFEST).exists():
            foreign = sorted(p.name for p in self.path.iterdir() if p.name != LOCK and not p.name.startswith(".tmp-"))
            if foreign:
                raise ExplainError(f"--out '{self.path}' is a non-empty folder that is not an audit (no {MANIFEST}; "
                                   f"it holds {foreign[0]!r}{' and more' if len(foreign) > 1 else ''}): "
                                   "choose a new or empty folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ExplainError(f"cannot write to the audit folder '{self.path}' ({exc.strerror or exc}): "
                               "choose a folder you can write to") from None
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock, as before
            pass
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ExplainError(f"'{self.path}' is being written by another audit ({holder}): wait for it to end "
                               "or choose another output folder") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode("utf-8"))
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the ``_lock`` file stays: removing it would race with a new holder)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "PartStore":
        self.lock()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- opening
    def open(self, settings: Mapping[str, Any], score_names: Sequence[str], resume: bool,
             total: int | None = None) -> None:
        """Lock the folder, create the manifest or check an existing one against ``settings``, and move
        aside the parts that cannot be read (named in :attr:`notes`; their records count as not done).

        ``total`` (the number of input records) is kept in the manifest so a reader can show progress.

        Raises:
            ExplainError: see :meth:`lock`; it holds results and ``resume`` is False; or it was made
                with other settings (the first difference named).
        """
        self.lock()
        manifest = self.path / MANIFEST
        if manifest.exists():
            old = self.read_manifest()
            parts = self.parts()
            if parts and not resume:
                raise ExplainError(f"'{self.path}' already holds {len(parts)} committed part(s): an audit resumes "
                                   "by default (drop resume=False / --no-resume), or choose another output")
            for key in SETTINGS_CHECKED:
                if key in settings and old.get("settings", {}).get(key) != settings[key]:
                    raise ExplainError(
                        f"'{self.path}' was made with {key}={old.get('settings', {}).get(key)!r}, this run has "
                        f"{key}={settings[key]!r}: run again with the same settings to complete it, or choose "
                        "another output folder")
            names = old.get("score_names", list(score_names))
            if total is not None and old.get("total") != total:
                old["total"] = total
                _atomic_write(manifest, json.dumps(old, indent=2).encode("utf-8"))
        else:
            names = list(score_names)
            _atomic_write(manifest, json.dumps({"format": FORMAT, "settings": dict(settings), "score_names": names,
                                                "total": total}, indent=2).encode("utf-8"))
        for tmp in self.path.glob(".tmp-*"):  # chunks a killed run did not finish
            tmp.unlink(missing_ok=True)
        self.schema = schema(names)
        for part, why in self.bad_parts():
            self.notes.append(f"part {part.name} {why}: moved to {DAMAGED}/{self._set_aside(part, DAMAGED).name}; "
                              "its records are audited again")
        self._next = 1 + max((_part_number(p) for p in self.path.glob("part-*.parquet")), default=-1)

    def read_manifest(self) -> dict[str, Any]:
        """Returns: the manifest dict (``settings``, ``score_names``)."""
        try:
            man = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ExplainError(f"'{self.path / MANIFEST}' cannot be read ({exc})") from None
        if not isinstance(man, dict):
            raise ExplainError(f"'{self.path / MANIFEST}' is not an audit manifest (a JSON {type(man).__name__})")
        return man

    # ---------------------------------------------------------------- reading
    def parts(self) -> list[Path]:
        """Returns: the committed part files, in commit order: regular files inside the folder only
        (a symbolic link or anything else named ``part-*`` is never read)."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob("part-*.parquet") if _regular_inside(p, self.path))

    def bad_parts(self) -> list[tuple[Path, str]]:
        """Returns: ``(part, why)`` for each ``part-*`` name that is not a readable regular file inside
        the folder (a symbolic link, a truncated or empty file, no ``id`` column)."""
        if not self.path.is_dir():
            return []
        bad = []
        for p in sorted(self.path.glob("part-*.parquet")):
            if not _regular_inside(p, self.path):
                bad.append((p, "is not a regular file inside the folder (a symbolic link?)"))
                continue
            try:
                pq.read_table(p, columns=["id"])
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                reason = "is empty" if p.stat().st_size == 0 else f"is damaged ({_first_line(exc)[:120]})"
                bad.append((p, reason))
        return bad

    def check_readable(self) -> None:
        """Raise one line naming the first part that cannot be read (a reader's check, which moves nothing).

        Raises:
            ExplainError: a damaged or non-regular part, with what to do.
        """
        if self.path.is_symlink():
            raise ExplainError(f"'{self.path}' is a symbolic link: open the audit folder it points to, "
                               f"{str(self.path.resolve())!r}, itself")
        for part, why in self.bad_parts():
            raise ExplainError(f"'{self.path}': part {part.name} {why}: run the same audit again, which moves it "
                               f"to {DAMAGED}/ and audits its records again")

    def row_hashes(self) -> dict[str, str | None]:
        """Returns: ``{id: input_hash}`` of every committed row (``None`` where a row has no hash)."""
        out: dict[str, str | None] = {}
        for p in self.parts():
            cols = ["id", "input_hash"] if "input_hash" in pq.read_schema(p).names else ["id"]
            t = pq.read_table(p, columns=cols).to_pydict()
            out.update(zip(t["id"], t.get("input_hash", [None] * len(t["id"]))))
        return out

    def done_ids(self) -> set[str]:
        """Returns: the ids of every committed row."""
        ids: set[str] = set()
        for p in self.parts():
            ids.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
        return ids

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Returns: the committed rows as one ``pyarrow.Table`` (empty with the schema if none).

        Raises:
            ExplainError: a part that cannot be read or is not a regular file in the folder (named).
        """
        self.check_readable()
        parts = self.parts()
        if not parts:
            sch = self.schema or schema(self.read_manifest().get("score_names", []))
            return sch.empty_table() if columns is None else sch.empty_table().select(list(columns))
        tables = [pq.read_table(p, columns=list(columns) if columns else None) for p in parts]
        return pa.concat_tables(tables, promote_options="default")

    def frame(self) -> Any:
        """Returns: the committed rows as a pandas DataFrame (what ``pd.read_parquet(path)`` gives for a
        sound folder; one line naming a damaged or linked part instead of reading it)."""
        return self.read().to_pandas()

    # ---------------------------------------------------------------- reconciling with the input
    def reconcile(self, hashes: Mapping[str, str]) -> tuple[int, int]:
        """Match the committed rows to this run's input, ``{id: content hash}``: the rows of records
        whose content changed, of records no longer in the input, and all but the last row of an id
        written twice are moved to ``_replaced/`` (so the changed records are audited again and the
        folder holds each input id at most once). Adds one note per kind of change.

        Returns:
            ``(changed, dropped)``: records re-audited because they changed; records dropped.

        Raises:
            ExplainError: the folder holds rows but none of their ids is in this input (another dataset).
        """
        rows: list[tuple[Path, list[str], list[str | None]]] = []
        for p in self.parts():
            cols = ["id", "input_hash"] if "input_hash" in pq.read_schema(p).names else ["id"]
            t = pq.read_table(p, columns=cols).to_pydict()
            rows.append((p, t["id"], t.get("input_hash", [None] * len(t["id"]))))
        have = {i for _, ids, _ in rows for i in ids}
        if have and not have & set(hashes):
            raise ExplainError(f"'{self.path}' holds an audit of {len(have):,} other records (none of their ids is "
                               "in this input): choose another output folder for another dataset")
        last = {i: (n, k) for n, (_, ids, _) in enumerate(rows) for k, i in enumerate(ids)}
        changed, dropped, twice = set(), set(), 0
        for n, (part, ids, hs) in enumerate(rows):
            keep = []
            for k, (i, h) in enumerate(zip(ids, hs)):
                if i not in hashes:
                    dropped.add(i)
                elif h is not None and h != hashes[i]:
                    changed.add(i)
                elif last[i] == (n, k):
                    keep.append(k)
                else:
                    twice += 1
            if len(keep) < len(ids):
                self._rewrite(part, keep)
        if changed:
            self.notes.append(f"{len(changed):,} record(s) changed since they were audited: audited again "
                              f"(old rows in {REPLACED}/)")
        if dropped:
            self.notes.append(f"{len(dropped):,} record(s) audited earlier are no longer in the input: dropped "
                              f"from this audit (rows in {REPLACED}/)")
        if twice:
            self.notes.append(f"{twice:,} row(s) repeated an id written later (two runs at once?): moved to "
                              f"{REPLACED}/, each id is kept once")
        return len(changed), len(dropped)

    def _rewrite(self, part: Path, keep: list[int]) -> None:
        """Keep rows ``keep`` of ``part``; the others go to ``_replaced/`` first (never lost on a kill)."""
        table = pq.read_table(part)
        gone = sorted(set(range(table.num_rows)) - set(keep))
        aside = self.path / REPLACED
        aside.mkdir(exist_ok=True)
        _write_atomic_table(table.take(gone), aside / f"{part.stem}-{uuid.uuid4().hex[:8]}.parquet")
        if keep:
            _write_atomic_table(table.take(keep), part)
        else:
            part.unlink()
            _fsync_dir(self.path)

    def _set_aside(self, part: Path, folder: str) -> Path:
        aside = self.path / folder
        aside.mkdir(exist_ok=True)
        dest = aside / part.name
        while dest.exists() or dest.is_symlink():
            dest = aside / f"{part.stem}-{uuid.uuid4().hex[:6]}{part.suffix}"
        os.replace(part, dest)  # a link moves as a link: its target is never touched
        _fsync_dir(self.path)
        return dest

    # ---------------------------------------------------------------- writing
    def commit(self, rows: Iterable[Mapping[str, Any]]) -> Path | None:
        """Write ``rows`` as one new part, atomically. Returns: the part's path (None for no rows)."""
        rows = list(rows)
        if not rows:
            return None
        assert self.schema is not None, "open() first"
        table = pa.Table.from_pylist([{n: r.get(n) for n in self.schema.names} for r in rows], schema=self.schema)
        name = f"part-{self._next:06d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.path / name
        _write_atomic_table(table, final)
        self._next += 1
        return final


def read_audit(path: str | os.PathLike) -> Any:
    """The rows of the audit folder ``path`` as a pandas DataFrame, read only from its regular part files.

    Returns:
        a DataFrame (what ``pd.read_parquet(path)`` gives for a sound folder).

    Raises:
        ExplainError: ``path`` is a symbolic link or not an audit folder; a part is a link, empty or
            damaged (named, with what to do).

    Examples:
        >>> import tempfile
        >>> read_audit(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: not an audit folder (no _manifest.json)
    """
    store = PartStore(path)
    if store.path.is_symlink():
        store.check_readable()
    if not (store.path / MANIFEST).is_file():
        raise ExplainError(f"not an audit folder (no {MANIFEST})")
    return store.frame()


def _regular_inside(p: Path, folder: Path) -> bool:
    return not p.is_symlink() and p.is_file() and p.resolve().parent == folder.resolve()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"pid {int(info['pid'])} on {str(info['host'])[:64]}, started {str(info['started'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its lock file names no holder"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_atomic_table(table: pa.Table, final: Path) -> None:
    tmp = final.with_name(f".tmp-{final.name}")
    pq.write_table(table, tmp)
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _part_number(p: Path) -> int:
    try:
        return int(p.name.split("-")[1])
    except (IndexError, ValueError):
        return -1


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
