"""The ``processes`` engine: N worker processes on this machine, the model loaded once per worker.

Workers are started with the ``spawn`` context (safe with torch and threads on every OS); each
gets the model once, in its initializer (a LanguageModel is pickled to it; a path or ``None`` is
loaded there), and its share of the CPU threads. Chunks go out to whichever worker is free and
come back as they finish. A worker that dies (killed, out of memory) stops the run with one line;
the chunks already committed stay, and the same call resumes.

Example:
    >>> ProcessEngine(None, workers=2).workers
    2
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator, Mapping

from explain.audit.engines import chunks, load_model
from explain.audit.work import audit_chunk
from explain.errors import ExplainError

_LM: Any = None


def _init(spec: Any, threads: int) -> None:
    import torch

    global _LM
    torch.set_num_threads(max(1, threads))
    _LM = load_model(spec)


def _work(job: tuple[list[dict[str, Any]], Mapping[str, Any]]) -> list[dict[str, Any]]:
    recs, settings = job
    return audit_chunk(_LM, recs, settings)


class ProcessEngine:
    """N spawned worker processes. Args: ``model``; ``workers`` (default: the CPU count, at most 8)."""

    name = "processes"

    def __init__(self, model: Any, workers: int | None = None, address: str | None = None,
                 threads_per_worker: int | None = None) -> None:
        if address is not None:
            raise ExplainError("address= is for engine='ray'")
        self.model = model
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // self.workers)

    def run(self, records: list[dict[str, Any]], settings: Mapping[str, Any],
            chunk_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yields: the rows of each chunk, in the order chunks finish."""
        if not records:
            return
        # Smaller chunks than the commit size keep every worker busy to the end.
        size = max(1, min(chunk_size, -(-len(records) // (4 * self.workers))))
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init,
                                   initargs=(self.model, self.threads))
        try:
            futures = [pool.submit(_work, (c, dict(settings))) for c in chunks(records, size)]
            for fut in as_completed(futures):
                yield fut.result()
        except BrokenProcessPool:
            raise ExplainError("a worker process died (killed or out of memory?): the chunks done are saved, "
                               "run the same audit again to resume") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
