"""The scheduler service: the thin shell that drives ``scheduler.core`` live.

It holds no scheduling logic: every decision is the core's, so the simulator measures what
this service does. Its jobs, one module each:

* ``driver.py``: the one writer of the core: inputs (submissions, cancels, node commands,
  observations) checked at the edge, one core cycle and ONE journal transaction per batch of
  inputs that arrived together (group commit), rolled back whole if the write fails;
* ``runs.py``: the Ray Train runs: start (fenced by attempt), watch, stop, kill, all remote
  calls made without the service lock;
* ``recovery.py``: on start, the core from its snapshot and the batches after it, then
  reconciled with today's fleet file, configuration and Ray cluster;
* ``presenter.py``: the views the API and CLI show.

Two ways to drive it: ``step()`` does one poll, one batch and its effects in the caller's
thread (unit tests, benchmarks); ``start()`` runs three threads (poller, committer,
effector) so that a slow Ray call never delays a submission (the Ray actor).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from scheduler.core.actions import Launch
from scheduler.core.events import JobInterrupted, NodeLost, Tick
from scheduler.core.model import Placement
from scheduler.runtime.auth import Principal
from scheduler.runtime.config import NodeSpec, ServiceConfig
from scheduler.runtime.driver import (
    Audited,
    Cancel,
    Driver,
    Input,
    Internal,
    NodeCommand,
    Observed,
    Submit,
)
from scheduler.runtime.executor import RunRequest, read_log, tail_log
from scheduler.runtime.journal import Journal, JournalError, RunEnd
from scheduler.runtime.metrics import ServiceMetrics
from scheduler.runtime.packages import PackageStore
from scheduler.runtime.presenter import Presenter
from scheduler.runtime.records import Records
from scheduler.runtime.recovery import adopt, recover, save_snapshot
from scheduler.runtime.runs import (
    ActiveRun,
    Cluster,
    Effect,
    Launcher,
    Runs,
    RunSettings,
    Start,
    Stop,
    run_request,
)
from scheduler.runtime.views import (
    AuditView,
    JobPage,
    JobState,
    JobView,
    LogChunk,
    NodeOp,
    NodeView,
    QueueEntry,
    Unavailable,
    UnknownJob,
)

__all__ = ["LOCAL", "Cluster", "Launcher", "SchedulerService"]

log = logging.getLogger("gpuyard.service")
LOCAL = Principal("local", None, True)  # an in-process caller (tests, benchmarks, demo)
ANSWER_TIMEOUT_S = 60.0
PACKAGE_KEEP_S = 86_400.0  # an unreferenced upload is kept this long (its job may follow)


class Inbox:
    """Inputs waiting for the driver; ``take`` returns all that arrived together."""

    def __init__(self) -> None:
        self._items: deque[Input] = deque()
        self._cond = threading.Condition()

    def put(self, item: Input) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def take(self, timeout_s: float | None = 0.0) -> list[Input]:
        with self._cond:
            if not self._items and timeout_s:
                self._cond.wait(timeout_s)
            out = list(self._items)
            self._items.clear()
            return out


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
        self.control_root = state_dir / "control"
        self.sched = cfg.scheduler_config(sorted({n.gpu_model for n in fleet}))
        self.residency = cfg.residency_for(fleet)  # a rule naming a region the fleet lacks: error
        self.journal = Journal(state_dir / "journal.db")
        self.inbox = Inbox()
        self._effects: deque[list[Effect]] = deque()
        self._effects_cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []  # the loop threads' last errors (tracebacks)
        self._last_telemetry_s = -1e18
        self.packages = PackageStore(state_dir / "packages")
        settings = RunSettings(
            storage_path=cfg.storage_root,
            control_root=self.control_root,
            simulated=simulated,
            stop_grace_s=cfg.stop_grace_s,
            max_failures=cfg.max_failures,
            journal_id=self.journal.instance_id(),
            dashboard_url=cfg.ray_dashboard_url,
            package_root=self.packages.root,
        )
        self.runs = Runs(settings, launcher, cluster, self.journal, self.lock, clock)
        self._recover()

    # -------------------------------------------------------------- start up
    def _recover(self) -> None:
        """``recovery.py``'s steps: restore, reconcile the fleet, adopt today's
        configuration, then the runs."""
        nodes_now = [n.to_node() for n in self.fleet_specs.values()]
        found = recover(self.journal, self.sched, nodes_now)
        core = found.core
        records = Records.load(self.journal, {j: job.priority for j, job in core.jobs.items()})
        self.records = records
        self.views = Presenter(
            lambda: self.driver.core, records, self.fleet_specs,
            lambda: (self.driver.node_ids, self.driver.lost, self.driver.samples), self.simulated,
            self.runs.settings.run_name,
        )  # fmt: skip
        self.driver = Driver(
            self.cfg, self.sched, list(self.fleet_specs.values()), core, self.journal, records,
            self.runs, self.metrics, self.lock, self.clock, self.views, self.packages.exists,
            self.residency,
        )  # fmt: skip
        now = self.driver.now()
        if found.gone:  # step 2: nodes removed from (or changed in) the fleet file
            # no run is attached yet: this batch's effects (launches on the old fleet) are
            # superseded by step 4, which starts what the adopted core runs
            self.driver.process([Internal([
                NodeLost(now, n, "removed from the fleet file" if n not in self.fleet_specs
                         else "changed in the fleet file") for n in found.gone
            ])])  # fmt: skip
        self._collect_packages()
        with self.lock:  # step 3
            self.driver.core = adopt(self.driver.core, self.sched, nodes_now)
            save_snapshot(self.journal, self.driver.core, self.sched, self.driver.now())
        self._execute(self._reattach(found.last_launch))

    def _collect_packages(self) -> None:
        """Uploaded packages that only ended jobs refer to, a day old, are deleted."""
        keep: set[str] = set()
        for rec in self.records.values():
            if not rec.state.terminal:
                env = rec.spec.get("runtime_env") or {}
                uris = [env.get("working_dir"), *(env.get("py_modules") or [])]
                keep.update(u for u in uris if isinstance(u, str) and u.startswith("gcs://"))
        for uri in self.packages.collect(keep, PACKAGE_KEEP_S, time.time()):
            log.info("deleted package %s: no job that may still run refers to it", uri)

    def _reattach(self, last_launch: dict[str, Placement]) -> list[Effect]:
        """Step 4: open runs re-attached or ended; running jobs with no run launched."""
        core = self.driver.core
        now = self.driver.now()
        lost = Internal()
        effects: list[Effect] = []
        attached: set[str] = set()  # re-attached runs of jobs the core still runs there
        for run in self.journal.open_runs():
            handle = self.launcher.find(run.runner)
            if (
                handle is not None
                and (self.launcher.status([handle])[0] or {}).get("state") == "idle"
            ):
                self.launcher.kill(handle)  # the service died before handing it the run
                handle = None
            if handle is None:
                lost.run_ends.append(
                    RunEnd(run.job_id, run.attempt, "lost", "runner gone after a restart", {}, now)
                )
                if run.job_id in core.running:
                    lost.events.append(
                        JobInterrupted(now, run.job_id, "runner gone after a service restart")
                    )
                continue
            # where the run is: a run the core let go still holds its GPUs until it stops
            ran = run.placement or last_launch.get(run.job_id) or core.running.get(run.job_id)
            placement = ran or Placement(run.job_id)
            with self.lock:
                self.runs.active[run.job_id] = ActiveRun(
                    run.job_id, run.attempt, handle, placement, run.started_at_s
                )
            now_at = core.running.get(run.job_id)
            if now_at is not None and _where(now_at) == _where(placement):
                attached.add(run.job_id)  # the core runs it where it runs: carry on
            else:  # preempted, cancelled, or moved (its node left the fleet): finish that
                effects.append(Stop(run.job_id, "preempt", "stopping after a service restart"))
        # one cycle on today's fleet and configuration (new nodes take work now)
        lost.events.append(Tick(now))
        effects += [e for e in self.driver.process([lost]) if not isinstance(e, Start)]
        core = self.driver.core
        with self.lock:
            for rec in self.records.values():
                rec.placement = core.running.get(rec.job_id)
                rec.preemptions = max(rec.preemptions, core.preemptions.get(rec.job_id, 0))
        # every job the core runs without its run attached gets a new attempt (it waits for
        # an old run of the job still stopping); one Start per job
        for job_id, placement in sorted(core.running.items()):
            if job_id not in attached:
                effects.append(Start(Launch(job_id, placement, now, "relaunch after restart")))
        return effects

    # ------------------------------------------------------------ the loop
    def _poll(self) -> Observed:
        """What the world looks like now (remote calls, no lock)."""
        reports = self.runs.poll()
        ids = self.cluster.node_ids()
        samples: list[Any] = []
        now = self.clock()
        if now - self._last_telemetry_s >= self.cfg.telemetry_period_s:
            self._last_telemetry_s = now
            samples = self.cluster.telemetry()
        return Observed(reports, ids, samples)

    def _is_current(self, launch: Launch) -> bool:
        """Is the launch still where the core runs the job? Compared by node name and GPUs:
        a restart onto another fleet renumbers the nodes but moves nothing."""
        now = self.driver.core.running.get(launch.job_id)
        return now is not None and _where(now) == _where(launch.placement)

    def _request(self, launch: Launch, attempt: int) -> RunRequest | None:
        rec = self.records.get(launch.job_id)
        if rec is None:
            return None
        req = run_request(self.runs.settings, launch, attempt, rec.spec, self.driver.node_ids)
        if req is not None:
            rec.attempts = attempt
        return req

    def _execute(self, effects: list[Effect]) -> None:
        self.runs.execute(effects, self._is_current, self._request)

    def _pump(self) -> None:
        """Synchronous mode: process what is in the inbox and carry out its effects."""
        inputs = self.inbox.take()
        if inputs:
            self._execute(self.driver.process(inputs))

    def step(self) -> None:
        """One pass: poll the world, process every input waiting, carry out the effects."""
        self.inbox.put(self._poll())
        self._pump()
        self._update_gauges()

    def start(self) -> None:
        """Run the loop in three threads: poller, committer (the driver), effector."""
        if self._threads:
            return
        targets = {"poller": self._poller, "committer": self._committer, "effector": self._effector}
        for name, fn in targets.items():
            t = threading.Thread(
                target=_forever(fn, self._stop, self.errors), name=f"gpuyard-{name}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _poller(self) -> None:
        self.inbox.put(self._poll())
        self._update_gauges()
        self._stop.wait(self.cfg.loop_period_s)

    def _committer(self) -> None:
        inputs = self.inbox.take(self.cfg.loop_period_s)
        if inputs:
            effects = self.driver.process(inputs)
            with self._effects_cond:
                self._effects.append(effects)
                self._effects_cond.notify()

    def _effector(self) -> None:
        with self._effects_cond:
            if not self._effects:
                self._effects_cond.wait(self.cfg.loop_period_s)
            batches = list(self._effects)
            self._effects.clear()
        self._execute([e for batch in batches for e in batch])

    def _ask(self, inp: Submit | Cancel | NodeCommand) -> Any:
        self.inbox.put(inp)
        if not self._threads:
            self._pump()
        return inp.reply.wait(ANSWER_TIMEOUT_S)

    def _update_gauges(self) -> None:
        with self.lock:
            core = self.driver.core
            self.metrics.set_fleet(core.fleet, core.off, core.off_since)
            now = self.driver.now()
            rows: dict[tuple[str, str], int] = {}
            oldest: dict[tuple[str, str], float] = {}
            for p in self.views.pending().values():
                rec = self.records.get(p.job_id)
                key = (rec.team if rec is not None else "?", p.code.value)
                rows[key] = rows.get(key, 0) + 1
                if rec is not None:  # waiting since submission, or since the last requeue
                    since = rec.requeued_at_s
                    if since is None:
                        since = rec.submitted_at_s
                    oldest[key] = max(oldest.get(key, 0.0), now - since)
            self.metrics.set_pending(rows, oldest)

    # ----------------------------------------------------------- the API
    def submit(
        self, raw: dict[str, Any], idempotency_key: str | None = None, who: Principal = LOCAL
    ) -> JobView:
        """Accept a job (or, for a key this team used before, return that job)."""
        return self._ask(Submit(who, raw, idempotency_key))  # type: ignore[no-any-return]

    def cancel(self, job_id: str, who: Principal = LOCAL) -> JobView:
        return self._ask(Cancel(who, job_id))  # type: ignore[no-any-return]

    def node_op(self, node: str, op: NodeOp, who: Principal = LOCAL) -> NodeView:
        return self._ask(NodeCommand(who, node, NodeOp(op)))  # type: ignore[no-any-return]

    def refused(self, who: Principal, action: str, target: str, outcome: str, detail: str) -> None:
        """Audit a call the API refused (401, 403); recorded with the next batch."""
        self.inbox.put(Audited(who, action, target, outcome, detail))

    def list_jobs(self, team: str | None = None, state: JobState | None = None) -> list[JobView]:
        with self.lock:
            return self.views.jobs(team, state)

    def page_jobs(
        self, team: str | None, state: JobState | None, limit: int, after: str | None
    ) -> JobPage:
        """One page of jobs, oldest first (job ids sort by submission)."""
        with self.lock:
            return self.views.page(team, state, limit, after)

    def get_job(self, job_id: str) -> JobView:
        with self.lock:
            return self.views.job(self.views.record(job_id))

    def find_job(self, team: str, key: str) -> JobView:
        """The team's job submitted with idempotency key ``key`` (a Ray submission id)."""
        with self.lock:
            job_id = self.records.keys.get((team, key))
            if job_id is None:
                raise UnknownJob(key)
            return self.views.job(self.views.record(job_id))

    def logs(self, job_id: str, tail_lines: int = 200) -> str:
        with self.lock:
            self.views.record(job_id)
        return tail_log(self.runs.settings.log_path(job_id), tail_lines)

    def log_chunk(self, job_id: str, offset: int, limit_bytes: int = 1 << 20) -> LogChunk:
        """The job's log from byte ``offset`` on; ``ended`` once the job has ended and no
        run of it is still writing."""
        with self.lock:
            rec = self.views.record(job_id)
            ended = rec.state.terminal and job_id not in self.runs.active
        text, nxt = read_log(self.runs.settings.log_path(job_id), offset, limit_bytes)
        return LogChunk(job_id=job_id, offset=offset, next_offset=nxt, text=text, ended=ended)

    def package_exists(self, uri: str) -> bool:
        return self.packages.exists(uri)

    def put_package(self, who: Principal, uri: str, data: bytes) -> None:
        """Keep an uploaded package in ``<state_dir>/packages`` (the runner puts it into
        Ray's GCS before each attempt: ``packages.ensure_in_gcs``); audited."""
        try:
            self.packages.put(uri, data)
        except OSError as e:
            raise Unavailable(f"cannot store package {uri}: {e}") from None
        self.inbox.put(
            Audited(who, "upload package", uri, "ok", f"{len(data)} bytes")
        )  # recorded with the next batch

    def queue(self, team: str | None = None) -> list[QueueEntry]:
        with self.lock:
            return self.views.queue(team)

    def nodes(self) -> list[NodeView]:
        with self.lock:
            return self.views.nodes()

    def audit(
        self, since_s: float | None = None, team: str | None = None, limit: int = 1000
    ) -> list[AuditView]:
        rows = self.journal.audit(since_s, team, limit)
        return [
            AuditView(id=r.id, at_s=r.at_s, principal=r.principal, team=r.team, action=r.action,
                      target=r.target, outcome=r.outcome, detail=r.detail)
            for r in rows
        ]  # fmt: skip

    def metrics_text(self) -> str:
        self._update_gauges()
        return self.metrics.render()

    def run_status(self, job_id: str) -> dict[str, Any] | None:
        """The live status of the job's current run (benchmarks, tests)."""
        with self.lock:
            run = self.runs.active.get(job_id)
            handle = None if run is None else run.handle
        return None if handle is None else self.launcher.status([handle])[0]

    @property
    def core(self) -> Any:
        return self.driver.core

    @property
    def active(self) -> dict[str, ActiveRun]:
        return self.runs.active

    def close(self) -> None:
        """Stop the threads; snapshot the core (a clean restart replays nothing); close."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._threads = []
        with self.lock:
            try:
                self.driver.snapshot()
            except JournalError as e:  # disk full or locked: the journal still holds it all
                log.warning("no snapshot at close: %s", e)
            self.journal.close()


def _where(p: Placement) -> tuple[tuple[str, tuple[int, ...], int], ...]:
    return tuple((w.node, tuple(w.gpu_indices), w.gpu_milli) for w in p.workers)


def _forever(
    fn: Callable[[], None], stop: threading.Event, errors: list[str]
) -> Callable[[], None]:
    import traceback

    def loop() -> None:
        while not stop.is_set():
            try:
                fn()
            except Exception:  # keep serving; the error is visible through errors
                errors[:] = [*errors[-9:], traceback.format_exc()]
                stop.wait(0.5)

    return loop
