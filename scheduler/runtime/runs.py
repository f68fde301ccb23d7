"""Runs: the Ray Train runs the service started, and the remote calls that start, watch, stop
and kill them. Nothing here decides anything: the core says what runs where; this carries it
out and reports what the runs did.

Fencing. Every run is one *attempt* of its job (1, 2, ...), journaled before its runner gets
it. Before an attempt starts, it is made the run's current attempt in Ray's KV
(``control.RunChannel.begin``): the training loop's helpers (``scheduler.train``) refuse to
checkpoint and stop once a newer attempt is current, so a stale run that comes back cannot
write over its successor's checkpoints.
A status report counts only from the handle of the job's current attempt. A runner that does
not answer (``status`` gives None: gone, hung, partitioned) is killed (``ray.kill``) before
the job is reported lost, so it is never relaunched while the old run may still be alive.

Locking. The service lock guards ``active`` and ``deferred``; every remote call (prepare,
run, status, stop, kill, show_load) is made without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scheduler.core.actions import Launch
from scheduler.core.model import MILLI_PER_GPU, Placement
from scheduler.runtime import spec as specs
from scheduler.runtime.control import RunChannel, Store
from scheduler.runtime.executor import RunRequest, WorkerSlot
from scheduler.runtime.journal import Journal, JournalError


class Launcher(Protocol):
    """Starts, watches and stops runs (``executor.py`` on Ray; a fake in unit tests)."""

    def prepare(self) -> tuple[str, Any]: ...  # an idle runner, ready to run: name, handle

    def run(self, handle: Any, req: RunRequest) -> None: ...

    def find(self, runner: str) -> Any | None: ...

    def status(self, handles: Sequence[Any]) -> list[dict[str, Any] | None]: ...  # None: gone

    def stop(self, handle: Any, why: str) -> None: ...  # checkpoint and return

    def kill(self, handle: Any) -> None: ...  # now (a script job's Ray job too)


class Cluster(Protocol):
    """The nodes as Ray sees them and their telemetry."""

    def node_ids(self) -> dict[str, str]: ...  # fleet node name -> Ray node id, alive ones

    def telemetry(self) -> list[Any]: ...  # telemetry.NodeSample of every sampled node

    def head_node_id(self) -> str: ...

    def show_load(self, placement: Placement, busy: bool) -> None: ...  # simulated GPUs only


@dataclass(slots=True)
class ActiveRun:
    job_id: str
    attempt: int
    handle: Any
    placement: Placement
    started_at_s: float
    stop_deadline_s: float | None = None  # set once asked to checkpoint and stop
    why: str = ""  # why it is being stopped: preempt, cancel or max_runtime
    cause: str = ""  # the words behind ``why``


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a poll saw of one run: its status dict, or None (unreachable, now killed)."""

    job_id: str
    attempt: int
    status: dict[str, Any] | None


# effects: what the driver asks for once a batch is durable, carried out without the lock
@dataclass(frozen=True, slots=True)
class Start:
    launch: Launch


@dataclass(frozen=True, slots=True)
class Stop:
    job_id: str
    why: str  # preempt, cancel, max_runtime
    cause: str
    kill: bool = False  # its nodes are gone: nothing can checkpoint, stop it now


@dataclass(frozen=True, slots=True)
class Kill:
    job_id: str


@dataclass(frozen=True, slots=True)
class Idle:
    """A run has ended: its (simulated) GPUs show no load any more."""

    placement: Placement


Effect = Start | Stop | Kill | Idle


@dataclass(frozen=True, slots=True)
class RunSettings:
    storage_path: str  # the storage root: runs live in <storage_path>/<team>/<run name>
    control_root: Path  # <control_root>/<job id>/log: the job's log, on the head
    simulated: bool
    stop_grace_s: float
    max_failures: int
    journal_id: str = ""  # the journal's id, in every run name
    dashboard_url: str | None = None  # Ray's Jobs API (script jobs); None: discovered
    package_root: Path | None = None  # uploaded packages (packages.py)
    kv: Store | None = None  # the control channel's store; None: Ray's KV

    def run_name(self, job_id: str) -> str:
        return f"{job_id}-{self.journal_id}" if self.journal_id else job_id

    def log_path(self, job_id: str) -> Path:
        return self.control_root / job_id / "log"


