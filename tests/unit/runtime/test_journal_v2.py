"""Journal schema v2: group commit, per-team idempotency keys, snapshots and compaction, the
audit log, the v1 -> v2 upgrade, and loading 100k jobs at start-up."""

from __future__ import annotations

import copy
import json
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from scheduler.core.actions import Action, Release
from scheduler.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeCordoned,
    NodeLost,
    Tick,
)
from scheduler.core.model import Job
from scheduler.core.state import ClusterState
from scheduler.runtime.codec import encode_action, encode_event
from scheduler.runtime.journal import (
    SCHEMA_VERSION,
    AuditEntry,
    AuditRecord,
    Journal,
    JournalError,
    NewSubmission,
    ReplayMismatch,
    RunConflict,
    RunEnd,
    Snapshot,
    StateChange,
    rebuild,
)
from scheduler.runtime.views import JobState
from tests.builders import make_job, make_node, make_state

T0 = 1_764_000_000.0

# The schema of v1 journals exactly as gpuyard wrote them (frozen here: the upgrade test must
# read a real v1 file, whatever journal.py says today).
V1_DDL = """
CREATE TABLE schema_version (version INTEGER NOT NULL);

-- one row per state.handle(*events) call; n_actions is NULL until record_actions
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY,        -- seq of the batch's last event
    first_seq INTEGER NOT NULL,
    n_actions INTEGER
);

-- every event fed to the core, in the order it saw them
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,        -- 1, 2, 3, ... with no gaps
    now_s REAL,                     -- NULL only for a NaN clock (body is the truth)
    kind TEXT NOT NULL,
    job_id TEXT,
    body TEXT NOT NULL              -- codec.encode_event, as JSON
);
CREATE INDEX events_by_job ON events(job_id) WHERE job_id IS NOT NULL;

-- what the core answered to each batch, in order
CREATE TABLE actions (
    seq INTEGER NOT NULL REFERENCES batches(seq),
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT NOT NULL,
    body TEXT NOT NULL,             -- codec.encode_action, as JSON
    PRIMARY KEY (seq, idx)
) WITHOUT ROWID;
CREATE INDEX actions_by_job ON actions(job_id);

-- the user's spec as submitted
CREATE TABLE submissions (
    job_id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    submitted_at_s REAL NOT NULL,
    idempotency_key TEXT UNIQUE,
    seq INTEGER NOT NULL UNIQUE REFERENCES events(seq)
);

-- each Ray Train run launched for a job, and how it ended
CREATE TABLE runs (
    job_id TEXT NOT NULL REFERENCES submissions(job_id),
    attempt INTEGER NOT NULL,
    run_name TEXT NOT NULL UNIQUE,
    runner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'ended')),
    started_at_s REAL NOT NULL,
    ended_at_s REAL,
    outcome TEXT,
    detail TEXT,
    metrics_json TEXT,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX runs_open ON runs(job_id) WHERE state = 'started';

-- the service's view of each job (what the API shows), latest only
CREATE TABLE job_state (
    job_id TEXT PRIMARY KEY REFERENCES submissions(job_id),
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    updated_at_s REAL NOT NULL
);

-- monotonic counters (job numbers), never reused even when a submission is not made
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) VALUES ('job', 0);
"""


def job(i: int, team: str = "default", **kw: Any) -> Job:
    return make_job(f"job-{i:06d}", team=team, submitted_at_s=T0 + i, **kw)


