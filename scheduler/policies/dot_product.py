"""``dot_product``: prefer the node whose free (CPU, GPU) vector is least aligned with the
request, as FGD's DotProd baseline (merged GPU dimension, max-spec normalisation):

    score = trunc(100 * (1 - (free_cpu/Cmax * cpu/Cmax + free_gpu/Gmax * gpu/Gmax) / 2))

where ``free_gpu`` is the node's free milli-GPU summed over its GPUs and ``gpu`` the request's
total milli-GPU. GPUs inside the node: best fit.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext, floor_int, gpu_left


class DotProductPacking(PackingBase):
    name: ClassVar[str] = "dot_product"

    def __init__(self, ctx: PolicyContext) -> None:
        self.cmax = float(ctx.cpu_norm_milli)
        self.gmax = float(ctx.gpu_norm_milli)

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        cpu = fleet.cpu_free[nodes] / self.cmax * (req.cpu_milli / self.cmax)
        gpu = gpu_left(fleet, nodes) / self.gmax * (req.total_gpu_milli / self.gmax)
        return floor_int(100.0 * (1.0 - (cpu + gpu) / 2.0)).astype(np.float64)
