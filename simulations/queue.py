"""Queue replay: a virtual clock feeds a job trace's arrivals and the jobs' finishes to the core
and records when each job started and ended. The core decides everything; this driver only
turns ``Launch`` actions into finish events ``duration`` seconds later, and sends a ``Tick``
at the time the core asks to be woken (``ClusterState.next_wake_s``: a running job demoted
under ``las``) when no other event falls then.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.model import Gpu, Job, Node, WorkerRequest
from scheduler.core.queueing.priority import PriorityClasses
from scheduler.core.queueing.quota import QuotaConfig
from scheduler.core.state import Backfill
from simulations.replay import replay_jobs
from simulations.traces.jobs import TraceJob

GPU_MODEL = "GPU"


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    team: str
    num_gpus: int
    submit_s: float
    start_s: float  # first start; nan if the job never started (rejected as never fitting)
    end_s: float
    preemptions: int
    duration_s: float = 0.0  # the work the trace asked for
    ran_s: float = 0.0  # seconds it held its GPUs, lost work included


@dataclass(frozen=True, slots=True)
class QueueRun:
    policy: str
    records: tuple[JobRecord, ...]
    gpus: int
    wall_s: float
    rejected: int
    lost_gpu_h: float = 0.0
    reserved: int = 0  # jobs that held an EASY reservation
    late: int = 0  # of those, started after the first shadow time promised to them


def uniform_fleet(gpus: int, gpus_per_node: int) -> list[Node]:
    if gpus <= 0 or gpus_per_node <= 0 or gpus % gpus_per_node:
        raise ValueError(
            f"--gpus ({gpus}) must be a positive multiple of --gpus-per-node ({gpus_per_node})"
        )
    gpu = tuple(Gpu(GPU_MODEL, 32_768) for _ in range(gpus_per_node))
    return [Node(f"node-{i:04d}", 1_000_000, 10_000_000, gpu) for i in range(gpus // gpus_per_node)]


def gang_of(
    job: TraceJob,
    gpus_per_node: int,
    checkpoint_interval_s: float | None = None,
    classes: PriorityClasses | None = None,
    one_gpu_workers: bool = False,
) -> Job:
    """A trace job as a gang: the fewest workers of equal size that fit a node each (or, with
    ``one_gpu_workers``, one worker per GPU, placed anywhere), with its team's default
    priority class (traces carry none)."""
    n = job.num_gpus
    workers = n if one_gpu_workers else max(1, math.ceil(n / gpus_per_node))
    while n % workers:
        workers += 1
    return Job(
        job.job_id,
        WorkerRequest(cpu_milli=0, memory_mib=0, gpus=n // workers),
        num_workers=workers,
        team=job.team,
        submitted_at_s=job.submit_s,
        priority=0 if classes is None else classes.value(job.team),
        estimated_duration_s=job.duration_s,
        checkpoint_interval_s=checkpoint_interval_s,
    )


@dataclass(frozen=True, slots=True)
class QueueOptions:
    backfill: Backfill = "none"
    packing: str = "best_fit"
    quotas: QuotaConfig | None = None
    preemption: bool = False
    aging_s: float | None = None
    checkpoint_interval_s: float | None = None  # given to every job (traces carry none)
    fair_share_half_life_s: float | None = None
    priority_classes: PriorityClasses | None = None
    # every GPU its own worker, anywhere: Tiresias's "count" placement (its simulator's
    # --scheme=count), to compare with its figures; default: one worker per node's share
    one_gpu_workers: bool = False


def replay_queue(
    jobs: Sequence[TraceJob],
    gpus: int,
    gpus_per_node: int,
    queue: str,
    backfill: Backfill = "none",
    options: QueueOptions | None = None,
    label: str | None = None,
) -> QueueRun:
    opt = options or QueueOptions(backfill=backfill)
    nodes = uniform_fleet(gpus, gpus_per_node)
    t0 = time.perf_counter()
    config = SchedulerConfig(
        packing=opt.packing,
        queue=queue,
        backfill=opt.backfill,
        preemption=opt.preemption,
        aging_s=opt.aging_s,
        fair_share_half_life_s=opt.fair_share_half_life_s,
        quotas=opt.quotas,
        priority_classes=opt.priority_classes,
    )
    state = build_core(config, nodes)
    gangs = [
        gang_of(
            j, gpus_per_node, opt.checkpoint_interval_s, opt.priority_classes, opt.one_gpu_workers
        )
        for j in jobs
    ]
    replay = replay_jobs(state, gangs, [j.duration_s for j in jobs])
    wall = time.perf_counter() - t0
    records = tuple(
        JobRecord(
            j.job_id,
            j.team,
            j.num_gpus,
            j.submit_s,
            t.start_s,
            t.end_s,
            t.preemptions,
            j.duration_s,
            t.ran_s,
        )
        for j, t in zip(jobs, replay.tracks, strict=True)
    )
    name = label or (queue if opt.backfill == "none" else f"{queue}+{opt.backfill}")
    start = {t.job_id: t.start_s for t in replay.tracks if not math.isnan(t.start_s)}
    late = sum(1 for j, t in state.reserved_at_s.items() if start.get(j, math.inf) > t + 1e-6)
    return QueueRun(
        name,
        records,
        gpus,
        wall,
        replay.rejected,
        state.lost_gpu_s / 3600.0,
        len(state.reserved_at_s),
        late,
    )


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
    """JCT = end - submit; wait = first start - submit; utilisation = GPU-seconds held (lost
    work included) / (GPUs x makespan); Jain's index over teams of each team's mean
    (duration / JCT), 1 = every team slowed down alike. Jobs that never started are left out."""
    done = [r for r in run.records if not math.isnan(r.start_s)]
    if not done:
        raise ValueError("no job ran")
    jct = np.array([r.end_s - r.submit_s for r in done])
    wait = np.array([r.start_s - r.submit_s for r in done])
    makespan = max(r.end_s for r in done) - min(r.submit_s for r in done)
    busy = sum(r.num_gpus * r.ran_s for r in done)
    per_team: dict[str, list[float]] = {}
    for r, t in zip(done, jct, strict=True):
        per_team.setdefault(r.team, []).append(r.duration_s / t if t > 0 else 1.0)
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
        run.lost_gpu_h,
        run.wall_s,
    )