def new_sub(j: Job, key: str | None = None, at: float = T0, **spec: Any) -> NewSubmission:
    return NewSubmission(
        j.job_id,
        j.team,
        f"name of {j.job_id}",
        {"name": j.job_id, "gpus": j.worker.gpus, **spec},
        at,
        key,
        JobSubmitted(at, j),
    )


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, through a connection of its own (what is committed)."""
    db = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}
    finally:
        db.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    j = Journal(path)
    yield j
    j.close()


# ------------------------------------------------------------------- schema
def test_a_new_file_has_the_v2_schema(journal: Journal, path: Path) -> None:
    assert SCHEMA_VERSION == 2
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= {"audit", "snapshots", "submissions", "events", "batches", "counters"}
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"audit_by_time", "audit_by_team"} <= indexes
    assert db.execute("PRAGMA foreign_key_list(submissions)").fetchall() == []  # events compact
    unique = [
        [c[2] for c in db.execute(f"PRAGMA index_info('{name}')")]
        for _, name, is_unique, *_ in db.execute("PRAGMA index_list(submissions)")
        if is_unique
    ]
    assert ["team", "idempotency_key"] in unique and ["idempotency_key"] not in unique
    assert dict(db.execute("SELECT name, value FROM counters")) == {"job": 0, "compacted": 0}
    db.close()


def test_another_busy_timeout_can_be_asked_for(path: Path) -> None:
    with Journal(path, busy_timeout_ms=200) as j:
        assert j._db().execute("PRAGMA busy_timeout").fetchone()[0] == 200
    with pytest.raises(ValueError, match="busy_timeout_ms must be >= 0"):
        Journal(path, busy_timeout_ms=-1)


# ------------------------------------------------------------- group commit
def test_commit_writes_batch_submissions_states_audit_and_counter_together(
    journal: Journal,
) -> None:
    a, b = job(1, team="vision"), job(2, team="nlp", gpus=64)
    sa, sb = new_sub(a, "key-a"), new_sub(b)
    events: list[Event] = [Tick(T0), sa.event, NodeCordoned(T0, "n1"), sb.event]
    actions: list[Action] = [Release("job-000000", T0, "finished")]
    seq = journal.commit(
        events,
        actions,
        submissions=[sa, sb],
        states=[StateChange(b.job_id, JobState.REJECTED, "never fits", T0 + 0.5)],
        audit=[
            AuditEntry(T0, "alice", "vision", "submit", a.job_id, "ok", ""),
            AuditEntry(T0, "bob", "nlp", "submit", b.job_id, "ok", "64 GPUs"),
        ],
        job_counter=2,
    )
    assert seq == 4 == journal.last_seq()
    [batch] = list(journal.replay())
    assert batch == (4, tuple(events), actions)
    subs = journal.submissions()
    assert [(s.job_id, s.team, s.seq, s.idempotency_key) for s in subs] == [
        (a.job_id, "vision", 2, "key-a"),
        (b.job_id, "nlp", 4, None),
    ]
    assert subs[0].spec == {"name": a.job_id, "gpus": 1} and subs[0].submitted_at_s == T0
    states = journal.job_states()
    assert (states[a.job_id].state, states[a.job_id].reason) == (JobState.PENDING, "submitted")
    assert (states[b.job_id].state, states[b.job_id].reason) == (JobState.REJECTED, "never fits")
    assert states[b.job_id].updated_at_s == T0 + 0.5
    assert [(r.principal, r.team, r.target, r.detail) for r in journal.audit()] == [
        ("alice", "vision", a.job_id, ""),
        ("bob", "nlp", b.job_id, "64 GPUs"),
    ]
    assert journal.job_counter() == 2
    # the next batch goes on after it; a batch the core answered with nothing is [] not None
    assert journal.commit([JobFinished(T0 + 1, a.job_id)], []) == 5
    assert [b.actions for b in journal.replay(after_seq=4)] == [[]]


def test_commit_without_events_writes_no_batch(journal: Journal, path: Path) -> None:
    before = dump(path)
    assert journal.commit([], []) == 0  # nothing at all: nothing written
    assert dump(path) == before
    audit = AuditEntry(T0, "admin", None, "cordon", "n1", "ok", "maintenance")
    assert journal.commit([], [], audit=[audit]) == 0
    s = new_sub(job(1))
    assert journal.commit([s.event], [], submissions=[s]) == 1
    assert (
        journal.commit([], [], states=[StateChange(s.job_id, JobState.RUNNING, "on n2", T0)]) == 1
    )
    assert journal.commit([], [], job_counter=5) == 1
    assert dump(path)["batches"] == [(1, 1, 0)]
    assert journal.job_states()[s.job_id].state is JobState.RUNNING
    assert journal.audit() == [AuditRecord(*[getattr(audit, f) for f in _AUDIT_FIELDS], id=1)]
    assert journal.job_counter() == 5


_AUDIT_FIELDS = ("at_s", "principal", "team", "action", "target", "outcome", "detail")


def test_the_job_counter_is_raised_never_lowered(journal: Journal) -> None:
    journal.commit([], [], job_counter=10)
    journal.commit([], [], job_counter=3)
    assert journal.job_counter() == 10
    assert journal.next_job_number() == 11  # the v1 way goes on from there
    journal.commit([], [], job_counter=11)
    assert journal.job_counter() == 11


def test_a_broken_commit_is_refused_and_writes_nothing(journal: Journal, path: Path) -> None:
    first = new_sub(job(1), key="k1")
    journal.commit([first.event], [], submissions=[first])
    before = dump(path)
    two, three = job(2), job(3)
    s2 = new_sub(two, key="k2")
    wrong_job = NewSubmission(two.job_id, "default", "n", {}, T0, None, JobSubmitted(T0, three))
    wrong_team = NewSubmission(two.job_id, "nlp", "n", {}, T0, None, s2.event)
    again = new_sub(job(1))  # job id of the first one
    same_key = new_sub(job(4), key="k1")
    bad_spec = new_sub(two, key=None, blob=object())
    nan_sub = NewSubmission(two.job_id, "default", "n", {}, float("nan"), None, s2.event)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("is not among the batch's events", dict(events=[Tick(T0)], submissions=[s2])),
        ("its event is about job 'job-000003'", dict(events=[s2.event], submissions=[wrong_job])),
        (
            "of team 'nlp': its event is about job",
            dict(events=[s2.event], submissions=[wrong_team]),
        ),
        ("the job id is given twice", dict(events=[s2.event, s2.event], submissions=[s2, s2])),
        (
            "idempotency key 'k2' of team 'default' is given twice",
            dict(
                events=[s2.event, new_sub(three).event],
                submissions=[s2, new_sub(three, key="k2")],
            ),
        ),
        (
            "job id 'job-000001' is already in the journal",
            dict(events=[s2.event, again.event], submissions=[s2, again]),
        ),
        (
            "idempotency key 'k1' of team 'default' is already used by job 'job-000001'",
            dict(events=[same_key.event], submissions=[same_key]),
        ),
        (
            r"state change for job\(s\) \['ghost'\] never submitted",
            dict(
                events=[s2.event],
                submissions=[s2],
                states=[
                    StateChange(two.job_id, JobState.RUNNING, "", T0),
                    StateChange("ghost", JobState.RUNNING, "", T0),
                ],
            ),
        ),
        (
            "state of job job-000001: 'BOGUS' is not a JobState",
            dict(events=[], states=[StateChange(first.job_id, "BOGUS", "", T0)]),  # type: ignore[arg-type]
        ),
        (
            "must be a number of seconds",
            dict(events=[], states=[StateChange(first.job_id, JobState.RUNNING, "", float("nan"))]),
        ),
        ("must be a number of seconds", dict(events=[s2.event], submissions=[nan_sub])),
        ("spec is not JSON", dict(events=[s2.event], submissions=[bad_spec])),
        ("1 action\\(s\\) without events", dict(events=[], actions=[Release("x", T0, "c")])),
        ("job_counter must be an int >= 0", dict(events=[Tick(T0)], job_counter=-1)),
        (
            "an audit row is incomplete",
            dict(
                events=[s2.event],
                submissions=[s2],
                audit=[AuditEntry(T0, None, None, "submit", "", "ok", "")],  # type: ignore[arg-type]
            ),
        ),
    ]
    for match, kw in cases:
        events = kw.pop("events")
        actions = kw.pop("actions", [])
        with pytest.raises(ValueError, match=match):
            journal.commit(events, actions, **kw)
        assert dump(path) == before, match
        assert not journal._db().in_transaction
    # and the journal goes on as if nothing happened
    assert journal.commit([s2.event], [], submissions=[s2]) == 2


def test_idempotency_keys_live_in_their_team_s_namespace(journal: Journal) -> None:
    sv, sn = new_sub(job(1, team="vision"), key="same"), new_sub(job(2, team="nlp"), key="same")
    journal.commit([sv.event, sn.event], [], submissions=[sv, sn])
    found = journal.find_submission("vision", "same")
    assert found is not None and (found.job_id, found.team, found.seq) == (
        "job-000001",
        "vision",
        1,
    )
    assert journal.find_submission("nlp", "same").job_id == "job-000002"  # type: ignore[union-attr]
    assert journal.find_submission("ops", "same") is None
    # the v1 submit() scopes its key by team too
    assert journal.submit(
        "job-000003", "vision", "n", {}, T0, "same", JobSubmitted(T0, job(3, team="vision"))
    ) == ("job-000001", False)
    assert journal.submit(
        "job-000003", "ops", "n", {}, T0, "same", JobSubmitted(T0, job(3, team="ops"))
    ) == ("job-000003", True)
    assert journal.idempotency_keys() == {
        ("vision", "same"): "job-000001",
        ("nlp", "same"): "job-000002",
        ("ops", "same"): "job-000003",
    }


def test_runs_by_job_reads_every_run_at_once(journal: Journal) -> None:
    subs = [new_sub(job(i)) for i in (1, 2, 3)]
    journal.commit([s.event for s in subs], [], submissions=subs)
    journal.run_started("job-000002", 1, "r-2-1", "raytrain", T0)
    journal.run_ended("job-000002", 1, "preempted", "", {"loss": 0.5}, T0 + 1)
    journal.run_started("job-000002", 2, "r-2-2", "raytrain", T0 + 2)
    journal.run_started("job-000001", 1, "r-1-1", "raytrain", T0 + 3)
    by_job = journal.runs_by_job()
    assert list(by_job) == ["job-000001", "job-000002"]  # never run: absent
    assert by_job == {j: journal.runs(j) for j in by_job}
    assert [(r.attempt, r.open, r.metrics) for r in by_job["job-000002"]] == [
        (1, False, {"loss": 0.5}),
        (2, True, None),
    ]


def test_a_run_s_end_rides_in_the_batch_that_tells_the_core(journal: Journal, path: Path) -> None:
    subs = [new_sub(job(i)) for i in (1, 2)]
    journal.commit([s.event for s in subs], [], submissions=subs)
    journal.run_started("job-000001", 1, "r-1-1", "raytrain", T0)
    journal.run_started("job-000002", 1, "r-2-1", "raytrain", T0)
    before = dump(path)
    late = [RunEnd("job-000001", 1, "succeeded", "", {"loss": float("nan")}, T0 + 9)]
    with pytest.raises(
        RunConflict, match=r"no open run to end for \(job, attempt\) \[\('job-000002', 2\)\]"
    ):
        journal.commit(
            [JobFinished(T0 + 9, "job-000001")],
            [Release("job-000001", T0 + 9, "finished")],
            runs_ended=[*late, RunEnd("job-000002", 2, "failed", "", None, T0 + 9)],
        )
    with pytest.raises(ValueError, match="run 1 of job job-000001 is ended twice"):
        journal.commit([Tick(T0 + 9)], [], runs_ended=late * 2)
    assert dump(path) == before  # neither the batch nor the other run's end
    seq = journal.commit(
        [JobFinished(T0 + 9, "job-000001")],
        [Release("job-000001", T0 + 9, "finished")],
        states=[StateChange("job-000001", JobState.SUCCEEDED, "finished", T0 + 9)],
        runs_ended=late,
    )
    assert seq == 3
    [run] = journal.runs("job-000001")
    assert (run.open, run.outcome, run.ended_at_s) == (False, "succeeded", T0 + 9)
    assert run.metrics is not None and math.isnan(run.metrics["loss"])
    assert [r.job_id for r in journal.open_runs()] == ["job-000002"]
    assert journal.commit([], [], runs_ended=[RunEnd("job-000002", 1, "lost", "gone", {}, T0)]) == 3
    assert journal.open_runs() == []


# ---------------------------------------------------------------- snapshots
def _ticks(journal: Journal, n: int, start: float = T0) -> list[int]:
    return [journal.commit([Tick(start + i)], [Release(f"j{i}", start + i, "c")]) for i in range(n)]


def test_snapshots_are_stored_compressed_and_compact_the_history_behind_them(
    journal: Journal, path: Path
) -> None:
    s = new_sub(job(1), key="k")
    journal.commit(
        [s.event],
        [],
        submissions=[s],
        audit=[AuditEntry(T0, "p", "default", "submit", s.job_id, "ok", "")],
        job_counter=1,
    )
    journal.run_started(s.job_id, 1, "r1", "raytrain", T0)
    seqs = [1, *_ticks(journal, 5)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    kept_rows = {t: dump(path)[t] for t in ("submissions", "runs", "job_state", "audit")}
    big = json.dumps({"core": [{"job": f"job-{i:06d}", "gpu": "äöü"} for i in range(60_000)]})
    assert len(big) > 2_000_000

    journal.save_snapshot(2, big, T0 + 2)  # the only one: history up to it goes
    assert journal.latest_snapshot() == Snapshot(2, big, T0 + 2)
    assert [b.seq for b in journal.replay(after_seq=2)] == [3, 4, 5, 6]
    stored = sqlite3.connect(path).execute("SELECT length(body) FROM snapshots").fetchone()[0]
    assert stored < len(big) / 5  # zlib

    journal.save_snapshot(4, '{"at": 4}', T0 + 4)  # two kept: nothing more to compact
    assert journal.compacted_seq() == 2
    journal.save_snapshot(6, '{"at": 6}', T0 + 6)  # 2 dropped, history up to 4 goes
    assert [(x.seq, x.body) for x in journal.snapshots()] == [(6, '{"at": 6}'), (4, '{"at": 4}')]
    assert journal.compacted_seq() == 4 and journal.last_seq() == 6
    assert [b.seq for b in journal.replay(after_seq=4)] == [5, 6]  # kept for the check
    rows = dump(path)
    assert [r[0] for r in rows["batches"]] == [5, 6]
    assert [r[0] for r in rows["events"]] == [5, 6]
    assert {r[0] for r in rows["actions"]} == {5, 6}
    assert {t: rows[t] for t in kept_rows} == kept_rows  # never compacted
    assert journal.job_counter() == 1
    with pytest.raises(JournalError, match=r"up to seq 4 were compacted.*\[4, 6\]"):
        list(journal.replay())
    with pytest.raises(JournalError, match="cannot replay after seq 3"):
        list(journal.replay(after_seq=3))
    # a snapshot at the same seq replaces it
    journal.save_snapshot(6, '{"at": "6 again"}', T0 + 7)
    assert journal.latest_snapshot() == Snapshot(6, '{"at": "6 again"}', T0 + 7)
    assert len(journal.snapshots()) == 2


def test_a_snapshot_must_follow_a_whole_batch_of_this_journal(journal: Journal) -> None:
    assert journal.latest_snapshot() is None and journal.snapshots() == []
    journal.save_snapshot(0, "{}", T0)  # an empty journal has one boundary: 0
    journal.commit([Tick(T0), Tick(T0 + 1), Tick(T0 + 2)], [])  # seq 3
    with pytest.raises(ValueError, match="seq 2 is inside a batch"):
        journal.save_snapshot(2, "{}", T0)
    with pytest.raises(ValueError, match=r"seq 4 is not a batch of this journal \(last seq 3\)"):
        journal.save_snapshot(4, "{}", T0)
    journal.save_snapshot(3, "{}", T0, keep=1)
    with pytest.raises(ValueError, match="older than the newest snapshot"):
        journal.save_snapshot(0, "{}", T0)
    with pytest.raises(ValueError, match="keep must be an int >= 1"):
        journal.save_snapshot(3, "{}", T0, keep=0)
    with pytest.raises(ValueError, match="a snapshot body is a JSON text"):
        journal.save_snapshot(3, b"{}", T0)  # type: ignore[arg-type]
    assert [x.seq for x in journal.snapshots()] == [3]


def test_seqs_go_on_after_everything_was_compacted(path: Path) -> None:
    with Journal(path) as j:
        _ticks(j, 3)
        j.save_snapshot(3, "{}", T0, keep=1)
        assert dump(path)["events"] == [] and j.last_seq() == 3
        s = new_sub(job(1))
        assert j.commit([s.event], [], submissions=[s]) == 4  # not 1 again
        assert j.append([Tick(T0 + 9)]) == 5  # the v1 way too
    with Journal(path) as j:
        assert j.last_seq() == 5
        assert [b.seq for b in j.replay(after_seq=3)] == [4, 5]
        assert j.submission("job-000001").seq == 4  # type: ignore[union-attr]


# --------------------------------------------------- restart from a snapshot
NODES = [
    make_node("a", gpus=4, rack="r0"),
    make_node("b", gpus=4, rack="r1"),
    make_node("c", gpus=2),
]


def fresh_core() -> ClusterState:
    return make_state(list(NODES), policy="random", seed=7)


def test_rebuild_after_a_snapshot_replays_and_checks_only_the_tail(path: Path) -> None:
    live = fresh_core()

    def step(j: Journal, events: list[Event], subs: Sequence[NewSubmission] = ()) -> int:
        return j.commit(events, live.handle(*events), submissions=subs)

    with Journal(path) as j:
        a, b, c = (new_sub(job(i, gpus=g), at=T0 + i) for i, g in ((1, 2), (2, 4), (3, 4)))
        d = new_sub(job(4, gpus=1), at=T0 + 6)
        step(j, [a.event, b.event], [a, b])
        step(j, [c.event], [c])
        cut = step(j, [JobFinished(T0 + 5, a.job_id)])
        # deep copies stand in for restoring the service's snapshot of the core
        restored, restored_too = copy.deepcopy(live), copy.deepcopy(live)
        step(j, [d.event, NodeCordoned(T0 + 6, "c")], [d])
        step(j, [JobCancelled(T0 + 7, b.job_id), NodeLost(T0 + 8, "b")])
        j.save_snapshot(cut, '{"opaque": true}', T0 + 5)
        assert j.compacted_seq() == cut
    with Journal(path) as j:
        snap = j.latest_snapshot()
        assert snap is not None and snap.seq == cut
        assert rebuild(j, restored.handle, after_seq=snap.seq) == []
        assert dict(restored.placements) == dict(live.placements)
        assert restored.pending == live.pending and restored.now_s == live.now_s
        assert restored.handle(Tick(T0 + 20)) == live.handle(Tick(T0 + 20))
        with pytest.raises(JournalError, match="compacted behind a snapshot"):
            rebuild(j, fresh_core().handle)  # the history before the snapshot is gone
    db = sqlite3.connect(path)  # the journal says the core once answered otherwise
    seq, body = db.execute(
        "SELECT seq, body FROM actions WHERE seq > ? ORDER BY seq, idx LIMIT 1", (cut,)
    ).fetchone()
    db.execute(
        "UPDATE actions SET body = ? WHERE seq = ? AND idx = 0",
        (body.replace('"cause": "', '"cause": "not '), seq),
    )
    db.commit()
    db.close()
    with Journal(path) as j, pytest.raises(ReplayMismatch) as info:
        rebuild(j, restored_too.handle, after_seq=cut)
    assert info.value.seq == seq


# -------------------------------------------------------------------- audit
def test_the_audit_log_filters_by_time_and_team_and_keeps_the_newest(journal: Journal) -> None:
    rows = [
        AuditEntry(T0 + 3, "bob", "nlp", "cancel", "job-000002", "403", "not your job"),
        AuditEntry(T0 + 1, "alice", "vision", "submit", "job-000001", "ok", ""),
        AuditEntry(T0 + 2, "admin", None, "cordon", "n1", "ok", "maintenance"),
        AuditEntry(T0 + 4, "alice", "vision", "read", "", "ok", ""),
        AuditEntry(T0 + 4, "carol", "vision", "cancel", "job-000001", "ok", ""),
    ]
    journal.commit([], [], audit=rows[:2])
    journal.commit([], [], audit=rows[2:])
    every = journal.audit()
    assert [r.principal for r in every] == ["alice", "admin", "bob", "alice", "carol"]  # by time
    assert [r.id for r in every] == [2, 3, 1, 4, 5]
    assert isinstance(every[0], AuditEntry) and every[1].team is None
    assert every[2] == AuditRecord(*[getattr(rows[0], f) for f in _AUDIT_FIELDS], id=1)
    assert [r.principal for r in journal.audit(since_s=T0 + 3)] == ["bob", "alice", "carol"]
    assert [r.id for r in journal.audit(team="vision")] == [2, 4, 5]
    assert [r.id for r in journal.audit(since_s=T0 + 2, team="vision")] == [4, 5]
    assert [r.id for r in journal.audit(limit=2)] == [4, 5]  # the newest two, oldest first
    assert [r.id for r in journal.audit(team="vision", limit=1)] == [5]
    assert journal.audit(limit=0) == [] and journal.audit(team="ops") == []
    with pytest.raises(ValueError, match="audit limit must be an int >= 0"):
        journal.audit(limit=-1)


# ---------------------------------------------------------------- upgrades
def make_v1(path: Path) -> None:
    """A v1 journal as gpuyard 1 left it: two submissions (one with a key), a batch whose
    actions were recorded and one whose were not, runs, states, a job counter."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(V1_DDL)
    a, b = job(1, team="vision"), job(2, team="nlp")
    events = [JobSubmitted(T0, a), JobSubmitted(T0 + 1, b), Tick(T0 + 2), NodeCordoned(T0 + 3, "c")]
    with db:
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        for seq, ev in enumerate(events, start=1):
            db.execute(
                "INSERT INTO events (seq, now_s, kind, job_id, body) VALUES (?, ?, ?, ?, ?)",
                (
                    seq,
                    ev.now_s,
                    type(ev).__name__,
                    getattr(getattr(ev, "job", None), "job_id", None),
                    json.dumps(encode_event(ev)),
                ),
            )
        db.executemany(
            "INSERT INTO batches (seq, first_seq, n_actions) VALUES (?, ?, ?)",
            [(1, 1, 1), (2, 2, 0), (4, 3, None)],
        )
        rel = Release(a.job_id, T0, "finished")
        db.execute(
            "INSERT INTO actions VALUES (1, 0, 'Release', ?, ?)",
            (a.job_id, json.dumps(encode_action(rel))),
        )
        db.executemany(
            "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (a.job_id, "vision", "A", '{"name": "A", "gpus": 1}', T0, "key-1", 1),
                (b.job_id, "nlp", "B", '{"name": "B"}', T0 + 1, None, 2),
            ],
        )
        db.executemany(
            "INSERT INTO runs VALUES (?, ?, ?, 'raytrain', ?, ?, ?, ?, ?, ?)",
            [
                (a.job_id, 1, "r-a-1", "ended", T0, T0 + 1, "interrupted", "lost", '{"loss": 1.5}'),
                (a.job_id, 2, "r-a-2", "started", T0 + 2, None, None, None, None),
            ],
        )
        db.executemany(
            "INSERT INTO job_state VALUES (?, ?, ?, ?)",
            [(a.job_id, "RUNNING", "on a", T0 + 2), (b.job_id, "PENDING", "submitted", T0 + 1)],
        )
        db.execute("UPDATE counters SET value = 7 WHERE name = 'job'")
    db.close()


