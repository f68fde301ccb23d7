"""Queue order: which pending job is considered next.

A :class:`QueueOrderBase` gives every job a key that stays fixed while the job is pending
(``job_key``) and every team a key that may change as the team's jobs start and stop
(``team_key``, e.g. its dominant share). Pending jobs live in one sorted list per team; a cycle
merges the teams' heads by (team key, job key), recomputing a team's key after one of its jobs
starts. Orders that ignore teams give every team the same key, which makes the merge a plain
global sort by job key. Every key ends with the job id, so no order depends on dict or set
iteration.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from scheduler.core.model import Job

JobKey = tuple[object, ...]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(slots=True)
class TeamUsage:
    """What a team holds (now, or on average with a half-life): GPUs (milli), CPU (milli),
    memory (MiB), as share inputs."""

    gpu_milli: float = 0
    cpu_milli: float = 0
    memory_mib: float = 0


@dataclass(frozen=True, slots=True)
class FleetTotals:
    gpu_milli: int
    cpu_milli: int
    memory_mib: int


class QueueOrderBase:
    """Base class of queue policies (``scheduler/policies/queue_*.py``)."""

    name: ClassVar[str] = "base"
    uses_team_key: ClassVar[bool] = False  # True when team_key() is not constant
    uses_rank_class: ClassVar[bool] = False  # True when rank_class() is not constant
    # True: with backfill "none" a job that does not fit does not hold back the jobs behind it
    # (the order is defined with a fit-first scan, as Tiresias's queues are)
    fit_first: ClassVar[bool] = False
    promotes: bool = False  # True when promote_after_s() is not always inf

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        """Key of a pending job (lower first); must end with the job id."""
        raise NotImplementedError

    def team_key(self, team: str, usage: TeamUsage, totals: FleetTotals) -> float:
        """Key of a team (lower first). Default: every team equal."""
        return 0.0

    def rank_class(self, attained_gpu_s: float) -> int:
        """The job's class by attained service (GPU-seconds so far). A waiting job may
        preempt an equal-priority running job of a higher class by this order alone (LAS
        levels); jobs of one class outrank the same running jobs. Default: one class, so the
        order alone never preempts."""
        return 0

    def rank_classes(self, attained_gpu_s: FloatArray) -> IntArray:
        """:meth:`rank_class` of many jobs at once."""
        return np.zeros(len(attained_gpu_s), dtype=np.int64)

    def next_rank_change_gpu_s(self, attained_gpu_s: float) -> float:
        """The smallest attained service (GPU-seconds) above ``attained_gpu_s`` at which
        :meth:`rank_class` changes (a job reaching it is demoted); inf: never. The core
        schedules a wake-up for the moment a running job gets there (``next_wake_s``)."""
        return math.inf

    def promote_after_s(self, ran_s: float) -> float:
        """Starvation promotion: seconds a requeued job of rank class > 0, which ran ``ran_s``
        seconds since its last promotion, may wait (counted from its first requeue since then)
        before it goes back to class 0 with its attained service counted afresh; inf: never
        (the default; set :attr:`promotes` when this can be finite)."""
        return math.inf


def crossing_s(
    service_gpu_s: float, started_at_s: float, gpus: float, boundary_gpu_s: float
) -> float:
    """When a job that had ``service_gpu_s`` of attained service when it started at
    ``started_at_s`` on ``gpus`` GPUs reaches ``boundary_gpu_s``, as the core computes service
    during a run (``service + (t - start) * gpus``, floats): the formula's time, moved up by the
    few ulps rounding may need so that the service at that time is at the boundary. inf: a job
    holding no GPU never gets there."""
    if gpus <= 0 or math.isinf(boundary_gpu_s):
        return math.inf
    t = max(started_at_s, started_at_s + (boundary_gpu_s - service_gpu_s) / gpus)
    for _ in range(64):
        if service_gpu_s + (t - started_at_s) * gpus >= boundary_gpu_s:
            break
        t = math.nextafter(t, math.inf)
    return t


@dataclass(slots=True)
class TeamQueues:
    """Pending jobs per team, each list sorted by job key."""

    queues: dict[str, list[tuple[JobKey, str]]] = field(default_factory=dict)
    where: dict[str, tuple[str, JobKey]] = field(default_factory=dict)
    shapes: dict[tuple[object, ...], int] = field(default_factory=dict)
    # per shape, a heap of (estimated duration, job id) with lazy deletion: the shortest
    # pending job of a shape, for ending a backfill scan early
    _by_est: dict[tuple[object, ...], list[tuple[float, str]]] = field(default_factory=dict)
    # every pending job by job key alone: the merged order when teams do not matter
    _all: list[tuple[JobKey, str]] = field(default_factory=list)
    shape_of: dict[str, tuple[object, ...]] = field(default_factory=dict)
    # per team, pending jobs by priority: how many could preempt (``cycle.py``, step 8)
    priorities: dict[str, dict[int, int]] = field(default_factory=dict)
    _priority_of: dict[str, int] = field(default_factory=dict)

    def above(self, team: str, bar: float) -> int:
        """How many of ``team``'s pending jobs have a priority above ``bar``."""
        return sum(n for p, n in self.priorities.get(team, {}).items() if p > bar)

    def shortest(self, shape: tuple[object, ...]) -> float:
        """The smallest estimated duration among pending jobs of ``shape`` (inf: none known)."""
        heap = self._by_est.get(shape)
        while heap and heap[0][1] not in self.where:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.where

    def add(self, job: Job, key: JobKey) -> None:
        bisect.insort(self.queues.setdefault(job.team, []), (key, job.job_id))
        bisect.insort(self._all, (key, job.job_id))
        self.where[job.job_id] = (job.team, key)
        shape = job.shape_key()
        self.shape_of[job.job_id] = shape
        self.shapes[shape] = self.shapes.get(shape, 0) + 1
        by_priority = self.priorities.setdefault(job.team, {})
        by_priority[job.priority] = by_priority.get(job.priority, 0) + 1
        self._priority_of[job.job_id] = job.priority
        est = job.estimated_duration_s
        heapq.heappush(
            self._by_est.setdefault(shape, []), (math.inf if est is None else est, job.job_id)
        )

    def remove(self, job: Job) -> bool:
        hit = self.where.pop(job.job_id, None)
        if hit is None:
            return False
        team, key = hit
        q = self.queues[team]
        i = bisect.bisect_left(q, (key, job.job_id))
        del q[i]
        if not q:
            del self.queues[team]
        del self._all[bisect.bisect_left(self._all, (key, job.job_id))]
        shape = self.shape_of.pop(job.job_id)
        self.shapes[shape] -= 1
        if not self.shapes[shape]:
            del self.shapes[shape]
        by_priority = self.priorities[team]
        priority = self._priority_of.pop(job.job_id)
        by_priority[priority] -= 1
        if not by_priority[priority]:
            del by_priority[priority]
            if not by_priority:
                del self.priorities[team]
        return True

    def merged(
        self,
        team_key: Callable[[str], float] | None,
        version: Callable[[], int] | None = None,
    ) -> Iterator[str]:
        """Job ids in merged order. ``team_key`` is re-read for a team each time its next
        job is pushed, so a consumer that starts jobs changes the order it sees next; None
        when every team has the same key (the order is then the job keys'). With
        ``version`` (a counter that moves whenever a team key may have changed), a key is
        re-read only when the counter moved. The queues must not change while the iterator
        is in use."""
        if team_key is None:
            for _, job_id in self._all:
                yield job_id
            return
        # keys start with a lane (0: past the aging bound, or holding the EASY reservation;
        # 1: normal): a front-lane job goes before every normal one, whatever its team's key
        heap: list[tuple[object, float, JobKey, str, int]] = []
        for team in sorted(self.queues):
            q = self.queues[team]
            heap.append((q[0][0][0], team_key(team), q[0][0], team, 0))
        heapq.heapify(heap)
        while heap:
            _, key, _, team, i = heapq.heappop(heap)
            q = self.queues[team]
            seen: int | None = None  # the key is read fresh for the first comparison
            while True:  # a team's run of jobs ahead of every other team's next one
                yield q[i][1]
                i += 1
                if i == len(q):
                    break
                now = None if version is None else version()
                if now is None or now != seen:
                    key = team_key(team)
                    seen = now
                nxt = q[i][0]
                entry = (nxt[0], key, nxt, team, i)
                if heap and heap[0] < entry:
                    heapq.heappush(heap, entry)
                    break


class CanonicalOrder(QueueOrderBase):
    """The core's default and DESIGN.md's tie-break: higher priority first, then earlier
    submission, then job id (registered as the ``priority`` queue policy)."""

    name: ClassVar[str] = "priority"

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        return (-job.priority, job.submitted_at_s, job.job_id)
