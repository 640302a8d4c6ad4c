"""The resumable output of an audit: a Parquet dataset folder of atomically committed part files.

Layout of ``out`` (a folder, whatever its name; ``pd.read_parquet(out)`` reads it whole)::

    out/_manifest.json            the settings of the run (model, signals, method, seed, columns)
    out/part-000000-<tag>.parquet one file per committed chunk of rows
    out/.tmp-...                  a chunk being written (ignored by readers, removed on resume)

A chunk is written to a hidden temporary name, flushed to disk, then renamed with ``os.replace``
(atomic on POSIX and Windows): after a kill at any moment a part is either whole or absent, so the
ids in the parts are exactly the records done, and a resumed run does only the others. Readers
(pyarrow, pandas) skip names that start with ``_`` or ``.``.

Example:
    >>> import tempfile, pandas as pd
    >>> s = PartStore(Path(tempfile.mkdtemp()) / "a.parquet")
    >>> s.open({"model": "m", "seed": 0}, score_names=["mean_neg_logprob"], resume=True)
    >>> _ = s.commit([{"id": "x", "prompt": "p", "score.mean_neg_logprob": 1.5}])
    >>> sorted(s.done_ids()), pd.read_parquet(s.path)["score.mean_neg_logprob"].tolist()
    (['x'], [1.5])
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from explain.errors import ExplainError

MANIFEST = "_manifest.json"
FORMAT = 1

BASE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("id", pa.string()), ("prompt", pa.string()), ("response", pa.string()), ("context", pa.string()),
    ("generated", pa.bool_()), ("risk", pa.float64()), ("verdict", pa.string()),
)
TAIL_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("top_features", pa.string()), ("model", pa.string()), ("method", pa.string()), ("seed", pa.int64()),
    ("versions", pa.string()), ("seconds", pa.float64()), ("error", pa.string()), ("report", pa.string()),
    ("attribution", pa.string()), ("evidence", pa.string()), ("n_unsupported_sentences", pa.int64()),
)
SETTINGS_CHECKED = ("model", "signals", "method", "seed", "chat", "max_new_tokens", "top_k", "calibration_id")


def schema(score_names: Sequence[str]) -> pa.Schema:
    """The fixed schema of every part: inputs, risk, verdict, ``score.<name>`` columns, the rest.

    Returns:
        a ``pyarrow.Schema`` (the same for every part of a run, so the folder reads as one table).

    Example:
        >>> schema(["max_neg_logprob"]).names[5:9]
        ['risk', 'verdict', 'score.max_neg_logprob', 'top_features']
    """
    cols = list(BASE_COLUMNS) + [(f"score.{n}", pa.float64()) for n in score_names] + list(TAIL_COLUMNS)
    return pa.schema(cols)


class PartStore:
    """An audit's output folder: manifest, committed parts, the ids already done.

    Args:
        path: the output folder (created on :meth:`open`); an existing plain file is refused.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        self.schema: pa.Schema | None = None
        self._next = 0

    # ---------------------------------------------------------------- opening
    def open(self, settings: Mapping[str, Any], score_names: Sequence[str], resume: bool,
             total: int | None = None) -> None:
        """Create the folder and manifest, or check an existing one against ``settings``.

        ``total`` (the number of input records) is kept in the manifest so a reader can show progress.

        Raises:
            ExplainError: ``path`` is a file; it holds results and ``resume`` is False; or it was
                made with other settings (the first difference named).
        """
        if self.path.exists() and not self.path.is_dir():
            raise ExplainError(f"--out '{self.path}' is an existing file, not an audit folder: choose another path")
        manifest = self.path / MANIFEST
        if manifest.exists():
            old = self.read_manifest()
            parts = self.parts()
            if parts and not resume:
                raise ExplainError(f"'{self.path}' already holds {len(parts)} committed part(s): pass resume=True "
                                   "(--resume) to complete it, or choose another output")
            for key in SETTINGS_CHECKED:
                if key in settings and old.get("settings", {}).get(key) != settings[key]:
                    raise ExplainError(
                        f"'{self.path}' was made with {key}={old.get('settings', {}).get(key)!r}, this run has "
                        f"{key}={settings[key]!r}: resume with the same settings or choose another output")
            names = old.get("score_names", list(score_names))
            if total is not None and old.get("total") != total:
                old["total"] = total
                _atomic_write(manifest, json.dumps(old, indent=2).encode("utf-8"))
        else:
            if self.path.exists() and any(p.name.endswith(".parquet") for p in self.path.iterdir()):
                raise ExplainError(f"'{self.path}' holds Parquet files but no {MANIFEST}: not an audit folder")
            self.path.mkdir(parents=True, exist_ok=True)
            names = list(score_names)
            _atomic_write(manifest, json.dumps({"format": FORMAT, "settings": dict(settings), "score_names": names,
                                                "total": total}, indent=2).encode("utf-8"))
        for tmp in self.path.glob(".tmp-*"):  # chunks a killed run did not finish
            tmp.unlink(missing_ok=True)
        self.schema = schema(names)
        self._next = 1 + max((_part_number(p) for p in self.parts()), default=-1)

    def read_manifest(self) -> dict[str, Any]:
        """Returns: the manifest dict (``settings``, ``score_names``)."""
        try:
            return json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ExplainError(f"'{self.path / MANIFEST}' cannot be read ({exc})") from None

    # ---------------------------------------------------------------- reading
    def parts(self) -> list[Path]:
        """Returns: the committed part files, in commit order."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob("part-*.parquet"))

    def done_ids(self) -> set[str]:
        """Returns: the ids of every committed row."""
        ids: set[str] = set()
        for p in self.parts():
            ids.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
        return ids

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Returns: the committed rows as one ``pyarrow.Table`` (empty with the schema if none)."""
        parts = self.parts()
        if not parts:
            sch = self.schema or schema(self.read_manifest().get("score_names", []))
            return sch.empty_table() if columns is None else sch.empty_table().select(list(columns))
        tables = [pq.read_table(p, columns=list(columns) if columns else None) for p in parts]
        return pa.concat_tables(tables)

    # ---------------------------------------------------------------- writing
    def commit(self, rows: Iterable[Mapping[str, Any]]) -> Path | None:
        """Write ``rows`` as one new part, atomically. Returns: the part's path (None for no rows)."""
        rows = list(rows)
        if not rows:
            return None
        assert self.schema is not None, "open() first"
        table = pa.Table.from_pylist([{n: r.get(n) for n in self.schema.names} for r in rows], schema=self.schema)
        name = f"part-{self._next:06d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.path / f".tmp-{name}"
        pq.write_table(table, tmp)
        _fsync(tmp)
        final = self.path / name
        os.replace(tmp, final)
        _fsync_dir(self.path)
        self._next += 1
        return final


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
