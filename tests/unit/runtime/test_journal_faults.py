"""Journal failures: a full disk (a real 2 MiB tmpfs, and ``max_page_count``), the file
locked by another process, a large group commit as one transaction, ``kill -9`` mid-commit.

Each failed write must leave nothing of itself in the file, keep the connection usable and
leave every earlier commit readable; once the cause is gone, writes work again."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.core.events import Tick
from scheduler.runtime.journal import (
    AuditEntry,
    Journal,
    JournalWriteError,
    NewSubmission,
    StateChange,
)
from scheduler.runtime.views import JobState
from tests.unit.runtime.test_journal_v2 import T0, dump, job, new_sub

REPO = Path(__file__).resolve().parents[3]


def counts(j: Journal) -> dict[str, int]:
    """Rows per table, through the journal's own connection."""
    db = j._db()
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: db.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}


def group(first: int, n: int = 32, pad: int = 400) -> list[NewSubmission]:
    return [
        new_sub(job(i, team=f"t{i % 3}"), key=f"key-{i}", pad="x" * pad)
        for i in range(first, first + n)
    ]


def commit_group(j: Journal, subs: list[NewSubmission]) -> int:
    audit = [AuditEntry(T0, "p", s.team, "submit", s.job_id, "ok", "") for s in subs]
    number = int(subs[-1].job_id[4:])
    return j.commit([s.event for s in subs], [], submissions=subs, audit=audit, job_counter=number)


def fill(j: Journal, first: int = 1, most: int = 5_000) -> tuple[list[str], JournalWriteError]:
    """Commit groups of 32 until the disk is full; check that the failed one wrote nothing.
    Returns the ids committed and the error."""
    done: list[str] = []
    for _ in range(most):
        subs = group(first + len(done))
        before, last = counts(j), j.last_seq()
        try:
            commit_group(j, subs)
        except JournalWriteError as e:
            assert not j._db().in_transaction
            assert counts(j) == before and j.last_seq() == last  # nothing of it
            assert dump(j.path)["submissions"].__len__() == before["submissions"]  # on disk too
            return done, e
        done.extend(s.job_id for s in subs)
    raise AssertionError(f"the disk never filled after {len(done)} submissions")


def check_readable(j: Journal, ids: list[str]) -> None:
    assert [s.job_id for s in j.submissions()] == ids
    batches = list(j.replay())
    assert [len(b.events) for b in batches] == [32] * (len(ids) // 32)
    assert [e.job.job_id for b in batches for e in b.events] == ids  # type: ignore[attr-defined]
    assert j._db().execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert j.job_counter() == int(ids[-1][4:]) and len(j.job_states()) == len(ids)


# ---------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs (we run as root in CI; elsewhere this test is skipped)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs at {mnt}: {e}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {mnt}: {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_fails_the_commit_whole_and_writes_resume_once_space_is_freed(
    small_disk: Path,
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 512 * 1024)
    path = small_disk / "journal.db"
    j = Journal(path)
    try:
        ids, err = fill(j)
        assert len(ids) >= 32 * 5
        assert (err.reason, err.code) == ("disk full", "SQLITE_FULL")
        assert str(err).startswith(f"{path}: commit of 32 event(s)")
        assert "nothing of it was written" in str(err)
        check_readable(j, ids)  # every earlier commit, and the connection still works
        with pytest.raises(JournalWriteError, match="disk full"):  # still full: fails again
            commit_group(j, group(len(ids) + 1))
        with pytest.raises(JournalWriteError, match="disk full"):  # the v1 writes too
            j.append([Tick(T0)] * 2_000)
        filler.unlink()
        more = group(len(ids) + 1)
        commit_group(j, more)
        ids += [s.job_id for s in more]
        check_readable(j, ids)
    finally:
        j.close()
    with Journal(path) as j:  # and from a fresh start
        check_readable(j, ids)


