"""The scheduler's facts: what is true now, and the changes that keep it true.

:class:`Facts` holds the jobs, the queues, the running set, the fleet, teams' usage and the
books derived from them (quota charges, estimated ends, attained-service levels, health).
Its methods are the only changes ever made to them (enqueue, start, preempt, end, node off
and on, verdicts); they decide nothing. Deciding is the cycle's (``cycle.py``); taking
events in and giving actions out is ``state.py``'s ``ClusterState``, which is these facts
plus the cycle.
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
from scheduler.core.actions import Action, Preempt, Release
from scheduler.core.health import HealthBook, HealthRules
from scheduler.core.model import MILLI_PER_GPU, Job, Node, Placement
from scheduler.core.outcomes import PreemptReason, ReleaseOutcome
from scheduler.core.placement.fleet import Fleet
from scheduler.core.placement.placer import Placer
from scheduler.core.placement.reservation import Reservation, release
from scheduler.core.policy import AdmissionPolicy, PackingPolicy, PreemptionPolicy, QueueOrderPolicy
from scheduler.core.preemption.cost import saved_and_lost_s
from scheduler.core.preemption.reclaim import CheapestFirst
from scheduler.core.queueing.admission import QuotaAdmission, placement_models
from scheduler.core.queueing.fairshare import DecayedUsage
from scheduler.core.queueing.levels import LevelBook
from scheduler.core.queueing.queues import CanonicalOrder, FleetTotals, TeamQueues, TeamUsage
from scheduler.core.queueing.quota import QuotaBook, QuotaConfig
from scheduler.core.verdict import Code, Verdict

Backfill = Literal["none", "greedy", "easy"]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    seed: int = 0
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


class Facts:
    def __init__(
        self,
        nodes: Sequence[Node],
        packing: PackingPolicy,
        config: CoreConfig | None = None,
        queue: QueueOrderPolicy | None = None,
        quotas: QuotaConfig | None = None,
        admission: AdmissionPolicy | None = None,
        preemption: PreemptionPolicy | None = None,
    ) -> None:
        """``queue`` defaults to priority order; ``admission`` (used when ``quotas`` are given)
        to ``quota`` (borrowing within cohorts); ``preemption`` (used when
        ``config.preemption`` is on) to ``cheapest``."""
        self.config = config or CoreConfig()
        if self.config.backfill not in ("none", "greedy", "easy"):
            raise ValueError(f"backfill must be none, greedy or easy, got {self.config.backfill!r}")
        # -- the policies (``policy.py``)
        self.queue: QueueOrderPolicy = queue or CanonicalOrder()
        self.admission: AdmissionPolicy = admission or QuotaAdmission()
        self.preemption: PreemptionPolicy | None = None
        if self.config.preemption:
            self.preemption = preemption or CheapestFirst(self.config.preemption_depth)
        # -- the fleet and where work goes on it
        self.fleet = Fleet(nodes)
        self.rng = np.random.default_rng(self.config.seed)
        self.placer = Placer(self.fleet, packing, self.rng)
        self.now_s = 0.0
        self.cycles = 0
        # -- jobs: every job ever accepted; pending ones in the queues, running ones placed
        self.jobs: dict[str, Job] = {}
        self.queues = TeamQueues()
        self._aging: list[tuple[float, str]] = []  # (submitted, job) of normal-lane jobs
        self.running: dict[str, Placement] = {}
        self.started_at_s: dict[str, float] = {}
        self.running_priorities: dict[int, int] = {}  # priority -> running jobs
        self.stops = 0  # bumped whenever a running job stops
        # -- service and work: what each job received, kept and lost
        self.attained_gpu_s: dict[str, float] = {}  # GPU-seconds of service received so far
        self.progress_s: dict[str, float] = {}  # work kept by checkpoints across preemptions
        self.preemptions: dict[str, int] = {}
        self.lost_gpu_s = 0.0
        self.levels = LevelBook(self)  # attained-service levels: demotion, promotion (levels.py)
        # -- teams: usage (fair shares) and quota charges
        self.usage: dict[str, TeamUsage] = {}
        half_life = self.config.fair_share_half_life_s
        self._fair = DecayedUsage(half_life) if half_life is not None else None
        self.totals = FleetTotals(
            self.fleet.total_gpu_milli, int(self.fleet.cpu_cap.sum()), int(self.fleet.mem_cap.sum())
        )
        self.quota = QuotaBook(quotas) if quotas is not None else None
        self.charged: dict[str, dict[str, int]] = {}  # job -> milli per GPU model
        self._team_keys: dict[str, float] = {}
        self.usage_version = 0  # moves whenever a team's usage (and so its key) may change
        self._team_keys_at = -math.inf
        # -- nodes and GPUs out of service
        self.health = HealthBook(self.config.health)
        self.off: dict[str, set[str]] = {}  # node -> why it takes no work: cordon, drain, lost
        # node -> reason -> (since when, what set it), for "why is this node off"
        self.off_since: dict[str, dict[str, tuple[float, str]]] = {}
        # -- reservations (EASY): running jobs' estimated ends and the last shadow time
        self._end_list: list[tuple[float, str]] = []  # estimated ends of running jobs, sorted
        self._end_of: dict[str, tuple[float, str]] = {}
        # bumped when the estimated free capacity from now on may have changed in a way that
        # moves a reservation: a start not checked against it, an early finish, a preemption
        self.profile_version = 0
        # (head, profile version, layout version) -> its shadow time, reused while all hold
        self.shadow_memo: tuple[tuple[str, int, int], float] = (("", -1, -1), 0.0)
        self.reserved_at_s: dict[str, float] = {}  # first shadow time promised to each head
        # -- verdicts: why each job waits, as of the cycle that last reached it
        self.verdicts: dict[str, Verdict] = {}  # last verdict given; see verdict_of()
        self.verdict_cycle: dict[str, int] = {}
        self._verdict_pool: dict[tuple[Code, str], Verdict] = {}  # verdicts are shared values
        self.blocked_by: str | None = None  # strict order: the head that blocked the last cycle

    @property
    def preempting(self) -> bool:
        return self.preemption is not None

    # ------------------------------------------------------------------ reads
    @property
    def pending(self) -> tuple[str, ...]:
        """Pending job ids in the current queue order."""
        return tuple(self.queues.merged(self.merge_key))

    @property
    def pending_ids(self) -> TeamQueues:
        """The pending jobs as a container (``job_id in``, ``len``), in no order."""
        return self.queues

    @property
    def merge_key(self) -> Callable[[str], float] | None:
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

    # ------------------------------------------------------------- changes
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

    def set_off(self, node: str, why: str, on: bool, cause: str = "") -> None:
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

    def evacuate(self, node: str, cause: str, reason: PreemptReason) -> list[Action]:
        """Preempt every job running on ``node`` (in job id order) and requeue it."""
        actions: list[Action] = []
        for job_id in sorted(j for j, p in self.running.items() if node in p.nodes):
            actions.append(self.preempt(job_id, cause, reason))
            self.enqueue(self.jobs[job_id])
        return actions

    def enqueue(self, job: Job) -> None:
        bound = self.config.aging_s
        if bound is not None and self.now_s - job.submitted_at_s > bound:
            self.queues.add(job, _front_key(job))  # requeued, already overdue
            self.levels.queued(job)
            return
        self.queues.add(job, (1, *self.queue.job_key(job, self.levels.service_gpu_s(job.job_id))))
        self.levels.queued(job)
        if bound is not None:
            heapq.heappush(self._aging, (job.submitted_at_s, job.job_id))

    def rekey(self, job: Job) -> None:
        """Key a pending job of the normal lane again (its class changed while it waited)."""
        where = self.queues.where.get(job.job_id)
        if where is not None and where[1][0] == 1:
            self.queues.remove(job)
            key = self.queue.job_key(job, self.levels.service_gpu_s(job.job_id))
            self.queues.add(job, (1, *key))

    def to_front(self, job: Job) -> None:
        """Move a pending job of the normal lane to the front lane (oldest first there)."""
        where = self.queues.where.get(job.job_id)
        if where is not None and where[1][0] == 1:
            self.queues.remove(job)
            self.queues.add(job, _front_key(job))

    def age_queue(self) -> None:
        """Move jobs pending past the aging bound to the front lane (oldest first)."""
        bound = self.config.aging_s
        while bound is not None and self._aging and self.now_s - self._aging[0][0] > bound:
            _, job_id = heapq.heappop(self._aging)
            self.to_front(self.jobs[job_id])

    def start(self, job: Job, placement: Placement, checked: bool = False) -> None:
        """``checked``: started under EASY's rules for the current reservation (it ends by
        the shadow time or leaves the head room at it), which cannot move the shadow time."""
        if not checked:
            self.profile_version += 1
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
            self.queues.add(job, _front_key(job))
            self.levels.queued(job)
            return
        self.queues.add(job, (1, *self.queue.job_key(job, self.levels.service_gpu_s(job.job_id))))
        self.levels.queued(job)
        if self.config.aging_s is not None:
            heapq.heappush(self._aging, (job.submitted_at_s, job.job_id))

    def _account(self, job: Job, sign: int, decay: bool = True) -> None:
        """Add (1) or take back (-1) the job's resources in its team's usage (fair shares).
        ``decay=False`` leaves the decayed average alone (a restore installs it as it was)."""
        self._team_keys.pop(job.team, None)
        self.usage_version += 1
        u = self.usage.setdefault(job.team, TeamUsage())
        if self._fair is not None and decay:
            self._fair.advance(job.team, self.now_s, u)
        u.gpu_milli += sign * job.total_gpu_milli
        u.cpu_milli += sign * job.worker.cpu_milli * job.num_workers
        u.memory_mib += sign * job.worker.memory_mib * job.num_workers

    def _unuse(self, job: Job) -> None:
        left = self.running_priorities[job.priority] - 1
        if left:
            self.running_priorities[job.priority] = left
        else:
            del self.running_priorities[job.priority]
        self.stops += 1
        entry = self._end_of.pop(job.job_id, None)
        if entry is None or entry[0] > self.now_s:
            self.profile_version += 1  # stopped before its estimated end: more room earlier
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

    def end_job(
        self, job_id: str, now_s: float, cause: str, outcome: ReleaseOutcome
    ) -> list[Action]:
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
        if job is not None and self.queues.remove(job):
            self.levels.ended(job_id)
            return [Release(job_id, now_s, cause, outcome)]
        return []

    def pooled(self, code: Code, reason: str) -> Verdict:
        v = self._verdict_pool.get((code, reason))
        if v is None:
            v = self._verdict_pool[(code, reason)] = Verdict(code, reason)
        return v

    def set_verdict(self, job_id: str, code: Code, reason: str) -> None:
        self.give(job_id, self.pooled(code, reason))

    def give(self, job_id: str, verdict: Verdict) -> None:
        self.verdicts[job_id] = verdict
        self.verdict_cycle[job_id] = self.cycles

    # ------------------------------------------------------------- backfill
    def ends(self) -> list[tuple[float, str]]:
        """Running jobs' estimated ends (remaining estimate after checkpointed progress),
        earliest first; jobs with no estimate never end here. Kept sorted as jobs start and
        stop; callers must not change it."""
        return self._end_list


def _front_key(job: Job) -> tuple[object, ...]:
    """Queue key in the front lane (0): jobs past the aging bound and reserved heads, oldest
    first, ahead of every normal-lane (1) job whatever the queue order says."""
    return (0, job.submitted_at_s, job.job_id)
