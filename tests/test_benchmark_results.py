"""The committed benchmark results are JSON the docs' benchmark pages can render (shape only).

The docs build replaces ``<!-- benchmark: NAME -->`` by tables read from
``benchmarks/results/NAME.json``; a file without a table would break the page. No figure is checked
here: the numbers come from the benchmark runs, and their timings vary by machine.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = sorted((BENCHMARKS / "results").glob("*.json"))
# the four files whose scripts write through ``write_report`` (the {command, machine, tables} shape)
REPORTS = ("attribution_speed", "faithfulness", "audit_throughput", "causal_bench")


def tables_of(data: Any) -> list[tuple[list[str], list[list[Any]]]]:
    """(columns, rows) of every table in one results file, for each shape the docs hook reads."""
    def of_dicts(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        return cols, [[r.get(c) for c in cols] for r in rows]

    if isinstance(data, dict) and "tables" in data:
        out = []
        for t in data["tables"]:
            if t["rows"] and isinstance(t["rows"][0], dict):
                out.append(of_dicts(t["rows"]))
            else:
                out.append((list(t["columns"]), [list(r) for r in t["rows"]]))
        return out
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return [of_dicts(data)]
    if isinstance(data, dict):
        return [of_dicts(v) for v in data.values()
                if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    return []


def test_there_are_results() -> None:
    names = {p.stem for p in RESULTS}
    assert set(REPORTS) <= names, f"missing: {set(REPORTS) - names}"


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_results_file_has_a_table_with_rows(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    tables = tables_of(data)
    assert tables, f"{path.name}: no table in it"
    assert any(rows for _, rows in tables), f"{path.name}: every table is empty"
    for columns, rows in tables:
        assert columns, f"{path.name}: a table without columns"
        assert all(len(r) == len(columns) for r in rows), f"{path.name}: a row whose width is not the header's"


@pytest.mark.parametrize("name", REPORTS)
def test_report_names_its_command_and_machine(name: str) -> None:
    data = json.loads((BENCHMARKS / "results" / f"{name}.json").read_text(encoding="utf-8"))
    assert data["command"].startswith(f"python benchmarks/{name}.py"), data["command"]
    assert "CPU" in data["machine"] and "load average" in data["machine"]
    assert all(t["title"] and t["rows"] for t in data["tables"])


def test_write_report_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_common", BENCHMARKS / "_common.py")
    common = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "path", list(sys.path))  # _common puts the repo root on sys.path
    spec.loader.exec_module(common)
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--n", "3"])
    out = tmp_path / "sub" / "x.json"
    common.write_report(str(out), None, [common.table("t", ["a", "b"], [[1, 2.5]], notes="n")])
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["command"] == "python benchmarks/x.py --n 3"
    assert len(data["load_average"]) == 3 and "load average" in data["machine"]
    assert tables_of(data) == [(["a", "b"], [[1, 2.5]])]
    assert data["tables"][0]["notes"] == "n"


def test_score_cache_skips_a_damaged_line_and_rescores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_score_cache", BENCHMARKS / "score_cache.py")
    cache_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cache_mod)
    a, b = {"prompt": "Q?", "response": "A."}, {"prompt": "Q?", "response": "B."}
    cache = tmp_path / "c.jsonl"
    # a good row, a hand-edited one, and the last line of a scorer stopped mid-write (no newline)
    cache.write_text(json.dumps({"key": cache_mod.example_key(a), "seconds": 1.0}) + "\n{\"key\": oops\n{\"key\"",
                     encoding="utf-8")
    assert [r["key"] for r in cache_mod.read_cache(cache)] == [cache_mod.example_key(a)]
    assert "2 unreadable line(s) skipped" in capsys.readouterr().err

    class FakeReport:
        def to_dict(self) -> dict[str, Any]:
            return {"tokens": ["B", "."], "response": "B."}

    scored: list[str] = []
    monkeypatch.setattr("explain.signals", lambda lm, prompt, response, **kw: scored.append(response) or FakeReport())
    rows = cache_mod.cached_reports(None, [a, b], cache)
    assert scored == ["B."] and [r["key"] for r in rows] == [cache_mod.example_key(a), cache_mod.example_key(b)]
    # the new row starts on a line of its own, so the next run reads it back
    assert [r["key"] for r in cache_mod.read_cache(cache)] == [cache_mod.example_key(a), cache_mod.example_key(b)]
