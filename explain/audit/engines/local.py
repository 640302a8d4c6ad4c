"""The ``local`` engine: every record in this process, on the model already loaded.

Records run one after another through :func:`explain.audit.work.audit_chunk` (each record's
signals already batch its with- and without-context rows into one forward pass); each chunk is
yielded for commit as soon as it is done. Each chunk runs with ``threads_per_worker`` torch threads
(default: :func:`explain.audit.engines.default_threads`), and torch's setting is put back after it.

Examples:
    >>> LocalEngine(None).workers
    1
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from explain.audit.engines import chunks, default_threads, load_model
from explain.audit.work import audit_chunk
from explain.errors import ExplainError
from explain.threads import check_threads, threads


class LocalEngine:
    """One process, one model. Args: ``model`` (LanguageModel, path/id, or None: the embedded one)."""

    name = "local"

    def __init__(self, model: Any, workers: int | None = None, address: str | None = None,
                 threads_per_worker: int | None = None) -> None:
        if workers not in (None, 1):
            raise ExplainError(f"the local engine runs 1 worker, got workers={workers}: use engine='processes'")
        if address is not None:
            raise ExplainError("address= is for engine='ray'")
        self.model = model
        self.workers = 1
        self.threads = check_threads(threads_per_worker) or default_threads(1)

    def run(self, records: list[dict[str, Any]], settings: Mapping[str, Any],
            chunk_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yields: the rows of each chunk of ``chunk_size`` records, in input order."""
        lm = load_model(self.model)
        for chunk in chunks(records, chunk_size):
            with threads(self.threads):
                rows = audit_chunk(lm, chunk, settings)
            yield rows