def test_a_v1_file_is_upgraded_in_place_keeping_every_row(path: Path) -> None:
    make_v1(path)
    before = dump(path)
    assert before["schema_version"] == [(1,)] and len(before["submissions"]) == 2
    with Journal(path) as j:
        assert [s.job_id for s in j.submissions()] == ["job-000001", "job-000002"]
        assert j.find_submission("vision", "key-1").seq == 1  # type: ignore[union-attr]
        assert j.job_counter() == 7 and j.last_seq() == 4
        assert [(b.seq, len(b.events), b.actions) for b in j.replay()] == [
            (1, 1, [Release("job-000001", T0, "finished")]),
            (2, 1, []),
            (4, 2, None),  # never answered: rebuild will answer it
        ]
        assert [r.run_name for r in j.open_runs()] == ["r-a-2"]
        assert j.runs_by_job()["job-000001"][0].metrics == {"loss": 1.5}
    after = dump(path)
    assert after["schema_version"] == [(SCHEMA_VERSION,)]
    for table, rows in before.items():
        if table == "schema_version":
            continue
        if table == "counters":
            assert after[table] == sorted([*rows, ("compacted", 0)], key=repr)
        elif table == "runs":  # v2 adds where each run was placed (unknown for v1 rows)
            assert after[table] == [(*r, None) for r in rows]
        else:
            assert after[table] == rows, table
    assert after["audit"] == [] and after["snapshots"] == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA foreign_key_list(submissions)").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with Journal(path) as j:  # reopening changes nothing, and v2 works on it
        assert dump(path) == after
        s = new_sub(job(3, team="ops"), key="key-1")  # another team's equal key: accepted
        assert j.commit([s.event], [], submissions=[s]) == 5
        with pytest.raises(ValueError, match="already used by job 'job-000001'"):
            t = new_sub(job(4, team="vision"), key="key-1")
            j.commit([t.event], [], submissions=[t])
        with pytest.raises(ValueError, match="never submitted"):  # foreign keys still on
            j.set_state("ghost", JobState.RUNNING, "", T0)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            j._db().execute("INSERT INTO job_state VALUES ('ghost', 'RUNNING', '', 0)")


