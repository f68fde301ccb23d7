"""``frag_pack``: our policy. FGD's fragmentation gain, minus a charge for using GPU models
that pinned work will need.

FGD (``fgd``) scores a placement by how little it grows the expected fragmentation of the node
it lands on. It does not see *scarcity across nodes*: an unpinned pod placed on a T4 node costs
nothing in FGD's measure as long as that node still fits the T4-pinned shapes, yet every T4 GPU
it takes is one the T4-only pods can never use elsewhere. On Alibaba's ``gpuspec*`` traces
(pods pinned to GPU models) this is where most of FGD's unallocated GPUs come from.

For each GPU model m, from the workload's typical shapes:

    pinned(m)   = sum over pinned shapes t allowing m of p_t * gpus_t * milli_t / |models of t|
    weight(m)   = (pinned(m) / sum over all shapes of p_t * gpus_t * milli_t) / (GPUs of m / all GPUs)

i.e. how much more of model m the pinned work asks for than m's share of the fleet. A pod that
accepts any model pays ``weight(m)`` milli-GPU of fragmentation for every milli-GPU it takes on
model m; pinned pods pay nothing (their choice is already limited). With no pinned shapes the
weights are zero and ``frag_pack`` is exactly ``fgd``. Inside a node, GPUs are chosen as in FGD.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.packing import FloatArray
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext
from scheduler.policies.fgd import FgdPacking


class FragPackPacking(FgdPacking):
    name: ClassVar[str] = "frag_pack"

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(ctx)
        self._weights: tuple[FleetView, FloatArray] | None = None

    def scarcity(self, fleet: FleetView) -> FloatArray:
        """``weight(m)`` per model id of the fleet (see the module docstring)."""
        if self._weights is not None and self._weights[0] is fleet:
            return self._weights[1]
        n = len(fleet.model_names)
        cap = np.array(
            [(fleet.gpu_model[fleet.gpu_exists] == i).sum() for i in range(n)], dtype=np.float64
        )
        pinned = np.zeros(n)
        total = 0.0
        for shape, p in zip(self.typical.shapes, self.typical.weights, strict=True):
            demand = p * shape.gpus * shape.gpu_milli
            total += demand
            ids = [fleet.model_id[m] for m in shape.gpu_models if m in fleet.model_id]
            for i in ids:
                pinned[i] += demand / len(ids)
        weights = np.zeros(n)
        if total > 0 and cap.sum() > 0:
            share = cap / cap.sum()
            weights = np.divide(pinned / total, share, out=np.zeros(n), where=share > 0)
        self._weights = (fleet, weights)
        return weights

    def _charge(
        self, fleet: FleetView, req: WorkerRequest, nodes: IntArray, taken: IntArray
    ) -> FloatArray:
        """Scarcity charge (milli-GPU) of taking ``taken`` ([n, G] milli per GPU) on ``nodes``."""
        if req.gpu_models or req.gpus == 0:
            return np.zeros(taken.shape)
        w = self.scarcity(fleet)
        return w[np.maximum(fleet.gpu_model[nodes], 0)] * taken

    def node_gpu_scores(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        model = self.model(fleet)
        before = model.frag(nodes)
        after = model.frag_after_share(nodes, req.cpu_milli, req.memory_mib, req.gpu_milli)
        charge = self._charge(
            fleet, req, nodes, np.full(fleet.gpu_free[nodes].shape, req.gpu_milli)
        )
        elig = fleet.eligible_gpus(req)[nodes] & (fleet.gpu_free[nodes] >= req.gpu_milli)
        return np.where(elig, self.gain_score(before[:, None] - after - charge), -np.inf)

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        if req.shares_gpu:
            return super().score(fleet, req, nodes)
        model = self.model(fleet)
        before = model.frag(nodes)
        taken = self._whole_gpus(fleet, req, nodes)
        after = model.frag_after_whole(nodes, req.cpu_milli, req.memory_mib, taken)
        charge = self._charge(fleet, req, nodes, taken * 1000).sum(axis=1)
        return self.gain_score(before - after - charge)
