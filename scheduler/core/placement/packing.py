"""The packing interface the core calls, and the defaults policies inherit.

A packing policy *scores* feasible nodes for one worker request (higher is better, one
vectorized call over all candidate nodes) and *picks GPUs* on the chosen node. The core does
the filtering (:meth:`Fleet.fits`), the gang reservation and the caching of scores.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from scheduler.core.model import MILLI_PER_GPU, WorkerRequest
from scheduler.core.placement.fleet import BoolArray, IntArray
from scheduler.core.policy import FleetView

FloatArray = NDArray[np.float64]


class PackingBase:
    """Base class of every packing policy. Subclasses override :meth:`score` (required) and
    optionally :meth:`pick_gpus`. Among equally scored nodes the core picks the node with the
    lowest random rank (a seeded permutation drawn once per run), as FGD's simulator does.

    ``cacheable`` promises that a node's score depends only on that node's state and the
    request (and, for ``gang_aware`` policies, the count of workers still to place), so the
    core may cache scores per request shape and recompute only changed nodes.
    """

    name: ClassVar[str] = "base"
    cacheable: ClassVar[bool] = True
    gang_aware: ClassVar[bool] = False  # score_gang() wants the count of workers still to place

    def score_gang(
        self, fleet: FleetView, req: WorkerRequest, nodes: IntArray, remaining: int
    ) -> FloatArray:
        return self.score(fleet, req, nodes)

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        raise NotImplementedError

    def pick_gpus(
        self,
        fleet: FleetView,
        req: WorkerRequest,
        node: int,
        allowed: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[int, ...]:
        """GPUs on ``node`` for one worker. ``allowed`` is the ``[G]`` mask of usable GPUs.

        Default: a sharing worker takes the fullest GPU it still fits on (best fit, lowest index
        on ties); a whole-GPU worker takes the lowest-indexed fully free GPUs.
        """
        return best_fit_gpus(fleet, req, node, allowed)


def best_fit_gpus(
    fleet: FleetView, req: WorkerRequest, node: int, allowed: BoolArray
) -> tuple[int, ...]:
    free = fleet.gpu_free[node]
    if req.gpus == 0:
        return ()
    if req.shares_gpu:
        ok = allowed & (free >= req.gpu_milli)
        cand = np.flatnonzero(ok)
        return (int(cand[np.argmin(free[cand])]),)
    whole = np.flatnonzero(allowed & (free == MILLI_PER_GPU))
    return tuple(int(g) for g in whole[: req.gpus])
