"""The live service's journal: every accepted job and every core event, on SQLite.

The core is deterministic (same events in, same actions out), so the journal keeps the
*inputs*: each batch of events fed to one ``state.handle(*events)`` call, in order, with the
actions the core answered. A restarted service builds a fresh core, feeds it every batch
again (``rebuild``) and gets the exact state back; the recorded actions are the check that
the code still agrees with the journal.

The protocol the service follows (each step is one committed transaction):

1. a submission: ``submit(...)`` (spec + its ``JobSubmitted`` + state PENDING, atomically)
   before the user hears "accepted"; then ``handle`` that event and
   ``record_actions(last_seq(), actions)``;
   any other batch: ``seq = append(events)``, ``handle``, ``record_actions(seq, actions)``;
2. actions are recorded *before* the driver acts on them;
3. ``run_started`` before a Ray Train run is launched (so a crash right after the launch
   still leaves the run on record, and a job never gets two open runs); ``run_ended`` when it
   has stopped;
4. on restart: ``rebuild(journal, fresh_core.handle)``; then ``open_runs()`` are the runs
   that may still be alive (look them up by ``run_name`` before launching anything new).

Times are seconds since the Unix epoch (``now_s`` of the events; ``*_at_s`` columns).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from scheduler.core.actions import Action
from scheduler.core.events import Event, JobSubmitted
from scheduler.runtime.codec import (
    decode_action,
    decode_event,
    encode_action,
    encode_event,
    event_job_id,
)
from scheduler.runtime.views import JobState

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5_000
_REPLAY_CHUNK = 512  # batches read per query while replaying

_SCHEMA = """
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


class JournalError(RuntimeError):
    """The journal cannot be used as asked: wrong schema, broken protocol, corrupt row."""


class ReplayMismatch(JournalError):
    """Replaying batch ``seq`` through the core gave other actions than the journal holds:
    the journal and the code disagree (the core changed, or it is not deterministic)."""

    def __init__(
        self, path: Path, seq: int, recorded: Sequence[Action], replayed: Sequence[Action]
    ) -> None:
        self.seq = seq
        self.recorded = list(recorded)
        self.replayed = list(replayed)
        first = next(
            (i for i, (r, p) in enumerate(zip(recorded, replayed, strict=False)) if r != p),
            min(len(recorded), len(replayed)),
        )
        at_r = _short(recorded[first]) if first < len(recorded) else "nothing"
        at_p = _short(replayed[first]) if first < len(replayed) else "nothing"
        super().__init__(
            f"{path}: the journal and the code disagree at seq {seq}: the journal recorded "
            f"{len(recorded)} action(s) for that batch, replaying it now gives "
            f"{len(replayed)}; first difference at action {first}: recorded {at_r}, "
            f"replayed {at_p}"
        )


class RunConflict(JournalError):
    """A run would be started twice, or ended when it is not open."""


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, one by one (``executescript`` would commit the open
    transaction first, and creating the schema must be one transaction)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement at the end of the script: {buf!r}")


