"""The live service's journal on SQLite: jobs, core batches, runs, snapshots, the audit log.

What it keeps, and for how long:

* **never compacted**: each submission (the spec as submitted, its team, its idempotency key
  in the team's namespace), each job's latest state (what the API shows), each run of a job
  (fenced by its attempt number), the job counter, and the audit log (who did what to which
  target, with which outcome);
* **the core's inputs**: batches of events, each batch one ``state.handle(*events)`` call,
  with the actions the core answered; the core is deterministic, so they are an exact check;
* **snapshots of the core** (an opaque JSON text made by the service, stored zlib-compressed)
  taken right after a batch; saving one keeps the newest few and deletes ("compacts") the
  batches up to the oldest one kept, so a start-up reads one snapshot plus a short tail.

The protocol the service follows (schema v2, group commit; each step is one transaction):

1. Whatever arrived together (submissions, cancels, observations, ticks), validated at the
   edge, becomes ONE batch. The service runs its core on it in memory, then calls
   ``commit(events, actions, submissions=..., states=..., audit=..., job_counter=...)``: the
   batch with the actions answered, the new submissions (state PENDING), the job-state
   changes, the audit rows and the job counter, all or nothing. Only once it has returned
   does a user hear "accepted" and the driver act on the actions. If it raises
   ``JournalWriteError`` nothing of it was written: the service rolls its core back (restore
   ``latest_snapshot()``, feed it ``replay(snapshot.seq)``) and answers 503.
2. ``run_started`` before a run is launched (a crash right after the launch still leaves the
   run on record, and a job never gets two open runs); once it has stopped, its end rides
   in the batch that tells the core (``commit(..., runs_ended=[RunEnd(...)])``), or is
   recorded on its own (``run_ended``).
3. Now and then ``save_snapshot(seq, body, now)``: the core's state right after batch
   ``seq``; the batches up to the oldest kept snapshot are compacted.
4. On restart: restore the core from ``latest_snapshot()`` (a fresh core when there is none)
   and feed it the tail: ``rebuild(journal, core.handle, after_seq=snapshot.seq)`` also checks
   the recorded actions. ``submission_rows()`` (specs left as JSON), ``job_states()``,
   ``run_summaries()`` and ``job_counter()`` restore the service's maps, one query each;
   ``open_runs()`` are the runs that may still be alive (look them up by ``run_name`` before
   launching anything new).
5. Offline (``gpuyard journal verify``): restore the *oldest* kept snapshot and ``rebuild``
   after its seq: replaying to the same actions is the determinism check.

The v1 protocol (``next_job_number``; ``submit`` -- spec, its ``JobSubmitted`` as a batch of
its own and PENDING, atomically -- then ``handle`` and ``record_actions(last_seq(), ...)``;
any other batch ``append``, ``handle``, ``record_actions``; replay of the whole history) still
works on a v2 file as long as nothing is compacted.

Files: a v1 file is upgraded to v2 in place when opened (one transaction, every row kept); a
newer version is refused. Every write is one ``BEGIN IMMEDIATE ... COMMIT`` with
``synchronous=FULL`` in WAL mode. A write SQLite cannot commit (disk full, the file locked by
another process for longer than ``busy_timeout_ms``, an I/O error) raises
``JournalWriteError`` and leaves nothing of it; a broken call raises ``ValueError`` and
writes nothing. Times are seconds since the Unix epoch (``now_s`` of the events; ``*_at_s``).
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from scheduler.core.actions import Action
from scheduler.core.events import Event, JobSubmitted
from scheduler.core.model import Placement
from scheduler.runtime.codec import (
    decode_action,
    decode_event,
    decode_placement,
    encode_action,
    encode_event,
    encode_placement,
    event_job_id,
)
from scheduler.runtime.views import JobState

T = TypeVar("T")

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5_000  # the default of Journal(busy_timeout_ms=...)
_REPLAY_CHUNK = 512  # batches read per query while replaying
_SNAPSHOT_ZLIB_LEVEL = 6

# The submissions table of v2 (``{table}``: its name; the v1 upgrade builds it aside first).
# No foreign key to events(seq): events are compacted behind snapshots, submissions are not.
_SUBMISSIONS_TABLE = """
CREATE TABLE {table} (
    job_id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    submitted_at_s REAL NOT NULL,
    idempotency_key TEXT,           -- the client's key, in its team's namespace (NULL: none)
    seq INTEGER NOT NULL UNIQUE,    -- its JobSubmitted event's seq (that event may be compacted)
    UNIQUE (team, idempotency_key)
);
"""

# what v2 adds to v1 besides the submissions table
_V2_ADDITIONS = """
-- who did what: every call with its principal, and the system's own operator actions
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at_s REAL NOT NULL,
    principal TEXT NOT NULL,
    team TEXT,                      -- the caller's team; NULL: an admin or the system
    action TEXT NOT NULL,           -- submit, cancel, cordon, drain, read, ...
    target TEXT NOT NULL,           -- a job id, a node name, or ''
    outcome TEXT NOT NULL,          -- 'ok' or an HTTP-ish code: '401', '403', '404', ...
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit(at_s);
CREATE INDEX audit_by_team ON audit(team, at_s);

-- the core's state right after batch seq (the service's JSON text, zlib-compressed)
CREATE TABLE snapshots (
    seq INTEGER PRIMARY KEY,
    taken_at_s REAL NOT NULL,
    body BLOB NOT NULL
);

-- batches/events/actions with seq <= this were compacted behind a snapshot
INSERT INTO counters (name, value) VALUES ('compacted', 0);

-- where each run was placed (codec placement JSON): a run the core already let go keeps
-- its GPUs held until it has stopped, also across a restart and a compaction
ALTER TABLE runs ADD COLUMN placement_json TEXT;
"""

_SCHEMA = (
    """
