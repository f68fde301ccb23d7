"""``ClusterState``: the one mutator of the core. Events in, actions out, deterministically.

``handle(*events)`` applies the events in order, then runs one scheduling cycle:
 1. pending jobs are taken in the queue order (a :class:`QueueOrder`; by default priority,
    submit time, id), teams merged by their team key;
 2. each is placed whole by the :class:`Placer` or stays pending with a verdict;
 3. a job that does not fit: with ``backfill="none"`` nothing behind it starts (strict order);
    with ``"greedy"`` later jobs are still tried (best effort, big jobs may starve); with
    ``"easy"`` it gets a reservation and later jobs start only if EASY allows (``backfill.py``);
 4. within a cycle, once a request shape failed to fit, later jobs of the same shape are not
    tried again (nothing was freed in between), and the cycle ends when every pending shape
    has failed.
In fail-fast mode (trace replay of the FGD protocol) a job that does not fit now is rejected
instead of waiting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scheduler.core import invariants
from scheduler.core.actions import Action, Launch, Reject, Release
from scheduler.core.backfill import estimate_starts
from scheduler.core.easy import EasyWindow
from scheduler.core.events import (
    Event,
    GpuHealthChanged,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeCordoned,
    NodeUncordoned,
    Tick,
)
from scheduler.core.fleet import Fleet
from scheduler.core.model import MILLI_PER_GPU, Job, Node, Placement
from scheduler.core.packing import PackingPolicy
from scheduler.core.placer import Placer
from scheduler.core.queueing import CanonicalOrder, FleetTotals, QueueOrder, TeamQueues, TeamUsage
from scheduler.core.reservation import release
from scheduler.core.verdict import Code, Verdict

Backfill = Literal["none", "greedy", "easy"]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    seed: int = 0
    fail_fast: bool = False  # reject a job that does not fit now instead of queueing it
    backfill: Backfill = "greedy"


@dataclass(frozen=True, slots=True)
class PendingInfo:
    """Why a job waits, where it stands and when it should start (data for API and CLI)."""

    job_id: str
    team: str
    position: int  # 1-based, in the merged queue order
    code: Code
    reason: str
    estimated_start_s: float  # inf when no estimate can be given


class ClusterState:
    def __init__(
        self,
        nodes: list[Node] | tuple[Node, ...],
        packing: PackingPolicy,
        config: CoreConfig | None = None,
        queue: QueueOrder | None = None,
    ) -> None:
        self.config = config or CoreConfig()
        if self.config.backfill not in ("none", "greedy", "easy"):
            raise ValueError(f"backfill must be none, greedy or easy, got {self.config.backfill!r}")
        self.queue = queue or CanonicalOrder()
        self.fleet = Fleet(nodes)
        self.rng = np.random.default_rng(self.config.seed)
        self.placer = Placer(self.fleet, packing, self.rng)
        self.jobs: dict[str, Job] = {}
        self.running: dict[str, Placement] = {}
        self.verdicts: dict[str, Verdict] = {}  # last verdict given; see verdict_of()
        self._verdict_cycle: dict[str, int] = {}
        self._cycles = 0
        self._blocked_by: str | None = None  # strict order: the head that blocked this cycle
        self.started_at_s: dict[str, float] = {}
        self.attained_gpu_s: dict[str, float] = {}  # GPU-seconds of service received so far
        self.usage: dict[str, TeamUsage] = {}
        self._queues = TeamQueues()
        self.totals = FleetTotals(
            self.fleet.total_gpu_milli, int(self.fleet.cpu_cap.sum()), int(self.fleet.mem_cap.sum())
        )
        self.now_s = 0.0

    # ------------------------------------------------------------------ views
    @property
    def pending(self) -> tuple[str, ...]:
        """Pending job ids in the current queue order."""
        return tuple(self._queues.merged(self._team_key))

    def _team_key(self, team: str) -> float:
        return self.queue.team_key(team, self.usage.get(team, TeamUsage()), self.totals)

    def check_invariants(self) -> list[str]:
        return invariants.check(self.fleet, self.running, self.jobs)

    @property
    def placements(self) -> Mapping[str, Placement]:
        return self.running

    # ---------------------------------------------------------------- mutator
    def handle(self, *events: Event) -> list[Action]:
        actions: list[Action] = []
        for ev in events:
            if ev.now_s < self.now_s:
                raise ValueError(
                    f"event {type(ev).__name__} at {ev.now_s}s is before the core's clock {self.now_s}s"
                )
            self.now_s = ev.now_s
            actions.extend(self._apply(ev))
        actions.extend(self._cycle(_describe(events)))
        return actions

    def _apply(self, ev: Event) -> list[Action]:
        fleet = self.fleet
        if isinstance(ev, JobSubmitted):
            job = ev.job
            if job.job_id in self.jobs:
                return [
                    Reject(
                        job.job_id,
                        Code.NEVER,
                        f"job id {job.job_id!r} already used",
                        ev.now_s,
                        ev.cause,
                    )
                ]
            self.jobs[job.job_id] = job
            reason = self.placer.never_fits(job)
            if reason is not None:
                self.verdicts[job.job_id] = Verdict(Code.NEVER, reason)
                return [Reject(job.job_id, Code.NEVER, reason, ev.now_s, ev.cause)]
            self._enqueue(job)
            return []
        if isinstance(ev, (JobFinished, JobCancelled)):
            return self._end(ev.job_id, ev.now_s, ev.cause)
        if isinstance(ev, NodeCordoned | NodeUncordoned):
            fleet.set_schedulable(self._node(ev.node), isinstance(ev, NodeUncordoned))
            return []
        if isinstance(ev, GpuHealthChanged):
            fleet.set_gpu_health(self._node(ev.node), ev.gpu_index, ev.healthy)
            return []
        if isinstance(ev, Tick):
            return []
        raise TypeError(f"unknown event {ev!r}")

    def _node(self, name: str) -> int:
        try:
            return self.fleet.index[name]
        except KeyError:
            raise ValueError(f"unknown node {name!r}") from None

    def _enqueue(self, job: Job) -> None:
        self._queues.add(job, self.queue.job_key(job, self.attained_gpu_s.get(job.job_id, 0.0)))

    def _start(self, job: Job, placement: Placement) -> None:
        self.running[job.job_id] = placement
        self.started_at_s[job.job_id] = self.now_s
        u = self.usage.setdefault(job.team, TeamUsage())
        u.gpu_milli += job.total_gpu_milli
        u.cpu_milli += job.worker.cpu_milli * job.num_workers
        u.memory_mib += job.worker.memory_mib * job.num_workers

    def _end(self, job_id: str, now_s: float, cause: str) -> list[Action]:
        placement = self.running.pop(job_id, None)
        job = self.jobs.get(job_id)
        if placement is not None and job is not None:
            release(self.fleet, placement)
            ran_s = now_s - self.started_at_s.pop(job_id)
            self.attained_gpu_s[job_id] = (
                self.attained_gpu_s.get(job_id, 0.0) + ran_s * job.total_gpu_milli / MILLI_PER_GPU
            )
            u = self.usage[job.team]
            u.gpu_milli -= job.total_gpu_milli
            u.cpu_milli -= job.worker.cpu_milli * job.num_workers
            u.memory_mib -= job.worker.memory_mib * job.num_workers
            return [Release(job_id, now_s, cause)]
        if job is not None and self._queues.remove(job):
            return [Release(job_id, now_s, cause)]
        return []

    def _cycle(self, trigger: str) -> list[Action]:
        """One scheduling cycle; ``trigger`` names the events that started it (the actions'
        cause)."""
        self._cycles += 1
        self._blocked_by = None
        if not len(self._queues):
            return []
        actions: list[Action] = []
        failed: set[tuple[object, ...]] = set()
        done: list[Job] = []
        mode = self.config.backfill
        window: EasyWindow | None = None
        for job_id in self._queues.merged(self._team_key):
            job = self.jobs[job_id]
            shape = job.shape_key()
            short = window is None or window.ends_in_time(job, self.now_s)
            if window is not None and not short and shape in window.failed_shapes:
                self._verdict(
                    job_id, Code.WAIT_ORDER, f"held for the reservation of {window.head.job_id}"
                )
                continue
            placement = None if shape in failed else self.placer.place(job)
            if placement is None:
                failed.add(shape)
                self._verdict(job_id, Code.WAIT_CAPACITY, self._capacity_reason(job))
                if self.config.fail_fast:
                    actions.append(
                        Reject(
                            job_id,
                            Code.WAIT_CAPACITY,
                            self.verdicts[job_id].reason,
                            self.now_s,
                            trigger,
                        )
                    )
                    done.append(job)
                elif mode == "none":
                    self._blocked_by = job_id
                    break
                elif mode == "easy" and window is None:
                    window = EasyWindow(job, self.fleet, self.placer, self.running, self._ends)
                if len(failed) == len(self._queues.shapes):
                    break  # every pending shape failed: nothing else can start this cycle
                continue
            if window is not None and not short:
                self.running[job_id] = placement  # tentatively, for the what-if
                ok = window.head_fits_at_shadow()
                del self.running[job_id]
                if not ok:
                    release(self.fleet, placement)
                    window.failed_shapes.add(shape)
                    self._verdict(
                        job_id, Code.WAIT_ORDER, f"held for the reservation of {window.head.job_id}"
                    )
                    continue
            self._start(job, placement)
            done.append(job)
            self._verdict(job_id, Code.FIT, "placed")
            actions.append(Launch(job_id, placement, self.now_s, trigger))
        for job in done:
            self._queues.remove(job)
        return actions

    def _verdict(self, job_id: str, code: Code, reason: str) -> None:
        self.verdicts[job_id] = Verdict(code, reason)
        self._verdict_cycle[job_id] = self._cycles

    def verdict_of(self, job_id: str) -> Verdict:
        """The job's verdict as of the last cycle. Jobs the cycle did not reach get it derived:
        behind the blocking head (strict order), or waiting because no pending shape fit."""
        v = self.verdicts.get(job_id)
        if v is not None and (
            self._verdict_cycle.get(job_id) == self._cycles or job_id not in self._queues
        ):
            return v
        if self._blocked_by is not None and job_id != self._blocked_by:
            return Verdict(Code.WAIT_ORDER, f"behind {self._blocked_by} (strict queue order)")
        if v is not None:
            return v
        return Verdict(
            Code.WAIT_CAPACITY,
            "not reached this cycle: no pending job shape fits the free capacity",
        )

    # ------------------------------------------------------------- backfill
    def _ends(self) -> list[tuple[float, str]]:
        """Running jobs' estimated ends, earliest first (no estimate: never)."""
        out = []
        for job_id, started in self.started_at_s.items():
            est = self.jobs[job_id].estimated_duration_s
            if est is not None:
                out.append((started + est, job_id))
        out.sort()
        return out

    def _capacity_reason(self, job: Job) -> str:
        elig = self.fleet.eligible_gpus(job.worker)
        free = int(self.fleet.gpu_free[elig].sum())
        return (
            f"needs {job.total_gpu_milli / MILLI_PER_GPU:g} GPUs for {job.num_workers} worker(s); "
            f"{free / MILLI_PER_GPU:g} usable GPUs free but not in a fitting place"
        )

    # ---------------------------------------------------------------- views
    def pending_info(self) -> list[PendingInfo]:
        """Every pending job with its position, verdict and estimated start (aggregate GPU
        profile from running jobs' estimated ends and the queue ahead; see ``backfill.py``)."""
        order = [self.jobs[j] for j in self._queues.merged(self._team_key)]
        running = []
        for job_id in sorted(self.running):
            est = self.jobs[job_id].estimated_duration_s
            end = math.inf if est is None else self.started_at_s[job_id] + est
            running.append((end, self.jobs[job_id].total_gpu_milli))
        starts = estimate_starts(
            self.now_s,
            self.fleet.total_gpu_milli,
            running,
            [(j.total_gpu_milli, j.estimated_duration_s) for j in order],
        )
        out = []
        for pos, (job, start) in enumerate(zip(order, starts, strict=True), 1):
            v = self.verdict_of(job.job_id)
            out.append(PendingInfo(job.job_id, job.team, pos, v.code, v.reason, start))
        return out


def _describe(events: tuple[Event, ...], most: int = 3) -> str:
    """``JobSubmitted(j1), JobFinished(j0)``: what a cycle's actions trace back to."""
    parts = []
    for ev in events[:most]:
        subject = getattr(ev, "job_id", None) or getattr(ev, "node", None)
        if isinstance(ev, JobSubmitted):
            subject = ev.job.job_id
        parts.append(f"{type(ev).__name__}({subject})" if subject else type(ev).__name__)
    if len(events) > most:
        parts.append(f"+{len(events) - most} more")
    return ", ".join(parts) or "cycle"
