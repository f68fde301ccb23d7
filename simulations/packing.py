"""Packing replay (the FGD paper's experiment): a virtual clock feeds one arrival per tick to
the core and records, after every arrival, arrived / allocated GPU and the cluster's
fragmentation. The core places; the replay adds the protocol's one rule, fail-fast
(:func:`submit_or_fail`): a pod the core did not start at once is withdrawn (cancelled) and
counted failed, so no queue ever forms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Launch
from scheduler.core.events import JobCancelled, JobSubmitted
from scheduler.core.model import Job, Node
from scheduler.core.placement.fragmentation import FragTracker, TypicalShapes, frag_model
from scheduler.core.state import ClusterState
from scheduler.policies.base import PolicyContext
from simulations.protocol import arrivals
from simulations.traces.alibaba import TracePod

MAX_ARRIVED_PCT = 130


@dataclass(frozen=True, slots=True)
class Trajectory:
    """Per-arrival series (milli-GPU), in arrival order."""

    policy: str
    seed: int
    total_gpus: int
    arrived_milli: NDArray[np.int64]
    used_milli: NDArray[np.int64]
    frag_milli: NDArray[np.float64]
    wall_s: float
    pods: int
    failed: int


@dataclass(frozen=True, slots=True)
class Curve:
    """One row per integer arrived percent 0..130 (NaN where no arrival fell near it)."""

    policy: str
    seed: int
    arrived_pct: NDArray[np.int64]
    allocated_pct: NDArray[np.float64]
    frag_amount_pct: NDArray[np.float64]
    frag_ratio_pct: NDArray[np.float64]

    @property
    def unallocated_pct(self) -> NDArray[np.float64]:
        return np.round(100.0 - self.allocated_pct, 2)

    def unallocated_at(self, pct: int) -> float:
        return float(self.unallocated_pct[pct])


def typical_shapes(pods: Sequence[TracePod]) -> TypicalShapes:
    """FGD's typical shapes: from the original trace rows, before shuffle or inflation."""
    return TypicalShapes.from_requests(
        p.to_job().worker for p in sorted(pods, key=lambda p: p.name)
    )


def replay(
    nodes: Sequence[Node],
    pods: Sequence[TracePod],
    policy: str,
    seed: int,
    inflate: float = 1.3,
    typical: TypicalShapes | None = None,
) -> Trajectory:
    """Replay ``pods`` (shuffled and inflated by the published protocol) onto ``nodes``."""
    typical = typical or typical_shapes(pods)
    # the FGD protocol: a pod that fits nowhere now fails (no queue, no preemption)
    config = SchedulerConfig(packing=policy, seed=seed, backfill="greedy", preemption=False)
    t0 = time.perf_counter()
    state = build_core(config, list(nodes), PolicyContext(seed=seed, typical=typical))
    fleet = state.fleet
    tracker = FragTracker(frag_model(fleet, typical))
    seq = arrivals(pods, fleet.total_gpu_milli, seed, inflate)
    n = len(seq)
    arrived = np.zeros(n, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)
    frag = np.zeros(n, dtype=np.float64)
    a = u = failed = 0
    for i, pod in enumerate(seq):
        job = pod.to_job(job_id=f"{i:06d}", submitted_at_s=float(i))
        a += pod.gpu_request_milli
        placed = submit_or_fail(state, job, float(i))
        if placed:
            u += job.total_gpu_milli
        failed += not placed
        arrived[i], used[i] = a, u
        frag[i] = tracker.amount_milli()
    wall = time.perf_counter() - t0
    return Trajectory(policy, seed, fleet.total_gpus, arrived, used, frag, wall, n, failed)


def submit_or_fail(state: ClusterState, job: Job, now_s: float) -> bool:
    """The FGD protocol's fail-fast: submit ``job``; if the core does not start it at once,
    cancel it (it failed). True when it started. With every arrival handled so, the queue is
    empty before each submission, and a job is placed or not exactly as the core's first try
    at it decides."""
    started = any(
        isinstance(act, Launch) and act.job_id == job.job_id
        for act in state.handle(JobSubmitted(now_s, job))
    )
    if not started:
        state.handle(JobCancelled(now_s, job.job_id, cause="fail-fast: fits nowhere now"))
    return started


def bin_curve(t: Trajectory) -> Curve:
    """Bin per-arrival series by integer arrived percent as the FGD authors' analysis does:
    bin k averages every arrival whose arrived % rounds (half to even) to k; an empty bin
    falls back to arrivals within k +- 1."""
    arrive_pct = np.round(t.arrived_milli / t.total_gpus / 10.0)
    alloc_pct = np.round(t.used_milli / t.total_gpus / 10.0, 2)
    frag_amount = t.frag_milli / 1000.0 / t.total_gpus * 100.0
    idle = t.total_gpus * 1000.0 - t.used_milli
    ratio = np.divide(100.0 * t.frag_milli, idle, out=np.zeros_like(t.frag_milli), where=idle > 0)
    ks = np.arange(MAX_ARRIVED_PCT + 1)
    out = np.full((3, len(ks)), np.nan)
    for k in ks:
        sel = arrive_pct == k
        if not sel.any():
            sel = np.abs(arrive_pct - k) <= 1
        if sel.any():
            out[0, k] = round(float(alloc_pct[sel].mean()), 2)
            out[1, k] = round(float(frag_amount[sel].mean()), 2)
            out[2, k] = float(ratio[sel].mean())
    return Curve(t.policy, t.seed, ks, out[0], out[1], out[2])
