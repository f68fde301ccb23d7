"""The scheduler service: the thin shell that drives ``scheduler.core`` live.

It turns the world into core events (submissions, cancels, run outcomes, node loss, GPU
telemetry, the passing of time), journals each batch before the core sees it, and turns the
core's actions into Ray Train runs. It holds no scheduling logic: every decision is the
core's, so the simulator measures what this service does.

Durability: a submission is committed to the journal (SQLite, WAL, synchronous=FULL) before
the caller hears "accepted". On start the service replays the journal through a fresh core;
the core is deterministic, so it reaches the state it had, and the replay checks that it
returns the actions the journal recorded. Runs are re-attached by their runner's name; a run
whose runner is gone is requeued to resume from its checkpoint. A run is recorded in the
journal *before* its runner is created, and a recorded run whose runner is missing is never
started again under the same attempt, so no run is launched twice.

All public methods take one lock: Ray calls them from several threads of the actor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
from scheduler.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobInterrupted,
    JobSubmitted,
    NodeJoined,
    NodeLost,
    Tick,
)
from scheduler.core.model import MILLI_PER_GPU, Placement
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import make_packing, make_queue
from scheduler.runtime import spec as specs
from scheduler.runtime.config import NodeSpec, ServiceConfig
from scheduler.runtime.executor import ENDED_STATES, RunRequest, WorkerSlot, read_logs
from scheduler.runtime.journal import Journal, rebuild
from scheduler.runtime.metrics import ServiceMetrics
from scheduler.runtime.views import (
    GpuView,
    JobState,
    JobView,
    NodeView,
    QueueEntry,
    SpecRejected,
    UnknownJob,
    WorkerPlacementView,
)


class Launcher(Protocol):
    """Starts, watches and stops runs (``executor.py`` on Ray; a fake in unit tests)."""

    def prepare(self) -> tuple[str, Any]: ...  # an idle runner, ready to run: name, handle

    def run(self, handle: Any, req: RunRequest) -> None: ...

    def find(self, runner: str) -> Any | None: ...

    def status(self, handles: Sequence[Any]) -> list[dict[str, Any] | None]: ...  # None: gone

    def stop(self, handle: Any) -> None: ...

    def kill(self, handle: Any) -> None: ...


class Cluster(Protocol):
    """The nodes as Ray sees them and their telemetry."""

    def node_ids(self) -> dict[str, str]: ...  # fleet node name -> Ray node id, alive ones

    def telemetry(self) -> list[Any]: ...  # telemetry.NodeSample of every sampled node

    def head_node_id(self) -> str: ...

    def show_load(self, placement: Placement, busy: bool) -> None: ...  # simulated GPUs only


@dataclass(slots=True)
class Record:
    """The service's view of one job (the core holds the scheduling state)."""

    job_id: str
    name: str
    team: str
    priority: int
    spec: dict[str, Any]
    submitted_at_s: float
    state: JobState = JobState.PENDING
    reason: str = "queued"
    started_at_s: float | None = None
    finished_at_s: float | None = None
    attempts: int = 0
    preemptions: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    placement: Placement | None = None
    cancel_asked: bool = False
    end_cause: str | None = None  # why the current run is being stopped, if it is


@dataclass(slots=True)
class ActiveRun:
    job_id: str
    attempt: int
    handle: Any
    placement: Placement
    started_at_s: float
    stop_deadline_s: float | None = None  # set once asked to checkpoint and stop
    why: str = ""  # why it is being stopped: preempt, cancel or max_runtime


