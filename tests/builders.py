"""Short builders for hand-made fleets and jobs."""

from __future__ import annotations

from scheduler.core.model import REGION_LABEL, Gpu, Job, Node, Topology, WorkerRequest
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.core.placement.packing import PackingBase
from scheduler.core.state import Backfill, ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import make_packing, make_queue


def make_node(
    name: str,
    gpus: int = 8,
    model: str = "H100",
    cpu_milli: int = 64_000,
    memory_mib: int = 262_144,
    domains: int = 1,
    rack: str = "r0",
    region: str = "",
) -> Node:
    per = max(1, gpus // domains)
    labels = (("rack", rack), ("zone", "z0")) + (((REGION_LABEL, region),) if region else ())
    return Node(
        name,
        cpu_milli,
        memory_mib,
        tuple(Gpu(model, 81_920, nvlink_domain=g // per) for g in range(gpus)),
        labels,
    )


def make_job(
    job_id: str,
    gpus: int = 1,
    gpu_milli: int = 1000,
    workers: int = 1,
    cpu_milli: int = 1000,
    memory_mib: int = 1024,
    models: tuple[str, ...] = (),
    topology: Topology = Topology.ANY,
    priority: int = 0,
    team: str = "default",
    submitted_at_s: float = 0.0,
    est_s: float | None = None,
    regions: tuple[str, ...] = (),
    data_region: str = "",
) -> Job:
    return Job(
        job_id,
        WorkerRequest(
            cpu_milli, memory_mib, gpus, gpu_milli if gpus else 1000, models, regions=regions
        ),
        data_region=data_region,
        num_workers=workers,
        topology=topology,
        priority=priority,
        team=team,
        submitted_at_s=submitted_at_s,
        estimated_duration_s=est_s,
    )


def make_state(
    nodes: list[Node],
    policy: str | PackingBase = "best_fit",
    seed: int = 0,
    typical: TypicalShapes | None = None,
    queue: str = "priority",
    backfill: Backfill = "greedy",
) -> ClusterState:
    packing = (
        make_packing(policy, PolicyContext(seed=seed, typical=typical))
        if isinstance(policy, str)
        else policy
    )
    config = CoreConfig(seed=seed, backfill=backfill)
    return ClusterState(nodes, packing, config, make_queue(queue))


def occupy(state: ClusterState, node: str, gpu_free: dict[int, int], cpu_used: int = 0) -> None:
    """Set GPU free milli on a node directly (test setup), keeping invariants out of the way."""
    i = state.fleet.index[node]
    for g, free in gpu_free.items():
        state.fleet.gpu_free[i, g] = free
    state.fleet.cpu_free[i] -= cpu_used
    state.fleet.version[i] += 1
