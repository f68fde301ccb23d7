"""``gpu_packing``: fill GPUs that are already in use, then nodes already in use, and open an
idle node last (FGD's GpuPacking baseline; integer arithmetic as there):

    idle node (all GPUs free):         score = max(33 - F, F)      F = fully free GPUs
    node in use, needs a free GPU:     score = max(50 - U, 33)     U = free GPUs it would open
    fits on GPUs already in use:       score = max(100 - s // 10, 50),
                                       s = sum of trunc(free_g * 100 / 1000) over the GPUs taken
GPUs are taken in ascending free order (best fit). CPU-only workers score 0 everywhere.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext


class GpuPackingPacking(PackingBase):
    name: ClassVar[str] = "gpu_packing"

    def __init__(self, ctx: PolicyContext) -> None:
        pass

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        if req.gpus == 0:
            return np.zeros(len(nodes))
        free = fleet.gpu_free[nodes]
        exists = fleet.gpu_exists[nodes]
        elig = fleet.eligible_gpus(req)[nodes]
        full = ((free == MILLI_PER_GPU) & exists).sum(axis=1)
        all_idle = full == fleet.gpu_count[nodes]
        # GPUs taken: ascending free (stable), those with free >= milli, first `gpus` of them
        ok = elig & (free >= req.gpu_milli)
        key = np.where(ok, free, 10 * MILLI_PER_GPU)
        order = np.argsort(key, axis=1, kind="stable")
        sorted_free = np.take_along_axis(free, order, axis=1)
        sorted_ok = np.take_along_axis(ok, order, axis=1)
        taken = sorted_ok & (np.cumsum(sorted_ok, axis=1) <= req.gpus)
        opened = (taken & (sorted_free == MILLI_PER_GPU)).sum(axis=1)
        s = (taken * ((sorted_free * 100) // MILLI_PER_GPU)).sum(axis=1)
        used_gpus = np.maximum(100 - s // 10, 50)
        used_node = np.maximum(50 - opened, 33)
        idle_node = np.maximum(33 - full, full)
        out: FloatArray = np.where(
            all_idle, idle_node, np.where(opened > 0, used_node, used_gpus)
        ).astype(np.float64)
        return out
