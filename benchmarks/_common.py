"""Shared helpers of the attribution benchmarks: fixed texts, timing, tables, references.

Example:
    >>> markdown_table(["a", "b"], [[1, 2.5]])
    '| a | b |\\n|---|---|\\n| 1 | 2.5 |'
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# A fixed public-domain-style passage: prompts are its first N tokens.
TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is "
    "named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 "
    "to 1889. Locally nicknamed the Iron Lady, it was constructed as the centrepiece of the 1889 "
    "World's Fair, and to crown the centennial anniversary of the French Revolution. Although "
    "initially criticised by some of France's leading artists and intellectuals for its design, it "
    "has since become a global cultural icon of France and one of the most recognisable structures "
    "in the world. The tower received 5,889,000 visitors in 2022. The Eiffel Tower is the most "
    "visited monument with an entrance fee in the world. The tower is 330 metres tall, about the "
    "same height as an 81-storey building, and the tallest structure in Paris. Its base is square, "
    "measuring 125 metres on each side. During its construction, the Eiffel Tower surpassed the "
    "Washington Monument to become the tallest human-made structure in the world, a title it held "
    "for 41 years until the Chrysler Building in New York City was finished in 1930."
)
CONTINUATION = (
    " Question: who designed the tower, and when was it built? Answer: the company of Gustave "
    "Eiffel built it between 1887 and 1889."
)


def load_model(threads: int | None) -> Any:
    """The embedded model, with ``threads`` torch threads (None keeps torch's default)."""
    from explain import LanguageModel

    if threads:
        torch.set_num_threads(threads)
    return LanguageModel.load()


def prompt_of_length(lm: Any, n_tokens: int, target_len: int) -> tuple[str, str]:
    """(prompt, target): the first ``n_tokens`` tokens of :data:`TEXT`, then ``target_len`` tokens.

    Returns:
        texts whose tokenisation gives exactly ``n_tokens`` prompt features and ``target_len``
        target tokens (checked by the caller through ``build_input``).
    """
    ids = lm.encode(TEXT, special=False)
    if n_tokens > len(ids):
        raise SystemExit(f"the fixed text has only {len(ids)} tokens")
    cont = lm.encode(CONTINUATION, special=False)[:target_len]
    return lm.tokenizer.decode(ids[:n_tokens]), lm.tokenizer.decode(cont)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once. Returns: (its result, wall seconds)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def fmt(value: Any) -> str:
    """A table cell: floats with 3 significant digits, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table. Returns: the table text (no trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` when given."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=float))
        print(f"wrote {path}")


RESULTS = Path(__file__).resolve().parent / "results"


def default_json(name: str) -> str:
    """Where a benchmark writes its JSON unless ``--json`` says otherwise.

    >>> default_json("faithfulness").endswith("benchmarks/results/faithfulness.json")
    True
    """
    return str(RESULTS / f"{name}.json")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], notes: str | None = None) -> dict:
    """One table of a report (the shape the docs' benchmark pages render).

    >>> table("t", ["a"], [[1]])
    {'title': 't', 'columns': ['a'], 'rows': [[1]]}
    """
    out: dict[str, Any] = {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}
    if notes:
        out["notes"] = notes
    return out


def machine_line(threads: int | None = None) -> str:
    """The machine a run used: CPU count, load averages now (1/5/15 min), torch threads.

    >>> "CPU" in machine_line(1)
    True
    """
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    threads = torch.get_num_threads() if threads is None else threads
    return (f"{os.cpu_count()}-core CPU, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
            f"at the end of the run, {threads} torch thread{'s' if threads != 1 else ''}")


def write_report(path: str | None, command: str | None, tables: Sequence[dict], machine: str | None = None,
                 **extra: Any) -> dict:
    """Write a benchmark's tables as the JSON the docs' benchmark pages are generated from.

    ``command`` defaults to the command line that ran (``python`` + ``sys.argv``), ``machine`` to
    :func:`machine_line`; ``extra`` keys (raw figures) are kept beside the tables.

    Returns:
        the payload written (nothing is written when ``path`` is empty).

    >>> import tempfile, json
    >>> p = Path(tempfile.mkdtemp()) / "r.json"
    >>> _ = write_report(str(p), "python x.py", [table("t", ["a"], [[1.5]])], machine="test box")  # doctest: +ELLIPSIS
    wrote ...
    >>> json.loads(p.read_text())["tables"][0]["rows"]
    [[1.5]]
    """
    if command is None:
        command = "python " + " ".join(sys.argv)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    payload = {"command": command, "machine": machine or machine_line(), "load_average": load,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tables": list(tables), **extra}
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return payload


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