def _short(x: object, most: int = 400) -> str:
    s = repr(x)
    return s if len(s) <= most else s[: most - 3] + "..."


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """A job as the user submitted it. ``seq`` is its ``JobSubmitted`` event's seq."""

    job_id: str
    team: str
    name: str
    spec: dict[str, Any]
    submitted_at_s: float
    idempotency_key: str | None
    seq: int


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One Ray Train run of a job. ``state`` is ``"started"`` until ``run_ended``; then
    ``ended_at_s``, ``outcome`` (the service's word: succeeded, failed, interrupted,
    preempted, lost...), ``detail`` and ``metrics`` (last reported) are set."""

    job_id: str
    attempt: int
    run_name: str
    runner: str
    state: str
    started_at_s: float
    ended_at_s: float | None
    outcome: str | None
    detail: str | None
    metrics: dict[str, float] | None

    @property
    def open(self) -> bool:
        return self.state == "started"


@dataclass(frozen=True, slots=True)
class JobStateRecord:
    job_id: str
    state: JobState
    reason: str
    updated_at_s: float


class Batch(NamedTuple):
    """One ``state.handle(*events)`` call: its seq (the seq of its last event), the events in
    order, and the actions the core answered, or None if none were recorded (the service
    stopped between ``append`` and ``record_actions``; it has not acted on that batch)."""

    seq: int
    events: tuple[Event, ...]
    actions: list[Action] | None


# metrics may hold NaN or inf (a diverged loss); JSON cannot, so they travel as strings
def _metrics_json(metrics: Mapping[str, float]) -> str:
    out: dict[str, float | str] = {}
    for k, v in metrics.items():
        f = float(v)
        out[str(k)] = f if math.isfinite(f) else repr(f)  # 'nan', 'inf', '-inf'
    return json.dumps(out, allow_nan=False)


def _metrics_of(text: str) -> dict[str, float]:
    raw = json.loads(text)
    return {str(k): float(v) for k, v in raw.items()}  # float('nan') / float('inf') parse


def _real(x: float) -> float | None:
    """A float for a REAL column (SQLite stores inf, but turns NaN into NULL)."""
    return None if math.isnan(x) else float(x)


class Journal:
    """The service's journal on one SQLite file (created with its schema on first open).

    Every write method is one transaction, committed (and, with ``synchronous=FULL``, on
    disk) before it returns. It is meant for one thread at a time, the service's actor: a
    lock makes concurrent calls safe but serialises them, and ``replay`` reads in chunks, so
    writing between its batches (as ``rebuild`` does) is allowed. One service process
    writes a journal; a second process on the same file would only wait (``busy_timeout``),
    not corrupt it, but two schedulers sharing one journal is not a supported setup.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: no implicit transactions; each write method opens its own
        # BEGIN IMMEDIATE ... COMMIT. check_same_thread=False: a Ray actor may call from a
        # thread other than the one that opened it; the lock keeps calls one at a time.
        conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=0
        )
        try:
            self._configure(conn)
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    # ------------------------------------------------------------------ setup
    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(
                f"{self.path}: SQLite would not switch to WAL mode (got {mode!r}); put the "
                "journal on a local file system"
            )
        # FULL, not NORMAL: in WAL mode NORMAL survives a process kill but may lose the last
        # commits on power loss or an OS crash; a submission we answered "accepted" to, and a
        # run we recorded as launched, must survive those too, so every commit syncs the WAL.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not names:
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif "schema_version" not in names:
                raise JournalError(
                    f"{self.path}: not a gpuyard journal (tables {sorted(names)}, no "
                    "schema_version); point the service at a new file or at its journal"
                )
            else:
                rows = conn.execute("SELECT version FROM schema_version").fetchall()
                if len(rows) != 1 or rows[0][0] != SCHEMA_VERSION:
                    found = [r[0] for r in rows]
                    raise JournalError(
                        f"{self.path}: journal schema version {found}, this gpuyard reads "
                        f"version {SCHEMA_VERSION}"
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"{self.path}: journal is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        last: int = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        return last + 1

    def _insert_events(self, conn: sqlite3.Connection, events: Sequence[Event]) -> int:
        first = seq = self._next_seq(conn)
        for ev in events:
            body = json.dumps(encode_event(ev), allow_nan=False)
            conn.execute(
                "INSERT INTO events (seq, now_s, kind, job_id, body) VALUES (?, ?, ?, ?, ?)",
                (seq, _real(ev.now_s), type(ev).__name__, event_job_id(ev), body),
            )
            seq += 1
        last = seq - 1
        conn.execute("INSERT INTO batches (seq, first_seq) VALUES (?, ?)", (last, first))
        return last

    # ---------------------------------------------------------- submissions
    def submit(
        self,
        job_id: str,
        team: str,
        name: str,
        spec: Mapping[str, Any],
        submitted_at_s: float,
        idempotency_key: str | None,
        event: JobSubmitted,
    ) -> tuple[str, bool]:
        """Journal a submission: the spec, its ``JobSubmitted`` event (a batch of its own,
        whose seq ``last_seq()`` gives right after) and the job's state PENDING, in one
        transaction. Returns ``(job_id, True)``; if ``idempotency_key`` was seen before,
        returns ``(that submission's job id, False)`` and writes nothing. Raises
        ``ValueError`` if the event is not about ``job_id``/``team``, the id is taken, or the
        spec is not JSON."""
        if event.job.job_id != job_id or event.job.team != team:
            raise ValueError(
                f"submit({job_id!r}, team {team!r}): the event is about job "
                f"{event.job.job_id!r} of team {event.job.team!r}"
            )
        try:
            spec_json = json.dumps(dict(spec))
        except (TypeError, ValueError) as e:
            raise ValueError(f"job {job_id}: spec is not JSON: {e}") from e
        with self._write() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT job_id FROM submissions WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return str(row[0]), False
            if conn.execute("SELECT 1 FROM submissions WHERE job_id = ?", (job_id,)).fetchone():
                raise ValueError(f"job id {job_id!r} is already in the journal")
            seq = self._insert_events(conn, [event])
            conn.execute(
                "INSERT INTO submissions (job_id, team, name, spec_json, submitted_at_s, "
                "idempotency_key, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, team, name, spec_json, float(submitted_at_s), idempotency_key, seq),
            )
            conn.execute(
                "INSERT INTO job_state (job_id, state, reason, updated_at_s) VALUES (?, ?, ?, ?)",
                (job_id, JobState.PENDING.value, "submitted", float(submitted_at_s)),
            )
        return job_id, True

    def job_for_key(self, idempotency_key: str) -> str | None:
        """The job submitted with this idempotency key, or None."""
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT job_id FROM submissions WHERE idempotency_key = ?", (idempotency_key,)
                )
                .fetchone()
            )
        return None if row is None else str(row[0])

    def next_job_number(self) -> int:
        """1, 2, 3, ... across restarts (committed before it returns, so never handed out
        twice); a number whose submission is never made is a gap, not reused."""
        with self._write() as conn:
            conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'job'")
            n: int = conn.execute("SELECT value FROM counters WHERE name = 'job'").fetchone()[0]
        return n

    def submission(self, job_id: str) -> SubmissionRecord | None:
        with self._lock:
            row = (
                self._db()
                .execute(f"SELECT {_SUBMISSION_COLS} FROM submissions WHERE job_id = ?", (job_id,))
                .fetchone()
            )
        return None if row is None else _submission(row)

    def submissions(self) -> list[SubmissionRecord]:
        """Every submission, in the order they were accepted."""
        with self._lock:
            rows = (
                self._db()
                .execute(f"SELECT {_SUBMISSION_COLS} FROM submissions ORDER BY seq")
                .fetchall()
            )
        return [_submission(r) for r in rows]

    # ---------------------------------------------------------------- events
    def append(self, events: Sequence[Event]) -> int:
        """Journal one batch (the events of one ``state.handle(*events)`` call, in order);
        returns its seq (its last event's) for ``record_actions``."""
        if not events:
            raise ValueError("append needs at least one event (a batch is one handle() call)")
        with self._write() as conn:
            return self._insert_events(conn, events)

    def record_actions(self, seq: int, actions: Sequence[Action]) -> None:
        """Record what the core answered to batch ``seq`` (possibly nothing), once."""
        with self._write() as conn:
            row = conn.execute("SELECT n_actions FROM batches WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                raise JournalError(f"{self.path}: no batch ends at seq {seq}")
            if row[0] is not None:
                raise JournalError(f"{self.path}: actions of batch {seq} are already recorded")
            for idx, a in enumerate(actions):
                conn.execute(
                    "INSERT INTO actions (seq, idx, kind, job_id, body) VALUES (?, ?, ?, ?, ?)",
                    (
                        seq,
                        idx,
                        type(a).__name__,
                        a.job_id,
                        json.dumps(encode_action(a), allow_nan=False),
                    ),
                )
            conn.execute("UPDATE batches SET n_actions = ? WHERE seq = ?", (len(actions), seq))

    def last_seq(self) -> int:
        """The seq of the last journaled batch (0 when empty)."""
        with self._lock:
            last: int = (
                self._db().execute("SELECT COALESCE(MAX(seq), 0) FROM batches").fetchone()[0]
            )
        return last

    def replay(self) -> Iterator[Batch]:
        """Every batch in seq order, with its recorded actions (None if never recorded).
        Reads ``_REPLAY_CHUNK`` batches per snapshot; holds no lock between yields."""
        after = 0
        while True:
            with self._read() as conn:
                heads = conn.execute(
                    "SELECT seq, first_seq, n_actions FROM batches WHERE seq > ? ORDER BY seq "
                    "LIMIT ?",
                    (after, _REPLAY_CHUNK),
                ).fetchall()
                if not heads:
                    return
                lo, hi = heads[0][1], heads[-1][0]
                event_rows = conn.execute(
                    "SELECT seq, body FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq", (lo, hi)
                ).fetchall()
                action_rows = conn.execute(
                    "SELECT seq, body FROM actions WHERE seq BETWEEN ? AND ? ORDER BY seq, idx",
                    (lo, hi),
                ).fetchall()
            events = {int(s): self._decode(s, b, decode_event) for s, b in event_rows}
            acts: dict[int, list[Action]] = {}
            for s, b in action_rows:
                acts.setdefault(int(s), []).append(self._decode(s, b, decode_action))
            for seq, first, n_actions in heads:
                try:
                    batch_events = tuple(events[s] for s in range(first, seq + 1))
                except KeyError as e:
                    raise JournalError(
                        f"{self.path}: batch {seq} misses event seq {e.args[0]}"
                    ) from None
                recorded = None if n_actions is None else acts.get(seq, [])
                if recorded is not None and len(recorded) != n_actions:
                    raise JournalError(
                        f"{self.path}: batch {seq} should have {n_actions} action(s), "
                        f"has {len(recorded)}"
                    )
                yield Batch(seq, batch_events, recorded)
            after = heads[-1][0]

    def _decode(self, seq: int, body: str, decode: Callable[[dict[str, Any]], T]) -> T:
        try:
            return decode(json.loads(body))
        except ValueError as e:
            raise JournalError(f"{self.path}: cannot read seq {seq}: {e}") from e

    # ------------------------------------------------------------------ runs
    def run_started(
        self, job_id: str, attempt: int, run_name: str, runner: str, now_s: float
    ) -> None:
        """Record a run as started; call it *before* launching the run. Raises
        ``RunConflict`` if the job has an open run or ``attempt`` is not above its past
        attempts (a run is never started twice), ``ValueError`` if the job is unknown."""
        with self._write() as conn:
            if self._unknown(conn, job_id):
                raise ValueError(f"run_started: job {job_id!r} was never submitted")
            open_ = conn.execute(
                "SELECT attempt, run_name FROM runs WHERE job_id = ? AND state = 'started'",
                (job_id,),
            ).fetchone()
            if open_ is not None:
                raise RunConflict(
                    f"job {job_id}: run {open_[1]!r} (attempt {open_[0]}) is still open; "
                    f"end it before starting attempt {attempt}"
                )
            top = conn.execute("SELECT MAX(attempt) FROM runs WHERE job_id = ?", (job_id,))
            last = top.fetchone()[0]
            if last is not None and attempt <= last:
                raise RunConflict(f"job {job_id}: attempt {attempt} after attempt {last}")
            try:
                conn.execute(
                    "INSERT INTO runs (job_id, attempt, run_name, runner, state, started_at_s) "
                    "VALUES (?, ?, ?, ?, 'started', ?)",
                    (job_id, attempt, run_name, runner, float(now_s)),
                )
            except sqlite3.IntegrityError as e:
                raise RunConflict(f"job {job_id}: run name {run_name!r} already used") from e

    def run_ended(
        self,
        job_id: str,
        attempt: int,
        outcome: str,
        detail: str,
        metrics: Mapping[str, float] | None,
        now_s: float,
    ) -> None:
        """Record how an open run ended. Raises ``RunConflict`` if it is not open."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET state = 'ended', ended_at_s = ?, outcome = ?, detail = ?, "
                "metrics_json = ? WHERE job_id = ? AND attempt = ? AND state = 'started'",
                (
                    float(now_s),
                    outcome,
                    detail,
                    None if metrics is None else _metrics_json(metrics),
                    job_id,
                    attempt,
                ),
            )
            if cur.rowcount != 1:
                raise RunConflict(f"job {job_id}: no open run with attempt {attempt} to end")

    def open_runs(self) -> list[RunRecord]:
        """Runs started and not ended (after a restart: runs that may still be alive)."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_RUN_COLS} FROM runs WHERE state = 'started' "
                    "ORDER BY started_at_s, job_id, attempt"
                )
                .fetchall()
            )
        return [_run(r) for r in rows]

    def runs(self, job_id: str) -> list[RunRecord]:
        """The job's runs by attempt."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {_RUN_COLS} FROM runs WHERE job_id = ? ORDER BY attempt", (job_id,)
                )
                .fetchall()
            )
        return [_run(r) for r in rows]

    # ----------------------------------------------------------- job states
    def set_state(self, job_id: str, state: JobState, reason: str, now_s: float) -> None:
        """The service's latest word on a job (what the API shows). ``ValueError`` if the
        job was never submitted or ``state`` is not a ``JobState``."""
        value = JobState(state).value
        with self._write() as conn:
            if self._unknown(conn, job_id):
                raise ValueError(f"set_state: job {job_id!r} was never submitted")
            conn.execute(
                "INSERT INTO job_state (job_id, state, reason, updated_at_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, "
                "reason = excluded.reason, updated_at_s = excluded.updated_at_s",
                (job_id, value, reason, float(now_s)),
            )

    def job_states(self) -> dict[str, JobStateRecord]:
        """Every job's latest state, by job id (sorted)."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    "SELECT job_id, state, reason, updated_at_s FROM job_state ORDER BY job_id"
                )
                .fetchall()
            )
        return {r[0]: JobStateRecord(r[0], JobState(r[1]), r[2], r[3]) for r in rows}

    @staticmethod
    def _unknown(conn: sqlite3.Connection, job_id: str) -> bool:
        row = conn.execute("SELECT 1 FROM submissions WHERE job_id = ?", (job_id,)).fetchone()
        return row is None

    # ------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close the file (idempotent). Every committed write is already on disk."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_SUBMISSION_COLS = "job_id, team, name, spec_json, submitted_at_s, idempotency_key, seq"