CREATE TABLE schema_version (version INTEGER NOT NULL);

-- one row per state.handle(*events) call; n_actions is NULL until its actions are recorded
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY,        -- seq of the batch's last event
    first_seq INTEGER NOT NULL,
    n_actions INTEGER
);

-- every event fed to the core, in the order it saw them
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,        -- 1, 2, 3, ... with no gaps (the oldest may be compacted)
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
"""
    + _SUBMISSIONS_TABLE.format(table="submissions")
    + """
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

-- monotonic counters: 'job' (job numbers, never reused even when a submission is not made)
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) VALUES ('job', 0);
"""
    + _V2_ADDITIONS
)


class JournalError(RuntimeError):
    """The journal cannot be used as asked: wrong schema, broken protocol, corrupt row."""


class JournalWriteError(JournalError):
    """A write could not be committed (disk full, the database locked by another process, an
    I/O error); nothing of it was written, and the journal stays usable (a later write may
    succeed once the cause is gone). ``reason`` is a short human text: 'disk full',
    'database is locked by another process', 'I/O error', ...; ``code`` SQLite's error name
    (``SQLITE_FULL``, ``SQLITE_BUSY``...) when known."""

    def __init__(self, message: str, reason: str, code: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = code


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


def _reason(e: sqlite3.Error) -> tuple[str, str | None]:
    """A short human reason for a SQLite error, and SQLite's error name."""
    code = getattr(e, "sqlite_errorname", None)
    name = code or ""
    text = str(e)
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "disk full", code
    if name.startswith("SQLITE_BUSY") or text.startswith("database is locked"):
        return "database is locked by another process", code
    if name.startswith("SQLITE_LOCKED"):
        return "database table is locked by another connection", code
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return "I/O error", code
    if name.startswith("SQLITE_READONLY"):
        return "the journal file is read-only", code
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return "the journal file is corrupt", code
    if name.startswith("SQLITE_NOMEM"):
        return "out of memory", code
    if name.startswith("SQLITE_CANTOPEN"):
        return "cannot open the journal file", code
    return text or name or type(e).__name__, code


# errors that are the caller's fault (a constraint, a bad binding, a closed cursor), not the
# disk's: they pass through ``_write`` as they are
_NOT_WRITE_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """A job as the user submitted it. ``seq`` is its ``JobSubmitted`` event's seq (that
    event may have been compacted behind a snapshot since)."""

    job_id: str
    team: str
    name: str
    spec: dict[str, Any]
    submitted_at_s: float
    idempotency_key: str | None
    seq: int


@dataclass(frozen=True, slots=True)
class NewSubmission:
    """A submission for ``Journal.commit``: the spec as the user sent it and its
    ``JobSubmitted`` event, which must be one of the committed batch's events
    (``event.job.job_id == job_id`` and ``event.job.team == team``). ``idempotency_key`` is
    in ``team``'s namespace; None: the submission is never deduplicated."""

    job_id: str
    team: str
    name: str
    spec: dict[str, Any]
    submitted_at_s: float
    idempotency_key: str | None
    event: JobSubmitted


@dataclass(frozen=True, slots=True)
class StateChange:
    """A job's new state (what the API shows) for ``Journal.commit``."""

    job_id: str
    state: JobState
    reason: str
    at_s: float


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How an open run (``job_id``, ``attempt``) ended, for ``Journal.commit``: as
    ``run_ended`` would record it, but in the batch's transaction."""

    job_id: str
    attempt: int
    outcome: str
    detail: str
    metrics: Mapping[str, float] | None
    at_s: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log. ``team`` is the caller's team (None: an admin or the
    system); ``action`` a short verb (submit, cancel, cordon, uncordon, drain, health,
    read...); ``target`` a job id, a node name or ''; ``outcome`` 'ok' or an HTTP-ish code
    ('401', '403', '404', '409', '422', '503'); ``detail`` free text."""

    at_s: float
    principal: str
    team: str | None
    action: str
    target: str
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True)
class AuditRecord(AuditEntry):
    """An ``AuditEntry`` as stored; ``id`` grows with every row written."""

    id: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The service's snapshot of the core taken right after batch ``seq`` (``body``: the
    JSON text it gave ``save_snapshot``)."""

    seq: int
    body: str
    taken_at_s: float


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
    placement_json: str | None = None  # where it ran, as codec JSON (None: before v2)

    @property
    def placement(self) -> Placement | None:
        """Where the run was placed (decoded on demand: loading 100k runs on a restart must
        not decode 100k placements nobody reads)."""
        if self.placement_json is None:
            return None
        return decode_placement(json.loads(self.placement_json))

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


def _time(x: object, what: str) -> float:
    """A time for a ``REAL NOT NULL`` column: a number, not NaN (and not a bool)."""
    if isinstance(x, bool) or not isinstance(x, int | float) or math.isnan(x):
        raise ValueError(f"{what} must be a number of seconds, got {x!r}")
    return float(x)


def _spec_json(job_id: str, spec: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(spec))
    except (TypeError, ValueError) as e:
        raise ValueError(f"job {job_id}: spec is not JSON: {e}") from e


_STATES = {s.value: s for s in JobState}


def _state(state: str, job_id: str) -> str:
    try:
        return JobState(state).value
    except ValueError:
        raise ValueError(
            f"state of job {job_id}: {state!r} is not a JobState ({', '.join(_STATES)})"
        ) from None