class SchedulerService:
    def __init__(
        self,
        cfg: ServiceConfig,
        fleet: Sequence[NodeSpec],
        launcher: Launcher,
        cluster: Cluster,
        simulated: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.fleet_specs = {n.name: n for n in fleet}
        self.launcher = launcher
        self.cluster = cluster
        self.simulated = simulated
        self.clock = clock
        self.lock = threading.RLock()
        self.metrics = ServiceMetrics()
        state_dir = cfg.state_path
        state_dir.mkdir(parents=True, exist_ok=True)
        self.storage_path = str(state_dir / "runs")
        self.control_root = state_dir / "control"
        self.priority_classes = _priority_classes(cfg)
        self.core = self._fresh_core()
        self.records: dict[str, Record] = {}
        self.active: dict[str, ActiveRun] = {}
        self.deferred: list[Launch] = []  # launches waiting for stopping runs to let go
        self.node_ids: dict[str, str] = {}
        self.lost: set[str] = set()
        self.samples: dict[str, Any] = {}
        self._last_tick_s = 0.0
        self._last_telemetry_s = 0.0
        self._fed: dict[tuple[str, int], tuple[object, ...]] = {}
        self.journal = Journal(state_dir / "journal.db")
        self._recover()

    # ----------------------------------------------------------------- setup
    def _fresh_core(self) -> ClusterState:
        from scheduler.files.quota_file import load_quotas

        cfg = self.cfg
        models = sorted({n.gpu_model for n in self.fleet_specs.values()})
        quotas = load_quotas(cfg.quotas, models=models) if cfg.quotas else None
        core_cfg = CoreConfig(backfill=cfg.backfill, preemption=cfg.preemption)  # type: ignore[arg-type]
        nodes = [n.to_node() for n in self.fleet_specs.values()]
        return ClusterState(
            nodes,
            make_packing(cfg.packing, PolicyContext()),
            core_cfg,
            make_queue(cfg.queue),
            quotas,
        )

    def _recover(self) -> None:
        """Rebuild the core from the journal, then re-attach or requeue the runs."""

        last_placement: dict[str, Placement] = {}  # where each job's latest run was put

        def replay(*events: Event) -> list[Action]:
            actions = self.core.handle(*events)
            self._note_actions(actions, replaying=True)
            for a in actions:
                if isinstance(a, Launch):
                    last_placement[a.job_id] = a.placement
            return actions

        subs = self.journal.submissions()
        for sub in subs:
            self.records[sub.job_id] = Record(
                sub.job_id, sub.name, sub.team, 0, sub.spec, sub.submitted_at_s
            )
        rebuild(
            self.journal, replay
        )  # raises ReplayMismatch naming the seq if code and journal disagree
        for sub in subs:
            job = self.core.jobs.get(sub.job_id)
            if job is not None:
                self.records[sub.job_id].priority = job.priority
        for job_id, st in self.journal.job_states().items():
            rec = self.records.get(job_id)
            if rec is not None and st.state.terminal:
                rec.state, rec.reason, rec.finished_at_s = st.state, st.reason, st.updated_at_s
        for rec in self.records.values():
            runs = self.journal.runs(rec.job_id)
            rec.attempts = max((r.attempt for r in runs), default=0)
            if runs:
                rec.started_at_s = runs[0].started_at_s
                rec.metrics = dict(runs[-1].metrics or {})
        nodes = self._poll_nodes()  # the Ray nodes as they are now, before any launch
        if nodes:
            self._feed(nodes)
        for run in self.journal.open_runs():
            handle = self.launcher.find(run.runner)
            running = self.core.running.get(run.job_id)
            if (
                handle is not None
                and (self.launcher.status([handle])[0] or {}).get("state") == "idle"
            ):
                self.launcher.kill(handle)  # the service died before handing it the run
                handle = None
            if handle is None:
                self.journal.run_ended(
                    run.job_id, run.attempt, "lost", "runner gone after a restart", {}, self.clock()
                )
                if running is not None:
                    self._feed(
                        [
                            JobInterrupted(
                                self._now(), run.job_id, "runner gone after a service restart"
                            )
                        ]
                    )
                continue
            # a run the core already let go still holds its GPUs until it stops (_blocked)
            placement = running or last_placement.get(run.job_id, Placement(run.job_id))
            active = ActiveRun(run.job_id, run.attempt, handle, placement, run.started_at_s)
            self.active[run.job_id] = active
            if running is None:  # the core had stopped it (preempted, cancelled): finish that
                self._ask_stop(active, "preempt", "stopping after a service restart")
        # launches the core made whose runs were never recorded (crash in between)
        for job_id, placement in sorted(self.core.running.items()):
            if job_id not in self.active:
                self._launch(Launch(job_id, placement, self._now(), "relaunch after restart"))

    # ------------------------------------------------------------ the clock
    def _now(self) -> float:
        """Wall-clock seconds, never behind the core's clock (journal times are monotonic)."""
        return max(self.clock(), self.core.now_s)

    # --------------------------------------------------------- feeding core
    def _feed(self, events: list[Event]) -> list[Action]:
        return self._answer(self.journal.append(events), events)

    def _answer(self, seq: int, events: list[Event]) -> list[Action]:
        """Hand the batch journaled as ``seq`` to the core; journal and act on its actions."""
        t0 = time.perf_counter()
        actions = self.core.handle(*events)
        self.metrics.observe_cycle(time.perf_counter() - t0)
        self.journal.record_actions(seq, actions)
        self._note_actions(actions, replaying=False)
        return actions

    def _note_actions(self, actions: list[Action], replaying: bool) -> None:
        for a in actions:
            rec = self.records.get(a.job_id)
            if rec is None:
                continue
            if isinstance(a, Launch):
                rec.state, rec.reason = JobState.RUNNING, f"placed ({a.cause})"
                rec.placement = a.placement
                if not replaying:
                    self.metrics.observe_admission(rec.team, max(0.0, a.now_s - rec.submitted_at_s))
                    self._launch(a)
            elif isinstance(a, Preempt):
                rec.preemptions += 1
                rec.state, rec.reason = JobState.PENDING, f"requeued: {a.cause}"
                rec.placement = None
                if not replaying:
                    self.metrics.preempted(rec.team, a.cause.split(":")[0])
                    run = self.active.get(a.job_id)
                    if run is not None:
                        self._ask_stop(run, "preempt", a.cause)
                        if self.lost & set(run.placement.nodes):
                            # its workers are gone: nothing can checkpoint, stop it now
                            self.launcher.kill(run.handle)
            elif isinstance(a, Reject):
                self._set_state(rec, JobState.REJECTED, a.reason, a.now_s, replaying)
            elif isinstance(a, Release) and not rec.state.terminal:
                cause = a.cause
                if rec.cancel_asked or cause.startswith("cancel"):
                    self._set_state(rec, JobState.CANCELLED, "cancelled", a.now_s, replaying)
                elif cause.startswith("succeeded"):
                    self._set_state(rec, JobState.SUCCEEDED, "finished", a.now_s, replaying)
                else:
                    self._set_state(rec, JobState.FAILED, cause, a.now_s, replaying)

    def _set_state(
        self, rec: Record, state: JobState, reason: str, now_s: float, replaying: bool
    ) -> None:
        rec.state, rec.reason = state, reason
        rec.placement = None if state.terminal else rec.placement
        if state.terminal:
            rec.finished_at_s = now_s
        if not replaying:
            self.journal.set_state(rec.job_id, state, reason, now_s)
            if state.terminal:
                self.metrics.finished(rec.team, state.value)

    # --------------------------------------------------------------- runs
    def _launch(self, launch: Launch) -> None:
        """Start the run now, or once the runs stopping on its GPUs have let go."""
        if launch.job_id in self.active or self._blocked(launch.placement):
            self.deferred.append(launch)
            return
        rec = self.records[launch.job_id]
        if self.core.running.get(launch.job_id) != launch.placement:
            return  # superseded (preempted again or cancelled before it could start)
        try:
            workers = tuple(
                WorkerSlot(w.node, self.node_ids[w.node], w.gpu_indices)
                for w in launch.placement.workers
            )
        except KeyError as missing:  # placed on a node Ray has not shown us (yet)
            self.lost.add(str(missing.args[0]))
            self._feed([NodeLost(self._now(), str(missing.args[0]), "not in the Ray cluster")])
            return
        spec = specs.parse_spec(rec.spec, f"job {rec.job_id}")
        rec.attempts += 1
        w0 = launch.placement.workers[0]
        req = RunRequest(
            job_id=rec.job_id,
            attempt=rec.attempts,
            entrypoint=spec.entrypoint,
            config=dict(spec.config),
            workers=workers,
            cpus_per_worker=w0.cpu_milli / 1000,
            gpus_per_worker=len(w0.gpu_indices) * w0.gpu_milli / MILLI_PER_GPU,
            storage_path=self.storage_path,
            control_dir=str(self.control_root / rec.job_id),
            simulated_gpus=self.simulated,
            checkpoint_interval_s=spec.checkpoint_interval_s,
            max_runtime_s=spec.max_runtime_s,
            max_failures=self.cfg.max_failures,
        )
        now = self._now()
        # recorded before the runner gets the run: a crash in between leaves an open run whose
        # runner is idle or gone, which a restart requeues instead of starting a second copy
        name, handle = self.launcher.prepare()
        self.journal.run_started(
            rec.job_id, rec.attempts, f"{rec.job_id}#{rec.attempts}", name, now
        )
        self.launcher.run(handle, req)
        self.cluster.show_load(launch.placement, True)
        self.active[rec.job_id] = ActiveRun(rec.job_id, rec.attempts, handle, launch.placement, now)
        if rec.started_at_s is None:
            rec.started_at_s = now

    def _blocked(self, placement: Placement) -> bool:
        wanted = {(w.node, g) for w in placement.workers for g in w.gpu_indices}
        for run in self.active.values():
            if run.stop_deadline_s is None:
                continue
            held = {(w.node, g) for w in run.placement.workers for g in w.gpu_indices}
            if wanted & held:
                return True
        return False

    def _ask_stop(self, run: ActiveRun, why: str, cause: str) -> None:
        if run.stop_deadline_s is None:
            run.stop_deadline_s = self.clock() + self.cfg.stop_grace_s
            run.why = why
            self.records[run.job_id].end_cause = cause
            self.launcher.stop(run.handle)

    def _poll_runs(self) -> list[Event]:
        """Outcomes of runs that ended; kill runs that overstay their stop deadline."""
        events: list[Event] = []
        runs = sorted(self.active.values(), key=lambda r: r.job_id)
        statuses = self.launcher.status([r.handle for r in runs])
        now = self._now()
        for run, st in zip(runs, statuses, strict=True):
            rec = self.records[run.job_id]
            if st is not None and st.get("metrics"):
                rec.metrics = dict(st["metrics"])
            stopping = run.stop_deadline_s is not None
            if st is None or st["state"] in ENDED_STATES:
                outcome = "lost" if st is None else st["state"]
                detail = "runner died" if st is None else st.get("detail", "")
                self.journal.run_ended(run.job_id, run.attempt, outcome, detail, rec.metrics, now)
                del self.active[run.job_id]
                self.cluster.show_load(run.placement, False)
                if run.why in ("preempt", "cancel"):
                    continue  # the core already requeued or released it; its GPUs are free now
                if run.why == "max_runtime":
                    events.append(JobFinished(now, run.job_id, f"failed: {rec.end_cause}"))
                elif outcome == "succeeded":
                    events.append(JobFinished(now, run.job_id, "succeeded"))
                elif outcome == "lost":
                    events.append(JobInterrupted(now, run.job_id, "runner died"))
                else:
                    events.append(JobFinished(now, run.job_id, f"failed: {detail}"))
                continue
            max_rt = rec.spec.get("max_runtime_s")
            if not stopping and max_rt is not None and now - run.started_at_s > float(max_rt):
                self._ask_stop(run, "max_runtime", f"ran past max_runtime_s={float(max_rt):g}")
            elif (
                stopping and run.stop_deadline_s is not None and self.clock() > run.stop_deadline_s
            ):
                self.launcher.kill(run.handle)  # next poll sees it gone
        return events

    def _poll_nodes(self) -> list[Event]:
        ids = self.cluster.node_ids()
        now = self._now()
        events: list[Event] = []
        for name in sorted(self.fleet_specs):
            if name in ids:
                self.node_ids[name] = ids[name]
                if name in self.lost:
                    self.lost.discard(name)
                    events.append(NodeJoined(now, name, "back in the Ray cluster"))
            elif name not in self.lost:
                self.lost.add(name)
                events.append(NodeLost(now, name, "not alive in the Ray cluster"))
        return events

    def _poll_telemetry(self) -> list[Event]:
        from scheduler.runtime.telemetry import to_events

        events: list[Event] = []
        now = self._now()
        for sample in self.cluster.telemetry():
            self.samples[sample.node] = sample
            if sample.node not in self.fleet_specs or sample.node in self.lost:
                continue
            for ev in to_events(sample):
                # feed the core only what can change a decision: faults, and memory or
                # temperature moving by a step (the journal stays small)
                key = (ev.node, ev.gpu_index)
                seen = (ev.memory_used_mib // 512, int(ev.temperature_c), ev.ecc_uncorrected)
                if ev.xids or self._fed.get(key) != seen:
                    self._fed[key] = seen
                    events.append(_at(ev, now))
        return events

    # ---------------------------------------------------------- the loop
    def step(self) -> None:
        """One pass of the service loop: nodes, telemetry, runs, deferred launches, time."""
        with self.lock:
            events = self._poll_nodes()
            now = self.clock()
            if now - self._last_telemetry_s >= self.cfg.telemetry_period_s:
                self._last_telemetry_s = now
                events += self._poll_telemetry()
            events += self._poll_runs()
            if not events and self.core.pending and now - self._last_tick_s >= 10.0:
                events.append(Tick(self._now()))
            if events:
                self._last_tick_s = now
                self._feed(events)
            waiting, self.deferred = self.deferred, []
            for launch in waiting:
                self._launch(launch)
            self._update_gauges()

    def _update_gauges(self) -> None:
        fleet = self.core.fleet
        cap = fleet.gpu_cap
        unhealthy = int((fleet.gpu_exists & ~fleet.gpu_healthy).sum())
        self.metrics.set_gpus(
            allocated=int((cap - fleet.gpu_free).sum()) / MILLI_PER_GPU,
            free=int(fleet.gpu_free[fleet.gpu_healthy].sum()) / MILLI_PER_GPU,
            unhealthy=unhealthy,
        )
        rows: dict[tuple[str, str], int] = {}
        for job_id in self.core.pending:
            team = self.records[job_id].team if job_id in self.records else "?"
            code = self.core.verdict_of(job_id).code.value
            rows[(team, code)] = rows.get((team, code), 0) + 1
        self.metrics.set_pending(rows)

    # ----------------------------------------------------------- the API
    def submit(self, raw: dict[str, Any], idempotency_key: str | None = None) -> JobView:
        spec = specs.parse_spec(raw, "request body")
        if spec.team is None:
            raise SpecRejected([{"loc": ["team"], "msg": "a team is required", "input": None}])
        with self.lock:
            try:
                priority = (
                    self.priority_classes.value(spec.team, spec.priority_class)
                    if self.priority_classes is not None
                    else spec.priority
                )
            except ValueError as e:
                raise SpecRejected(
                    [{"loc": ["priority_class"], "msg": str(e), "input": spec.priority_class}]
                ) from None
            if spec.priority_class is not None and self.priority_classes is None:
                raise SpecRejected(
                    [
                        {
                            "loc": ["priority_class"],
                            "msg": "no priority classes are configured",
                            "input": spec.priority_class,
                        }
                    ]
                )
            now = self._now()
            job_id = f"job-{self.journal.next_job_number():06d}"
            stored = spec.model_dump(mode="json", exclude_none=True)
            job = specs.to_job(spec, job_id, now, priority=priority)
            event = JobSubmitted(now, job, "submit")
            job_id, created = self.journal.submit(
                job_id, spec.team, spec.name, stored, now, idempotency_key, event
            )
            if not created:
                return self._view(self.records[job_id])
            self.records[job_id] = Record(job_id, spec.name, spec.team, priority, stored, now)
            self._answer(self.journal.last_seq(), [event])  # journal.submit appended it
            return self._view(self.records[job_id])

    def list_jobs(self, team: str | None = None, state: JobState | None = None) -> list[JobView]:
        with self.lock:
            info = self._pending_info()
            return [
                self._view(r, info)
                for r in sorted(self.records.values(), key=lambda r: r.job_id)
                if (team is None or r.team == team) and (state is None or r.state is state)
            ]

    def get_job(self, job_id: str) -> JobView:
        with self.lock:
            return self._view(self._record(job_id), self._pending_info())

    def cancel(self, job_id: str) -> JobView:
        with self.lock:
            rec = self._record(job_id)
            if rec.state.terminal:
                return self._view(rec)
            rec.cancel_asked = True
            # stop the run first: its GPUs stay held for new launches until it has stopped
            # (see _blocked); then the core lets go at once (journaled, so a restart knows)
            run = self.active.get(job_id)
            if run is not None:
                self._ask_stop(run, "cancel", "cancelled")
            self._feed([JobCancelled(self._now(), job_id, "cancelled")])
            return self._view(rec)

    def logs(self, job_id: str, tail_lines: int = 200) -> str:
        with self.lock:
            self._record(job_id)
        return read_logs(str(self.control_root / job_id), tail_lines)

    def queue(self, team: str | None = None) -> list[QueueEntry]:
        with self.lock:
            out = []
            for p in self.core.pending_info():
                rec = self.records.get(p.job_id)
                if rec is None or (team is not None and rec.team != team):
                    continue
                out.append(
                    QueueEntry(
                        job_id=p.job_id, name=rec.name, team=rec.team, position=p.position,
                        code=p.code.value, reason=p.reason, estimated_start_s=_finite(p.estimated_start_s),
                    )
                )  # fmt: skip
            return out

    def nodes(self) -> list[NodeView]:
        from scheduler.runtime.telemetry import gpu_views

        with self.lock:
            fleet = self.core.fleet
            out = []
            for name, spec in self.fleet_specs.items():
                i = fleet.index[name]
                sample = self.samples.get(name)
                allocated = {
                    g: int(fleet.gpu_cap[i, g] - fleet.gpu_free[i, g]) for g in range(spec.gpus)
                }
                reasons = {g: list(self.core.health.why(name, g)) for g in range(spec.gpus)}
                if sample is not None:
                    gpus = gpu_views(sample, reasons, allocated)
                else:
                    gpus = [
                        GpuView(index=g, model=spec.gpu_model, memory_total_mib=spec.gpu_memory_mib,
                                healthy=bool(fleet.gpu_healthy[i, g]), why_unhealthy=reasons[g],
                                allocated_milli=allocated[g])
                        for g in range(spec.gpus)
                    ]  # fmt: skip
                out.append(
                    NodeView(
                        name=name, ray_node_id=self.node_ids.get(name), alive=name not in self.lost,
                        schedulable=bool(fleet.schedulable[i]),
                        off_reasons=sorted(self.core.off.get(name, set())),
                        labels=dict(spec.labels), simulated=self.simulated,
                        sampled_at_s=None if sample is None else sample.now_s, gpus=gpus,
                    )
                )  # fmt: skip
            return out

    def metrics_text(self) -> str:
        with self.lock:
            self._update_gauges()
            return self.metrics.render()

    def run_status(self, job_id: str) -> dict[str, Any] | None:
        """The live status of the job's current run (benchmarks, tests)."""
        with self.lock:
            run = self.active.get(job_id)
            return None if run is None else self.launcher.status([run.handle])[0]

    # ------------------------------------------------------------ helpers
    def _record(self, job_id: str) -> Record:
        rec = self.records.get(job_id)
        if rec is None:
            raise UnknownJob(job_id)
        return rec

    def _pending_info(self) -> dict[str, Any]:
        return {p.job_id: p for p in self.core.pending_info()}

    def _view(self, rec: Record, info: dict[str, Any] | None = None) -> JobView:
        p = (info if info is not None else self._pending_info()).get(rec.job_id)
        placement = rec.placement if rec.state is JobState.RUNNING else None
        return JobView(
            job_id=rec.job_id, name=rec.name, team=rec.team, priority=rec.priority,
            state=rec.state, reason=p.reason if p is not None else rec.reason,
            code=p.code.value if p is not None else None,
            queue_position=p.position if p is not None else None,
            estimated_start_s=_finite(p.estimated_start_s) if p is not None else None,
            submitted_at_s=rec.submitted_at_s, started_at_s=rec.started_at_s,
            finished_at_s=rec.finished_at_s,
            placement=[
                WorkerPlacementView(rank=i, node=w.node, gpu_indices=list(w.gpu_indices), gpu_milli=w.gpu_milli)
                for i, w in enumerate(placement.workers)
            ] if placement is not None else [],
            attempts=rec.attempts, preemptions=rec.preemptions, metrics=rec.metrics, spec=rec.spec,
        )  # fmt: skip

    def close(self) -> None:
        with self.lock:
            self.journal.close()


def _finite(x: float) -> float | None:
    return None if x != x or x in (float("inf"), float("-inf")) else x


def _at(ev: Any, now_s: float) -> Any:
    """The event stamped with the service clock (samples carry the sampler's own clock)."""
    from dataclasses import replace

    return replace(ev, now_s=now_s)


def _priority_classes(cfg: ServiceConfig) -> Any:
    if cfg.priority_classes is None:
        return None
    from scheduler.files.priority_file import load_priority_classes

    return load_priority_classes(Path(cfg.priority_classes))
