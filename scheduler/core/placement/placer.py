"""Gang placement: filter, score (with a per-shape score cache), select, pick GPUs, reserve.

Steps for one job (numbered as the code below):
 1. Expand the gang into per-worker requests; same-node / same-NVLink gangs become one
    merged request on one node.
 2. For each worker: candidate nodes = nodes that fit it now (inside the rack chosen for the
    gang, if any); none -> discard the reservation, the job waits.
 3. Score candidates (cached per request shape when the policy allows), select one. The
    policy reads the fleet through its read-only view (``Fleet.view``).
 4. Pick GPUs on that node and take them in the reservation.
 5. All workers placed -> commit; otherwise discard. Nothing half-placed ever survives.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.model import Job, Placement, Topology, WorkerRequest
from scheduler.core.placement.fleet import BoolArray, Fleet, IntArray
from scheduler.core.placement.packing import FloatArray
from scheduler.core.placement.reservation import Reservation
from scheduler.core.policy import PackingPolicy

DEDUPE_MIN_NODES = 64


class _ScoreCache:
    """Per request shape: every node's score, stored in tie-break rank order (position ``r``
    holds the node of rank ``r``) so that the best node is one ``argmax`` (the first maximum
    is the lowest rank among equals), and stamped with each node's version."""

    __slots__ = ("by_rank", "stamp")

    def __init__(self, n: int) -> None:
        self.stamp: IntArray = np.full(n, -1, dtype=np.int64)
        self.by_rank: FloatArray = np.full(n, -np.inf, dtype=np.float64)


