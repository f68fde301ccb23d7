"""``topology``: land a multi-GPU gang on as few nodes and NVLink domains as possible.

Gang-aware: a node scores by how many of the gang's *remaining* workers it could host (more is
better, so the gang fills one node before opening the next), then by how tightly it is left
(best fit, so big empty nodes stay free for big gangs). A worker's GPUs come from the NVLink
domain that holds them with the fewest spare GPUs; if no single domain can, from the fullest
domains first, so the worker spans as few domains as possible.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, WorkerRequest
from scheduler.core.placement.fleet import BoolArray, IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase, best_fit_gpus
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext, gpu_left


class TopologyPacking(PackingBase):
    name: ClassVar[str] = "topology"
    gang_aware: ClassVar[bool] = True

    def __init__(self, ctx: PolicyContext) -> None:
        self.gmax = float(ctx.gpu_norm_milli)

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        return self.score_gang(fleet, req, nodes, 1)

    def score_gang(
        self, fleet: FleetView, req: WorkerRequest, nodes: IntArray, remaining: int
    ) -> FloatArray:
        hosts = np.minimum(fleet.room(req, nodes), remaining)
        leftover = gpu_left(fleet, nodes) - hosts * req.total_gpu_milli  # milli left idle after
        score = hosts * 1e6 - leftover.astype(np.float64)
        if req.gpus > 1 and not req.shares_gpu:
            score += 1e5 * (fleet.max_free_in_domain(req, nodes) >= req.gpus)
        return score  # type: ignore[no-any-return]

    def pick_gpus(
        self,
        fleet: FleetView,
        req: WorkerRequest,
        node: int,
        allowed: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[int, ...]:
        if req.gpus <= 1 or req.shares_gpu:
            return best_fit_gpus(fleet, req, node, allowed)
        free = np.flatnonzero(allowed & (fleet.gpu_free[node] == MILLI_PER_GPU))
        dom = fleet.gpu_domain[node][free]
        best = fleet.best_domain(req, node, allowed)
        if best is not None:
            return tuple(int(g) for g in free[dom == best][: req.gpus])
        doms, counts = np.unique(dom, return_counts=True)
        order = doms[np.argsort(-counts, kind="stable")]
        picked = [int(g) for d in order for g in free[dom == d]]
        return tuple(picked[: req.gpus])