def test_a_v1_file_the_upgrade_cannot_vouch_for_is_left_as_it_was(path: Path) -> None:
    make_v1(path)
    db = sqlite3.connect(path)  # foreign keys off (the default): a state of no job
    with db:
        db.execute("INSERT INTO job_state VALUES ('ghost', 'RUNNING', '', 0)")
    db.close()
    before = dump(path)
    with pytest.raises(JournalError, match=r"from schema v1 to v2 failed \(nothing was changed\)"):
        Journal(path)
    assert dump(path) == before


def test_a_file_that_is_not_an_sqlite_database_is_refused(path: Path) -> None:
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    with pytest.raises(JournalError, match=r"journal\.db: not a gpuyard journal \(not an SQLite"):
        Journal(path)


def test_a_damaged_v1_file_is_refused_unchanged(path: Path) -> None:
    make_v1(path)
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE submissions")
    db.close()
    before = dump(path)
    with pytest.raises(JournalError, match=r"v1 to v2 failed \(nothing was changed\).*no such"):
        Journal(path)
    assert dump(path) == before


def test_a_newer_schema_is_refused_and_left_alone(path: Path) -> None:
    Journal(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE schema_version SET version = 3")
    db.close()
    before = dump(path)
    with pytest.raises(
        JournalError, match=r"journal\.db: journal schema version \[3\].*written by a newer gpuyard"
    ):
        Journal(path)
    assert dump(path) == before


# -------------------------------------------------------------- performance
def test_group_commit_of_32_submissions_reaches_thousands_per_second(journal: Journal) -> None:
    assert journal._db().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    calls, per = 64, 32
    batches = []
    for c in range(calls):
        subs = [new_sub(job(c * per + i, team=f"t{i % 4}"), key=f"k{c}-{i}") for i in range(per)]
        audit = [AuditEntry(T0, "p", s.team, "submit", s.job_id, "ok", "") for s in subs]
        batches.append((subs, audit))
    t0 = time.perf_counter()
    for c, (subs, audit) in enumerate(batches):
        journal.commit(
            [s.event for s in subs], [], submissions=subs, audit=audit, job_counter=(c + 1) * per
        )
    dt = time.perf_counter() - t0
    rate = calls * per / dt
    print(
        f"\ngroup commit: {rate:,.0f} submissions/s ({dt / calls * 1000:.2f} ms per commit of {per})"
    )
    assert len(journal.submissions()) == calls * per and journal.job_counter() == calls * per
    assert len(list(journal.replay())) == calls
    assert rate > 500  # a floor far below what one fsync per 32 gives on any disk


def test_100k_submissions_load_at_start_up_in_one_query_each(path: Path) -> None:
    n, chunk = 100_000, 2_000
    t0 = time.perf_counter()
    with Journal(path) as j:
        for lo in range(0, n, chunk):
            subs = [
                new_sub(job(i, team=f"team-{i % 7}"), key=f"key-{i}" if i % 2 else None)
                for i in range(lo, lo + chunk)
            ]
            states = [
                StateChange(s.job_id, JobState.SUCCEEDED, "done", T0 + 1)
                for s in subs
                if int(s.job_id[4:]) % 5 == 0
            ]
            j.commit(
                [s.event for s in subs], [], submissions=subs, states=states, job_counter=lo + chunk
            )
        db = j._db()  # runs: every 10th job ran twice (written raw: run_started is per call)
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO runs (job_id, attempt, run_name, runner, state, started_at_s) "
            "VALUES (?, ?, ?, 'raytrain', ?, ?)",
            [
                (f"job-{i:06d}", a, f"r-{i}-{a}", "ended" if a == 1 else "started", T0 + a)
                for i in range(0, n, 10)
                for a in (1, 2)
            ],
        )
        db.execute("COMMIT")
    built = time.perf_counter() - t0
    with Journal(path) as j:
        t0 = time.perf_counter()
        subs_ = j.submissions()
        states_ = j.job_states()
        runs_ = j.runs_by_job()
        keys_ = j.idempotency_keys()
        load = time.perf_counter() - t0
    print(f"\n100k jobs: built in {built:.1f} s, loaded in {load:.2f} s")
    assert [s.seq for s in subs_] == list(range(1, n + 1))
    assert subs_[12_345].job_id == "job-012345" and subs_[12_345].team == "team-4"
    assert len(states_) == n
    assert sum(s.state is JobState.SUCCEEDED for s in states_.values()) == n // 5
    assert states_["job-000010"].state is JobState.SUCCEEDED
    assert states_["job-000011"].state is JobState.PENDING
    assert len(runs_) == n // 10 and [r.attempt for r in runs_["job-099990"]] == [1, 2]
    assert len(keys_) == n // 2 and keys_[("team-4", "key-12345")] == "job-012345"
