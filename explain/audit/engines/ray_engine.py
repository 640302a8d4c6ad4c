"""The ``ray`` engine: Ray Data ``map_batches`` over a pool of actors, one model per actor.

A local Ray is started when no ``address`` is given (``num_cpus`` = workers x CPUs per actor) and
shut down afterwards; ``address="auto"`` or ``"ray://host:10001"`` joins an existing cluster
(whose workers need whylm installed). Each actor of :class:`AuditActor` loads the model once, from
a path (a model in memory is saved once to a temporary folder on a local Ray, rather than shipped
to every actor through the object store), and audits batches of records; rows travel as JSON text so that columns that are all ``null`` in one
batch never clash with another batch's types. Ray is optional: ``pip install 'whylm[ray]'``.

Examples:
    >>> RayEngine(None, workers=2, cpus_per_worker=1).workers   # doctest: +SKIP
    2
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from explain.audit.engines import load_model
from explain.audit.work import audit_chunk
from explain.errors import ExplainError
from explain.threads import check_threads

EXTRA = "pip install 'whylm[ray]'"


def import_ray() -> Any:
    """Returns: the ``ray`` module. Raises: ExplainError naming the extra when Ray is absent."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ExplainError(f"engine='ray' needs Ray Data, which is not installed: {EXTRA}") from None
    return ray


class AuditActor:
    """A Ray Data callable class: holds one model, audits a batch of records (JSON text in, out)."""

    def __init__(self, spec: Any, settings: Mapping[str, Any], threads: int, gpu: bool = False,
                 name: str | None = None, dtype: str | None = None) -> None:
        import torch

        from explain.model import LanguageModel

        torch.set_num_threads(max(1, threads))
        self.lm = LanguageModel.load(spec, dtype=dtype) if dtype else load_model(spec)
        if name:
            self.lm.name = name  # the saved copy keeps the name of the model it was saved from
        if gpu and torch.cuda.is_available():  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
            self.lm.model.to("cuda")
        self.settings = dict(settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        recs = [json.loads(s) for s in batch["record"]]
        rows = audit_chunk(self.lm, recs, self.settings)
        return {"row": np.array([json.dumps(r, ensure_ascii=False) for r in rows], dtype=object)}


class RayEngine:
    """Ray Data actor pool. Args: ``model``; ``workers`` (actors, default 2); ``address``;
    ``cpus_per_worker`` (default 1) and ``gpus_per_worker`` (default 0) per actor; ``threads_per_worker``
    (default: the actor's CPUs)."""

    name = "ray"

    def __init__(self, model: Any, workers: int | None = None, address: str | None = None,
                 cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 threads_per_worker: int | None = None) -> None:
        import_ray()
        self.model = model
        self.workers = workers or 2
        self.address = address
        self.cpus, self.gpus = float(cpus_per_worker), float(gpus_per_worker)
        self.threads = check_threads(threads_per_worker) or max(1, int(self.cpus))

    def run(self, records: list[dict[str, Any]], settings: Mapping[str, Any],
            chunk_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yields: the rows of each finished batch, in the order Ray hands them back."""
        if not records:
            return
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            self._init(ray)
        spec, name, dtype, saved = self.model, None, None, None
        try:
            if _in_memory(self.model) and self.address is None:
                saved = tempfile.mkdtemp(prefix="whylm-ray-model-")
                spec, name, dtype = _save(self.model, saved)
            size = max(1, min(chunk_size, -(-len(records) // (4 * self.workers))))
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.verbose_progress = False
            ds = ray.data.from_items([{"record": json.dumps(r, ensure_ascii=False)} for r in records],
                                     override_num_blocks=max(1, -(-len(records) // size)))
            ds = ds.map_batches(
                AuditActor, fn_constructor_args=(spec, dict(settings), self.threads, self.gpus > 0, name, dtype),
                batch_size=size, batch_format="numpy", concurrency=self.workers,
                num_cpus=self.cpus, num_gpus=self.gpus or None,
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                yield [json.loads(s) for s in batch["row"]]
        finally:
            if started:
                ray.shutdown()
            if saved is not None:
                shutil.rmtree(saved, ignore_errors=True)

    def _init(self, ray: Any) -> None:
        root = str(Path(__file__).resolve().parents[3])  # workers import this checkout's whylm
        path = root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
        try:
            if self.address is None:
                ray.init(num_cpus=max(1, int(self.workers * max(self.cpus, 1))), include_dashboard=False,
                         log_to_driver=False, configure_logging=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}})
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local Ray" if self.address is None else f"the Ray cluster at {self.address!r}"
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExplainError(f"cannot start or join {where}: {msg[:200]}") from None


def _in_memory(model: Any) -> bool:
    from explain.model import LanguageModel

    return isinstance(model, LanguageModel)


def _save(lm: Any, folder: str) -> tuple[str, str, str]:
    """Save ``lm`` into ``folder`` for the actors to load. Returns: (path, the model's name, its dtype)."""
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder, lm.name, str(lm.model.dtype).removeprefix("torch.")
