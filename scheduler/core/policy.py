"""The four kinds of policy the scheduling cycle calls, and the read-only views they get.

A cycle (``cycle.py``) asks, for every pending job:

* :class:`QueueOrderPolicy`: in which order pending jobs are considered (job and team keys)
  and, for orders with attained-service classes (LAS), when a running job changes class;
* :class:`AdmissionPolicy`: may the job start now under its team's quotas, and on which GPU
  models; can it ever be admitted (asked only when quotas are configured);
* :class:`PackingPolicy`: where its workers go (a score per candidate node, then GPUs on the
  chosen node);
* :class:`PreemptionPolicy`: which running jobs to stop so that it can start; the answer is a
  :class:`Victims` decision that the cycle applies.

Implementations live in ``scheduler/policies/`` (one per file) and are chosen by name in
``scheduler/policies/registry.py``; base classes with the usual defaults are
:class:`~scheduler.core.queueing.queues.QueueOrderBase` and
:class:`~scheduler.core.placement.packing.PackingBase`. Policies read the fleet through
:class:`FleetView` (the core hands packing policies a :class:`ReadOnlyFleet`, whose arrays
cannot be written) and the scheduler's facts through :class:`StateView`; only the cycle
changes them.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from scheduler.core.model import Job, Placement, WorkerRequest
from scheduler.core.outcomes import PreemptReason
from scheduler.core.placement.fleet import BoolArray, IntArray
from scheduler.core.queueing.queues import FleetTotals, FloatArray, JobKey, TeamUsage
from scheduler.core.queueing.quota import QuotaBook
from scheduler.core.verdict import Verdict


class FleetView(Protocol):
    """What a policy may read of the fleet (``placement/fleet.py`` documents each field):
    ``[N]`` per-node and ``[N, G]`` per-GPU arrays, plus the read-only queries."""

    @property
    def num_nodes(self) -> int: ...
    @property
    def max_gpus(self) -> int: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def model_names(self) -> tuple[str, ...]: ...
    @property
    def model_id(self) -> Mapping[str, int]: ...
    @property
    def cpu_cap(self) -> IntArray: ...
    @property
    def mem_cap(self) -> IntArray: ...
    @property
    def cpu_free(self) -> IntArray: ...
    @property
    def mem_free(self) -> IntArray: ...
    @property
    def gpu_count(self) -> IntArray: ...
    @property
    def rack(self) -> IntArray: ...
    @property
    def region(self) -> IntArray: ...
    @property
    def schedulable(self) -> BoolArray: ...
    @property
    def version(self) -> IntArray: ...
    @property
    def gpu_exists(self) -> BoolArray: ...
    @property
    def gpu_model(self) -> IntArray: ...
    @property
    def gpu_mem_mib(self) -> IntArray: ...
    @property
    def gpu_domain(self) -> IntArray: ...
    @property
    def gpu_healthy(self) -> BoolArray: ...
    @property
    def gpu_cap(self) -> IntArray: ...
    @property
    def gpu_free(self) -> IntArray: ...
    @property
    def shape_count(self) -> IntArray: ...
    @property
    def health_version(self) -> int: ...
    @property
    def layout_version(self) -> int: ...
    @property
    def derived(self) -> dict[object, object]: ...  # policies' own caches, keyed by policy
    @property
    def total_gpus(self) -> int: ...
    @property
    def total_gpu_milli(self) -> int: ...
    def eligible_gpus(self, req: WorkerRequest) -> BoolArray: ...
    def in_regions(self, regions: tuple[str, ...]) -> BoolArray: ...
    def fits(self, req: WorkerRequest, nodes: IntArray | None = None) -> BoolArray: ...
    def room(
        self, req: WorkerRequest, nodes: IntArray | None = None, empty: bool = False
    ) -> IntArray: ...
    def best_domain(self, req: WorkerRequest, node: int, allowed: BoolArray) -> int | None: ...
    def max_free_in_domain(self, req: WorkerRequest, nodes: IntArray) -> IntArray: ...


class QueueOrderPolicy(Protocol):
    """Which pending job is considered next (``queueing/queues.py`` explains the keys)."""

    name: ClassVar[str]
    uses_team_key: ClassVar[bool]  # team_key() is not constant
    uses_rank_class: ClassVar[bool]  # rank_class() is not constant
    fit_first: ClassVar[bool]  # with backfill "none" a job that does not fit holds nobody back
    promotes: bool  # promote_after_s() is not always inf

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey: ...
    def team_key(self, team: str, usage: TeamUsage, totals: FleetTotals) -> float: ...
    def rank_class(self, attained_gpu_s: float) -> int: ...
    def rank_classes(self, attained_gpu_s: FloatArray) -> IntArray: ...
    def next_rank_change_gpu_s(self, attained_gpu_s: float) -> float: ...
    def promote_after_s(self, ran_s: float) -> float: ...


class AdmissionPolicy(Protocol):
    """May a job start now, and where (which GPU models), under its team's quotas. The
    quotas and what every team holds are facts (:class:`QuotaBook`); the policy reads them."""

    name: ClassVar[str]

    def never(self, job: Job, book: QuotaBook, fleet: FleetView) -> str | None:
        """Why the job can never be admitted (refused at submission), or None."""
        ...

    def admit(
        self, job: Job, book: QuotaBook, fleet: FleetView
    ) -> tuple[Job | None, Verdict | None]:
        """The job, restricted to the GPU models it may use now (any placement within them
        stays within quota), or None and the verdict saying why it waits."""
        ...

    def may_reclaim(self, job: Job, book: QuotaBook) -> bool:
        """May the job take back capacity its team lent (it stays within its nominal)?"""
        ...


class PackingPolicy(Protocol):
    """Where a worker goes: ``score`` every candidate node at once (higher is better; ties go
    to a seeded random rank), then ``pick_gpus`` on the chosen node. ``cacheable``: a node's
    score depends only on that node and the request (and, if ``gang_aware``, the workers
    still to place), so the placer may cache scores and rescore changed nodes only."""

    name: ClassVar[str]
    cacheable: ClassVar[bool]
    gang_aware: ClassVar[bool]

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray: ...
    def score_gang(
        self, fleet: FleetView, req: WorkerRequest, nodes: IntArray, remaining: int
    ) -> FloatArray: ...
    def pick_gpus(
        self,
        fleet: FleetView,
        req: WorkerRequest,
        node: int,
        allowed: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[int, ...]: ...


@dataclass(frozen=True, slots=True)
class Victims:
    """A preemption decision: stop ``job_ids`` (in this order, each for its reason) and the
    waiting job ``for_job`` can be admitted and placed."""

    for_job: str
    job_ids: tuple[str, ...]
    reasons: tuple[PreemptReason, ...]


class Levels(Protocol):
    """Attained-service classes of jobs (``queueing/levels.py``), as preemption reads them."""

    def service_gpu_s(self, job_id: str) -> float: ...
    def entered_class_at_s(self, job_id: str) -> float | None: ...


class StateView(Protocol):
    """The facts a preemption policy and the level book read (``facts.py``)."""

    @property
    def now_s(self) -> float: ...
    @property
    def preempting(self) -> bool: ...
    @property
    def cycles(self) -> int: ...
    @property
    def stops(self) -> int: ...  # running jobs stopped so far (finished, preempted, ...)
    @property
    def jobs(self) -> Mapping[str, Job]: ...
    @property
    def running(self) -> Mapping[str, Placement]: ...
    @property
    def started_at_s(self) -> Mapping[str, float]: ...
    @property
    def attained_gpu_s(self) -> Mapping[str, float]: ...  # GPU-seconds of service so far
    @property
    def charged(self) -> Mapping[str, Mapping[str, int]]: ...  # job -> milli per GPU model
    @property
    def running_priorities(self) -> Mapping[int, int]: ...  # priority -> running jobs
    @property
    def pending_ids(self) -> Container[str]: ...
    @property
    def fleet(self) -> FleetView: ...
    @property
    def queue(self) -> QueueOrderPolicy: ...
    @property
    def quota(self) -> QuotaBook | None: ...
    @property
    def admission(self) -> AdmissionPolicy: ...
    @property
    def levels(self) -> Levels: ...


class PreemptionPolicy(Protocol):
    """Which running jobs to stop so that a waiting job can start."""

    name: ClassVar[str]

    def victims(self, job: Job, state: StateView) -> Victims | None:
        """The victims that let ``job`` be admitted and placed, or None (then it waits)."""
        ...

    def exhausted(self, team: str, state: StateView) -> bool:
        """Has ``team`` used up its victim searches for this cycle? (Then a job of a shape
        that already failed need not be tried again.)"""
        ...

    def stopped(self, job_id: str, state: StateView) -> None:
        """The cycle applied a decision and stopped ``job_id`` (no victim again this instant)."""
        ...

    def bar(self, team: str, state: StateView) -> float:
        """A pending job of ``team`` may find victims now only if its priority is above this
        (``-inf``: any job may): a necessary condition, which a start or a stop in the cycle
        may weaken only by changing the quota book (the cycle asks again then). It lets the
        walk end once no job ahead could preempt."""
        ...