def test_max_page_count_stands_in_for_a_full_disk(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.db") as j:
        first = group(1)
        commit_group(j, first)
        pages = j._db().execute("PRAGMA page_count").fetchone()[0]
        j._db().execute(f"PRAGMA max_page_count = {pages + 60}")
        ids, err = fill(j, first=33)
        ids = [s.job_id for s in first] + ids
        assert len(ids) > 32 and err.reason == "disk full"
        check_readable(j, ids)
        j._db().execute("PRAGMA max_page_count = 1073741823")
        more = group(len(ids) + 1)
        commit_group(j, more)
        check_readable(j, ids + [s.job_id for s in more])


# ------------------------------------------------------------------ locked
_HOLDER = """
import select, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
select.select([sys.stdin], [], [], 30)  # hold it until told (at most 30 s)
db.execute("ROLLBACK")
print("released", flush=True)
"""


def test_a_lock_held_by_another_process_fails_writes_within_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path, busy_timeout_ms=200) as j:
        commit_group(j, group(1))
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            ready, _, _ = select.select([holder.stdout], [], [], 30)
            assert ready and holder.stdout.readline().strip() == "locked", holder.stderr.read()  # type: ignore[union-attr]
            before = dump(path)  # readers are not blocked (WAL)
            t0 = time.perf_counter()
            with pytest.raises(JournalWriteError) as info:
                commit_group(j, group(33))
            waited = time.perf_counter() - t0
            assert info.value.reason == "database is locked by another process"
            assert info.value.code == "SQLITE_BUSY" and "locked" in str(info.value)
            assert 0.15 < waited < 3.0  # it waited busy_timeout_ms (200 ms), not 5 s
            assert dump(path) == before and not j._db().in_transaction
            assert len(j.submissions()) == 32  # reads go on
            for write in (
                lambda: j.next_job_number(),
                lambda: j.append([Tick(T0)]),
                lambda: j.save_snapshot(32, "{}", T0),
                lambda: j.commit(
                    [], [], states=[StateChange("job-000001", JobState.RUNNING, "", T0)]
                ),
            ):
                with pytest.raises(JournalWriteError, match="database is locked"):
                    write()
            with pytest.raises(
                JournalWriteError, match=r"cannot open the journal: database is locked"
            ):
                Journal(path, busy_timeout_ms=50)
            assert dump(path) == before
            holder.stdin.write("go\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            assert holder.wait(timeout=30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.communicate(timeout=30)
        commit_group(j, group(33))  # the lock is gone: writes work again
        check_readable(j, [f"job-{i:06d}" for i in range(1, 65)])


# --------------------------------------------------------- one transaction
def test_500_submissions_are_one_transaction_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        existing = new_sub(job(1), key="taken")
        j.commit([existing.event], [], submissions=[existing])
        before = dump(path)
        subs = group(2, n=500, pad=50)
        traced: list[str] = []
        nameless = AuditEntry(T0, None, None, "x", "", "ok", "")  # type: ignore[arg-type]
        j._db().set_trace_callback(traced.append)
        broken: list[tuple[str, list[NewSubmission], dict[str, object]]] = [
            ("is already in the journal", [*subs[:-1], new_sub(job(1))], {}),
            ("already used by job 'job-000001'", [*subs[:-1], new_sub(job(999), key="taken")], {}),
            ("never submitted", subs, {"states": [StateChange("ghost", JobState.FAILED, "", T0)]}),
            (
                "audit row is incomplete",
                subs,
                {"audit": [*[AuditEntry(T0, "p", None, "x", "", "ok", "")] * 499, nameless]},
            ),
        ]
        for match, batch, kw in broken:
            traced.clear()
            with pytest.raises(ValueError, match=match):
                j.commit([s.event for s in batch], [], submissions=batch, **kw)  # type: ignore[arg-type]
            # it failed inside the transaction, after inserting rows, and was rolled back
            assert traced[0] == "BEGIN IMMEDIATE" and "ROLLBACK" in traced, match
            assert any(t.startswith("INSERT INTO submissions") for t in traced)
            assert "COMMIT" not in traced
            assert dump(path) == before, match  # nothing of it, seen from another connection
        j._db().set_trace_callback(None)
        seq = j.commit([s.event for s in subs], [], submissions=subs, job_counter=501)
        assert seq == 501
        [_, big] = list(j.replay())
        assert big.seq == 501 and len(big.events) == 500 and big.actions == []
        assert len(j.submissions()) == 501 and len(j.idempotency_keys()) == 501
        assert dump(path)["batches"] == [(1, 1, 0), (501, 2, 0)]


# ------------------------------------------------------------------ kill -9
_GROUP_WRITER = """
import sys
from pathlib import Path
from scheduler.runtime.journal import Journal
from tests.unit.runtime.test_journal_faults import commit_group, group
j = Journal(Path(sys.argv[1]))
while True:
    subs = group(j.job_counter() + 1, pad=100)
    seq = commit_group(j, subs)
    print(seq, subs[0].job_id, flush=True)
"""


def test_kill_9_during_group_commits_leaves_whole_batches_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    printed: list[tuple[int, str]] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", _GROUP_WRITER, str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        try:
            for _ in range(40):
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"writer died in round {round_}: {proc.stderr.read()}")  # type: ignore[union-attr]
                seq, first = line.split()
                printed.append((int(seq), first))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        for line in out.split("\n")[:-1]:  # printed after we stopped reading (not a torn one)
            seq, first = line.split()
            printed.append((int(seq), first))
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    with Journal(path) as j:
        batches = list(j.replay())
        assert all(len(b.events) == 32 for b in batches)  # never half a group
        assert {b.seq for b in batches} >= {seq for seq, _ in printed}  # none lost
        subs = j.submissions()
        assert len(subs) == 32 * len(batches) == len(j.job_states()) == len(j.audit(limit=10**6))
        assert [s.job_id for s in subs] == [f"job-{i:06d}" for i in range(1, len(subs) + 1)]
        assert j.job_counter() == len(subs)  # the counter moved with its batch, never ahead