class Placer:
    def __init__(self, fleet: Fleet, packing: PackingPolicy, rng: np.random.Generator) -> None:
        self.fleet = fleet
        self.packing = packing
        self.rng = rng
        self._cache: dict[tuple[object, ...], _ScoreCache] = {}
        self._fits: dict[tuple[object, ...], tuple[IntArray, BoolArray]] = {}
        self._never: dict[tuple[object, ...], str | None] = {}
        self._weights: IntArray | None = None
        self._all: IntArray = np.arange(fleet.num_nodes, dtype=np.int64)
        # tie-break: lowest rank wins; a seeded permutation, fixed for the run (FGD's simulator
        # renames nodes with a random prefix and takes the smallest name among equal scores)
        self.rank: IntArray = rng.permutation(fleet.num_nodes).astype(np.int64)
        self.node_at_rank: IntArray = np.argsort(self.rank).astype(np.int64)

    # ------------------------------------------------------------------ scoring
    def _best(self, nodes: IntArray, scores: FloatArray) -> int | None:
        """Step 3: the best-scored node; among equals, the lowest rank. None if no candidate."""
        if len(scores) == 0:
            return None
        top = scores.max()
        if top == -np.inf:
            return None
        best = nodes[scores == top]
        return int(best[0]) if len(best) == 1 else int(best[np.argmin(self.rank[best])])

    def _feasible(self, req: WorkerRequest, nodes: IntArray, one_domain: bool) -> BoolArray:
        ok = self.fleet.fits(req, nodes)
        if one_domain and req.gpus > 0 and ok.any():
            ok[ok] = self.fleet.max_free_in_domain(req, nodes[ok]) >= req.gpus
        return ok

    def _choose(
        self,
        req: WorkerRequest,
        within: IntArray | None,
        remaining: int = 1,
        one_domain: bool = False,
    ) -> int | None:
        """Steps 2 and 3: filter, score and select a node for one worker (or a merged
        same-node request). ``within`` restricts the candidates to these node indices."""
        fleet = self.fleet
        if self.packing.cacheable and (within is None or len(within) >= DEDUPE_MIN_NODES):
            # a cacheable score depends on the node alone, so the fleet-wide cache serves a
            # restricted choice too (a same-rack gang's first worker: most of the fleet)
            key = (req.key(), one_domain, remaining if self.packing.gang_aware else 0)
            cache = self._cache.get(key)
            if cache is None:
                cache = self._cache[key] = _ScoreCache(fleet.num_nodes)
            stale = np.flatnonzero(cache.stamp != fleet.version)
            if len(stale):
                ok = self._feasible(req, stale, one_domain)
                fresh = stale[ok]
                cache.by_rank[self.rank[stale]] = -np.inf
                if len(fresh):
                    cache.by_rank[self.rank[fresh]] = self._score_distinct(req, fresh, remaining)
                cache.stamp[stale] = fleet.version[stale]
            if within is not None:
                return self._best(within, cache.by_rank[self.rank[within]])
            r = int(np.argmax(cache.by_rank))
            return None if cache.by_rank[r] == -np.inf else int(self.node_at_rank[r])
        if within is None:  # a policy that cannot be cached still shares the filter's cache
            nodes = np.flatnonzero(self._fits_now(req, one_domain))
        else:
            nodes = within[self._feasible(req, within, one_domain)]
        if len(nodes) == 0:
            return None
        return self._best(nodes, self._score(req, nodes, remaining))

    def _fits_now(self, req: WorkerRequest, one_domain: bool) -> BoolArray:
        """Step 2 over the whole fleet: which nodes fit ``req`` now, cached per request shape
        and refreshed on the nodes that changed."""
        key = (req.key(), one_domain)
        cache = self._fits.get(key)
        if cache is None:
            cache = self._fits[key] = (
                np.full(self.fleet.num_nodes, -1, dtype=np.int64),
                np.zeros(self.fleet.num_nodes, dtype=np.bool_),
            )
        stamp, ok = cache
        stale = np.flatnonzero(stamp != self.fleet.version)
        if len(stale):
            ok[stale] = self._feasible(req, stale, one_domain)
            stamp[stale] = self.fleet.version[stale]
        return ok

    def _score_distinct(self, req: WorkerRequest, nodes: IntArray, remaining: int) -> FloatArray:
        """Score many nodes by scoring one node per distinct state (a fresh fleet is mostly
        identical empty nodes); valid because cacheable scores depend on node state only."""
        if len(nodes) < DEDUPE_MIN_NODES:
            return self._score(req, nodes, remaining)
        rows = self.fleet.signature(nodes)
        weights = self._weights
        if weights is None or len(weights) != rows.shape[1]:
            drawn = np.random.default_rng(0x5EED).integers(
                1, 2**62, size=rows.shape[1], dtype=np.int64
            )
            weights = np.bitwise_or(drawn, np.int64(1))
            self._weights = weights
        with np.errstate(over="ignore"):
            hashes = rows @ weights  # wraps modulo 2**64: a hash, checked below
        _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        if len(first) > len(nodes) // 2 or not np.array_equal(rows, rows[first][inverse]):
            return self._score(req, nodes, remaining)
        return self._score(req, nodes[first], remaining)[inverse]

    def _score(self, req: WorkerRequest, nodes: IntArray, remaining: int) -> FloatArray:
        if self.packing.gang_aware:
            return np.asarray(
                self.packing.score_gang(self.fleet.view, req, nodes, remaining), dtype=np.float64
            )
        return np.asarray(self.packing.score(self.fleet.view, req, nodes), dtype=np.float64)

    def _place_worker(
        self,
        res: Reservation,
        req: WorkerRequest,
        within: IntArray | None,
        gpu_allowed: BoolArray | None,
        remaining: int = 1,
    ) -> int | None:
        node = self._choose(req, within, remaining)
        if node is None:
            return None
        allowed = self.fleet.eligible_gpus(req)[node]
        if gpu_allowed is not None:
            allowed = allowed & gpu_allowed
        gpus = self.packing.pick_gpus(self.fleet.view, req, node, allowed, self.rng)  # step 4
        res.take(node, gpus, req.gpu_milli if req.gpus else 0, req.cpu_milli, req.memory_mib)
        return node

    # ---------------------------------------------------------------- placing
    def place(self, job: Job) -> Placement | None:
        """Place the whole gang or nothing; the fleet is unchanged when this returns None."""
        res = Reservation(self.fleet, job.job_id)
        ok = self._place(job, res)
        if not ok:
            res.discard()
            return None
        return res.commit()

    def _place(self, job: Job, res: Reservation) -> bool:
        w = job.worker
        if job.on_one_node:
            return self._place_one_node(job, res)
        if job.topology is Topology.SAME_RACK and job.num_workers > 1:
            return self._place_one_rack(job, res)
        n = job.num_workers
        return all(self._place_worker(res, w, None, None, n - i) is not None for i in range(n))

    def _place_one_node(self, job: Job, res: Reservation) -> bool:
        """Step 1 for same-node gangs: choose the node for the merged request, then place each
        worker on it; for same-NVLink, all GPUs come from one NVLink domain of that node."""
        w = job.worker
        merged = job.node_request()
        node = self._choose(merged, None, 1, one_domain=job.topology is Topology.SAME_NVLINK)
        if node is None:
            return False
        within = np.array([node], dtype=np.int64)
        gpu_allowed: BoolArray | None = None
        if job.topology is Topology.SAME_NVLINK and merged.gpus > 0:
            domain = self.fleet.best_domain(merged, node, self.fleet.eligible_gpus(merged)[node])
            gpu_allowed = self.fleet.gpu_domain[node] == domain
        return all(
            self._place_worker(res, w, within, gpu_allowed) is not None
            for _ in range(job.num_workers)
        )

    def _place_one_rack(self, job: Job, res: Reservation) -> bool:
        """Same-rack gangs: the first worker goes where the policy likes best among racks that
        could hold the whole gang; the rest must follow it into that rack. If they do not fit
        after all, that rack is excluded and the next is tried."""
        fleet = self.fleet
        w = job.worker
        excluded: set[int] = set()
        while True:
            per_node = fleet.room(w).astype(np.float64)
            rack_room = np.bincount(fleet.rack, weights=per_node, minlength=len(fleet.rack_names))
            ok_racks = [
                r for r in np.flatnonzero(rack_room >= job.num_workers) if int(r) not in excluded
            ]
            if not ok_racks:
                return False
            within = np.flatnonzero(np.isin(fleet.rack, np.array(ok_racks, dtype=np.int64)))
            first = self._place_worker(res, w, within, None, job.num_workers)
            if first is None:
                return False
            rack = int(fleet.rack[first])
            same = np.flatnonzero(fleet.rack == rack)
            rest = job.num_workers - 1
            if all(
                self._place_worker(res, w, same, None, rest - i) is not None for i in range(rest)
            ):
                return True
            res.rollback()
            excluded.add(rack)

    def never_fits(self, job: Job) -> str | None:
        """A reason if the gang cannot fit even the empty fleet, else None (memoised per shape
        until GPU health changes)."""
        key = (job.worker.key(), job.num_workers, job.topology, self.fleet.health_version)
        if key not in self._never:
            self._never[key] = self._never_fits(job)
        return self._never[key]

    def _never_fits(self, job: Job) -> str | None:
        fleet = self.fleet
        w = job.worker
        req = job.node_request()
        ever = fleet.ever_fits(req)
        if not ever.any():
            if req.regions and not fleet.in_regions(req.regions).any():
                return (
                    f"no node in region {'|'.join(req.regions)} (data residency): the fleet's"
                    f" regions are {', '.join(r or '(unlabelled)' for r in fleet.region_names)}"
                )
            what = f"{req.gpus} GPU(s)" + (
                f" of {'|'.join(req.gpu_models)}" if req.gpu_models else ""
            )
            where = f" in region {'|'.join(req.regions)}" if req.regions else ""
            return f"no node{where} has {req.cpu_milli} CPU milli, {req.memory_mib} MiB and {what}"
        if job.topology in (Topology.ANY, Topology.SAME_RACK) and job.num_workers > 1:
            cap = fleet.room(w, empty=True).astype(np.float64)
            total = (
                cap.sum()
                if job.topology is Topology.ANY
                else np.bincount(fleet.rack, weights=cap).max()
            )
            if total < job.num_workers:
                scope = "the fleet" if job.topology is Topology.ANY else "any rack"
                return f"{job.num_workers} workers do not fit {scope} even when empty (room for {int(total)})"
        return None
