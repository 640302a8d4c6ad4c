"""The history store under stress: processes creating it at once, a damaged file, a full disk."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import time

import numpy as np
import pytest

from dashboard.store import (
    AuditStore, StoreCorruptError, StoreError, StoreFullError, move_aside,
)
from explain.errors import WhylmError

ROUNDS = 4
PROCESSES = 3


def _create_and_save(path: str, start: float, out: "mp.Queue") -> None:
    """Wait for the common start time, then create the store and save one run."""
    while time.time() < start:
        pass
    try:
        run_id = AuditStore(path).save("explain", {"prompt": "race"}, {"x": 1})
        out.put(("ok", run_id))
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_creating_a_fresh_store_at_once_all_succeed(tmp_path):
    ctx = mp.get_context("fork")
    for k in range(ROUNDS):
        path = str(tmp_path / f"r{k}" / "audits.sqlite")
        out = ctx.Queue()
        start = time.time() + 0.3
        procs = [ctx.Process(target=_create_and_save, args=(path, start, out))
                 for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert [r[0] for r in results] == ["ok"] * PROCESSES, results
        assert sorted(r[1] for r in results) == [1, 2, 3]
        assert AuditStore(path).count() == PROCESSES


def test_open_retries_when_another_process_holds_the_new_file(tmp_path, monkeypatch):
    """SQLite answers "database is locked" at once (no busy wait) when switching a file that another
    process is creating to WAL; the store retries instead of failing (1-10% of real races here)."""
    import dashboard.store as store_mod

    real_connect = sqlite3.connect
    refusals = {"left": 3}

    class Racing:
        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode") and refusals["left"]:
                refusals["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return self._conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    monkeypatch.setattr(store_mod.sqlite3, "connect", lambda *a, **k: Racing(real_connect(*a, **k)))
    store = AuditStore(tmp_path / "audits.sqlite")
    assert refusals["left"] == 0
    assert store.save("explain", {"prompt": "p"}, {}) == 1


def test_a_damaged_store_is_one_line_and_is_moved_aside_not_deleted(tmp_path):
    path = tmp_path / "audits.sqlite"
    junk = b"this is not a sqlite file\n" * 50
    path.write_bytes(junk)
    with pytest.raises(StoreCorruptError) as info:
        AuditStore(path)
    message = str(info.value)
    assert "\n" not in message and "damaged" in message and str(path) in message
    assert isinstance(info.value, WhylmError) and info.value.path == str(path)
    kept = move_aside(path)
    assert kept.read_bytes() == junk and kept.name.startswith("audits.sqlite.corrupt-")
    store = AuditStore(path)  # a new, empty one
    assert store.count() == 0 and kept.exists()


def test_disk_full_is_one_line_and_keeps_earlier_runs(tmp_path):
    store = AuditStore(tmp_path / "audits.sqlite")
    first = store.save("signals", {"prompt": "kept"}, {"scores": {"risk": 0.25}})
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" holds no more pages
    with pytest.raises(StoreFullError) as info:
        store.save("signals", {"prompt": "big"}, {"blob": "x" * 200_000})
    assert "\n" not in str(info.value) and "full" in str(info.value)
    assert "saved before are kept" in str(info.value)
    # the earlier run is intact, in this connection and in a fresh one
    assert [r.id for r in store.list()] == [first]
    again = AuditStore(tmp_path / "audits.sqlite")
    assert again.get(first).result == {"scores": {"risk": 0.25}}
    assert again.count() == 1


def test_results_are_stored_through_the_one_nan_helper(tmp_path):
    store = AuditStore(tmp_path / "audits.sqlite")
    run_id = store.save("explain", {"prompt": "p"},
                        {"a": np.array([1.5, np.nan]), "b": np.float32(np.inf), "c": np.int64(7)})
    raw = sqlite3.connect(store.path).execute("SELECT result FROM runs WHERE id=?",
                                              (run_id,)).fetchone()[0]
    # strict JSON: no NaN / Infinity tokens that other tools refuse
    decoded = json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert decoded == {"a": [1.5, None], "b": None, "c": 7}


def test_unknown_kind_is_a_user_error(tmp_path):
    with pytest.raises(StoreError, match="unknown run kind 'other'"):
        AuditStore(tmp_path / "s.sqlite").save("other", {}, {})


def test_history_page_shows_a_damaged_store_in_one_line_and_starts_a_new_one(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    data = tmp_path / "data"
    data.mkdir()
    (data / "audits.sqlite").write_bytes(b"garbage" * 100)
    monkeypatch.setenv("WHYLM_DATA_DIR", str(data))
    at = AppTest.from_string("from dashboard.pages import history_page\nhistory_page.render()\n",
                             default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    (err,) = [e.value for e in at.error]
    assert "damaged" in err and "\n" not in err
    at.button(key="store_start_new").click().run()
    assert not at.exception and not at.error
    kept = list(data.glob("audits.sqlite.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"garbage" * 100
    assert any("No runs yet" in i.value for i in at.info)
    assert AuditStore(data / "audits.sqlite").count() == 0