_UPSERT_STATE = (
    "INSERT INTO job_state (job_id, state, reason, updated_at_s) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, "
    "reason = excluded.reason, updated_at_s = excluded.updated_at_s"
)
_INSERT_SUBMISSION = (
    "INSERT INTO submissions (job_id, team, name, spec_json, submitted_at_s, "
    "idempotency_key, seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_END_RUN = (
    "UPDATE runs SET state = 'ended', ended_at_s = ?, outcome = ?, detail = ?, "
    "metrics_json = ? WHERE job_id = ? AND attempt = ? AND state = 'started'"
)
_INSERT_EVENT = "INSERT INTO events (seq, now_s, kind, job_id, body) VALUES (?, ?, ?, ?, ?)"
_INSERT_ACTION = "INSERT INTO actions (seq, idx, kind, job_id, body) VALUES (?, ?, ?, ?, ?)"
_INSERT_AUDIT = (
    "INSERT INTO audit (at_s, principal, team, action, target, outcome, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_TOP_SEQ = (  # the last seq handed out (compaction may have deleted its rows)
    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM {table}), 0), "
    "(SELECT value FROM counters WHERE name = 'compacted'))"
)


def _event_row(ev: Event) -> tuple[float | None, str, str | None, str]:
    return _real(ev.now_s), type(ev).__name__, event_job_id(ev), _encode(ev, encode_event)


def _action_row(a: Action) -> tuple[str, str, str]:
    return type(a).__name__, a.job_id, _encode(a, encode_action)


