"""The service's view of each job (what the API shows); the core holds the scheduling state.

``Records`` is rebuilt on start from the journal's tables (submissions, job states, runs) and
follows the core's actions after each committed batch. It changes nothing until a batch is
durable: ``states_for(actions)`` says what the actions *would* change (journaled with the
batch), ``apply(actions)`` applies them once the batch is committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
from scheduler.core.model import Placement
from scheduler.core.outcomes import ReleaseOutcome
from scheduler.runtime.journal import Journal, StateChange
from scheduler.runtime.views import JobState

_TERMINAL_OF = {
    ReleaseOutcome.SUCCEEDED: JobState.SUCCEEDED,
    ReleaseOutcome.FAILED: JobState.FAILED,
    ReleaseOutcome.CANCELLED: JobState.CANCELLED,
}


@dataclass(slots=True)
class Record:
    """One job as the service shows it."""

    job_id: str
    name: str
    team: str
    priority_src: int | None  # None: a finished job's, read from its spec when asked
    spec_src: dict[str, Any] | str  # the spec, or its JSON text until first read (restart)
    submitted_at_s: float
    idempotency_key: str | None = None
    state: JobState = JobState.PENDING
    reason: str = "queued"
    started_at_s: float | None = None
    finished_at_s: float | None = None
    attempts: int = 0
    preemptions: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    placement: Placement | None = None
    cancel_asked: bool = False
    requeued_at_s: float | None = None  # when it last went back to the queue (preempted)

    @property
    def priority(self) -> int:
        if self.priority_src is None:
            self.priority_src = int(self.spec.get("priority", 0) or 0)
        return self.priority_src

    @property
    def spec(self) -> dict[str, Any]:
        """The submitted spec (parsed on first use: a restart with 100k finished jobs in
        history must not parse 100k specs nobody asks for)."""
        if isinstance(self.spec_src, str):
            self.spec_src = json.loads(self.spec_src)
        assert isinstance(self.spec_src, dict)
        return self.spec_src


class Records:
    """Every job the service accepted, by id, and the (team, idempotency key) index."""

    def __init__(self) -> None:
        self.by_id: dict[str, Record] = {}
        self.keys: dict[tuple[str, str], str] = {}  # (team, key) -> job id

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, job_id: str) -> Record | None:
        return self.by_id.get(job_id)

    def add(self, rec: Record) -> None:
        self.by_id[rec.job_id] = rec
        if rec.idempotency_key is not None:
            self.keys[(rec.team, rec.idempotency_key)] = rec.job_id

    def values(self) -> Iterable[Record]:
        return self.by_id.values()

    @classmethod
    def load(cls, journal: Journal, priorities: dict[str, int]) -> Records:
        """From the journal's tables; ``priorities`` are the core's (live jobs); a finished
        job shows the priority its spec asked for."""
        out = cls()
        states = journal.job_states()
        runs = journal.run_summaries()
        for job_id, team, name, spec_json, submitted_at_s, key in journal.submission_rows():
            rec = Record(job_id, name, team, priorities.get(job_id), spec_json, submitted_at_s, key)
            st = states.get(job_id)
            if st is not None:
                rec.state, rec.reason = st.state, st.reason
                if st.state.terminal:
                    rec.finished_at_s = st.updated_at_s
                elif st.state is JobState.PENDING:  # only a requeue writes a PENDING row
                    rec.requeued_at_s = st.updated_at_s
            summary = runs.get(job_id)
            if summary is not None:
                rec.attempts, rec.started_at_s, rec.metrics = summary
            out.add(rec)
        return out

    # ------------------------------------------------------------- actions
    def states_for(self, actions: Sequence[Action]) -> list[StateChange]:
        """The job-state rows the actions give (journaled with their batch)."""
        out: list[StateChange] = []
        for a in actions:
            rec = self.by_id.get(a.job_id)
            if rec is None and not isinstance(a, (Launch, Reject)):
                continue
            change = _state_of(a, rec)
            if change is not None:
                out.append(StateChange(a.job_id, change[0], change[1], a.now_s))
        return out

    def apply(self, actions: Sequence[Action]) -> None:
        """Follow the committed actions (launch, preempt, release, reject)."""
        for a in actions:
            rec = self.by_id.get(a.job_id)
            if rec is None:
                continue
            change = _state_of(a, rec)
            if isinstance(a, Launch):
                rec.placement = a.placement
            elif isinstance(a, Preempt):
                rec.preemptions += 1
                rec.placement = None
                rec.requeued_at_s = a.now_s
            if change is not None:
                rec.state, rec.reason = change
                if change[0].terminal:
                    rec.finished_at_s = a.now_s
                    rec.placement = None


def running_reason(placement: Placement, since_s: float) -> str:
    """A running job's reason, in words: where (each node and its GPUs) and since when (UTC),
    e.g. ``running on node-h100-0 (GPUs 0-3), node-h100-1 (GPUs 0-3) since 12:03:04 UTC``."""
    by_node: dict[str, list[int]] = {}
    shares: dict[str, int] = {}
    for w in placement.workers:
        by_node.setdefault(w.node, []).extend(w.gpu_indices)
        if w.gpu_indices and w.gpu_milli < 1000:
            shares[w.node] = w.gpu_milli
    where = []
    for node, gpus in by_node.items():
        if not gpus:
            where.append(f"{node} (no GPUs)")
            continue
        ids = sorted(set(gpus))
        share = f", {shares[node] / 1000:g} of each" if node in shares else ""
        where.append(f"{node} (GPU{'s' if len(ids) > 1 else ''} {_ranges(ids)}{share})")
    when = datetime.fromtimestamp(since_s, tz=UTC).strftime("%H:%M:%S UTC")
    return f"running on {', '.join(where) or 'no node'} since {when}"


def _ranges(ids: list[int]) -> str:
    """``[0, 1, 2, 3, 6]`` -> ``0-3,6``."""
    out: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(out)


def _state_of(a: Action, rec: Record | None) -> tuple[JobState, str] | None:
    if isinstance(a, Launch):
        return JobState.RUNNING, running_reason(a.placement, a.now_s)
    if isinstance(a, Preempt):
        return JobState.PENDING, f"requeued: {a.cause}"
    if isinstance(a, Reject):
        return JobState.REJECTED, a.reason
    if isinstance(a, Release):
        if rec is not None and rec.state.terminal:
            return None
        if rec is not None and rec.cancel_asked:
            return JobState.CANCELLED, "cancelled"
        state = _TERMINAL_OF[a.outcome]
        return state, "finished" if state is JobState.SUCCEEDED else a.cause
    return None
