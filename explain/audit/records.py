"""Audit input: records read from JSONL / CSV / Parquet or taken from an iterable, checked, given ids.

A record is ``{"id", "prompt", "response", "context"}``: ``prompt`` is required; ``response`` is
scored as given (generated when absent); ``context`` is the passage the answer should rest on.
A record without an ``id`` gets :func:`record_id`, a stable hash of its content, so the same file
gets the same ids on every run (which is what lets a run resume).

A file that cannot be parsed stops at once, naming the line; a record whose *content* is unusable
(no prompt, a prompt that is not text) is kept and fails on its own row, so the run goes on.

Examples:
    >>> recs = read_records([{"prompt": "2 + 2 =", "response": " 4"}, {"id": 7, "prompt": "Hi"}])
    >>> [r["id"] for r in recs]
    ['r-bf720dda3af5ff30', '7']
    >>> recs[1]["response"] is None
    True
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from explain.errors import ExplainError

FIELDS = ("prompt", "response", "context")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
            ".pq": "parquet"}


def record_id(record: Mapping[str, Any]) -> str:
    """A stable id for a record without one: ``"r-"`` + 16 hex digits of SHA-256 of its fields.

    Returns:
        the id (the same for the same prompt, response and context, on every machine and run).

    Examples:
        >>> record_id({"prompt": "a"}) == record_id({"prompt": "a", "response": None})
        True
        >>> record_id({"prompt": "a"}) == record_id({"prompt": "b"})
        False
    """
    canon = json.dumps([_text(record.get(k)) for k in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return "r-" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def read_records(records: str | os.PathLike | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Read and check the records of an audit.

    Args:
        records: a path to a ``.jsonl``/``.csv``/``.parquet`` file, or an iterable of dicts.

    Returns:
        a list of ``{"id": str, "prompt", "response", "context"}`` dicts (missing fields ``None``;
        a non-text prompt is kept as given and reported on its row).

    Raises:
        ExplainError: a missing or unreadable file, a line that is not a JSON object (with its line
            number), an item that is not a dict, or the same id twice (naming it).

    Examples:
        >>> read_records([{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}])
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: duplicate id 'a' in the records (items 1 and 2): ids must be unique
    """
    if isinstance(records, (str, os.PathLike)):
        raw = list(_read_file(Path(records)))
    elif isinstance(records, Mapping):
        raise ExplainError("records must be a path or an iterable of dicts, got one dict: wrap it in a list")
    else:
        try:
            raw = [(i, r) for i, r in enumerate(records, start=1)]
        except TypeError:
            raise ExplainError(f"records must be a path or an iterable of dicts, got {type(records).__name__}") from None
    out: list[dict[str, Any]] = []
    where: dict[str, int] = {}
    for line, item in raw:
        if not isinstance(item, Mapping):
            raise ExplainError(f"record {line} is a {type(item).__name__}, not an object with a 'prompt'")
        rec = {k: _clean(item.get(k)) for k in FIELDS}
        given = _clean(item.get("id"))
        rec_id = record_id(rec) if given is None or given == "" else str(given)
        if rec_id in where:
            unit = "lines" if isinstance(records, (str, os.PathLike)) else "items"
            raise ExplainError(f"duplicate id {rec_id!r} in the records ({unit} {where[rec_id]} and {line}): "
                               "ids must be unique")
        where[rec_id] = line
        out.append({"id": rec_id, **rec})
    return out


def check_record(rec: Mapping[str, Any]) -> None:
    """Raise :class:`ExplainError` (one line) when a record's content cannot be audited.

    Examples:
        >>> check_record({"prompt": None})
        Traceback (most recent call last):
        ...
        explain.errors.ExplainError: the record has no 'prompt'
    """
    if rec.get("prompt") is None:
        raise ExplainError("the record has no 'prompt'")
    for k in FIELDS:
        if rec.get(k) is not None and not isinstance(rec[k], str):
            raise ExplainError(f"the record's '{k}' is a {type(rec[k]).__name__}, not text")


def _read_file(path: Path) -> Iterable[tuple[int, Any]]:
    if not path.exists():
        raise ExplainError(f"records file '{path}' does not exist")
    kind = SUFFIXES.get(path.suffix.lower())
    if path.is_dir():
        kind = "parquet"
    if kind is None:
        raise ExplainError(f"records file '{path}': unknown format '{path.suffix}', use .jsonl, .csv or .parquet")
    if kind == "jsonl":
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExplainError(f"{path.name} line {n} is not valid JSON ({exc.msg})") from None
                if not isinstance(item, dict):
                    raise ExplainError(f"{path.name} line {n} is a JSON {type(item).__name__}, not an object")
                yield n, item
    elif kind == "csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "prompt" not in reader.fieldnames:
                raise ExplainError(f"{path.name} line 1: the header has no 'prompt' column")
            width = len(reader.fieldnames)
            for item in reader:
                n = reader.line_num
                if None in item or any(v is None for v in item.values()):
                    raise ExplainError(f"{path.name} line {n} has a different number of fields than the "
                                       f"header ({width})")
                yield n, {k: (v if v != "" else None) for k, v in item.items()}
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise ExplainError(f"{path.name} is not a readable Parquet file ({exc})") from None
        if "prompt" not in table.column_names:
            raise ExplainError(f"{path.name} has no 'prompt' column")
        for n, item in enumerate(table.to_pylist(), start=1):
            yield n, item


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(value: Any) -> Any:
    return None if value is None else str(value)