class Runs:
    """The active runs (one per running job at most) and the launches waiting for GPUs that
    stopping runs still hold."""

    def __init__(
        self,
        settings: RunSettings,
        launcher: Launcher,
        cluster: Cluster,
        journal: Journal,
        lock: threading.RLock,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.launcher = launcher
        self.cluster = cluster
        self.journal = journal
        self.lock = lock
        self.clock = clock
        self.active: dict[str, ActiveRun] = {}
        self.deferred: list[Launch] = []
        self.retired: list[Any] = []  # runners of ended runs, killed by the next execute()

    # ----------------------------------------------------------- watching
    def poll(self) -> list[RunReport]:
        """Every active run's status (remote calls, no lock). A run that does not answer is
        killed first, then reported with status None."""
        with self.lock:
            runs = sorted(
                ((r.job_id, r.attempt, r.handle) for r in self.active.values()),
                key=lambda r: r[0],
            )
        statuses = self.launcher.status([h for _, _, h in runs]) if runs else []
        out = []
        for (job_id, attempt, handle), st in zip(runs, statuses, strict=True):
            if st is None:
                self.launcher.kill(handle)  # fence: it must be dead before a relaunch
            elif int(st.get("attempt", attempt) or attempt) != attempt:
                st = None  # a runner answering for another attempt is not this run
                self.launcher.kill(handle)
            out.append(RunReport(job_id, attempt, st))
        return out

    # ----------------------------------------------------------- carrying out
    def execute(self, effects: Sequence[Effect], is_current: Callable[[Launch], bool],
                request_of: Callable[[Launch, int], RunRequest | None]) -> None:  # fmt: skip
        """Carry out the effects in order, then retry deferred launches. ``is_current``
        says whether a launch is still what the core wants; ``request_of`` builds the
        attempt's ``RunRequest`` (None: not now, e.g. a node Ray has not shown yet). First
        the runners of runs whose end is journaled are killed: each is a process of its own on
        the head (Ray and torch imported), and nothing is asked of it any more."""
        with self.lock:
            retired, self.retired = self.retired, []
        for handle in retired:
            self.launcher.kill(handle)
        for eff in effects:
            if isinstance(eff, Start):
                self._start(eff.launch, is_current, request_of)
            elif isinstance(eff, Stop):
                self._stop(eff)
            elif isinstance(eff, Kill):
                self._kill(eff.job_id)
            else:
                self.cluster.show_load(eff.placement, False)
        with self.lock:
            waiting, self.deferred = self.deferred, []
        for launch in waiting:
            self._start(launch, is_current, request_of)

    def _blocked(self, placement: Placement) -> bool:
        wanted = {(w.node, g) for w in placement.workers for g in w.gpu_indices}
        for run in self.active.values():
            if run.stop_deadline_s is None:
                continue
            held = {(w.node, g) for w in run.placement.workers for g in w.gpu_indices}
            if wanted & held:
                return True
        return False

    def _start(
        self,
        launch: Launch,
        is_current: Callable[[Launch], bool],
        request_of: Callable[[Launch, int], RunRequest | None],
    ) -> None:
        with self.lock:
            if not is_current(launch):
                return  # superseded: preempted again or cancelled before it could start
            if launch.job_id in self.active or self._blocked(launch.placement):
                self.deferred.append(launch)
                return
            attempt = max((r.attempt for r in self.journal.runs(launch.job_id)), default=0) + 1
            req = request_of(launch, attempt)
            if req is None:
                self.deferred.append(launch)
                return
            # the fence: from now on older attempts are superseded
            RunChannel(req.name, attempt, self.settings.kv).begin()
        name, handle = self.launcher.prepare()
        with self.lock:
            superseded = not is_current(launch)  # changed while the runner was prepared
            if not superseded:
                now = self.clock()
                try:
                    # journaled before the runner gets the run: a crash in between leaves an
                    # open run whose runner is idle or gone, which a restart requeues
                    self.journal.run_started(
                        launch.job_id, attempt, f"{launch.job_id}#{attempt}", name, now,
                        launch.placement,
                    )  # fmt: skip
                except JournalError:
                    self.deferred.append(launch)  # journal unwritable: try again later
                    superseded = True
                else:
                    self.active[launch.job_id] = ActiveRun(
                        launch.job_id, attempt, handle, launch.placement, now
                    )
        if superseded:
            self.launcher.kill(handle)
            return
        self.launcher.run(handle, req)
        self.cluster.show_load(launch.placement, True)

    def _stop(self, eff: Stop) -> None:
        with self.lock:
            run = self.active.get(eff.job_id)
            if run is None:
                return
            first = run.stop_deadline_s is None
            if first:
                run.stop_deadline_s = self.clock() + self.settings.stop_grace_s
                run.why, run.cause = eff.why, eff.cause
            handle = run.handle
        if first:
            self.launcher.stop(handle, f"{eff.why}: {eff.cause}")
        if eff.kill:
            self.launcher.kill(handle)

    def _kill(self, job_id: str) -> None:
        with self.lock:
            run = self.active.get(job_id)
            handle = None if run is None else run.handle
        if handle is not None:
            self.launcher.kill(handle)

    def ended(self, job_id: str) -> ActiveRun | None:
        """Forget a run whose end is journaled (lock held by the caller); its runner is
        killed by the next ``execute``."""
        run = self.active.pop(job_id, None)
        if run is not None:
            self.retired.append(run.handle)
        return run


def run_request(
    settings: RunSettings,
    launch: Launch,
    attempt: int,
    spec_raw: dict[str, Any],
    node_ids: dict[str, str],
) -> RunRequest | None:
    """The ``RunRequest`` of one attempt of a launch; None if one of its nodes has no Ray
    node id yet (it is not alive in Ray: the next poll reports it lost)."""
    if any(w.node not in node_ids for w in launch.placement.workers):
        return None
    workers = tuple(
        WorkerSlot(w.node, node_ids[w.node], w.gpu_indices) for w in launch.placement.workers
    )
    spec = specs.parse_spec(spec_raw, f"job {launch.job_id}")
    w0 = launch.placement.workers[0]
    packages = {}
    if settings.package_root is not None:
        for uri in specs.package_uris(spec):
            packages[uri] = str(settings.package_root / uri.partition("://")[2])
    return RunRequest(
        job_id=launch.job_id,
        attempt=attempt,
        entrypoint=spec.entrypoint,
        command=spec.command,
        config=dict(spec.config),
        workers=workers,
        cpus_per_worker=w0.cpu_milli / 1000,
        gpus_per_worker=len(w0.gpu_indices) * w0.gpu_milli / MILLI_PER_GPU,
        storage_path=settings.storage_path,
        run_name=settings.run_name(launch.job_id),
        team=spec.team or "",
        log_path=str(settings.log_path(launch.job_id)),
        runtime_env=specs.ray_runtime_env(spec),
        packages=packages,
        dashboard_url=settings.dashboard_url,
        simulated_gpus=settings.simulated,
        checkpoint_interval_s=spec.checkpoint_interval_s,
        max_runtime_s=spec.max_runtime_s,
        max_failures=settings.max_failures,
    )