def _encode(x: T, encode: Callable[[T], dict[str, Any]]) -> str:
    try:
        return json.dumps(encode(x), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot journal {_short(x, 200)}: {e}") from e


class Journal:
    """The service's journal on one SQLite file (created with its schema on first open, a
    v1 file upgraded in place).

    Every write method is one transaction, committed (and, with ``synchronous=FULL``, on
    disk) before it returns; when SQLite cannot commit it, it raises ``JournalWriteError``
    and nothing of it is written. It is meant for one thread at a time, the service's actor:
    a lock makes concurrent calls safe but serialises them, and ``replay`` reads in chunks,
    so writing between its batches (as ``rebuild`` does) is allowed. One service process
    writes a journal; a second process on the same file makes writes wait up to
    ``busy_timeout_ms`` and then fail with ``JournalWriteError`` (never corrupts it), but
    two schedulers sharing one journal is not a supported setup.
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        """Open (or create) the journal at ``path``; a v1 file is upgraded to v2 first.
        ``busy_timeout_ms``: how long a write waits for another process's lock before it
        fails. Raises ``JournalError`` for a file that is not a gpuyard journal, a newer
        schema or a v1 file that cannot be upgraded (left as it was), and
        ``JournalWriteError`` when the file cannot be opened or set up (locked, disk full)."""
        self.path = Path(path)
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
            raise TypeError(f"busy_timeout_ms must be an int, got {busy_timeout_ms!r}")
        if busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            # isolation_level=None: no implicit transactions; each write method opens its own
            # BEGIN IMMEDIATE ... COMMIT. check_same_thread=False: a Ray actor may call from
            # a thread other than the one that opened it; the lock keeps calls one at a time.
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=0
            )
        except sqlite3.Error as e:
            reason, code = _reason(e)
            raise JournalWriteError(
                f"{self.path}: cannot open the journal: {reason} ({e})", reason, code
            ) from e
        try:
            self._configure(conn)
            conn.execute("PRAGMA foreign_keys = OFF")  # the v1 upgrade rebuilds a table
            self._ensure_schema(conn)
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException as e:
            conn.close()
            if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, _NOT_WRITE_ERRORS):
                reason, code = _reason(e)
                if code == "SQLITE_NOTADB":
                    raise JournalError(
                        f"{self.path}: not a gpuyard journal (not an SQLite database: {e}); "
                        "point the service at a new file or at its journal"
                    ) from e
                raise JournalWriteError(
                    f"{self.path}: cannot open the journal: {reason} ({e})", reason, code
                ) from e
            raise
        self._conn: sqlite3.Connection | None = conn

    # ------------------------------------------------------------------ setup
    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
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
                found = [r[0] for r in rows]
                if found == [1]:
                    self._upgrade_v1(conn)
                elif found != [SCHEMA_VERSION]:
                    raise JournalError(
                        f"{self.path}: journal schema version {found}, this gpuyard reads "
                        f"version {SCHEMA_VERSION} (and upgrades version 1); "
                        + (
                            "it was written by a newer gpuyard"
                            if len(found) == 1 and isinstance(found[0], int) and found[0] > 2
                            else "the file is damaged"
                        )
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _upgrade_v1(self, conn: sqlite3.Connection) -> None:
        """v1 -> v2 inside the caller's transaction (foreign keys off): submissions rebuilt
        with ``UNIQUE (team, idempotency_key)`` and no foreign key to events; the audit and
        snapshots tables and the 'compacted' counter added; every row kept."""
        try:
            before = conn.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
            conn.execute(_SUBMISSIONS_TABLE.format(table="submissions_v2"))
            cols = "job_id, team, name, spec_json, submitted_at_s, idempotency_key, seq"
            conn.execute(f"INSERT INTO submissions_v2 ({cols}) SELECT {cols} FROM submissions")
            conn.execute("DROP TABLE submissions")
            conn.execute("ALTER TABLE submissions_v2 RENAME TO submissions")
            for statement in _statements(_V2_ADDITIONS):
                conn.execute(statement)
            after = conn.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
            broken = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
        except (sqlite3.IntegrityError, sqlite3.OperationalError) as e:
            reason, _ = _reason(e)
            if reason in ("disk full", "I/O error", "database is locked by another process"):
                raise  # the disk's fault, not the file's: JournalWriteError
            raise JournalError(
                f"{self.path}: upgrading the journal from schema v1 to v2 failed (nothing was "
                f"changed): {e}; is it a damaged v1 journal?"
            ) from e
        if after != before or broken:
            raise JournalError(
                f"{self.path}: upgrading the journal from schema v1 to v2 failed (nothing was "
                f"changed): {before} submissions before, {after} after; rows whose reference "
                f"is missing (table, rowid, parent): {[tuple(r[:3]) for r in broken]}"
            )
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # ------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"{self.path}: journal is closed")
        return self._conn

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.
        A SQLite failure to write or commit (not a constraint: those are the caller's)
        becomes ``JournalWriteError`` naming ``what``."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
            except _NOT_WRITE_ERRORS:
                raise
            except sqlite3.DatabaseError as e:  # OperationalError: full, busy, I/O ...
                reason, code = _reason(e)
                raise JournalWriteError(
                    f"{self.path}: {what} was not written: {reason} ({code or 'SQLite'}: {e}); "
                    "nothing of it was written",
                    reason,
                    code,
                ) from e

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # after SQLITE_FULL / IOERR / NOMEM SQLite may have rolled back already
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # nothing more to do; BEGIN will say
                conn.execute("ROLLBACK")

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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        last: int = conn.execute(_TOP_SEQ.format(table="events")).fetchone()[0]
        return last + 1

    def _insert_events(self, conn: sqlite3.Connection, events: Sequence[Event]) -> int:
        rows = [_event_row(ev) for ev in events]
        first = self._next_seq(conn)
        conn.executemany(_INSERT_EVENT, [(first + i, *row) for i, row in enumerate(rows)])
        last = first + len(rows) - 1
        conn.execute("INSERT INTO batches (seq, first_seq) VALUES (?, ?)", (last, first))
        return last

    # ---------------------------------------------------------- group commit
    def commit(
        self,
        events: Sequence[Event],
        actions: Sequence[Action],
        *,
        submissions: Sequence[NewSubmission] = (),
        states: Sequence[StateChange] = (),
        audit: Sequence[AuditEntry] = (),
        job_counter: int | None = None,
        runs_ended: Sequence[RunEnd] = (),
    ) -> int:
        """Journal what one core batch did, in ONE transaction, all or nothing:

        * the batch: ``events`` in order (one ``state.handle(*events)`` call) and the
          ``actions`` the core answered (possibly none), as one ``batches`` row;
        * ``submissions``: each one's ``JobSubmitted`` must be among ``events`` (its
          submissions row takes that event's seq), and each starts PENDING ('submitted');
        * ``states``: job-state changes, applied in order after those PENDING rows (a job
          submitted in this very commit may change state here too);
        * ``audit`` rows, in order;
        * the job counter raised to ``job_counter`` (never lowered);
        * ``runs_ended``: open runs ended (as ``run_ended`` does).

        ``events`` may be empty (then no batch is written and ``actions`` must be empty:
        e.g. only audit rows or states). Returns the batch's seq (its last event's), or
        ``last_seq()`` when there are no events.

        Raises ``JournalWriteError`` when SQLite cannot commit (disk full, locked for longer
        than ``busy_timeout_ms``, I/O error), and ``ValueError`` on a broken call (a
        submission whose event is missing or about another job/team, a job id or
        (team, idempotency key) given twice or already in the journal, a state for a job
        never submitted, a spec that is not JSON, a time that is NaN, a run ended twice), and
        ``RunConflict`` if a run in ``runs_ended`` is not open; either way nothing of it is
        written."""
        events = tuple(events)
        actions = tuple(actions)
        if actions and not events:
            raise ValueError(
                f"{self.path}: commit of {len(actions)} action(s) without events: actions "
                "answer a batch of events"
            )
        # everything is checked and encoded before the transaction: the lock and the write
        # lock are held only for the INSERTs
        try:
            event_rows = [_event_row(ev) for ev in events]
            action_rows = [_action_row(a) for a in actions]
            sub_rows = self._submission_rows(events, submissions)
            state_rows = [
                (
                    s.job_id,
                    _state(s.state, s.job_id),
                    s.reason,
                    _time(s.at_s, f"at_s of {s.job_id}"),
                )
                for s in states
            ]
            end_rows = self._run_end_rows(runs_ended)
            audit_rows = [
                (
                    _time(a.at_s, "audit at_s"),
                    a.principal,
                    a.team,
                    a.action,
                    a.target,
                    a.outcome,
                    a.detail,
                )
                for a in audit
            ]
            if job_counter is not None and (
                isinstance(job_counter, bool) or not isinstance(job_counter, int) or job_counter < 0
            ):
                raise ValueError(f"job_counter must be an int >= 0, got {job_counter!r}")
        except ValueError as e:
            raise ValueError(f"{self.path}: commit refused, nothing written: {e}") from e
        what = (
            f"commit of {len(events)} event(s), {len(actions)} action(s), "
            f"{len(sub_rows)} submission(s), {len(state_rows)} state(s), "
            f"{len(audit_rows)} audit row(s), {len(end_rows)} run end(s)"
        )
        if not (events or state_rows or audit_rows or end_rows or job_counter is not None):
            return self.last_seq()
        with self._write(what) as conn:
            if event_rows:
                first = self._next_seq(conn)
                seq = first + len(event_rows) - 1
                conn.executemany(
                    _INSERT_EVENT, [(first + i, *row) for i, row in enumerate(event_rows)]
                )
                conn.execute(
                    "INSERT INTO batches (seq, first_seq, n_actions) VALUES (?, ?, ?)",
                    (seq, first, len(action_rows)),
                )
                conn.executemany(
                    _INSERT_ACTION, [(seq, i, *row) for i, row in enumerate(action_rows)]
                )
            else:
                seq = conn.execute(_TOP_SEQ.format(table="batches")).fetchone()[0]
            if sub_rows:
                try:
                    conn.executemany(
                        _INSERT_SUBMISSION, [(*row[1:], first + row[0]) for row in sub_rows]
                    )
                except sqlite3.IntegrityError as e:
                    self._rollback(conn)
                    raise self._clash(conn, submissions, e) from e
                conn.executemany(
                    _UPSERT_STATE,
                    [(row[1], JobState.PENDING.value, "submitted", row[5]) for row in sub_rows],
                )
            if end_rows:
                cur = conn.executemany(_END_RUN, end_rows)
                if cur.rowcount != len(end_rows):
                    self._rollback(conn)
                    open_ = {(r.job_id, r.attempt) for r in self._open_runs(conn)}
                    closed = [
                        (e.job_id, e.attempt)
                        for e in runs_ended
                        if (e.job_id, e.attempt) not in open_
                    ]
                    raise RunConflict(
                        f"{self.path}: commit refused, nothing written: no open run to end for "
                        f"(job, attempt) {closed or '?'}"
                    )
            if state_rows:
                try:
                    conn.executemany(_UPSERT_STATE, state_rows)
                except sqlite3.IntegrityError as e:
                    self._rollback(conn)
                    new = {s.job_id for s in submissions}
                    ghosts = sorted(
                        {r[0] for r in state_rows if r[0] not in new} - self._known(conn, states)
                    )
                    raise ValueError(
                        f"{self.path}: commit refused, nothing written: state change for job(s) "
                        f"{ghosts or '?'} never submitted ({e})"
                    ) from e
            if audit_rows:
                try:
                    conn.executemany(_INSERT_AUDIT, audit_rows)
                except sqlite3.IntegrityError as e:
                    raise ValueError(
                        f"{self.path}: commit refused, nothing written: an audit row is "
                        f"incomplete ({e})"
                    ) from e
            if job_counter is not None:
                conn.execute(
                    "UPDATE counters SET value = MAX(value, ?) WHERE name = 'job'", (job_counter,)
                )
        return int(seq)

    def _submission_rows(
        self, events: Sequence[Event], submissions: Sequence[NewSubmission]
    ) -> list[tuple[int, str, str, str, str, float, str | None]]:
        """(index of its event in ``events``, job_id, team, name, spec_json, submitted_at_s,
        key) per submission; ``ValueError`` on a broken one."""
        at: dict[str, list[int]] = {}
        for i, ev in enumerate(events):
            if isinstance(ev, JobSubmitted):
                at.setdefault(ev.job.job_id, []).append(i)
        rows: list[tuple[int, str, str, str, str, float, str | None]] = []
        ids: set[str] = set()
        keys: set[tuple[str, str]] = set()
        for s in submissions:
            where = f"submission {s.job_id!r}"
            if s.event.job.job_id != s.job_id or s.event.job.team != s.team:
                raise ValueError(
                    f"{where} of team {s.team!r}: its event is about job "
                    f"{s.event.job.job_id!r} of team {s.event.job.team!r}"
                )
            idx = next(
                (i for i in at.get(s.job_id, ()) if events[i] is s.event or events[i] == s.event),
                None,
            )
            if idx is None:
                raise ValueError(f"{where}: its JobSubmitted is not among the batch's events")
            if s.job_id in ids:
                raise ValueError(f"{where}: the job id is given twice")
            ids.add(s.job_id)
            if s.idempotency_key is not None:
                if (s.team, s.idempotency_key) in keys:
                    raise ValueError(
                        f"{where}: idempotency key {s.idempotency_key!r} of team {s.team!r} "
                        "is given twice"
                    )
                keys.add((s.team, s.idempotency_key))
            rows.append(
                (
                    idx,
                    s.job_id,
                    s.team,
                    s.name,
                    _spec_json(s.job_id, s.spec),
                    _time(s.submitted_at_s, f"submitted_at_s of {s.job_id}"),
                    s.idempotency_key,
                )
            )
        return rows

    @staticmethod
    def _run_end_rows(
        ends: Sequence[RunEnd],
    ) -> list[tuple[float, str, str, str | None, str, int]]:
        seen: set[tuple[str, int]] = set()
        rows: list[tuple[float, str, str, str | None, str, int]] = []
        for e in ends:
            if (e.job_id, e.attempt) in seen:
                raise ValueError(f"run {e.attempt} of job {e.job_id} is ended twice")
            seen.add((e.job_id, e.attempt))
            metrics = None if e.metrics is None else _metrics_json(e.metrics)
            at_s = _time(e.at_s, f"at_s of the end of run {e.attempt} of job {e.job_id}")
            rows.append((at_s, e.outcome, e.detail, metrics, e.job_id, e.attempt))
        return rows

    def _clash(
        self, conn: sqlite3.Connection, subs: Sequence[NewSubmission], e: sqlite3.IntegrityError
    ) -> ValueError:
        """Why the submissions could not be inserted (called after the rollback)."""
        for s in subs:
            where = f"{self.path}: commit refused, nothing written: submission {s.job_id!r}"
            if conn.execute("SELECT 1 FROM submissions WHERE job_id = ?", (s.job_id,)).fetchone():
                return ValueError(f"{where}: job id {s.job_id!r} is already in the journal")
            if s.idempotency_key is not None:
                row = conn.execute(
                    "SELECT job_id FROM submissions WHERE team = ? AND idempotency_key = ?",
                    (s.team, s.idempotency_key),
                ).fetchone()
                if row is not None:
                    return ValueError(
                        f"{where}: idempotency key {s.idempotency_key!r} of team {s.team!r} "
                        f"is already used by job {row[0]!r}"
                    )
        return ValueError(f"{self.path}: commit refused, nothing written: {e}")

    @staticmethod
    def _known(conn: sqlite3.Connection, states: Sequence[StateChange]) -> set[str]:
        ids = sorted({s.job_id for s in states})
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ", ".join("?" * len(part))
            known.update(
                r[0]
                for r in conn.execute(
                    f"SELECT job_id FROM submissions WHERE job_id IN ({marks})", part
                )
            )
        return known

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
        """Journal a submission (v1 protocol): the spec, its ``JobSubmitted`` event (a batch
        of its own, whose seq ``last_seq()`` gives right after) and the job's state PENDING,
        in one transaction. Returns ``(job_id, True)``; if ``team`` used ``idempotency_key``
        before, returns ``(that submission's job id, False)`` and writes nothing. Raises
        ``ValueError`` if the event is not about ``job_id``/``team``, the id is taken, or the
        spec is not JSON; ``JournalWriteError`` if it cannot be written."""
        if event.job.job_id != job_id or event.job.team != team:
            raise ValueError(
                f"submit({job_id!r}, team {team!r}): the event is about job "
                f"{event.job.job_id!r} of team {event.job.team!r}"
            )
        spec_json = _spec_json(job_id, spec)
        at_s = _time(submitted_at_s, f"submitted_at_s of {job_id}")
        with self._write(f"submission {job_id}") as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT job_id FROM submissions WHERE team = ? AND idempotency_key = ?",
                    (team, idempotency_key),
                ).fetchone()
                if row is not None:
                    return str(row[0]), False
            if conn.execute("SELECT 1 FROM submissions WHERE job_id = ?", (job_id,)).fetchone():
                raise ValueError(f"{self.path}: job id {job_id!r} is already in the journal")
            seq = self._insert_events(conn, [event])
            conn.execute(
                _INSERT_SUBMISSION, (job_id, team, name, spec_json, at_s, idempotency_key, seq)
            )
            conn.execute(_UPSERT_STATE, (job_id, JobState.PENDING.value, "submitted", at_s))
        return job_id, True

    def find_submission(self, team: str, idempotency_key: str) -> SubmissionRecord | None:
        """The submission ``team`` made with this idempotency key, or None (keys are in
        their team's namespace: another team's equal key is another key)."""
        rows = self._query(
            f"SELECT {_SUBMISSION_COLS} FROM submissions WHERE team = ? AND idempotency_key = ?",
            (team, idempotency_key),
        )
        return _submission(rows[0]) if rows else None

    def idempotency_keys(self) -> dict[tuple[str, str], str]:
        """Every ``(team, idempotency key) -> job id`` (for the service's in-memory map)."""
        rows = self._query(
            "SELECT team, idempotency_key, job_id FROM submissions "
            "WHERE idempotency_key IS NOT NULL"
        )
        return {(team, key): job_id for team, key, job_id in rows}

    def next_job_number(self) -> int:
        """1, 2, 3, ... across restarts (committed before it returns, so never handed out
        twice); a number whose submission is never made is a gap, not reused."""
        with self._write("the next job number") as conn:
            conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'job'")
            n: int = conn.execute("SELECT value FROM counters WHERE name = 'job'").fetchone()[0]
        return n

    def instance_id(self) -> str:
        """This journal's id: 10 hex digits drawn once, when first asked, and kept (a
        counter row, untouched by compaction). Run names carry it, so that a fresh journal
        never reuses an old one's checkpoints for its own ``job-000001``."""
        rows = self._query("SELECT value FROM counters WHERE name = 'instance'")
        if not rows:
            with self._write("the journal's id") as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO counters (name, value) VALUES ('instance', ?)",
                    (secrets.randbits(40),),
                )
            rows = self._query("SELECT value FROM counters WHERE name = 'instance'")
        return f"{int(rows[0][0]):010x}"

    def job_counter(self) -> int:
        """The last job number handed out (by ``next_job_number`` or ``commit(job_counter=)``);
        0 when none."""
        n: int = self._query("SELECT value FROM counters WHERE name = 'job'")[0][0]
        return n

    def submission(self, job_id: str) -> SubmissionRecord | None:
        rows = self._query(
            f"SELECT {_SUBMISSION_COLS} FROM submissions WHERE job_id = ?", (job_id,)
        )
        return _submission(rows[0]) if rows else None

    def submissions(self) -> list[SubmissionRecord]:
        """Every submission, in the order they were accepted (by seq)."""
        rows = self._query(f"SELECT {_SUBMISSION_COLS} FROM submissions ORDER BY seq")
        return [_submission(r) for r in rows]

    # ---------------------------------------------------------------- events
    def append(self, events: Sequence[Event]) -> int:
        """Journal one batch (v1 protocol: the events of one ``state.handle(*events)`` call,
        in order); returns its seq (its last event's) for ``record_actions``."""
        if not events:
            raise ValueError("append needs at least one event (a batch is one handle() call)")
        with self._write(f"batch of {len(events)} event(s)") as conn:
            return self._insert_events(conn, events)

    def record_actions(self, seq: int, actions: Sequence[Action]) -> None:
        """Record what the core answered to batch ``seq`` (possibly nothing), once."""
        rows = [(seq, i, *_action_row(a)) for i, a in enumerate(actions)]
        with self._write(f"actions of batch {seq}") as conn:
            row = conn.execute("SELECT n_actions FROM batches WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                raise JournalError(f"{self.path}: no batch ends at seq {seq}")
            if row[0] is not None:
                raise JournalError(f"{self.path}: actions of batch {seq} are already recorded")
            conn.executemany(_INSERT_ACTION, rows)
            conn.execute("UPDATE batches SET n_actions = ? WHERE seq = ?", (len(rows), seq))

    def last_seq(self) -> int:
        """The seq of the last journaled batch (0 when empty; a compacted batch counts)."""
        last: int = self._query(_TOP_SEQ.format(table="batches"))[0][0]
        return last

    def compacted_seq(self) -> int:
        """Batches with seq up to this were compacted behind a snapshot (0: none)."""
        n: int = self._query("SELECT value FROM counters WHERE name = 'compacted'")[0][0]
        return n

    def replay(self, after_seq: int = 0) -> Iterator[Batch]:
        """The batches with seq > ``after_seq`` in seq order, with their recorded actions
        (None if never recorded). Reads ``_REPLAY_CHUNK`` batches per snapshot; holds no
        lock between yields. Raises ``JournalError`` if batches after ``after_seq`` were
        compacted (replay from a snapshot's seq instead)."""
        after = after_seq
        first_chunk = True
        while True:
            with self._read() as conn:
                if first_chunk:
                    compacted = conn.execute(
                        "SELECT value FROM counters WHERE name = 'compacted'"
                    ).fetchone()[0]
                    if after_seq < compacted:
                        kept = [r[0] for r in conn.execute("SELECT seq FROM snapshots")]
                        raise JournalError(
                            f"{self.path}: cannot replay after seq {after_seq}: the batches "
                            f"up to seq {compacted} were compacted behind a snapshot; replay "
                            f"after a kept snapshot's seq {sorted(kept)} instead"
                        )
                    first_chunk = False
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

    # ------------------------------------------------------------- snapshots
    def save_snapshot(self, seq: int, body: str, taken_at_s: float, *, keep: int = 2) -> None:
        """Store the core's snapshot taken right after batch ``seq`` (``body``: the service's
        JSON text, any size; stored zlib-compressed), replacing one at the same seq; then
        compact: keep the newest ``keep`` snapshots and delete the batches, events and
        actions with seq <= the oldest kept snapshot's seq (those after it stay, for the
        offline determinism check). One transaction; the file does not shrink, the freed pages
        are reused. Submissions, runs, job states, audit
        rows and counters are never compacted.

        ``ValueError`` if ``seq`` is not a batch boundary of this journal (0, or the seq of
        a batch), is older than the newest snapshot, or ``keep < 1``;
        ``JournalWriteError`` if it cannot be written (then nothing changed)."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"{self.path}: save_snapshot keep must be an int >= 1, got {keep!r}")
        if not isinstance(body, str):
            raise ValueError(
                f"{self.path}: a snapshot body is a JSON text (str), got {type(body).__name__}"
            )
        at_s = _time(taken_at_s, "taken_at_s of a snapshot")
        blob = zlib.compress(body.encode("utf-8"), _SNAPSHOT_ZLIB_LEVEL)
        with self._write(f"snapshot at seq {seq}") as conn:
            last = conn.execute(_TOP_SEQ.format(table="batches")).fetchone()[0]
            compacted = conn.execute(
                "SELECT value FROM counters WHERE name = 'compacted'"
            ).fetchone()[0]
            newest = conn.execute("SELECT MAX(seq) FROM snapshots").fetchone()[0]
            where = f"{self.path}: no snapshot saved: seq {seq}"
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or seq > last:
                raise ValueError(f"{where} is not a batch of this journal (last seq {last})")
            if newest is not None and seq < newest:
                raise ValueError(f"{where} is older than the newest snapshot (seq {newest})")
            boundary = (
                seq in (0, compacted)
                or conn.execute("SELECT 1 FROM batches WHERE seq = ?", (seq,)).fetchone()
            )
            if not boundary:
                raise ValueError(f"{where} is inside a batch; a snapshot follows a whole batch")
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (seq, taken_at_s, body) VALUES (?, ?, ?)",
                (seq, at_s, blob),
            )
            kept = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?", (keep,)
                )
            ]
            oldest = kept[-1]
            conn.execute("DELETE FROM snapshots WHERE seq < ?", (oldest,))
            if oldest > compacted:
                conn.execute("DELETE FROM actions WHERE seq <= ?", (oldest,))
                conn.execute("DELETE FROM batches WHERE seq <= ?", (oldest,))
                conn.execute("DELETE FROM events WHERE seq <= ?", (oldest,))
                conn.execute("UPDATE counters SET value = ? WHERE name = 'compacted'", (oldest,))

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot, or None when none was saved."""
        rows = self._query("SELECT seq, taken_at_s, body FROM snapshots ORDER BY seq DESC LIMIT 1")
        return self._snapshot(rows[0]) if rows else None

    def snapshots(self) -> list[Snapshot]:
        """The kept snapshots, newest first (bodies included)."""
        rows = self._query("SELECT seq, taken_at_s, body FROM snapshots ORDER BY seq DESC")
        return [self._snapshot(r) for r in rows]

    def _snapshot(self, row: tuple[Any, ...]) -> Snapshot:
        seq, taken_at_s, blob = row
        try:
            body = zlib.decompress(blob).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, TypeError) as e:
            raise JournalError(f"{self.path}: the snapshot at seq {seq} is unreadable: {e}") from e
        return Snapshot(int(seq), body, float(taken_at_s))

    # ------------------------------------------------------------------ runs
    def run_started(
        self,
        job_id: str,
        attempt: int,
        run_name: str,
        runner: str,
        now_s: float,
        placement: Placement | None = None,
    ) -> None:
        """Record a run as started (and where it was placed); call it *before* launching the
        run. Raises
        ``RunConflict`` if the job has an open run or ``attempt`` is not above its past
        attempts (a run is never started twice), ``ValueError`` if the job is unknown."""
        placed = None if placement is None else json.dumps(encode_placement(placement))
        with self._write(f"start of run {run_name!r}") as conn:
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
                    "INSERT INTO runs (job_id, attempt, run_name, runner, state, started_at_s, "
                    "placement_json) VALUES (?, ?, ?, ?, 'started', ?, ?)",
                    (job_id, attempt, run_name, runner, float(now_s), placed),
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
        with self._write(f"end of run {attempt} of job {job_id}") as conn:
            cur = conn.execute(
                _END_RUN,
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
            return self._open_runs(self._db())

    @staticmethod
    def _open_runs(conn: sqlite3.Connection) -> list[RunRecord]:
        rows = conn.execute(
            f"SELECT {_RUN_COLS} FROM runs WHERE state = 'started' "
            "ORDER BY started_at_s, job_id, attempt"
        ).fetchall()
        return [_run(r) for r in rows]

    def runs(self, job_id: str) -> list[RunRecord]:
        """The job's runs by attempt."""
        rows = self._query(
            f"SELECT {_RUN_COLS} FROM runs WHERE job_id = ? ORDER BY attempt", (job_id,)
        )
        return [_run(r) for r in rows]

    def submission_rows(self) -> list[tuple[str, str, str, str, float, str | None]]:
        """Every submission as ``(job_id, team, name, spec_json, submitted_at_s,
        idempotency_key)``, in acceptance order, the spec left as JSON text (a restart
        parses it only when someone reads it)."""
        rows = self._query(
            "SELECT job_id, team, name, spec_json, submitted_at_s, idempotency_key "
            "FROM submissions ORDER BY seq"
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def run_summaries(self) -> dict[str, tuple[int, float, dict[str, float]]]:
        """Per job with runs: its latest attempt, when its first run started and the metrics
        its latest run reported (only that run's metrics are decoded)."""
        out: dict[str, tuple[int, float, dict[str, float]]] = {}
        rows = self._query(
            "SELECT job_id, MAX(attempt), MIN(started_at_s), "
            "(SELECT r2.metrics_json FROM runs r2 WHERE r2.job_id = runs.job_id "
            " ORDER BY r2.attempt DESC LIMIT 1) FROM runs GROUP BY job_id"
        )
        for job_id, attempt, started, metrics in rows:
            out[job_id] = (
                int(attempt),
                float(started),
                {} if metrics is None else _metrics_of(metrics),
            )
        return out

    def runs_by_job(self) -> dict[str, list[RunRecord]]:
        """Every job's runs by attempt, by job id (sorted), in one query; jobs never run are
        absent."""
        out: dict[str, list[RunRecord]] = {}
        for r in self._query(f"SELECT {_RUN_COLS} FROM runs ORDER BY job_id, attempt"):
            out.setdefault(r[0], []).append(_run(r))
        return out

    # ----------------------------------------------------------- job states
    def set_state(self, job_id: str, state: JobState, reason: str, now_s: float) -> None:
        """The service's latest word on a job (what the API shows). ``ValueError`` if the
        job was never submitted or ``state`` is not a ``JobState``."""
        value = JobState(state).value
        with self._write(f"state of job {job_id}") as conn:
            if self._unknown(conn, job_id):
                raise ValueError(f"set_state: job {job_id!r} was never submitted")
            conn.execute(_UPSERT_STATE, (job_id, value, reason, float(now_s)))

    def job_states(self) -> dict[str, JobStateRecord]:
        """Every job's latest state, by job id (sorted)."""
        rows = self._query(
            "SELECT job_id, state, reason, updated_at_s FROM job_state ORDER BY job_id"
        )
        try:
            return {r[0]: JobStateRecord(r[0], _STATES[r[1]], r[2], r[3]) for r in rows}
        except KeyError as e:
            raise JournalError(f"{self.path}: unknown job state {e.args[0]!r}") from None

    @staticmethod
    def _unknown(conn: sqlite3.Connection, job_id: str) -> bool:
        row = conn.execute("SELECT 1 FROM submissions WHERE job_id = ?", (job_id,)).fetchone()
        return row is None

    # ---------------------------------------------------------------- audit
    def audit(
        self, since_s: float | None = None, team: str | None = None, limit: int = 1000
    ) -> list[AuditRecord]:
        """Audit rows at or after ``since_s`` (None: all), of ``team``'s callers (None: every
        team, admins and the system included), the newest ``limit`` of them, oldest first
        (by time, then by the order they were written)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"audit limit must be an int >= 0, got {limit!r}")
        where: list[str] = []
        params: list[Any] = []
        if since_s is not None:
            where.append("at_s >= ?")
            params.append(float(since_s))
        if team is not None:
            where.append("team = ?")
            params.append(team)
        rows = self._query(
            f"SELECT {_AUDIT_COLS} FROM audit"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY at_s DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            AuditRecord(at_s, principal, team_, action, target, outcome, detail, id_)
            for id_, at_s, principal, team_, action, target, outcome, detail in reversed(rows)
        ]

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
    "metrics_json, placement_json"
)
_AUDIT_COLS = "id, at_s, principal, team, action, target, outcome, detail"


def _submission(row: tuple[Any, ...]) -> SubmissionRecord:
    job_id, team, name, spec_json, submitted_at_s, key, seq = row
    return SubmissionRecord(job_id, team, name, json.loads(spec_json), submitted_at_s, key, seq)


def _run(row: tuple[Any, ...]) -> RunRecord:
    job_id, attempt, run_name, runner, state, started, ended, outcome, detail, metrics, where = row
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
        where,
    )


def rebuild(
    journal: Journal, handle: Callable[..., Sequence[Action]], after_seq: int = 0
) -> list[Batch]:
    """Feed every journaled batch after ``after_seq``, in order, to ``handle`` (the
    ``ClusterState.handle`` of a *fresh* core, or of one restored from the snapshot taken at
    ``after_seq``, built with the same nodes, policies and config as before) and check that
    it answers exactly the recorded actions; raises ``ReplayMismatch`` naming the first seq
    where it does not, ``JournalError`` if batches after ``after_seq`` were compacted. A
    batch whose actions were never recorded (v1 protocol: the service stopped between
    ``append`` and ``record_actions``) is answered now: its actions are recorded here and
    returned, since the driver has not acted on them yet. Returns those batches (usually
    none, at most the last one) with their new actions."""
    unanswered: list[Batch] = []
    for batch in journal.replay(after_seq):
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
