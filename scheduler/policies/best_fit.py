"""``best_fit``: the node left tightest after placement (FGD's BestFit baseline):

    slack = 0.5 * (free_cpu - cpu) / Cmax + 0.5 * (free_gpu - gpu) / Gmax
    score = trunc(100 * (1 - slack))

FGD's plugin then rescales the scores of the feasible nodes to 0..100 with integer division;
scores already lie in 0..100 so that rescaling is one-to-one and changes neither the winner
nor the ties, and is left out. GPUs inside the node: best fit.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext, floor_int, gpu_left


class BestFitPacking(PackingBase):
    name: ClassVar[str] = "best_fit"

    def __init__(self, ctx: PolicyContext) -> None:
        self.cmax = float(ctx.cpu_norm_milli)
        self.gmax = float(ctx.gpu_norm_milli)

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        slack = (
            0.5 * (fleet.cpu_free[nodes] - req.cpu_milli) / self.cmax
            + 0.5 * (gpu_left(fleet, nodes) - req.total_gpu_milli) / self.gmax
        )
        return floor_int(100.0 * (1.0 - slack)).astype(np.float64)
