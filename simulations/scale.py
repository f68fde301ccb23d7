"""Scale run: a synthetic fleet (by default 12,500 nodes x 8 GPUs: 100,000 GPUs) and 10,000
pending multi-GPU gang jobs, submitted in batches of 100; each ``handle()`` call is one
scheduling cycle. ``gpuyard simulate scale --policy NAME[,...]|all --nodes N
--gpus-per-node G --jobs J --out DIR`` runs it for an operator's own fleet size and writes
``DIR/summary.csv`` (:data:`SUMMARY_COLUMNS`)."""

from __future__ import annotations

import csv
import gc
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Launch
from scheduler.core.events import JobSubmitted
from scheduler.core.model import Gpu, Job, Node, Topology, WorkerRequest
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.policies.base import PolicyContext

GANG_SHAPES = (  # (workers, GPUs per worker, topology, weight)
    (1, 1, Topology.ANY, 0.30),
    (1, 2, Topology.ANY, 0.15),
    (1, 4, Topology.SAME_NVLINK, 0.15),
    (1, 8, Topology.ANY, 0.15),
    (2, 8, Topology.ANY, 0.10),
    (4, 2, Topology.SAME_NODE, 0.05),
    (4, 8, Topology.SAME_RACK, 0.05),
    (8, 4, Topology.ANY, 0.05),
)


@dataclass(frozen=True, slots=True)
class ScaleResult:
    policy: str
    nodes: int
    gpus: int
    jobs: int
    placed_jobs: int
    placed_workers: int
    cycles: int
    total_s: float
    p50_cycle_ms: float
    p99_cycle_ms: float
    max_cycle_ms: float

    @property
    def placements_per_s(self) -> float:
        return self.placed_jobs / self.total_s if self.total_s else 0.0


def synthetic_fleet(
    nodes: int = 12_500, gpus_per_node: int = 8, nodes_per_rack: int = 32
) -> list[Node]:
    """H100-class 8-GPU nodes in two NVLink domains of four; racks of ``nodes_per_rack``."""
    half = gpus_per_node // 2
    gpus = tuple(
        Gpu("H100", 81559, nvlink_domain=0 if g < half else 1) for g in range(gpus_per_node)
    )
    return [
        Node(
            f"node-{i:05d}",
            192_000,
            2_097_152,
            gpus,
            (("rack", f"rack-{i // nodes_per_rack:04d}"), ("zone", "z1")),
        )
        for i in range(nodes)
    ]


def synthetic_jobs(count: int = 10_000, seed: int = 0) -> list[Job]:
    rng = np.random.default_rng(seed)
    w = np.array([s[3] for s in GANG_SHAPES])
    picks = rng.choice(len(GANG_SHAPES), size=count, p=w / w.sum())
    jobs = []
    for i, k in enumerate(picks):
        workers, gpus, topo, _ = GANG_SHAPES[int(k)]
        req = WorkerRequest(cpu_milli=8000 * gpus, memory_mib=65536 * gpus, gpus=gpus)
        jobs.append(
            Job(
                f"job-{i:05d}",
                req,
                num_workers=workers,
                priority=int(rng.integers(3)),
                submitted_at_s=float(i // 100),
                topology=topo,
            )
        )
    return jobs


def run_scale(
    policy: str,
    nodes: int = 12_500,
    jobs: int = 10_000,
    batch: int = 100,
    seed: int = 0,
    gpus_per_node: int = 8,
) -> ScaleResult:
    fleet_nodes = synthetic_fleet(nodes, gpus_per_node)
    work = synthetic_jobs(jobs, seed)
    typical = TypicalShapes.from_requests(j.worker for j in work)
    config = SchedulerConfig(packing=policy, seed=seed, backfill="greedy", preemption=False)
    state = build_core(config, fleet_nodes, PolicyContext(seed=seed, typical=typical))
    # what a long-running scheduler does after start-up: the fleet, the jobs and the core's
    # books are long-lived, so move them out of the cyclic collector's generations (a full
    # collection walking them otherwise lands inside some cycle and shows as its time)
    gc.collect()
    gc.freeze()
    times: list[float] = []
    placed_jobs = placed_workers = 0
    for start in range(0, len(work), batch):
        chunk = work[start : start + batch]
        events = [JobSubmitted(j.submitted_at_s, j) for j in chunk]
        t0 = time.perf_counter()
        actions = state.handle(*events)
        times.append(time.perf_counter() - t0)
        for a in actions:
            if isinstance(a, Launch):
                placed_jobs += 1
                placed_workers += len(a.placement.workers)
    gc.unfreeze()
    errors = state.check_invariants()
    if errors:
        raise AssertionError(f"invariants broken after the scale run: {errors[:3]}")
    ms = np.array(times) * 1000.0
    return ScaleResult(
        policy,
        nodes,
        state.fleet.total_gpus,
        len(work),
        placed_jobs,
        placed_workers,
        len(times),
        float(sum(times)),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(ms.max()),
    )


SUMMARY_COLUMNS = (
    "policy", "nodes", "gpus", "jobs", "placed_jobs", "placed_workers", "cycles",
    "placements_per_s", "p50_cycle_ms", "p99_cycle_ms", "max_cycle_ms",
)  # fmt: skip


def write_summary(results: list[ScaleResult], out: Path) -> Path:
    """``out/summary.csv``, one row per policy, columns :data:`SUMMARY_COLUMNS`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SUMMARY_COLUMNS)
        for r in results:
            w.writerow([
                r.policy, r.nodes, r.gpus, r.jobs, r.placed_jobs, r.placed_workers, r.cycles,
                f"{r.placements_per_s:.1f}", f"{r.p50_cycle_ms:.3f}", f"{r.p99_cycle_ms:.3f}",
                f"{r.max_cycle_ms:.3f}",
            ])  # fmt: skip
    return path
