"""Audits against what a careless user and a racing or dying process do (issue 20, "Audits").

One test per item: two runs on one folder, another dataset or a user's folder as ``--out``, an
input edited between runs, damaged and linked part files, non-UTF-8 input, an unwritable folder, and
``kill -9`` of a processes-engine audit (real processes: no worker may survive its parent).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dashboard.cli import main
from explain import WhylmError
from explain.audit.api import audit, summarise
from explain.audit.store import read_audit

ROOT = Path(__file__).resolve().parents[2]
RECS = [{"id": f"q{i}", "prompt": f"Question {i}: the capital of France is", "response": " Paris" + "." * (i % 3)}
        for i in range(10)]


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def ids_in(out: Path) -> list[str]:
    return sorted(pd.read_parquet(out)["id"].tolist())


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ two runs, one folder
HOLDER = """
import sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from tiny_models import make_tiny_lm
from explain.audit.api import audit
def hold(cost):
    print("holding", flush=True)
    time.sleep(120)
audit({src!r}, make_tiny_lm(), out={out!r}, progress=False, max_new_tokens=4, on_estimate=hold)
"""


def start_holder(src: Path, out: Path) -> subprocess.Popen:
    """A real audit process that has locked ``out`` and sits in its estimate (until killed)."""
    code = HOLDER.format(root=str(ROOT), tests=str(ROOT / "tests" / "support"), src=str(src), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until the child holds the lock (or dies)
    assert line.strip() == "holding", proc.stderr.read()[-2000:]
    return proc


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_first_then_takes_over_its_lock(
        tiny_dir, tiny_lm, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", RECS[:4])
    out = tmp_path / "out"
    proc = start_holder(src, out)
    try:
        code = main(["audit", str(src), "--out", str(out), "--model", tiny_dir, "--no-progress"])
        err = one_line(capsys.readouterr().err)
        assert code == 2
        assert f"is being written by another audit (pid {proc.pid} on " in err and "started" in err
        with pytest.raises(WhylmError, match=f"pid {proc.pid}"):  # the Python API too
            audit(src, tiny_lm, out=out, progress=False, max_new_tokens=4)
        assert not list(out.glob("part-*.parquet"))  # the refused runs wrote nothing
    finally:
        proc.kill()
        proc.wait()
    # the holder died (SIGKILL) with its lock: the next run takes it over and ends with every id once
    s = audit(src, tiny_lm, out=out, progress=False, max_new_tokens=4)
    assert s.processed == 4 and ids_in(out) == [r["id"] for r in RECS[:4]]


def test_a_folder_two_unlocked_runs_wrote_twice_is_repaired_to_every_id_once(tiny_lm, tmp_path):
    from explain.audit.store import PartStore

    out = tmp_path / "out"
    audit(RECS[:3], tiny_lm, out=out, progress=False)
    store = PartStore(out)
    store.open({}, [], resume=True)
    store.commit(store.read().to_pylist())  # what a second run without the lock appended
    store.close()
    assert len(pd.read_parquet(out)) == 6
    s = audit(RECS[:3], tiny_lm, out=out, progress=False)
    assert s.processed == 0 and any("3 row(s) repeated an id" in n for n in s.notes), s.notes
    assert ids_in(out) == ["q0", "q1", "q2"] and sum(s.by_verdict.values()) == 3


def test_another_dataset_into_the_same_folder_is_refused_not_merged(tiny_lm, tmp_path):
    out = tmp_path / "out"
    audit(RECS[:3], tiny_lm, out=out, progress=False)
    other = [{"id": f"other{i}", "prompt": "Smoking causes", "response": " cancer."} for i in range(2)]
    with pytest.raises(WhylmError, match=r"holds an audit of 3 other records .*choose another output folder"):
        audit(other, tiny_lm, out=out, progress=False)
    assert ids_in(out) == ["q0", "q1", "q2"]


def test_a_users_non_empty_folder_is_never_written_into(tiny_dir, tmp_path, capsys):
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    src = write_jsonl(tmp_path / "in.jsonl", RECS[:2])
    assert main(["audit", str(src), "--out", str(mine), "--model", tiny_dir, "--no-progress"]) == 2
    assert "is a non-empty folder that is not an audit" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


# ------------------------------------------------------------------ input changed between runs
def test_resume_after_the_input_changed_reaudits_changed_records_and_drops_deleted_ones(tiny_lm, tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out"
    first = audit(write_jsonl(src, RECS[:6]), tiny_lm, out=out, progress=False, chunk_size=2)  # interrupted here
    assert first.processed == 6
    old = pd.read_parquet(out).set_index("id")
    edited = [dict(r) for r in RECS if r["id"] != "q4"]  # q4 deleted, q2 changed, q6..q9 new
    edited[2]["response"] = " Lyon"
    s = audit(write_jsonl(src, edited), tiny_lm, out=out, progress=False, chunk_size=2)
    assert (s.records, s.skipped, s.processed) == (9, 4, 5)  # q2 again + q6..q9
    assert any("1 record(s) changed since they were audited" in n for n in s.notes), s.notes
    assert any("1 record(s) audited earlier are no longer in the input" in n for n in s.notes), s.notes
    df = pd.read_parquet(out).set_index("id")
    assert sorted(df.index) == sorted(r["id"] for r in edited)  # every id once, q4 gone
    assert sum(s.by_verdict.values()) == 9 and sum(summarise(out).by_verdict.values()) == 9
    assert df.loc["q2", "response"] == "Lyon"  # the response as signals() scored it (stripped)
    assert df.loc["q2", "score.mean_neg_logprob"] != old.loc["q2", "score.mean_neg_logprob"]
    assert df.loc["q0", "score.mean_neg_logprob"] == old.loc["q0", "score.mean_neg_logprob"]  # untouched
    kept_aside = pd.read_parquet(out / "_replaced")
    assert sorted(kept_aside["id"]) == ["q2", "q4"]  # the old rows are moved aside, not destroyed


def test_no_message_suggests_a_resume_flag_that_does_not_exist(tiny_dir, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", RECS[:1])
    out = tmp_path / "out"
    assert main(["audit", str(src), "--out", str(out), "--model", tiny_dir, "--no-progress"]) == 0
    capsys.readouterr()
    for extra in (["--seed", "3"], ["--no-resume"]):
        assert main(["audit", str(src), "--out", str(out), "--model", tiny_dir, *extra]) == 2
        err = one_line(capsys.readouterr().err)
        assert "--resume" not in err.replace("--no-resume", ""), err


# ------------------------------------------------------------------ damaged and linked parts
def test_truncated_and_empty_parts_are_named_moved_aside_and_reaudited(tiny_lm, tmp_path):
    out = tmp_path / "out"
    audit(RECS[:4], tiny_lm, out=out, progress=False, chunk_size=1)
    parts = sorted(out.glob("part-*.parquet"))
    whole = parts[1].read_bytes()
    parts[1].write_bytes(whole[: len(whole) // 2])
    parts[2].write_bytes(b"")
    with pytest.raises(WhylmError, match=rf"part {parts[1].name} is damaged .*run the same audit again"):
        summarise(out)
    with pytest.raises(WhylmError, match=rf"part {parts[1].name} is damaged"):
        read_audit(out)
    s = audit(RECS[:4], tiny_lm, out=out, progress=False, chunk_size=1)
    assert s.processed == 2 and s.skipped == 2
    assert any(f"part {parts[1].name} is damaged" in n and "moved to _damaged/" in n for n in s.notes), s.notes
    assert any(f"part {parts[2].name} is empty" in n for n in s.notes), s.notes
    assert (out / "_damaged" / parts[1].name).read_bytes() == whole[: len(whole) // 2]  # kept, not deleted
    assert ids_in(out) == ["q0", "q1", "q2", "q3"] and summarise(out).records == 4


def test_a_linked_part_or_folder_is_never_read(tiny_lm, tmp_path):
    out = tmp_path / "data" / "audit"
    audit(RECS[:2], tiny_lm, out=out, progress=False)
    secret = tmp_path / "elsewhere.parquet"
    pd.DataFrame({"id": ["SECRET"], "prompt": ["outside file"]}).to_parquet(secret)
    link = out / "part-999999-link.parquet"
    link.symlink_to(secret)
    with pytest.raises(WhylmError, match="part-999999-link.parquet is not a regular file inside the folder"):
        read_audit(out)
    folder_link = tmp_path / "data" / "linked"
    folder_link.symlink_to(out, target_is_directory=True)
    with pytest.raises(WhylmError, match="is a symbolic link"):
        read_audit(folder_link)
    s = audit(RECS[:2], tiny_lm, out=out, progress=False)
    assert s.processed == 0 and any("part-999999-link.parquet is not a regular file" in n for n in s.notes)
    assert (out / "_damaged" / "part-999999-link.parquet").is_symlink() and secret.exists()  # moved as a link
    assert "SECRET" not in read_audit(out)["id"].tolist() and ids_in(out) == ["q0", "q1"]


# ------------------------------------------------------------------ bad input, checked before any work
def test_non_utf8_input_is_one_line_before_any_work(tiny_dir, tmp_path, capsys):
    for name, line in (("latin1.jsonl", 2), ("latin1.csv", 3)):  # the csv's line 1 is its header
        src = tmp_path / name
        body = ('{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n' if name.endswith("jsonl")
                else 'prompt,response\nok,fine\ncaf\xe9,x\n')
        src.write_bytes(body.encode("latin-1"))
        out = tmp_path / f"out-{name}"
        assert main(["audit", str(src), "--out", str(out), "--model", "/no/such/model"]) == 2
        err = one_line(capsys.readouterr().err)
        assert f"'{src}' is not UTF-8 text (line {line} has byte 0xe9)" in err, err
        assert not out.exists()


def test_an_unwritable_out_folder_is_one_line_before_any_work(tiny_dir, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", RECS[:1])
    targets = [Path("/proc/whylm-audit-out")]  # no one, root included, may create a folder there
    if os.geteuid() != 0:  # root writes through permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        targets.append(ro)
    for out in targets:
        assert main(["audit", str(src), "--out", str(out), "--model", "/no/such/model"]) == 2
        err = one_line(capsys.readouterr().err)
        assert f"cannot write to the audit folder '{out}'" in err, err


# ------------------------------------------------------------------ kill -9 leaves nothing behind
KILLED = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from explain.audit.api import audit
audit({src!r}, {model!r}, out={out!r}, engine="processes", workers=2, chunk_size=1, progress=False,
      max_new_tokens=4, engine_options={{"threads_per_worker": 1}})
"""


def descendants(pid: int) -> set[int]:
    """Every living (not zombie) process below ``pid``, read from /proc."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parent_of[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_processes_audit_leaves_no_worker_behind(tiny_dir, tmp_path):
    recs = [{"id": f"k{i}", "prompt": "The capital of France is" + " Paris" * (i % 5)} for i in range(400)]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    out = tmp_path / "out"
    code = KILLED.format(root=str(ROOT), tests=str(ROOT / "tests" / "support"), src=str(src), model=tiny_dir, out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob("part-*.parquet")):  # the workers are up and committing
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the audit committed nothing in 180 s"
            time.sleep(0.1)
        children = descendants(proc.pid)
        assert len(children) >= 2, children  # two workers (and the resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [p for p in children if alive(p)]
    for p in survivors:  # never leave them to the next test, whatever the verdict
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"{len(survivors)} process(es) outlived the killed audit by 10 s"
