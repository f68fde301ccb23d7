"""``gpu_clustering``: keep workers of the same GPU shape class together (FGD's GpuClustering
baseline). Shape classes: GPU-sharing workers, and workers holding k whole GPUs.

    base  = trunc(25 * (Gmax - free_gpu) / Gmax)
    score = base + 75  if the node already runs this class and only this class
          = base + 50  if it runs this class among others
          = base + 25  if it runs no GPU worker at all
          = base       otherwise
CPU-only workers score 0 everywhere (ties go to the lowest-ranked node). GPUs: best fit.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext, gpu_left


class GpuClusteringPacking(PackingBase):
    name: ClassVar[str] = "gpu_clustering"

    def __init__(self, ctx: PolicyContext) -> None:
        self.gmax = ctx.gpu_norm_milli

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        if req.gpus == 0:
            return np.zeros(len(nodes))
        cls = 0 if req.gpu_milli < MILLI_PER_GPU else req.gpus
        counts = fleet.shape_count[nodes]  # [n, classes]
        base = (25 * (self.gmax - gpu_left(fleet, nodes))) // self.gmax
        classes_present = (counts > 0).sum(axis=1)
        mine = counts[:, cls] > 0 if cls < counts.shape[1] else np.zeros(len(nodes), dtype=np.bool_)
        bonus = np.where(
            mine,
            np.where(classes_present == 1, 75, 50),
            np.where(classes_present == 0, 25, 0),
        )
        return (base + bonus).astype(np.float64)
