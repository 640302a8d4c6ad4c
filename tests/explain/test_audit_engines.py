"""explain.audit under a real SIGKILL, and the processes and Ray engines against the local one."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from explain import WhylmError
from explain.audit.api import audit

ROOT = Path(__file__).resolve().parents[2]
RECORDS = [
    {"id": f"r{i}", "prompt": p, "response": r, **({"context": c} if c else {})}
    for i, (p, r, c) in enumerate([
        ("The capital of France is", " Paris", None),
        ("The capital of Italy is", " Rome", "the capital of Italy is Rome."),
        ("What colour is the sky?", " blue.", "the sky is blue."),
        ("Smoking causes", " tar deposits.", None),
        ("Altitude lowers", " the temperature of the air.", None),
        ("The quick brown fox", " jumps over the lazy dog.", None),
    ])
]
SCORES = ["score.mean_neg_logprob", "score.max_neg_logprob", "score.mean_entropy", "score.ungrounded_max"]

CHILD = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
from tiny_models import make_tiny_lm
from explain.audit.api import audit
audit({src!r}, make_tiny_lm(), out={out!r}, chunk_size=1, progress=False, max_new_tokens=12)
"""


def _frame(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out).set_index("id").sort_index()


@pytest.mark.slow
def test_sigkill_mid_run_then_the_same_call_completes_only_missing_ids(tiny_lm, tmp_path):
    recs = [{"id": f"k{i}", "prompt": f"The capital of France is{' Paris' * (i % 4)}"} for i in range(12)]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out = tmp_path / "killed.parquet"
    code = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests" / "support"), src=str(src), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("part-*.parquet"))) < 3:  # let some chunks commit, then kill mid-run
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child committed nothing in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _frame(out)
    assert 3 <= len(before) < len(recs), "the kill came after the end: nothing left to resume"
    summary = audit(src, tiny_lm, out=out, chunk_size=1, progress=False, max_new_tokens=12)
    assert summary.skipped == len(before) and summary.processed == len(recs) - len(before)
    ids = pd.read_parquet(out)["id"].tolist()
    assert sorted(ids) == sorted(r["id"] for r in recs) and len(ids) == len(set(ids))  # none lost, none twice
    after = _frame(out)
    pd.testing.assert_frame_equal(after.loc[before.index, SCORES + ["response"]], before[SCORES + ["response"]])
    fresh = tmp_path / "fresh.parquet"
    audit(src, tiny_lm, out=fresh, progress=False, max_new_tokens=12)
    pd.testing.assert_frame_equal(after[SCORES + ["response"]], _frame(fresh)[SCORES + ["response"]], atol=1e-5)


@pytest.mark.slow
def test_processes_engine_gives_the_local_scores(tiny_dir, tmp_path):
    local = audit(RECORDS, tiny_dir, out=tmp_path / "local", attribute="ablation", progress=False)
    procs = audit(RECORDS, tiny_dir, out=tmp_path / "procs", engine="processes", workers=2,
                  attribute="ablation", progress=False, chunk_size=2)
    assert (local.errors, procs.errors, procs.engine, procs.workers) == (0, 0, "processes", 2)
    a, b = _frame(tmp_path / "local"), _frame(tmp_path / "procs")
    pd.testing.assert_frame_equal(a[SCORES], b[SCORES], atol=1e-5)
    assert (a["top_features"].map(lambda t: [f for f, _ in json.loads(t)])
            == b["top_features"].map(lambda t: [f for f, _ in json.loads(t)])).all()


@pytest.mark.slow
def test_ray_engine_on_a_local_two_cpu_ray_gives_the_local_scores(tiny_dir, tmp_path):
    pytest.importorskip("ray.data")
    from explain import LanguageModel

    # a model of its own: the session's shared tiny model may carry state other tests attached to it
    lm = LanguageModel.load(tiny_dir)
    local = audit(RECORDS, lm, out=tmp_path / "local", progress=False)
    ray_run = audit(RECORDS, lm, out=tmp_path / "ray", engine="ray", workers=2, progress=False,
                    engine_options={"cpus_per_worker": 1})
    assert (local.errors, ray_run.errors, ray_run.engine, ray_run.processed) == (0, 0, "ray", len(RECORDS))
    a, b = _frame(tmp_path / "local"), _frame(tmp_path / "ray")
    pd.testing.assert_frame_equal(a[SCORES], b[SCORES], atol=1e-5)
    assert list(b.index) == sorted(r["id"] for r in RECORDS)


def test_ray_absent_is_a_one_line_error_naming_the_extra(tiny_lm, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(WhylmError, match=r"engine='ray' needs Ray Data, which is not installed: pip install 'whylm\[ray\]'"):
        audit(RECORDS, tiny_lm, out=tmp_path / "x", engine="ray", progress=False)


def test_ray_actors_get_a_model_path_not_the_model_and_score_as_the_local_engine(tiny_lm, tmp_path):
    pytest.importorskip("ray.data")
    import numpy as np

    from explain.audit.engines.ray_engine import AuditActor, _in_memory, _save
    from explain.audit.work import audit_chunk, make_settings

    assert _in_memory(tiny_lm) and not _in_memory(str(tmp_path))
    spec, name, dtype = _save(tiny_lm, str(tmp_path / "m"))
    assert isinstance(spec, str) and Path(spec, "config.json").is_file()  # what the actors receive
    settings = make_settings(tiny_lm.name, True, None, 0)
    actor = AuditActor(spec, settings, 1, False, name, dtype)
    assert actor.lm is not tiny_lm and actor.lm.name == tiny_lm.name
    rows = actor({"record": np.array([json.dumps(RECORDS[1])], dtype=object)})["row"]
    got, want = json.loads(rows[0]), audit_chunk(tiny_lm, [RECORDS[1]], settings)[0]
    for col in SCORES:
        assert got[col] == pytest.approx(want[col], abs=1e-5) if want[col] is not None else got[col] is None


def test_local_engine_runs_with_its_threads_and_puts_torchs_setting_back(tiny_lm, tmp_path, monkeypatch):
    import torch

    local = importlib.import_module("explain.audit.engines.local")
    from explain.audit.engines import default_threads

    seen: list[int] = []
    real = local.audit_chunk
    monkeypatch.setattr(local, "audit_chunk", lambda lm, recs, s: seen.append(torch.get_num_threads()) or real(lm, recs, s))
    before = torch.get_num_threads()
    audit(RECORDS[:2], tiny_lm, out=tmp_path / "one", progress=False, chunk_size=1,
          engine_options={"threads_per_worker": 1})
    assert seen == [1, 1] and torch.get_num_threads() == before
    monkeypatch.setattr(os, "getloadavg", lambda: (1000.0, 0.0, 0.0))  # a machine busy far beyond its cores
    assert default_threads(1) == 1 and default_threads(4) == 1
    with pytest.raises(WhylmError, match="threads must be a whole number"):
        audit(RECORDS[:1], tiny_lm, out=tmp_path / "bad", progress=False, engine_options={"threads_per_worker": 0})
