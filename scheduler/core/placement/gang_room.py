"""Would one gang fit if some running placements were gone? Answered without touching the
fleet, and updated node by node as placements are counted free or taken again.

The answer is exact for the placer's gangs because workers are identical: each worker placed
on a node lowers that node's *room* (how many more workers it could take) by exactly one, so
 * a gang of ``W`` workers with no topology fits iff the nodes' rooms add up to ``W``;
 * a same-rack gang fits iff some rack's nodes' rooms add up to ``W``;
 * a same-node (or same-NVLink) gang is one merged request that fits iff some node has room
   for it (inside one NVLink domain for same-NVLink).
``tests/property/test_gang_room.py`` checks this against :meth:`Placer.place`.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, Job, Placement, Topology
from scheduler.core.policy import FleetView


class GangRoom:
    """Room for ``job`` on ``fleet`` plus what :meth:`count` has set free.

    ``fleet`` is read live: after the fleet changes on some nodes (a job placed or released),
    call :meth:`refresh` with them so that the answer follows."""

    def __init__(self, fleet: FleetView, job: Job) -> None:
        self.fleet = fleet
        merged = job.on_one_node
        self.req = job.node_request()
        self.one_domain = merged and job.topology is Topology.SAME_NVLINK and self.req.gpus > 0
        self.need = 1 if merged else job.num_workers
        n = fleet.num_nodes
        if merged:
            group = np.arange(n, dtype=np.int64)
        elif job.topology is Topology.SAME_RACK and job.num_workers > 1:
            group = fleet.rack
        else:
            group = np.zeros(n, dtype=np.int64)
        room = fleet.room(self.req)
        if self.one_domain:
            everyone = np.arange(n, dtype=np.int64)
            in_domain = fleet.max_free_in_domain(self.req, everyone) >= self.req.gpus
            room = np.where(in_domain, room, 0)
        v = np.minimum(room, self.need)
        sums = np.bincount(group, weights=v.astype(np.float64)).astype(np.int64)
        self._group: list[int] = group.tolist()
        self._v: list[int] = v.tolist()
        self._sums: list[int] = sums.tolist()
        self._ok = int((sums >= self.need).sum())  # groups that can hold the whole gang
        self._elig = fleet.eligible_gpus(self.req) if self.req.gpus else None
        self._domain = fleet.gpu_domain
        # node -> [cpu milli, memory MiB, milli per GPU slot...] counted free on top of the fleet
        self._delta: dict[int, list[int]] = {}
        self._stale: set[int] = set()
        self._rows: dict[int, list[int]] = {}  # node -> what-if free row (see _row)
        # nodes where a whole-GPU request may use every GPU slot that exists
        whole = self._elig is not None and not self.req.shares_gpu and not self.one_domain
        self._whole_all: list[bool] = (
            ((self._elig == fleet.gpu_exists).all(axis=1)).tolist()
            if whole and self._elig is not None
            else [False] * n
        )

    def fits(self) -> bool:
        return self._ok > 0

    def count(self, placement: Placement, sign: int = 1, refresh: bool = True) -> None:
        """Count ``placement``'s resources as free (``sign=1``) or as taken again (-1). With
        ``refresh=False`` the nodes are only marked stale until :meth:`refresh_stale`."""
        g = self.fleet.max_gpus
        for wp in placement.workers:
            n = wp.node_index
            d = self._delta.get(n)
            if d is None:
                d = self._delta[n] = [0] * (2 + g)
            row = self._rows.get(n)
            if row is None:
                row = self._rows[n] = self._row(n)
            d[0] += sign * wp.cpu_milli
            d[1] += sign * wp.memory_mib
            row[0] += sign * wp.cpu_milli
            row[1] += sign * wp.memory_mib
            for i in wp.gpu_indices:
                d[2 + i] += sign * wp.gpu_milli
                row[2 + i] += sign * wp.gpu_milli
            self._stale.add(n)
        if refresh:
            self.refresh_stale()

    def refresh_stale(self) -> None:
        if self._stale:
            self._recount(sorted(self._stale))
            self._stale.clear()

    def refresh(self, nodes: list[int] | tuple[int, ...]) -> None:
        """Recompute the room of ``nodes`` after the fleet changed there."""
        for n in nodes:
            self._rows.pop(n, None)
        self._recount(nodes)

    def _recount(self, nodes: list[int] | tuple[int, ...]) -> None:
        need = self.need
        for n in nodes:
            new = self._node_room(n)
            old = self._v[n]
            if new == old:
                continue
            self._v[n] = new
            k = self._group[n]
            before = self._sums[k]
            after = before + new - old
            self._sums[k] = after
            self._ok += (after >= need) - (before >= need)

    def _row(self, n: int) -> list[int]:
        """[CPU milli, memory MiB, milli per GPU slot...] free on ``n`` in the what-if."""
        fleet = self.fleet
        row = [int(fleet.cpu_free[n]), int(fleet.mem_free[n]), *fleet.gpu_free[n].tolist()]
        d = self._delta.get(n)
        return row if d is None else [a + b for a, b in zip(row, d, strict=True)]

    def _node_room(self, n: int) -> int:
        if not self.fleet.schedulable[n]:
            return 0
        req = self.req
        row = self._rows.get(n)
        if row is None:
            row = self._rows[n] = self._row(n)
        room = self.need
        if req.cpu_milli:
            room = min(room, row[0] // req.cpu_milli)
        if req.memory_mib:
            room = min(room, row[1] // req.memory_mib)
        if self._elig is None or room <= 0:
            return max(room, 0)
        free = row[2:]
        if self._whole_all[n]:  # whole GPUs, every GPU of the node eligible: the common case
            return min(room, free.count(MILLI_PER_GPU) // req.gpus)
        elig: list[bool] = self._elig[n].tolist()
        if req.shares_gpu:
            gpu = sum(f // req.gpu_milli for f, e in zip(free, elig, strict=True) if e)
        elif self.one_domain:
            per: dict[int, int] = {}
            for f, e, dom in zip(free, elig, self._domain[n].tolist(), strict=True):
                if e and f == MILLI_PER_GPU:
                    per[dom] = per.get(dom, 0) + 1
            gpu = 1 if max(per.values(), default=0) >= req.gpus else 0
        else:
            whole = sum(1 for f, e in zip(free, elig, strict=True) if e and f == MILLI_PER_GPU)
            gpu = whole // req.gpus
        return min(room, gpu)