_RUN_COLS = (
    "job_id, attempt, run_name, runner, state, started_at_s, ended_at_s, outcome, detail, "
    "metrics_json"
)


def _submission(row: tuple[Any, ...]) -> SubmissionRecord:
    job_id, team, name, spec_json, submitted_at_s, key, seq = row
    return SubmissionRecord(job_id, team, name, json.loads(spec_json), submitted_at_s, key, seq)


def _run(row: tuple[Any, ...]) -> RunRecord:
    job_id, attempt, run_name, runner, state, started, ended, outcome, detail, metrics = row
    return RunRecord(
        job_id,
        attempt,
        run_name,
        runner,
        state,
        started,
        ended,
        outcome,
        detail,
        None if metrics is None else _metrics_of(metrics),
    )


def rebuild(journal: Journal, handle: Callable[..., Sequence[Action]]) -> list[Batch]:
    """Feed every journaled batch, in order, to ``handle`` (a *fresh* core's
    ``ClusterState.handle``, built with the same nodes, policies and config as before) and
    check that it answers exactly the recorded actions; raises ``ReplayMismatch`` naming the
    first seq where it does not. A batch whose actions were never recorded (the service
    stopped between ``append`` and ``record_actions``) is answered now: its actions are
    recorded here and returned, since the driver has not acted on them yet. Returns those
    batches (usually none, at most the last one) with their new actions."""
    unanswered: list[Batch] = []
    for batch in journal.replay():
        try:
            replayed = list(handle(*batch.events))
        except Exception as e:
            e.add_note(f"while replaying batch seq {batch.seq} of journal {journal.path}")
            raise
        if batch.actions is None:
            journal.record_actions(batch.seq, replayed)
            unanswered.append(Batch(batch.seq, batch.events, replayed))
        elif replayed != batch.actions:
            raise ReplayMismatch(journal.path, batch.seq, batch.actions, replayed)
    return unanswered
