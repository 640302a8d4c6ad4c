"""The ``processes`` engine: N worker processes on this machine, the model loaded once per worker.

Workers are started with the ``spawn`` context (safe with torch and threads on every OS); each
gets the model once, in its initializer (a LanguageModel is pickled to it; a path or ``None`` is
loaded there), and its share of the CPU threads. Chunks go out to whichever worker is free and
come back as they finish. A worker that dies (killed, out of memory) stops the run with one line;
the chunks already committed stay, and the same call resumes.

A worker never outlives the run: on Linux it asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), and on every OS a watchdog thread exits it within a second of its
parent's pid going away, so a ``kill -9`` of ``whylm audit`` frees the workers' memory at once.

Examples:
    >>> ProcessEngine(None, workers=2).workers
    2
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator, Mapping

from explain.audit.engines import chunks, default_threads, load_model
from explain.audit.work import audit_chunk
from explain.errors import ExplainError
from explain.threads import check_threads

_LM: Any = None
PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def die_with_parent(parent: int) -> None:
    """Make this process exit when process ``parent`` dies, however it dies (SIGKILL included).

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere:
    a daemon thread polls the parent pid every half second and exits the process when it changed.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="whylm-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def _init(spec: Any, threads: int, parent: int) -> None:
    import torch

    global _LM
    die_with_parent(parent)
    torch.set_num_threads(max(1, threads))
    _LM = load_model(spec)


def _work(job: tuple[list[dict[str, Any]], Mapping[str, Any]]) -> list[dict[str, Any]]:
    recs, settings = job
    return audit_chunk(_LM, recs, settings)


class ProcessEngine:
    """N spawned worker processes. Args: ``model``; ``workers`` (default: the CPU count, at most 8);
    ``threads_per_worker`` (default: :func:`explain.audit.engines.default_threads`)."""

    name = "processes"

    def __init__(self, model: Any, workers: int | None = None, address: str | None = None,
                 threads_per_worker: int | None = None) -> None:
        if address is not None:
            raise ExplainError("address= is for engine='ray'")
        self.model = model
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.threads = check_threads(threads_per_worker) or default_threads(self.workers)

    def run(self, records: list[dict[str, Any]], settings: Mapping[str, Any],
            chunk_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yields: the rows of each chunk, in the order chunks finish."""
        if not records:
            return
        # Smaller chunks than the commit size keep every worker busy to the end.
        size = max(1, min(chunk_size, -(-len(records) // (4 * self.workers))))
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init,
                                   initargs=(self.model, self.threads, os.getpid()))
        try:
            futures = [pool.submit(_work, (c, dict(settings))) for c in chunks(records, size)]
            for fut in as_completed(futures):
                yield fut.result()
        except BrokenProcessPool:
            raise ExplainError("a worker process died (killed or out of memory?): the chunks done are saved, "
                               "run the same audit again to resume") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
