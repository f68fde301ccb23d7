"""The driver: the one writer of the core. Inputs in, one durable batch, effects out.

Everything that can change the core arrives as an *input* in the inbox: a submission, a
cancel, an operator's node command, a refused call to audit, or what a poll observed (runs,
Ray nodes, telemetry). ``process(inputs)`` turns all the inputs that arrived together into
one batch, in these steps:

 1. **check at the edge**: each input is validated and authorised (spec, team, priority,
    idempotency key, data region under the residency rules, known job or node, telemetry
    that agrees with the fleet); a refusal is answered at once (and audited if it is a
    403); what passes becomes core events;
 2. **decide**: one ``core.handle(*events)`` call (one scheduling cycle for the whole batch);
 3. **commit**: the events, the core's actions, the new submissions, job states, run ends
    and audit rows in ONE journal transaction (group commit);
 4. **roll back on failure**: if the commit fails (disk full, locked), the core is restored
    from the journal (snapshot + tail), so nothing half-applied stays in memory, and every
    caller of the batch gets ``Unavailable`` (503) with the reason;
 5. **follow**: once durable, the records follow the actions and the callers get their
    answers; the effects (start, stop, kill runs) are returned for ``Runs.execute``, which
    runs them without the lock;
 6. **snapshot** the core every ``snapshot_every`` batches or ``snapshot_events`` events,
    whichever comes first (the journal compacts behind it), and on a clean close.

The lock is held through steps 1-6 (local work only: the core and SQLite); no remote call is
made under it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler.config import SchedulerConfig
from scheduler.core.actions import Action, Launch, Preempt
from scheduler.core.events import (
    Event,
    GpuTelemetry,
    JobCancelled,
    JobFinished,
    JobInterrupted,
    JobSubmitted,
    NodeCordoned,
    NodeDrained,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
    Tick,
)
from scheduler.core.outcomes import RunOutcome
from scheduler.core.state import ClusterState
from scheduler.runtime import spec as specs
from scheduler.runtime.auth import Principal
from scheduler.runtime.authz import job_priority
from scheduler.runtime.config import NodeSpec, ServiceConfig
from scheduler.runtime.executor import ENDED_STATES
from scheduler.runtime.journal import (
    AuditEntry,
    Journal,
    JournalWriteError,
    NewSubmission,
    RunEnd,
    StateChange,
)
from scheduler.runtime.metrics import ServiceMetrics, TelemetryRefusal
from scheduler.runtime.records import Record, Records
from scheduler.runtime.recovery import restore_core, save_snapshot
from scheduler.runtime.residency import Residency
from scheduler.runtime.runs import Effect, Idle, Kill, RunReport, Runs, Start, Stop
from scheduler.runtime.views import (
    Conflict,
    Forbidden,
    NodeOp,
    SpecRejected,
    Unavailable,
    UnknownJob,
    UnknownNode,
)

log = logging.getLogger("gpuyard.driver")

TICK_EVERY_S = 10.0  # a cycle with nothing new, while jobs wait (estimates move, aging)
SYSTEM = Principal("gpuyard", None, True)  # who the service's own actions are audited as


class Reply:
    """The answer to one input, set by the driver once its batch is decided."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def ok(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> Any:
        if not self._done.wait(timeout_s):
            raise Unavailable(f"the scheduler did not answer within {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(slots=True)
class Submit:
    who: Principal
    raw: dict[str, Any]
    key: str | None
    reply: Reply = field(default_factory=Reply)


@dataclass(slots=True)
class Cancel:
    who: Principal
    job_id: str
    reply: Reply = field(default_factory=Reply)


@dataclass(slots=True)
class NodeCommand:
    who: Principal
    node: str
    op: NodeOp
    reply: Reply = field(default_factory=Reply)


@dataclass(slots=True)
class Audited:
    """A call handled outside the core, to audit with the next batch: one the API refused
    (401, 403), or a package upload."""

    who: Principal
    action: str
    target: str
    outcome: str
    detail: str


@dataclass(slots=True)
class Observed:
    """What one poll saw: the runs, the Ray nodes alive (None: not polled), telemetry."""

    runs: list[RunReport] = field(default_factory=list)
    node_ids: dict[str, str] | None = None
    samples: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Internal:
    """Events of the service's own making (restart reconciliation), with run ends."""

    events: list[Event] = field(default_factory=list)
    run_ends: list[RunEnd] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)


