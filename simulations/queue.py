"""Queue replay: a virtual clock feeds a job trace's arrivals and the jobs' finishes to the core
and records when each job started and ended. The core decides everything; this driver only
turns ``Launch`` actions into finish events ``duration`` seconds later.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.core.actions import Launch, Reject
from scheduler.core.events import Event, JobFinished, JobSubmitted
from scheduler.core.model import Gpu, Job, Node, WorkerRequest
from scheduler.core.state import Backfill, ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import make_packing, make_queue
from simulations.traces.jobs import TraceJob

GPU_MODEL = "GPU"


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    team: str
    num_gpus: int
    submit_s: float
    start_s: float  # nan if the job never started (rejected as never fitting)
    end_s: float
    preemptions: int


@dataclass(frozen=True, slots=True)
class QueueRun:
    policy: str
    records: tuple[JobRecord, ...]
    gpus: int
    wall_s: float
    rejected: int


def uniform_fleet(gpus: int, gpus_per_node: int) -> list[Node]:
    if gpus <= 0 or gpus_per_node <= 0 or gpus % gpus_per_node:
        raise ValueError(
            f"--gpus ({gpus}) must be a positive multiple of --gpus-per-node ({gpus_per_node})"
        )
    gpu = tuple(Gpu(GPU_MODEL, 32_768) for _ in range(gpus_per_node))
    return [Node(f"node-{i:04d}", 1_000_000, 10_000_000, gpu) for i in range(gpus // gpus_per_node)]


def gang_of(job: TraceJob, gpus_per_node: int, policy_label: str = "") -> Job:
    """A trace job as a gang: the fewest workers of equal size that fit a node each."""
    n = job.num_gpus
    workers = max(1, math.ceil(n / gpus_per_node))
    while n % workers:
        workers += 1
    return Job(
        job.job_id,
        WorkerRequest(cpu_milli=0, memory_mib=0, gpus=n // workers),
        num_workers=workers,
        team=job.team,
        submitted_at_s=job.submit_s,
        estimated_duration_s=job.duration_s,
    )


def replay_queue(
    jobs: Sequence[TraceJob],
    gpus: int,
    gpus_per_node: int,
    queue: str,
    backfill: Backfill = "none",
    packing: str = "best_fit",
    label: str | None = None,
) -> QueueRun:
    nodes = uniform_fleet(gpus, gpus_per_node)
    t0 = time.perf_counter()
    state = ClusterState(
        nodes,
        make_packing(packing, PolicyContext()),
        CoreConfig(backfill=backfill),
        make_queue(queue),
    )
    by_id = {j.job_id: j for j in jobs}
    # event heap: (time, kind, seq, job id); kind 0 = finish, 1 = arrival, so finishes at the
    # same instant free their GPUs before arrivals are considered
    heap: list[tuple[float, int, int, str]] = [
        (j.submit_s, 1, i, j.job_id) for i, j in enumerate(jobs)
    ]
    heapq.heapify(heap)
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    rejected = 0
    seq = len(jobs)
    while heap:
        now = heap[0][0]
        events: list[Event] = []
        while heap and heap[0][0] == now:
            _, kind, _, job_id = heapq.heappop(heap)
            if kind == 0:
                events.append(JobFinished(now, job_id))
            else:
                events.append(JobSubmitted(now, gang_of(by_id[job_id], gpus_per_node)))
        for act in state.handle(*events):
            if isinstance(act, Launch):
                start[act.job_id] = now
                done = now + by_id[act.job_id].duration_s
                end[act.job_id] = done
                heapq.heappush(heap, (done, 0, seq, act.job_id))
                seq += 1
            elif isinstance(act, Reject):
                rejected += 1
    wall = time.perf_counter() - t0
    records = tuple(
        JobRecord(
            j.job_id,
            j.team,
            j.num_gpus,
            j.submit_s,
            start.get(j.job_id, math.nan),
            end.get(j.job_id, math.nan),
            0,
        )
        for j in jobs
    )
    name = label or (queue if backfill == "none" else f"{queue}+{backfill}")
    return QueueRun(name, records, gpus, wall, rejected)


@dataclass(frozen=True, slots=True)
class QueueSummary:
    policy: str
    jobs: int
    avg_jct_s: float
    p50_jct_s: float
    p95_jct_s: float
    p99_jct_s: float
    avg_wait_s: float
    p95_wait_s: float
    makespan_s: float
    gpu_util_pct: float
    jain_fairness: float
    preemptions: int
    lost_gpu_h: float
    wall_s: float


def summarize(run: QueueRun) -> QueueSummary:
    """JCT = end - submit; wait = start - submit; utilisation = GPU-seconds run / (GPUs x
    makespan); Jain's index over teams of each team's mean (duration / JCT), 1 = every team
    slowed down alike. Jobs that never started are left out of the times."""
    done = [r for r in run.records if not math.isnan(r.start_s)]
    if not done:
        raise ValueError("no job ran")
    jct = np.array([r.end_s - r.submit_s for r in done])
    wait = np.array([r.start_s - r.submit_s for r in done])
    makespan = max(r.end_s for r in done) - min(r.submit_s for r in done)
    busy = sum(r.num_gpus * (r.end_s - r.start_s) for r in done)
    per_team: dict[str, list[float]] = {}
    for r, t in zip(done, jct, strict=True):
        per_team.setdefault(r.team, []).append((r.end_s - r.start_s) / t if t > 0 else 1.0)
    x = np.array([np.mean(v) for _, v in sorted(per_team.items())])
    jain = float(x.sum() ** 2 / (len(x) * (x**2).sum())) if (x**2).sum() > 0 else 1.0
    return QueueSummary(
        run.policy,
        len(done),
        float(jct.mean()),
        float(np.percentile(jct, 50)),
        float(np.percentile(jct, 95)),
        float(np.percentile(jct, 99)),
        float(wait.mean()),
        float(np.percentile(wait, 95)),
        float(makespan),
        float(100.0 * busy / (run.gpus * makespan)) if makespan > 0 else 0.0,
        jain,
        sum(r.preemptions for r in done),
        0.0,
        run.wall_s,
    )
