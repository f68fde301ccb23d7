"""Journal: durable submissions, exact replay through a fresh core, run bookkeeping, kill -9."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.core.actions import Action, Launch, Preempt, Release
from scheduler.core.events import (
    Event,
    GpuTelemetry,
    JobCancelled,
    JobFinished,
    JobInterrupted,
    JobSubmitted,
    NodeCordoned,
    NodeLost,
    Tick,
)
from scheduler.core.model import Job
from scheduler.core.state import ClusterState
from scheduler.runtime import journal as journal_module
from scheduler.runtime.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalError,
    ReplayMismatch,
    RunConflict,
    rebuild,
)
from scheduler.runtime.views import JobState
from tests.builders import make_job, make_node, make_state

REPO = Path(__file__).resolve().parents[3]
T0 = 1_764_000_000.0


def submit(j: Journal, job: Job, key: str | None = None, now_s: float = T0) -> tuple[str, bool]:
    return j.submit(
        job.job_id,
        job.team,
        f"name of {job.job_id}",
        {"name": job.job_id, "gpus": job.worker.gpus, "nested": {"lr": 3e-4, "tags": ["a"]}},
        now_s,
        key,
        JobSubmitted(now_s, job),
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


# ------------------------------------------------------------------- schema
def test_a_new_file_gets_the_schema_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "journal.db"
    with Journal(path) as j:
        assert j._db().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert j._db().execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert j._db().execute("PRAGMA foreign_keys").fetchone()[0] == 1
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # kept in the file
    assert other.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    other.close()
    Journal(path).close()  # reopening keeps the schema and does not add a second version row
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    other.close()


def test_another_schema_version_or_another_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match=r"journal schema version \[99\], this gpuyard reads"):
        Journal(path)
    foreign = tmp_path / "other.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="not a gpuyard journal"):
        Journal(foreign)


def test_a_closed_journal_says_so(journal: Journal) -> None:
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(JournalError, match="journal is closed"):
        journal.last_seq()


# -------------------------------------------------------------- submissions
def test_a_submission_stores_spec_event_and_pending_state_together(journal: Journal) -> None:
    job = make_job("job-000001", gpus=2, team="vision", submitted_at_s=T0)
    assert submit(journal, job, key="k1") == ("job-000001", True)
    rec = journal.submission("job-000001")
    assert rec is not None
    assert (rec.team, rec.name, rec.submitted_at_s, rec.idempotency_key) == (
        "vision",
        "name of job-000001",
        T0,
        "k1",
    )
    assert rec.spec == {"name": "job-000001", "gpus": 2, "nested": {"lr": 3e-4, "tags": ["a"]}}
    assert rec.seq == journal.last_seq() == 1
    [batch] = list(journal.replay())
    assert batch.seq == 1 and batch.events == (JobSubmitted(T0, job),) and batch.actions is None
    states = journal.job_states()
    assert list(states) == ["job-000001"]
    assert (states["job-000001"].state, states["job-000001"].reason) == (
        JobState.PENDING,
        "submitted",
    )


def test_a_repeated_idempotency_key_returns_the_first_job_and_writes_nothing(
    journal: Journal,
) -> None:
    assert submit(journal, make_job("job-000001"), key="same") == ("job-000001", True)
    assert submit(journal, make_job("job-000002"), key="same") == ("job-000001", False)
    assert journal.last_seq() == 1
    assert [s.job_id for s in journal.submissions()] == ["job-000001"]
    found = journal.find_submission("default", "same")
    assert found is not None and found.job_id == "job-000001"
    assert journal.find_submission("default", "other") is None
    assert journal.find_submission("vision", "same") is None  # keys are per team
    assert submit(journal, make_job("job-000009", team="vision"), key="same") == (
        "job-000009",
        True,
    )
    assert journal.idempotency_keys() == {
        ("default", "same"): "job-000001",
        ("vision", "same"): "job-000009",
    }
    # no key: never deduplicated
    assert submit(journal, make_job("job-000003")) == ("job-000003", True)
    assert submit(journal, make_job("job-000004")) == ("job-000004", True)
    assert [s.job_id for s in journal.submissions()] == [
        "job-000001",
        "job-000009",
        "job-000003",
        "job-000004",
    ]


def test_a_reused_job_id_or_a_mismatched_event_is_refused_and_nothing_is_written(
    journal: Journal,
) -> None:
    submit(journal, make_job("job-000001"))
    with pytest.raises(ValueError, match="'job-000001' is already in the journal"):
        submit(journal, make_job("job-000001"), key="fresh")
    with pytest.raises(ValueError, match="the event is about job 'other'"):
        journal.submit(
            "job-000002", "default", "n", {}, T0, None, JobSubmitted(T0, make_job("other"))
        )
    with pytest.raises(ValueError, match="spec is not JSON"):
        journal.submit("job-000003", "default", "n", {"x": object()}, T0, None,
                       JobSubmitted(T0, make_job("job-000003")))  # fmt: skip
    assert journal.last_seq() == 1 and journal.find_submission("default", "fresh") is None
    assert len(journal.submissions()) == 1


def test_job_numbers_are_monotonic_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        assert [j.next_job_number() for _ in range(3)] == [1, 2, 3]
    with Journal(path) as j:
        assert j.next_job_number() == 4


def test_job_states_are_upserted_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        submit(j, make_job("a"))
        j.set_state("a", JobState.RUNNING, "launched on n1", T0 + 5)
        with pytest.raises(ValueError, match="job 'ghost' was never submitted"):
            j.set_state("ghost", JobState.RUNNING, "", T0)
    with Journal(path) as j:
        rec = j.job_states()["a"]
        assert (rec.state, rec.reason, rec.updated_at_s) == (
            JobState.RUNNING,
            "launched on n1",
            T0 + 5,
        )


# ----------------------------------------------------------- events/actions
def test_batches_keep_their_events_together_and_actions_are_recorded_once(
    journal: Journal,
) -> None:
    seq = journal.append([Tick(1.0), NodeCordoned(1.0, "a"), Tick(2)])
    assert seq == 3 == journal.last_seq()
    rel = Release("x", 2, "JobFinished(x)")
    journal.record_actions(seq, [rel])
    with pytest.raises(JournalError, match="actions of batch 3 are already recorded"):
        journal.record_actions(seq, [])
    with pytest.raises(JournalError, match="no batch ends at seq 2"):
        journal.record_actions(2, [])
    seq2 = journal.append([Tick(3)])
    journal.record_actions(seq2, [])
    with pytest.raises(ValueError, match="at least one event"):
        journal.append([])
    batches = list(journal.replay())
    assert [(b.seq, b.events, b.actions) for b in batches] == [
        (3, (Tick(1.0), NodeCordoned(1.0, "a"), Tick(2)), [rel]),
        (4, (Tick(3),), []),  # answered with nothing, which is not "never answered"
    ]
    assert type(batches[0].events[2].now_s) is int  # an int clock replays as an int


def test_replay_reads_many_batches_in_chunks_in_order(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "_REPLAY_CHUNK", 7)  # many chunks, some partial
    for i in range(1, 100):
        seq = journal.append([Tick(i)] * (1 + i % 3))
        journal.record_actions(seq, [Release(f"j{i}", i, "c")] * (i % 2))
    batches = list(journal.replay())
    assert len(batches) == 99
    assert [b.events[0].now_s for b in batches] == list(range(1, 100))
    assert all(len(b.events) == 1 + i % 3 for i, b in enumerate(batches, start=1))
    assert all(b.actions == [Release(f"j{i}", i, "c")] * (i % 2) for i, b in enumerate(batches, 1))


# --------------------------------------------------------- replay with a core
NODES = [
    make_node("a", gpus=4, rack="r0"),
    make_node("b", gpus=4, rack="r1"),
    make_node("c", gpus=2),
]


def fresh_core(nodes: list = NODES) -> ClusterState:  # type: ignore[type-arg]
    return make_state(list(nodes), policy="random", seed=7)


def drive(journal: Journal, core: ClusterState) -> list[list[Action]]:
    """What the service does: submissions through submit(), the rest through append()."""
    answers: list[list[Action]] = []

    def job(i: int, **kw: object) -> Job:
        return make_job(f"job-{i:06d}", submitted_at_s=T0 + i, **kw)  # type: ignore[arg-type]

    def sub(j: Job, now_s: float) -> None:
        assert submit(journal, j, now_s=now_s)[1]
        acts = core.handle(JobSubmitted(now_s, j))
        journal.record_actions(journal.last_seq(), acts)
        answers.append(acts)

    def batch(*events: Event) -> None:
        seq = journal.append(events)
        acts = core.handle(*events)
        journal.record_actions(seq, acts)
        answers.append(acts)

    sub(job(1, gpus=2, workers=2), T0 + 1)
    sub(job(2, gpus=1, est_s=100.0), T0 + 2)
    sub(job(3, gpus=4), T0 + 3)
    sub(job(4, gpu_milli=300), T0 + 4)
    sub(job(5, gpus=16), T0 + 5)  # never fits: rejected
    batch(JobFinished(T0 + 10, "job-000001"), JobCancelled(T0 + 10, "job-000002"))
    batch(
        GpuTelemetry(T0 + 11, "a", 0, 1024, 81920, 55.5, 61.0, 310.25),
        NodeCordoned(T0 + 11, "c"),
    )
    sub(job(6, gpus=2, workers=2), T0 + 12)
    batch(JobInterrupted(T0 + 13, "job-000003"))
    batch(NodeLost(T0 + 14, "b"))
    batch(Tick(T0 + 15))
    return answers


def test_replay_through_a_fresh_core_gives_the_same_actions_and_placements(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    live = fresh_core()
    with Journal(path) as j:
        answers = drive(j, live)
    flat = [a for acts in answers for a in acts]
    assert any(isinstance(a, Launch) for a in flat)
    assert any(isinstance(a, Preempt) for a in flat)
    assert {type(a).__name__ for a in flat} >= {"Launch", "Reject", "Release", "Preempt"}

    with Journal(path) as j:
        assert [b.actions for b in j.replay()] == answers
        again = fresh_core()
        assert rebuild(j, again.handle) == []  # nothing left unanswered
    assert dict(again.placements) == dict(live.placements)
    assert again.pending == live.pending
    assert again.now_s == live.now_s
    assert {k: v.code for k, v in again.verdicts.items()} == {
        k: v.code for k, v in live.verdicts.items()
    }
    assert (again.fleet.gpu_free == live.fleet.gpu_free).all()
    # and the rebuilt core goes on exactly like the live one
    assert again.handle(Tick(T0 + 20)) == live.handle(Tick(T0 + 20))


def test_a_core_that_answers_otherwise_is_named_by_seq(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        drive(j, fresh_core())
        seq_of_5 = j.submission("job-000005").seq  # type: ignore[union-attr]
    db = sqlite3.connect(path)  # the journal says the core once answered otherwise
    body = db.execute("SELECT body FROM actions WHERE seq = ?", (seq_of_5,)).fetchone()[0]
    db.execute(
        "UPDATE actions SET body = ? WHERE seq = ?",
        (body.replace("no node has", "no NODE has"), seq_of_5),
    )
    db.commit()
    db.close()
    with Journal(path) as j, pytest.raises(ReplayMismatch) as info:
        rebuild(j, fresh_core().handle)
    assert info.value.seq == seq_of_5 == 5
    assert f"the journal and the code disagree at seq {seq_of_5}: " in str(info.value)
    assert "first difference at action 0: recorded Reject(" in str(info.value)
    assert "no NODE has" in str(info.value)

    # a core built on another fleet disagrees too, at the first batch it places otherwise
    smaller = [make_node("a", gpus=4), make_node("b", gpus=2), make_node("c", gpus=2)]
    with Journal(path) as j, pytest.raises(ReplayMismatch, match=r"disagree at seq [0-9]+: "):
        rebuild(j, fresh_core(smaller).handle)


def test_a_batch_appended_but_never_answered_is_answered_on_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        live = fresh_core()
        submit(j, make_job("job-000001", gpus=1), now_s=T0)
        j.record_actions(
            j.last_seq(), live.handle(JobSubmitted(T0, make_job("job-000001", gpus=1)))
        )
        submit(j, make_job("job-000002", gpus=2), now_s=T0 + 1)  # then the service died
    with Journal(path) as j:
        core = fresh_core()
        [late] = rebuild(j, core.handle)
        assert late.seq == 2 and isinstance(late.actions[0], Launch)  # type: ignore[index]
        assert late.actions[0].job_id == "job-000002"  # type: ignore[index]
        assert [b.actions for b in j.replay()][1] == late.actions  # recorded now
        assert rebuild(j, fresh_core().handle) == []  # and checked from now on


# --------------------------------------------------------------------- runs
def test_run_bookkeeping_never_opens_two_runs_of_a_job(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as j:
        submit(j, make_job("a"))
        submit(j, make_job("b"))
        j.run_started("a", 1, "gpuyard-a-1", "raytrain", T0 + 1)
        j.run_started("b", 1, "gpuyard-b-1", "raytrain", T0 + 2)
        with pytest.raises(RunConflict, match="'gpuyard-a-1' \\(attempt 1\\) is still open"):
            j.run_started("a", 2, "gpuyard-a-2", "raytrain", T0 + 3)
        with pytest.raises(ValueError, match="job 'ghost' was never submitted"):
            j.run_started("ghost", 1, "gpuyard-ghost-1", "raytrain", T0)
        j.run_ended("a", 1, "interrupted", "node b lost", {"loss": 1.25, "bad": math.nan}, T0 + 4)
        with pytest.raises(RunConflict, match="no open run with attempt 1"):
            j.run_ended("a", 1, "failed", "again", None, T0 + 5)
        with pytest.raises(RunConflict, match="attempt 1 after attempt 1"):
            j.run_started("a", 1, "gpuyard-a-1b", "raytrain", T0 + 5)
        with pytest.raises(RunConflict, match="run name 'gpuyard-b-1' already used"):
            j.run_started("a", 2, "gpuyard-b-1", "raytrain", T0 + 5)
        j.run_started("a", 2, "gpuyard-a-2", "raytrain", T0 + 6)
    with Journal(path) as j:  # after a restart: the runs that may still be alive
        assert [(r.job_id, r.attempt, r.run_name) for r in j.open_runs()] == [
            ("b", 1, "gpuyard-b-1"),
            ("a", 2, "gpuyard-a-2"),
        ]
        first, second = j.runs("a")
        assert (first.state, first.open, first.outcome, first.detail) == (
            "ended",
            False,
            "interrupted",
            "node b lost",
        )
        assert (first.started_at_s, first.ended_at_s) == (T0 + 1, T0 + 4)
        assert first.metrics is not None and first.metrics["loss"] == 1.25
        assert math.isnan(first.metrics["bad"])
        assert second.open and second.ended_at_s is None and second.metrics is None
        j.run_ended("a", 2, "succeeded", "", {}, T0 + 9)
        assert [r.job_id for r in j.open_runs()] == ["b"]
        assert j.runs("a")[1].metrics == {}


# -------------------------------------------------------------------- crash
def _writer(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.unit.runtime.crash_writer", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_loses_no_accepted_submission(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    printed: list[str] = []
    for round_ in range(3):  # kill it three times; each restart goes on from the journal
        proc = _writer(path)
        assert proc.stdout is not None
        try:
            seen = 0
            while seen < 150:
                line = proc.stdout.readline()
                if not line:
                    raise AssertionError(f"writer died in round {round_}: {proc.stderr.read()}")  # type: ignore[union-attr]
                printed.append(line.strip())
                seen += 1
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # ids it printed after we stopped reading were accepted too; a torn last line was not
        printed.extend(x for x in out.split("\n")[:-1] if x)
    assert len(printed) == len(set(printed)) >= 450  # job numbers never reused across restarts

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    with Journal(path) as j:
        stored = {s.job_id for s in j.submissions()}
        assert set(printed) <= stored  # none lost
        states = j.job_states()
        assert all(states[i].state is JobState.PENDING for i in printed)
        replayed = [
            ev.job.job_id for b in j.replay() for ev in b.events if isinstance(ev, JobSubmitted)
        ]
        assert sorted(replayed) == sorted(stored)  # every submission has its event, and only one