Input = Submit | Cancel | NodeCommand | Audited | Observed | Internal


@dataclass(slots=True)
class _Batch:
    events: list[Event] = field(default_factory=list)
    submissions: list[NewSubmission] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    run_ends: list[RunEnd] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)  # carried out only once durable
    answers: list[tuple[Reply, Callable[[], Any]]] = field(default_factory=list)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    node_ids: dict[str, str] | None = None
    samples: dict[str, Any] = field(default_factory=dict)


class Driver:
    """The core, its journal and the records, changed only through ``process``."""

    def __init__(
        self,
        cfg: ServiceConfig,
        sched: SchedulerConfig,
        fleet: Sequence[NodeSpec],
        core: ClusterState,
        journal: Journal,
        records: Records,
        runs: Runs,
        metrics: ServiceMetrics,
        lock: threading.RLock,
        clock: Callable[[], float],
        views: Any,
        package_known: Callable[[str], bool] = lambda uri: True,
        residency: Residency | None = None,
    ) -> None:
        self.cfg = cfg
        # data region -> node regions (checked against the fleet); default: none known
        self.residency = residency if residency is not None else cfg.residency_for(fleet)
        self.package_known = package_known  # was this gcs:// package uploaded to us?
        self.sched = sched
        self.fleet = {n.name: n for n in fleet}
        self.core = core
        self.journal = journal
        self.records = records
        self.runs = runs
        self.metrics = metrics
        self.lock = lock
        self.clock = clock
        self.views = views  # Views: builds the answers (JobView, NodeView)
        self.counter = journal.job_counter()
        self.node_ids: dict[str, str] = {}
        self.samples: dict[str, Any] = {}
        self._fed: dict[tuple[str, int], tuple[object, ...]] = {}
        self._last_cycle_s = 0.0
        self._since_snapshot = 0
        self._events_since = 0

    @property
    def lost(self) -> set[str]:
        return {n for n, why in self.core.off.items() if "lost" in why}

    def now(self) -> float:
        """Wall-clock seconds, never behind the core's clock (journal times are monotonic)."""
        return max(self.clock(), self.core.now_s)

    # ------------------------------------------------------------- the batch
    def process(self, inputs: Sequence[Input]) -> list[Effect]:
        """Steps 1-6 of the module docstring for the inputs that arrived together."""
        with self.lock:
            b = _Batch()
            now = self.now()
            for inp in inputs:  # step 1
                try:
                    self._take(inp, b, now)
                except (SpecRejected, Forbidden, Conflict, UnknownJob, UnknownNode) as e:
                    if isinstance(inp, (Submit, Cancel, NodeCommand)):
                        inp.reply.fail(e)
                except Exception as e:  # a bug at the edge: this input fails, the batch goes on
                    log.exception("input %s refused by an internal error", type(inp).__name__)
                    if isinstance(inp, (Submit, Cancel, NodeCommand)):
                        inp.reply.fail(Unavailable(f"internal error: {type(e).__name__}: {e}"))
            # what Ray shows is not durable state: known at once, committed or not
            if b.node_ids is not None:
                self.node_ids = b.node_ids
            self.samples.update(b.samples)
            if (
                not b.events
                and self.core.pending
                and now - self._last_cycle_s >= TICK_EVERY_S
                and any(isinstance(i, Observed) for i in inputs)
            ):
                b.events.append(Tick(now))
            if not (b.events or b.audit or b.run_ends):
                self._answer(b)
                return b.effects  # e.g. stops past max_runtime_s: nothing to journal first
            try:
                actions = self._decide(b.events)  # step 2
                states = self.records.states_for(actions) if b.events else []
                self.journal.commit(  # step 3
                    b.events, actions, submissions=b.submissions, states=states, audit=b.audit,
                    job_counter=self.counter, runs_ended=b.run_ends,
                )  # fmt: skip
            except JournalWriteError as e:  # step 4
                self._rollback(b, e.reason)
                return []
            except Exception as e:  # the core refused what the edge let through: a bug
                log.exception("batch failed; rolling the core back")
                self._rollback(b, f"internal error: {type(e).__name__}: {e}")
                return []
            self._follow(b, actions, states)  # step 5
            self.metrics.observe_batch(len(inputs))
            if b.events:
                self._last_cycle_s = now
                self._since_snapshot += 1
                self._events_since += len(b.events)
                if (  # step 6: the tail a restart replays stays short in batches and events
                    self._since_snapshot >= self.cfg.snapshot_every
                    or self._events_since >= self.cfg.snapshot_events
                ):
                    self.snapshot()
            return b.effects

    def _decide(self, events: list[Event]) -> list[Action]:
        if not events:
            return []
        t0 = time.perf_counter()
        actions = self.core.handle(*events)
        self.metrics.observe_cycle(time.perf_counter() - t0)
        return actions

    def _rollback(self, b: _Batch, reason: str) -> None:
        """Step 4: the core as the journal has it; every caller of the batch told why."""
        self.metrics.journal_failed()
        if b.events:
            self.core = restore_core(self.journal)
        self.counter = self.journal.job_counter()
        self._fed.clear()  # telemetry of the lost batch is fed again
        log.warning("batch of %d event(s) not applied: %s", len(b.events), reason)
        for reply, _ in b.answers:
            reply.fail(Unavailable(reason))

    def _follow(self, b: _Batch, actions: list[Action], states: list[StateChange]) -> None:
        for new in b.records:
            self.records.add(new)
        for job_id in b.cancels:
            asked = self.records.get(job_id)
            if asked is not None:
                asked.cancel_asked = True
        for end in b.run_ends:
            self.runs.ended(end.job_id)
            ran = self.records.get(end.job_id)
            if ran is not None and end.metrics:
                ran.metrics = dict(end.metrics)
        self.records.apply(actions)
        for a in actions:
            rec = self.records.get(a.job_id)
            if rec is None:
                continue
            if isinstance(a, Launch):
                b.effects.append(Start(a))
                if rec.started_at_s is None:  # the first start: admission latency
                    rec.started_at_s = a.now_s
                    self.metrics.observe_admission(rec.team, a.now_s - rec.submitted_at_s)
            elif isinstance(a, Preempt):
                self.metrics.preempted(rec.team, a.reason)
                run = self.runs.active.get(a.job_id)
                if run is not None:
                    gone = bool(self.lost & set(run.placement.nodes))
                    b.effects.append(Stop(a.job_id, "preempt", a.cause, kill=gone))
        for change in states:
            ended = self.records.get(change.job_id)
            if ended is not None and change.state.terminal:
                self.metrics.finished(ended.team, change.state.value)
        self._answer(b)

    def _answer(self, b: _Batch) -> None:
        for reply, make in b.answers:
            if not reply.done:
                reply.ok(make())

    # ------------------------------------------------------------- step 1
    def _take(self, inp: Input, b: _Batch, now: float) -> None:
        if isinstance(inp, Submit):
            self._submit(inp, b, now)
        elif isinstance(inp, Cancel):
            self._cancel(inp, b, now)
        elif isinstance(inp, NodeCommand):
            self._node_command(inp, b, now)
        elif isinstance(inp, Audited):
            b.audit.append(_audit(now, inp.who, inp.action, inp.target, inp.outcome, inp.detail))
        elif isinstance(inp, Internal):
            b.events.extend(inp.events)
            b.run_ends.extend(inp.run_ends)
            b.audit.extend(inp.audit)
        else:
            self._observed(inp, b, now)

    def _submit(self, inp: Submit, b: _Batch, now: float) -> None:
        who = inp.who
        spec = specs.parse_spec(inp.raw, "request body")
        if spec.team is None:
            raise SpecRejected([{"loc": ["team"], "msg": "a team is required", "input": None}])
        specs.reject_local_paths(spec, "request body")
        missing = [u for u in specs.package_uris(spec) if not self.package_known(u)]
        if missing:
            raise SpecRejected([
                {"loc": ["runtime_env"], "input": u, "source": "request body",
                 "msg": f"package {u} was not uploaded to this service: upload the directory "
                        "(gpuyard submit --working-dir, the SDK, or ray job submit) first"}
                for u in missing
            ])  # fmt: skip
        if not who.admin and spec.team != who.team:
            raise Forbidden(f"the token of {who.name!r} submits for team {who.team!r} only")
        try:
            priority = job_priority(
                who, spec, self.cfg.grant(spec.team), self.sched.priority_classes
            )
        except Forbidden as e:
            b.audit.append(_audit(now, who, "submit", "", "403", e.message))
            raise
        stored = spec.model_dump(mode="json", exclude_none=True)
        if inp.key is not None:
            known = b.keys.get((spec.team, inp.key)) or self.records.keys.get((spec.team, inp.key))
            if known is not None:
                earlier = self._record_in(b, known)
                if earlier.spec != stored:
                    raise Conflict(
                        f"Idempotency-Key {inp.key!r} of team {spec.team!r} was used for "
                        f"{known} with another body; send a new key for a new job"
                    )
                b.answers.append((inp.reply, lambda: self.views.job(self._record_in(b, known))))
                return
        regions = self.residency.node_regions(spec.data_region, "request body")
        self.counter += 1
        job_id = f"job-{self.counter:06d}"
        job = specs.to_job(spec, job_id, now, priority=priority, regions=regions)
        event = JobSubmitted(now, job, "submit")
        b.events.append(event)
        b.submissions.append(
            NewSubmission(job_id, spec.team, spec.name, stored, now, inp.key, event)
        )
        rec = Record(job_id, spec.name, spec.team, priority, stored, now, inp.key)
        b.records.append(rec)
        if inp.key is not None:
            b.keys[(spec.team, inp.key)] = job_id
        b.audit.append(_audit(now, who, "submit", job_id, "ok", f"team {spec.team}"))
        b.answers.append((inp.reply, lambda: self.views.job(rec)))

    def _record_in(self, b: _Batch, job_id: str) -> Record:
        rec = self.records.get(job_id)
        if rec is not None:
            return rec
        return next(r for r in b.records if r.job_id == job_id)

    def _cancel(self, inp: Cancel, b: _Batch, now: float) -> None:
        rec = self.records.get(inp.job_id)
        if rec is None:
            raise UnknownJob(inp.job_id)
        if not inp.who.admin and rec.team != inp.who.team:
            b.audit.append(_audit(now, inp.who, "cancel", rec.job_id, "403", "another team's"))
            raise Forbidden(f"job {rec.job_id!r} belongs to another team")
        if not rec.state.terminal and rec.job_id not in b.cancels:
            b.events.append(JobCancelled(now, rec.job_id, f"cancelled by {inp.who.name}"))
            b.cancels.append(rec.job_id)
            if rec.job_id in self.runs.active:
                # stop the run; its GPUs stay held for new launches until it has stopped
                b.effects.append(Stop(rec.job_id, "cancel", "cancelled"))
            b.audit.append(_audit(now, inp.who, "cancel", rec.job_id, "ok", ""))
        b.answers.append((inp.reply, lambda: self.views.job(rec)))

    def _node_command(self, inp: NodeCommand, b: _Batch, now: float) -> None:
        if inp.node not in self.fleet:
            raise UnknownNode(inp.node)
        if not inp.who.admin:
            b.audit.append(_audit(now, inp.who, inp.op.value, inp.node, "403", "not an admin"))
            raise Forbidden(f"{inp.op.value} is for operators; use an admin token")
        cause = f"{inp.op.value} by {inp.who.name}"
        event: Event
        if inp.op is NodeOp.CORDON:
            event = NodeCordoned(now, inp.node, cause)
        elif inp.op is NodeOp.DRAIN:
            event = NodeDrained(now, inp.node, cause)
        else:
            event = NodeUncordoned(now, inp.node, cause)
        b.events.append(event)
        b.audit.append(_audit(now, inp.who, inp.op.value, inp.node, "ok", ""))
        b.answers.append((inp.reply, lambda: self.views.node(inp.node)))

    def _observed(self, inp: Observed, b: _Batch, now: float) -> None:
        for report in inp.runs:
            self._run_report(report, b, now)
        if inp.node_ids is not None:
            lost = self.lost
            for name in sorted(self.fleet):
                if name in inp.node_ids and name in lost:
                    b.events.append(NodeJoined(now, name, "back in the Ray cluster"))
                elif name not in inp.node_ids and name not in lost:
                    b.events.append(NodeLost(now, name, "not alive in the Ray cluster"))
            b.node_ids = dict(inp.node_ids)
        for sample in inp.samples:
            self._sample(sample, b, now)

    def _run_report(self, report: RunReport, b: _Batch, now: float) -> None:
        run = self.runs.active.get(report.job_id)
        if run is None or run.attempt != report.attempt:
            return  # fenced: not the job's current attempt
        st = report.status
        rec = self.records.get(run.job_id)
        if rec is not None and st is not None and st.get("metrics"):
            rec.metrics = dict(st["metrics"])
        if st is None or st.get("state") in ENDED_STATES:
            outcome = "lost" if st is None else str(st["state"])
            detail = "runner unreachable; killed" if st is None else str(st.get("detail", ""))
            metrics = dict(rec.metrics) if rec is not None else {}
            b.run_ends.append(RunEnd(run.job_id, run.attempt, outcome, detail, metrics, now))
            b.effects.append(Idle(run.placement))
            if run.why in ("preempt", "cancel"):
                return  # the core already requeued or released it; its GPUs are free now
            if run.why == "max_runtime":
                b.events.append(JobFinished(now, run.job_id, run.cause, RunOutcome.FAILED))
            elif outcome == "succeeded":
                b.events.append(JobFinished(now, run.job_id, "succeeded", RunOutcome.SUCCEEDED))
            elif outcome == "lost":
                b.events.append(JobInterrupted(now, run.job_id, "runner unreachable"))
            else:
                b.events.append(
                    JobFinished(now, run.job_id, f"failed: {detail}", RunOutcome.FAILED)
                )
            return
        max_rt = None if rec is None else rec.spec.get("max_runtime_s")
        if (
            run.stop_deadline_s is None
            and max_rt is not None
            and now - run.started_at_s > float(max_rt)
        ):
            b.effects.append(
                Stop(run.job_id, "max_runtime", f"failed: ran past max_runtime_s={float(max_rt):g}")
            )
        elif run.stop_deadline_s is not None and self.clock() > run.stop_deadline_s:
            b.effects.append(Kill(run.job_id))  # the next poll sees it gone

    def _sample(self, sample: Any, b: _Batch, now: float) -> None:
        """Check a node's sample against the fleet before anything of it is journaled."""
        from scheduler.runtime.telemetry import to_events

        spec = self.fleet.get(sample.node)
        if spec is None:
            self._refuse(TelemetryRefusal.UNKNOWN_NODE, f"sample from unknown node {sample.node!r}")
            return
        if sample.node in self.lost:
            return
        events = to_events(sample)
        for ev in events:
            why = _bad_reading(ev, spec)
            if why is not None:
                self._refuse(why[0], f"{sample.node} GPU {ev.gpu_index}: {why[1]}")
                return  # the whole sample: one contradiction makes the rest doubtful
        b.samples[sample.node] = sample
        for ev in events:
            # feed the core only what can change a decision: faults, and memory or
            # temperature moving by a step (the journal stays small)
            key = (ev.node, ev.gpu_index)
            seen = (ev.memory_used_mib // 512, int(ev.temperature_c), ev.ecc_uncorrected)
            if ev.xids or self._fed.get(key) != seen:
                self._fed[key] = seen
                b.events.append(_at(ev, now))

    def _refuse(self, reason: TelemetryRefusal, text: str) -> None:
        self.metrics.telemetry_refused(reason)
        log.warning("telemetry refused (%s): %s", reason.value, text)

    # -------------------------------------------------------------- snapshot
    def snapshot(self) -> None:
        """Step 6: the core's state as of the last committed batch (lock held)."""
        save_snapshot(self.journal, self.core, self.sched, self.now())
        self._since_snapshot = self._events_since = 0


def _audit(
    now: float, who: Principal, action: str, target: str, outcome: str, detail: str
) -> AuditEntry:
    return AuditEntry(now, who.name, who.team, action, target, outcome, detail)


def _bad_reading(ev: GpuTelemetry, spec: NodeSpec) -> tuple[TelemetryRefusal, str] | None:
    if not 0 <= ev.gpu_index < spec.gpus:
        return TelemetryRefusal.EXTRA_GPU, (
            f"GPU index {ev.gpu_index}, but the fleet declares {spec.gpus} GPU(s)"
        )
    for name in ("utilization_pct", "temperature_c", "power_w"):
        if not math.isfinite(getattr(ev, name)):
            return TelemetryRefusal.NOT_FINITE, f"{name} is {getattr(ev, name)!r}"
    for name in ("memory_used_mib", "memory_total_mib", "ecc_uncorrected"):
        if getattr(ev, name) < 0:
            return TelemetryRefusal.NEGATIVE, f"{name} is {getattr(ev, name)!r}"
    if any(x < 0 for x in ev.xids):
        return TelemetryRefusal.NEGATIVE, f"XID codes {ev.xids!r}"
    return None


def _at(ev: GpuTelemetry, now_s: float) -> GpuTelemetry:
    """The event stamped with the service clock (samples carry the sampler's own clock)."""
    from dataclasses import replace

    return replace(ev, now_s=now_s)
