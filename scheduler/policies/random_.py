"""``random``: a uniformly random feasible node; a sharing worker gets a random GPU it fits on.

The baseline of the FGD paper (its Random policy). Not cacheable: scores are fresh draws.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import BoolArray, IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase, best_fit_gpus
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext


class RandomPacking(PackingBase):
    name: ClassVar[str] = "random"
    cacheable: ClassVar[bool] = False

    def __init__(self, ctx: PolicyContext) -> None:
        self.rng = np.random.default_rng([ctx.seed, 0x52414E44])

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        return self.rng.random(len(nodes))

    def pick_gpus(
        self,
        fleet: FleetView,
        req: WorkerRequest,
        node: int,
        allowed: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[int, ...]:
        if req.shares_gpu:
            cand = np.flatnonzero(allowed & (fleet.gpu_free[node] >= req.gpu_milli))
            return (int(cand[self.rng.integers(len(cand))]),)
        return best_fit_gpus(fleet, req, node, allowed)
