"""MkDocs hook: a benchmark page's tables come from the JSON its benchmark wrote, never by hand.

A page writes ``<!-- benchmark: NAME -->`` where the tables go; the hook reads
``benchmarks/results/NAME.json`` and puts in its tables, each under its title, with the command that
made it. A marker whose JSON is missing fails the (strict) build.

Accepted JSON shapes (what ``benchmarks/`` scripts write with ``--json``):

- ``{"command": ..., "tables": [{"title": ..., "columns": [...], "rows": [[...], ...]}, ...]}``
  (:func:`benchmarks._common.write_report`);
- a list of row dicts (one table, columns in first-seen order);
- a dict whose values are lists of row dicts (one table per key).
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

MARKER = re.compile(r"<!--\s*benchmark:\s*([\w./-]+)\s*-->")
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def cell(value: Any) -> str:
    """One table cell: numbers to 3 significant digits, text escaped, ``|`` kept out of the table."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3g}"
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return html.escape(str(value)).replace("|", "\\|").replace("\n", " ")


def table(columns: list[str], rows: list[list[Any]]) -> str:
    """A markdown table. Returns: the text."""
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def dict_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns (first-seen order) and rows of a list of dicts."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    return columns, [[r.get(c) for c in columns] for r in rows]


def render(name: str, data: Any) -> str:
    """The markdown for one benchmark's JSON. Raises: ValueError for a shape it cannot read."""
    out: list[str] = []
    if isinstance(data, dict) and "tables" in data:
        if data.get("command"):
            out.append(f"Made by `{data['command']}`" + (f" ({cell(data['machine'])})" if data.get("machine") else "") + ".")
        for t in data["tables"]:
            if t.get("title"):
                out.append(f"**{cell(t['title'])}**")
            if t.get("rows") and isinstance(t["rows"][0], dict):
                cols, rows = dict_rows(t["rows"])
            else:
                cols, rows = list(t["columns"]), [list(r) for r in t["rows"]]
            out.append(table(cols, rows))
            if t.get("notes"):
                out.append(cell(t["notes"]))
    elif isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        out.append(table(*dict_rows(data)))
    elif isinstance(data, dict) and data and any(isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
                                                 for v in data.values()):
        for key, value in data.items():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                out.append(f"**{cell(key)}**")
                out.append(table(*dict_rows(value)))
    else:
        raise ValueError(f"benchmarks/results/{name}.json: no table in it")
    out.append(f"*Generated from `benchmarks/results/{name}.json`.*")
    return "\n\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every benchmark marker by its tables. Returns: the page's markdown."""

    def sub(match: re.Match) -> str:
        name = match.group(1)
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{page.file.src_path}: benchmark results {path} are missing")
        return render(name, json.loads(path.read_text(encoding="utf-8")))

    return MARKER.sub(sub, markdown)
