"""``ClusterState``: the one mutator of the core. Events in, actions out, deterministically.

``handle(*events)`` applies the events in order, then runs one scheduling cycle:
 1. pending jobs are taken in the queue order (a :class:`QueueOrder`; by default priority,
    submit time, id), teams merged by their team key;
 2. each is placed whole by the :class:`Placer` or stays pending with a verdict;
 3. a job that does not fit: with ``backfill="none"`` nothing behind it starts (strict order;
    unless the queue order scans fit-first, ``QueueOrder.fit_first``: ``las``);
    with ``"greedy"`` later jobs are still tried (best effort, big jobs may starve); with
    ``"easy"`` it gets a reservation and later jobs start only if EASY allows (``easy.py``);
 4. within a cycle, once a request shape failed to fit, later jobs of the same shape are not
    tried again (nothing was freed in between), and the cycle ends when every pending shape
    has failed.
In fail-fast mode (trace replay of the FGD protocol) a job that does not fit now is rejected
instead of waiting.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from scheduler.core import invariants
from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
from scheduler.core.events import (
    Event,
    GpuHealthChanged,
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
from scheduler.core.health import HealthBook, HealthRules
from scheduler.core.model import MILLI_PER_GPU, Job, Node, Placement
from scheduler.core.outcomes import PreemptReason, ReleaseOutcome, RunOutcome
from scheduler.core.placement.fleet import Fleet
from scheduler.core.placement.packing import PackingPolicy
from scheduler.core.placement.placer import Placer
from scheduler.core.placement.reservation import Reservation, release
from scheduler.core.preemption.cost import saved_and_lost_s
from scheduler.core.preemption.reclaim import Reclaimer
from scheduler.core.queueing.admission import admit, never_under_quota, placement_models
from scheduler.core.queueing.backfill import estimate_starts
from scheduler.core.queueing.easy import EasyWindow
from scheduler.core.queueing.fairshare import DecayedUsage
from scheduler.core.queueing.levels import LevelBook
from scheduler.core.queueing.queues import (
    CanonicalOrder,
    FleetTotals,
    QueueOrder,
    TeamQueues,
    TeamUsage,
)
from scheduler.core.queueing.quota import QuotaBook, QuotaConfig
from scheduler.core.verdict import Code, Verdict

Backfill = Literal["none", "greedy", "easy"]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    seed: int = 0
    fail_fast: bool = False  # reject a job that does not fit now instead of queueing it
    backfill: Backfill = "greedy"
    preemption: bool = False  # reclaim lent quota, then preempt lower priorities
    # jobs examined for backfill behind a reservation in one cycle (Slurm's bf_max_job_test,
    # whose default is 500): bounds a cycle's cost when the queue is long
    backfill_depth: int = 500
    # pending jobs per team that may look for preemption victims in one cycle (``reclaim.py``)
    preemption_depth: int = 8
    # telemetry -> GPU health and drains (health.py)
    health: HealthRules = field(default_factory=HealthRules)
    aging_s: float | None = None  # a job pending longer goes to the front lane, reserved
    fair_share_half_life_s: float | None = None  # None: team shares use current usage only


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
        nodes: Sequence[Node],
        packing: PackingPolicy,
        config: CoreConfig | None = None,
        queue: QueueOrder | None = None,
        quotas: QuotaConfig | None = None,
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
        self._verdict_pool: dict[tuple[Code, str], Verdict] = {}  # verdicts are shared values
        self.cycles = 0
        self._blocked_by: str | None = None  # strict order: the head that blocked this cycle
        self.started_at_s: dict[str, float] = {}
        self.attained_gpu_s: dict[str, float] = {}  # GPU-seconds of service received so far
        self.usage: dict[str, TeamUsage] = {}
        half_life = self.config.fair_share_half_life_s
        self._fair = DecayedUsage(half_life) if half_life is not None else None
        self._queues = TeamQueues()
        self.totals = FleetTotals(
            self.fleet.total_gpu_milli, int(self.fleet.cpu_cap.sum()), int(self.fleet.mem_cap.sum())
        )
        self.quota = QuotaBook(quotas) if quotas is not None else None
        self.charged: dict[str, dict[str, int]] = {}  # job -> milli per GPU model
        self.progress_s: dict[str, float] = {}  # work kept by checkpoints across preemptions
        self.preemptions: dict[str, int] = {}
        self.lost_gpu_s = 0.0
        self.reserved_at_s: dict[str, float] = {}  # first shadow time promised to each head
        self._aging: list[tuple[float, str]] = []  # (submitted, job) of normal-lane jobs
        # bumped when the estimated free capacity from now on may have changed in a way that
        # moves a reservation: a start not checked against it, an early finish, a preemption
        self._profile_version = 0
        self.run_changes = 0  # bumped whenever a job starts or stops
        self.running_priorities: dict[int, int] = {}  # priority -> running jobs
        self._reclaimer = Reclaimer(self)
        self.levels = LevelBook(self)  # attained-service levels: demotion, promotion (levels.py)
        self._end_list: list[tuple[float, str]] = []  # estimated ends of running jobs, sorted
        self._end_of: dict[str, tuple[float, str]] = {}
        self._shadow_memo: tuple[tuple[str, int, int], float] = (("", -1, -1), 0.0)
        self.health = HealthBook(self.config.health)
        self.off: dict[str, set[str]] = {}  # node -> why it takes no work: cordon, drain, lost
        # node -> reason -> (since when, what set it), for "why is this node off"
        self.off_since: dict[str, dict[str, tuple[float, str]]] = {}
        self.now_s = 0.0
        self._team_keys: dict[str, float] = {}
        self._team_keys_at = -math.inf
        self._not_only_short = (-1, -1, -1)  # see _only_short_left

    # ------------------------------------------------------------------ views
    @property
    def pending(self) -> tuple[str, ...]:
        """Pending job ids in the current queue order."""
        return tuple(self._queues.merged(self._merge_key))

    @property
    def pending_ids(self) -> TeamQueues:
        """The pending jobs as a container (``job_id in``, ``len``), in no order."""
        return self._queues

    def next_wake_s(self) -> float:
        """The earliest time after ``now_s`` at which time passing alone changes what a cycle
        decides, so a driver should send a ``Tick`` then; inf: none. Only a queue order with
        rank classes has such times (``levels.py``): a running job demoted as its attained
        service crosses a boundary while preemption is on and jobs wait, or a waiting job's
        starvation promotion. Derived from the facts: a snapshot needs nothing more."""
        return self.levels.next_wake_s()

    @property
    def _merge_key(self) -> Callable[[str], float] | None:
        return self._team_key if self.queue.uses_team_key else None

    def _team_key(self, team: str) -> float:
        """The team's key at ``now_s``; cached until the team's usage or the clock changes."""
        if self._team_keys_at != self.now_s:
            self._team_keys.clear()
            self._team_keys_at = self.now_s
        key = self._team_keys.get(team)
        if key is None:
            usage = self.usage.get(team, TeamUsage())
            if self._fair is not None:
                usage = self._fair.value(team, self.now_s, usage)
            key = self._team_keys[team] = self.queue.team_key(team, usage, self.totals)
        return key

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
            if reason is None and self.quota is not None:
                reason = never_under_quota(self.quota, self.fleet, job)
            if reason is not None:
                self.verdicts[job.job_id] = Verdict(Code.NEVER, reason)
                return [Reject(job.job_id, Code.NEVER, reason, ev.now_s, ev.cause)]
            self._enqueue(job)
            return []
        if isinstance(ev, JobFinished):
            return self._end(ev.job_id, ev.now_s, ev.cause, _RELEASE_OF[ev.outcome])
        if isinstance(ev, JobCancelled):
            return self._end(ev.job_id, ev.now_s, ev.cause, ReleaseOutcome.CANCELLED)
        if isinstance(ev, NodeCordoned):
            self._set_off(ev.node, "cordon", True, ev.cause)
            return []
        if isinstance(ev, NodeDrained):
            self._set_off(ev.node, "drain", True, ev.cause)
            return self._evacuate(ev.node, f"drain {ev.node} ({ev.cause})", PreemptReason.DRAIN)
        if isinstance(ev, NodeUncordoned):  # the operator's all-clear lifts a drain too
            n = self._node(ev.node)
            # ... and the GPU marks that caused it (the GPUs were seen to; health.py)
            for g, healthy in self.health.all_clear(ev.node, int(fleet.gpu_count[n])):
                fleet.set_gpu_health(n, g, healthy)
            self._set_off(ev.node, "cordon", False)
            self._set_off(ev.node, "drain", False)
            return []
        if isinstance(ev, NodeJoined):
            self._set_off(ev.node, "lost", False)
            return []
        if isinstance(ev, NodeLost):
            self._set_off(ev.node, "lost", True, ev.cause)
            return self._evacuate(ev.node, f"{ev.node} lost ({ev.cause})", PreemptReason.NODE_LOST)
        if isinstance(ev, GpuHealthChanged):
            self._gpu(ev.node, ev.gpu_index)
            healthy = self.health.set_operator(ev.node, ev.gpu_index, ev.healthy)
            fleet.set_gpu_health(self._node(ev.node), ev.gpu_index, healthy)
            return []
        if isinstance(ev, GpuTelemetry):
            n, g = self._gpu(ev.node, ev.gpu_index)
            seen = self.health.observe(ev)
            if fleet.gpu_free[n, g] == fleet.gpu_cap[n, g]:  # nothing of ours on it
                fleet.set_foreign_memory(n, g, ev.memory_used_mib)
            fleet.set_gpu_health(n, g, seen.healthy)
            if seen.drain is None:
                return []
            self._set_off(ev.node, "drain", True, seen.drain)
            return self._evacuate(ev.node, seen.drain, PreemptReason.DRAIN)
        if isinstance(ev, JobInterrupted):
            if ev.job_id not in self.running:
                return []
            action = self.preempt(ev.job_id, ev.cause, PreemptReason.INTERRUPTED)
            self._enqueue(self.jobs[ev.job_id])
            return [action]
        if isinstance(ev, Tick):
            return []
        raise TypeError(f"unknown event {ev!r}")

    def _node(self, name: str) -> int:
        try:
            return self.fleet.index[name]
        except KeyError:
            raise ValueError(f"unknown node {name!r}") from None

    def _gpu(self, node: str, gpu: int) -> tuple[int, int]:
        n = self._node(node)
        if not 0 <= gpu < int(self.fleet.gpu_count[n]):
            raise ValueError(f"node {node!r} has no GPU {gpu} (it has {self.fleet.gpu_count[n]})")
        return n, gpu

    def _set_off(self, node: str, why: str, on: bool, cause: str = "") -> None:
        held = self.off.setdefault(node, set())
        since = self.off_since.setdefault(node, {})
        if on:
            if why not in held:
                since[why] = (self.now_s, cause)
            held.add(why)
        else:
            held.discard(why)
            since.pop(why, None)
        self.fleet.set_schedulable(self._node(node), not held)

    def _evacuate(self, node: str, cause: str, reason: PreemptReason) -> list[Action]:
        """Preempt every job running on ``node`` (in job id order) and requeue it."""
        actions: list[Action] = []
        for job_id in sorted(j for j, p in self.running.items() if node in p.nodes):
            actions.append(self.preempt(job_id, cause, reason))
            self._enqueue(self.jobs[job_id])
        return actions

    def _enqueue(self, job: Job) -> None:
        bound = self.config.aging_s
        if bound is not None and self.now_s - job.submitted_at_s > bound:
            self._queues.add(job, _front_key(job))  # requeued, already overdue
            self.levels.queued(job)
            return
        self._queues.add(job, (1, *self.queue.job_key(job, self.levels.service_gpu_s(job.job_id))))
        self.levels.queued(job)
        if bound is not None:
            heapq.heappush(self._aging, (job.submitted_at_s, job.job_id))

    def rekey(self, job: Job) -> None:
        """Key a pending job of the normal lane again (its class changed while it waited)."""
        where = self._queues.where.get(job.job_id)
        if where is not None and where[1][0] == 1:
            self._queues.remove(job)
            key = self.queue.job_key(job, self.levels.service_gpu_s(job.job_id))
            self._queues.add(job, (1, *key))

    def _to_front(self, job: Job) -> None:
        """Move a pending job of the normal lane to the front lane (oldest first there)."""
        where = self._queues.where.get(job.job_id)
        if where is not None and where[1][0] == 1:
            self._queues.remove(job)
            self._queues.add(job, _front_key(job))

    def _age(self) -> None:
        """Move jobs pending past the aging bound to the front lane (oldest first)."""
        bound = self.config.aging_s
        while bound is not None and self._aging and self.now_s - self._aging[0][0] > bound:
            _, job_id = heapq.heappop(self._aging)
            self._to_front(self.jobs[job_id])

    def start(self, job: Job, placement: Placement, checked: bool = False) -> None:
        """``checked``: started under EASY's rules for the current reservation (it ends by
        the shadow time or leaves the head room at it), which cannot move the shadow time."""
        self.run_changes += 1
        if not checked:
            self._profile_version += 1
        self._book_start(job, placement, self.now_s)
        self.levels.started(job, self.now_s, new_run=True)
        self._account(job, 1)

    def _book_start(self, job: Job, placement: Placement, started_at_s: float) -> None:
        """Record a running job in the books derived from the running set: priorities,
        estimated end (after its checkpointed progress), quota charge."""
        self.running_priorities[job.priority] = self.running_priorities.get(job.priority, 0) + 1
        self.running[job.job_id] = placement
        self.started_at_s[job.job_id] = started_at_s
        est = job.estimated_duration_s
        if est is not None:
            left = max(0.0, est - self.progress_s.get(job.job_id, 0.0))
            entry = (started_at_s + left, job.job_id)
            bisect.insort(self._end_list, entry)
            self._end_of[job.job_id] = entry
        if self.quota is not None:
            self.charged[job.job_id] = placement_models(self.fleet, placement)
            self.quota.charge(job.team, self.charged[job.job_id])

    # ---------------------------------------------------- restoring (snapshot.py)
    def install_running(self, job: Job, placement: Placement, started_at_s: float) -> None:
        """Put back a job that was running when a snapshot was taken, without a cycle: take
        ``placement`` (its ``node_index`` values must be this fleet's) from the fleet and
        rebuild what derives from it (quota charge, team usage, estimated end, priorities).
        Its ``progress_s`` must be installed first (the estimated end counts it). The
        fair-share average is left alone: the caller installs it as it was. Raises
        ``ValueError`` if the placement over-allocates the fleet (nothing is taken then)."""
        res = Reservation(self.fleet, job.job_id)
        try:
            for w in placement.workers:
                res.take(w.node_index, w.gpu_indices, w.gpu_milli, w.cpu_milli, w.memory_mib)
        except ValueError:
            res.discard()
            raise
        self.jobs[job.job_id] = job
        self._book_start(job, placement, started_at_s)
        self.levels.started(job, started_at_s, new_run=False)
        self._account(job, 1, decay=False)

    def install_pending(self, job: Job, front: bool) -> None:
        """Put back a job that was pending when a snapshot was taken, without a cycle: in the
        front lane (past the aging bound, or a reserved head) or the normal lane, whose key the
        queue order computes from the job and its attained service (install that first)."""
        self.jobs[job.job_id] = job
        if front:
            self._queues.add(job, _front_key(job))
            self.levels.queued(job)
            return
        self._queues.add(job, (1, *self.queue.job_key(job, self.levels.service_gpu_s(job.job_id))))
        self.levels.queued(job)
        if self.config.aging_s is not None:
            heapq.heappush(self._aging, (job.submitted_at_s, job.job_id))

    def _account(self, job: Job, sign: int, decay: bool = True) -> None:
        """Add (1) or take back (-1) the job's resources in its team's usage (fair shares).
        ``decay=False`` leaves the decayed average alone (a restore installs it as it was)."""
        self._team_keys.pop(job.team, None)
        u = self.usage.setdefault(job.team, TeamUsage())
        if self._fair is not None and decay:
            self._fair.advance(job.team, self.now_s, u)
        u.gpu_milli += sign * job.total_gpu_milli
        u.cpu_milli += sign * job.worker.cpu_milli * job.num_workers
        u.memory_mib += sign * job.worker.memory_mib * job.num_workers

    def _unuse(self, job: Job) -> None:
        self.run_changes += 1
        left = self.running_priorities[job.priority] - 1
        if left:
            self.running_priorities[job.priority] = left
        else:
            del self.running_priorities[job.priority]
        self._reclaimer.stopped(job.job_id)
        entry = self._end_of.pop(job.job_id, None)
        if entry is None or entry[0] > self.now_s:
            self._profile_version += 1  # stopped before its estimated end: more room earlier
        if entry is not None:
            del self._end_list[bisect.bisect_left(self._end_list, entry)]
        self._account(job, -1)
        if self.quota is not None:
            self.quota.charge(job.team, self.charged.pop(job.job_id), sign=-1)

    def preempt(
        self, victim_id: str, trigger: str, reason: PreemptReason = PreemptReason.PRIORITY
    ) -> Preempt:
        """Stop a running job (the caller requeues it); it keeps the work of its last
        checkpoint."""
        job = self.jobs[victim_id]
        placement = self.running.pop(victim_id)
        started = self.started_at_s.pop(victim_id)
        release(self.fleet, placement)
        saved, lost = saved_and_lost_s(job, started, self.now_s)
        gpus = job.total_gpu_milli / MILLI_PER_GPU
        self.attained_gpu_s[victim_id] = (
            self.attained_gpu_s.get(victim_id, 0.0) + (self.now_s - started) * gpus
        )
        self.progress_s[victim_id] = self.progress_s.get(victim_id, 0.0) + saved
        self.preemptions[victim_id] = self.preemptions.get(victim_id, 0) + 1
        self.lost_gpu_s += lost * gpus
        self._unuse(job)
        self.levels.requeued(victim_id)
        # until a cycle reaches it again, it waits because it was stopped (not "placed")
        self.set_verdict(victim_id, Code.WAIT_CAPACITY, f"requeued: {trigger}")
        return Preempt(
            victim_id, self.now_s, trigger, self.progress_s[victim_id], lost * gpus, reason
        )

    def _end(self, job_id: str, now_s: float, cause: str, outcome: ReleaseOutcome) -> list[Action]:
        placement = self.running.pop(job_id, None)
        job = self.jobs.get(job_id)
        if placement is not None and job is not None:
            release(self.fleet, placement)
            ran_s = now_s - self.started_at_s.pop(job_id)
            self.attained_gpu_s[job_id] = (
                self.attained_gpu_s.get(job_id, 0.0) + ran_s * job.total_gpu_milli / MILLI_PER_GPU
            )
            self._unuse(job)
            return [Release(job_id, now_s, cause, outcome)]
        if job is not None and self._queues.remove(job):
            self.levels.ended(job_id)
            return [Release(job_id, now_s, cause, outcome)]
        return []

    def _cycle(self, trigger: str) -> list[Action]:
        """One scheduling cycle; ``trigger`` names the events that started it (the actions'
        cause)."""
        self.cycles += 1
        self._blocked_by = None
        self._age()
        self.levels.promote()
        if not len(self._queues):
            return []
        actions: list[Action] = []
        failed: set[tuple[object, ...]] = set()
        done: list[Job] = []
        mode = self.config.backfill
        window: EasyWindow | None = None
        requeue: list[Job] = []  # preempted this cycle: back in the queue after it
        smallest = min((_worker_gpu_milli(shape) for shape in self._queues.shapes), default=0)
        free = int(self.fleet.gpu_free.sum())
        behind = 0  # jobs examined behind the reservation
        reasons: dict[tuple[object, ...], str] = {}
        fast = self.quota is None and not self.config.fail_fast
        preempting = self.config.preemption
        shape_of = self._queues.shape_of
        capacity_verdicts: dict[tuple[object, ...], Verdict] = {}
        held = Verdict(Code.WAIT_ORDER, "")  # set with the reservation, used only after it
        for job_id in self._queues.merged(self._merge_key):
            if (
                free < smallest
                and (window is not None or mode != "easy")
                and not (self.config.preemption or self.config.fail_fast)
            ):
                break  # not even the smallest pending job's worker has room (EASY: once reserved)
            if window is not None:
                behind += 1
                if behind > self.config.backfill_depth:
                    break
            if fast:  # jobs that cannot start this cycle, skipped at the cost of a lookup
                shape = shape_of[job_id]
                skip = capacity_verdicts.get(shape)
                if (
                    skip is not None
                    and preempting
                    and not self._reclaimer.exhausted(self.jobs[job_id].team)
                ):
                    skip = None  # it does not fit, but it may still look for victims
                if (
                    skip is None
                    and window is not None
                    and shape in window.failed_shapes
                    and not window.ends_in_time(self.jobs[job_id], self.now_s)
                ):
                    if self._only_short_left(failed, window):
                        break  # nothing pending can start: no shape fits, or only short ones
                    skip = held
                if skip is not None:
                    self._give(job_id, skip)
                    continue
            job = self.jobs[job_id]
            if self.quota is not None:
                admitted, why = admit(self.quota, self.fleet, job)
                if admitted is None:
                    assert why is not None
                    if self.config.preemption and not self.config.fail_fast:
                        launch = self._reclaimer.reclaim(job, trigger, actions, requeue)
                        if launch is not None:
                            if window is not None:
                                window.running_changed()
                            done.append(job)
                            actions.append(launch)
                            continue
                    self.set_verdict(job_id, why.code, why.reason)
                    continue
                job = admitted
            shape = job.shape_key()
            short = window is None or window.ends_in_time(job, self.now_s)
            if window is not None and not short and shape in window.failed_shapes:
                if self.quota is None and self._only_short_left(failed, window):
                    break  # nothing pending can start: no shape fits, or only short ones would
                self._give(job_id, held)
                continue
            placement = None if shape in failed else self.placer.place(job)
            if placement is None and self.config.preemption and not self.config.fail_fast:
                launch = self._reclaimer.reclaim(self.jobs[job_id], trigger, actions, requeue)
                if launch is not None:
                    if window is not None:
                        window.running_changed()
                    done.append(self.jobs[job_id])
                    actions.append(launch)
                    continue
            if placement is None:
                failed.add(shape)
                if shape not in reasons:
                    reasons[shape] = self._capacity_reason(job)
                self.set_verdict(job_id, Code.WAIT_CAPACITY, reasons[shape])
                capacity_verdicts[shape] = self.verdicts[job_id]
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
                    done.append(self.jobs[job_id])
                elif mode == "none" and not self.queue.fit_first:
                    self._blocked_by = job_id
                    break
                elif window is None and (mode == "easy" or self._queues.where[job_id][1][0] == 0):
                    # EASY's head, or a job past the aging bound: reserve so nothing delays it
                    # the shadow depends only on the head and the running set: reuse it while
                    # neither changed (cycles triggered by arrivals alone)
                    key = (job_id, self._profile_version, self.fleet.layout_version)
                    known = self._shadow_memo[1] if self._shadow_memo[0] == key else None
                    window = EasyWindow(
                        job, self.fleet, self.running, self._ends, self.now_s, known
                    )
                    self._shadow_memo = (key, window.time_s)
                    if not math.isinf(window.time_s):
                        self.reserved_at_s.setdefault(job_id, window.time_s)
                    held = self._pooled(Code.WAIT_ORDER, f"held for the reservation of {job_id}")
                if (
                    self.quota is None
                    and not self.config.fail_fast
                    and len(failed) == len(self._queues.shapes)
                ):
                    break  # every pending shape failed: nothing else can start this cycle
                continue
            if window is not None and not short and not window.try_backfill(job, placement):
                window.failed_shapes.add(shape)
                self._give(job_id, held)
                continue
            self.start(job, placement, checked=window is not None)
            if window is not None:
                window.started(job, placement, self.now_s)
            free = int(self.fleet.gpu_free.sum())
            done.append(self.jobs[job_id])
            self.set_verdict(job_id, Code.FIT, "placed")
            actions.append(Launch(job_id, placement, self.now_s, trigger))
        for job in done:
            self._queues.remove(job)
        for job in requeue:
            self._enqueue(job)
        if window is not None and not math.isinf(window.time_s):
            # a reservation is a promise: the reserved head moves to the front lane, so that
            # jobs arriving later, whatever their key (shorter under ``sjf``, a poorer team
            # under ``drf``), are backfilled around it instead of taking its place
            self._to_front(window.head)
        return actions

    def _only_short_left(self, failed: set[tuple[object, ...]], window: EasyWindow) -> bool:
        """True when every pending shape either does not fit now, or may only start jobs that
        end by the shadow time and has no such job pending."""
        # within a cycle both sets only grow and the queues do not change: a "no" stands
        # until one of them grew
        key = (self.cycles, len(failed), len(window.failed_shapes))
        if key == self._not_only_short:
            return False
        room = window.time_s - self.now_s
        for shape in self._queues.shapes:
            if shape in failed:
                continue
            if shape not in window.failed_shapes or self._queues.shortest(shape) <= room:
                self._not_only_short = key
                return False
        return True

    def _pooled(self, code: Code, reason: str) -> Verdict:
        v = self._verdict_pool.get((code, reason))
        if v is None:
            v = self._verdict_pool[(code, reason)] = Verdict(code, reason)
        return v

    def set_verdict(self, job_id: str, code: Code, reason: str) -> None:
        self._give(job_id, self._pooled(code, reason))

    def _give(self, job_id: str, verdict: Verdict) -> None:
        self.verdicts[job_id] = verdict
        self._verdict_cycle[job_id] = self.cycles

    def verdict_of(self, job_id: str) -> Verdict:
        """The job's verdict as of the last cycle. Jobs the cycle did not reach get it derived:
        behind the blocking head (strict order), or waiting because no pending shape fit."""
        v = self.verdicts.get(job_id)
        if v is not None and (
            self._verdict_cycle.get(job_id) == self.cycles or job_id not in self._queues
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
        """Running jobs' estimated ends (remaining estimate after checkpointed progress),
        earliest first; jobs with no estimate never end here. Kept sorted as jobs start and
        stop; callers must not change it."""
        return self._end_list

    def _capacity_reason(self, job: Job) -> str:
        elig = self.fleet.eligible_gpus(job.worker)
        free = int(self.fleet.gpu_free[elig].sum())
        return (
            f"needs {job.total_gpu_milli / MILLI_PER_GPU:g} GPUs for {job.num_workers} worker(s); "
            f"{free / MILLI_PER_GPU:g} usable GPUs free but not in a fitting place"
        )

    # ---------------------------------------------------------------- views
    def pending_info(self) -> list[PendingInfo]:
        """Every pending job with its position, verdict and estimated start: an aggregate GPU
        profile from running jobs' estimated ends (what is left after their checkpoints) and
        the queue ahead (``backfill.py``), except for the job holding the EASY reservation,
        whose start is its shadow time (exact: node boundaries and topology count)."""
        order = [self.jobs[j] for j in self._queues.merged(self._merge_key)]
        running = []
        for job_id in sorted(self.running):
            entry = self._end_of.get(job_id)
            running.append(
                (math.inf if entry is None else entry[0], self.jobs[job_id].total_gpu_milli)
            )
        starts = estimate_starts(
            self.now_s,
            self.fleet.total_gpu_milli,
            running,
            [(j.total_gpu_milli, j.estimated_duration_s) for j in order],
        )
        (head, version, layout), shadow_s = self._shadow_memo
        reserved = version == self._profile_version and layout == self.fleet.layout_version
        out = []
        for pos, (job, start) in enumerate(zip(order, starts, strict=True), 1):
            if reserved and job.job_id == head and not math.isinf(shadow_s):
                start = max(shadow_s, self.now_s)
            v = self.verdict_of(job.job_id)
            out.append(PendingInfo(job.job_id, job.team, pos, v.code, v.reason, start))
        return out


_RELEASE_OF = {
    RunOutcome.SUCCEEDED: ReleaseOutcome.SUCCEEDED,
    RunOutcome.FAILED: ReleaseOutcome.FAILED,
}


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


def _front_key(job: Job) -> tuple[object, ...]:
    """Queue key in the front lane (0): jobs past the aging bound and reserved heads, oldest
    first, ahead of every normal-lane (1) job whatever the queue order says."""
    return (0, job.submitted_at_s, job.job_id)


def _worker_gpu_milli(shape: tuple[object, ...]) -> int:
    """Milli-GPU one worker of a ``Job.shape_key()`` asks for."""
    worker_key = shape[0]
    assert isinstance(worker_key, tuple)
    gpus, milli = worker_key[2], worker_key[3]
    assert isinstance(gpus, int) and isinstance(milli, int)
    return gpus * milli
