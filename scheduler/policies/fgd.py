"""``fgd``: Fragmentation Gradient Descent (Weng et al., USENIX ATC'23). Place the worker
where the cluster's expected GPU fragmentation (see ``scheduler.core.placement.fragmentation``) grows
least; a sharing worker also takes the GPU that minimises it.

As in the authors' simulator, the node score is ``trunc(100 * sigmoid((F_before - F_after) /
1000))`` (so small differences tie and go to the lowest-ranked node), a sharing worker's GPU is
the lowest-indexed GPU with the best such score, and whole GPUs are the lowest-indexed free
ones. Requires the workload's typical shapes (``PolicyContext.typical``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, WorkerRequest
from scheduler.core.placement.fleet import BoolArray, IntArray
from scheduler.core.placement.fragmentation import FragModel, TypicalShapes, frag_model
from scheduler.core.placement.packing import FloatArray, PackingBase
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext


class FgdPacking(PackingBase):
    name: ClassVar[str] = "fgd"

    def __init__(self, ctx: PolicyContext) -> None:
        if ctx.typical is None:
            raise ValueError(f"policy {self.name!r} needs the workload's typical shapes")
        self.typical: TypicalShapes = ctx.typical
        self._model: FragModel | None = None
        # per sharing-request shape: the GPU each node's score was computed for, and the node
        # version it was computed at, so pick_gpus need not recompute it
        self._pick: dict[tuple[object, ...], tuple[IntArray, IntArray]] = {}

    def model(self, fleet: FleetView) -> FragModel:
        if self._model is None or self._model.fleet is not fleet:
            self._model = frag_model(fleet, self.typical)
        return self._model

    def node_gpu_scores(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        """``[n, G]`` score of putting a sharing worker on each GPU (-inf where it cannot go)."""
        model = self.model(fleet)
        before = model.frag(nodes)
        after = model.frag_after_share(nodes, req.cpu_milli, req.memory_mib, req.gpu_milli)
        elig = fleet.eligible_gpus(req)[nodes] & (fleet.gpu_free[nodes] >= req.gpu_milli)
        s = self.gain_score(before[:, None] - after)
        return np.where(elig, s, -np.inf)

    def gain_score(self, gain_milli: FloatArray) -> FloatArray:
        """Map the fragmentation decrease (milli-GPU; negative = growth) to a score."""
        return np.trunc(100.0 / (1.0 + np.exp(-gain_milli / MILLI_PER_GPU)))

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        if req.shares_gpu:
            s = self.node_gpu_scores(fleet, req, nodes)
            key = req.key()
            if key not in self._pick:
                n = fleet.num_nodes
                self._pick[key] = (np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64))
            gpu, stamp = self._pick[key]
            gpu[nodes] = np.argmax(s, axis=1)
            stamp[nodes] = fleet.version[nodes]
            return s.max(axis=1)  # type: ignore[no-any-return]
        model = self.model(fleet)
        before = model.frag(nodes)
        taken = self._whole_gpus(fleet, req, nodes)
        after = model.frag_after_whole(nodes, req.cpu_milli, req.memory_mib, taken)
        return self.gain_score(before - after)

    @staticmethod
    def _whole_gpus(fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> IntArray:
        """``[n, G]`` 0/1: the lowest-indexed free eligible GPUs a whole-GPU worker takes."""
        free = fleet.eligible_gpus(req)[nodes] & (fleet.gpu_free[nodes] == MILLI_PER_GPU)
        taken: IntArray = (free & (np.cumsum(free, axis=1) <= req.gpus)).astype(np.int64)
        return taken

    def pick_gpus(
        self,
        fleet: FleetView,
        req: WorkerRequest,
        node: int,
        allowed: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[int, ...]:
        if req.shares_gpu:
            hit = self._pick.get(req.key())
            if (
                hit is not None
                and hit[1][node] == fleet.version[node]
                and np.array_equal(allowed, fleet.eligible_gpus(req)[node])
            ):
                return (int(hit[0][node]),)
            s = self.node_gpu_scores(fleet, req, np.array([node]))[0]
            s = np.where(allowed, s, -np.inf)
            return (int(np.argmax(s)),)
        free = np.flatnonzero(allowed & (fleet.gpu_free[node] == MILLI_PER_GPU))
        return tuple(int(g) for g in free[: req.gpus])
