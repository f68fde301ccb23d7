"""The fleet as a structure of numpy arrays, so that packing policies score every node at once.

Node-level arrays have shape ``[N]``; GPU-level arrays have shape ``[N, G]`` where ``G`` is the
largest GPU count of any node, and slots past a node's GPU count have ``gpu_exists == False`` and
zero capacity. ``version[n]`` increases whenever node ``n`` changes, so callers can cache
per-node results and recompute only stale nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from scheduler.core.model import MILLI_PER_GPU, REGION_LABEL, Node, WorkerRequest

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


class Fleet:
    """Mutable capacity arrays of a fixed set of nodes (nodes may be drained, never reindexed)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            dup = sorted({x for x in names if names.count(x) > 1})[0]
            raise ValueError(f"duplicate node name {dup!r}")
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.names: tuple[str, ...] = tuple(names)
        self.index: dict[str, int] = {n: i for i, n in enumerate(names)}
        n = len(nodes)
        g = max((len(x.gpus) for x in nodes), default=0)
        g = max(g, 1)
        self.num_nodes = n
        self.max_gpus = g
        models = sorted({gpu.model for x in nodes for gpu in x.gpus})
        self.model_names: tuple[str, ...] = tuple(models)
        self.model_id: dict[str, int] = {m: i for i, m in enumerate(models)}
        racks = sorted({x.label("rack") for x in nodes})
        self.rack_names: tuple[str, ...] = tuple(racks)
        rack_id = {r: i for i, r in enumerate(racks)}
        regions = sorted({x.label(REGION_LABEL) for x in nodes})
        self.region_names: tuple[str, ...] = tuple(regions)
        region_id = {r: i for i, r in enumerate(regions)}

        self.cpu_cap: IntArray = np.array([x.cpu_milli for x in nodes], dtype=np.int64)
        self.mem_cap: IntArray = np.array([x.memory_mib for x in nodes], dtype=np.int64)
        self.cpu_free: IntArray = self.cpu_cap.copy()
        self.mem_free: IntArray = self.mem_cap.copy()
        self.gpu_count: IntArray = np.array([len(x.gpus) for x in nodes], dtype=np.int64)
        self.rack: IntArray = np.array([rack_id[x.label("rack")] for x in nodes], dtype=np.int64)
        self.region: IntArray = np.array(
            [region_id[x.label(REGION_LABEL)] for x in nodes], dtype=np.int64
        )
        self._region_cache: dict[tuple[str, ...], BoolArray] = {}
        self.schedulable: BoolArray = np.ones(n, dtype=np.bool_)
        self.version: IntArray = np.zeros(n, dtype=np.int64)

        self.gpu_exists: BoolArray = np.zeros((n, g), dtype=np.bool_)
        self.gpu_model: IntArray = np.full((n, g), -1, dtype=np.int64)
        self.gpu_mem_mib: IntArray = np.zeros((n, g), dtype=np.int64)
        self.gpu_domain: IntArray = np.zeros((n, g), dtype=np.int64)
        self.gpu_healthy: BoolArray = np.zeros((n, g), dtype=np.bool_)
        # memory held on a GPU by processes gpuyard did not place (from telemetry; health.py)
        self.gpu_mem_foreign_mib: IntArray = np.zeros((n, g), dtype=np.int64)
        for i, node in enumerate(nodes):
            for j, gpu in enumerate(node.gpus):
                self.gpu_exists[i, j] = True
                self.gpu_model[i, j] = self.model_id[gpu.model]
                self.gpu_mem_mib[i, j] = gpu.memory_mib
                self.gpu_domain[i, j] = gpu.nvlink_domain
                self.gpu_healthy[i, j] = gpu.healthy
        self.domains: tuple[int, ...] = tuple(
            int(d) for d in np.unique(self.gpu_domain[self.gpu_exists])
        )
        self.gpu_cap: IntArray = np.where(self.gpu_exists, MILLI_PER_GPU, 0).astype(np.int64)
        self.gpu_free: IntArray = self.gpu_cap.copy()
        # workers per node by GPU shape class: column 0 = GPU-sharing workers, column k = workers
        # holding k whole GPUs (CPU-only workers are not counted); used by affinity-style policies
        self.shape_count: IntArray = np.zeros((n, g + 1), dtype=np.int64)
        # derived per-fleet models (e.g. fragmentation) shared by policies and metrics
        self.derived: dict[object, object] = {}
        self._eligible_cache: dict[tuple[tuple[str, ...], int, tuple[str, ...]], BoolArray] = {}
        self.health_version = 0  # bumped on every GPU health change
        self.layout_version = 0  # bumped on every health change, cordon or uncordon
        self.view = ReadOnlyFleet(self)  # what policies get (``policy.FleetView``)

    # ----------------------------------------------------------------- totals
    @property
    def total_gpus(self) -> int:
        return int(self.gpu_exists.sum())

    @property
    def total_gpu_milli(self) -> int:
        return int(self.gpu_cap.sum())

    @property
    def allocated_gpu_milli(self) -> int:
        return int((self.gpu_cap - self.gpu_free).sum())

    # ------------------------------------------------------------- filtering
    def in_regions(self, regions: tuple[str, ...]) -> BoolArray:
        """``[N]`` mask of the nodes whose region label is one of ``regions`` (all nodes when
        ``regions`` is empty): data residency, fixed for the fleet's life."""
        hit = self._region_cache.get(regions)
        if hit is None:
            if regions:
                ids = [i for i, r in enumerate(self.region_names) if r in regions]
                hit = np.isin(self.region, np.array(ids, dtype=np.int64))
            else:
                hit = np.ones(self.num_nodes, dtype=np.bool_)
            hit.setflags(write=False)
            self._region_cache[regions] = hit
        return hit

    def eligible_gpus(self, req: WorkerRequest) -> BoolArray:
        """``[N, G]`` mask of GPUs this request may use: exists, healthy, allowed model, memory,
        on a node of an allowed region.

        Cached by (models, min memory, regions) until health changes; callers must not mutate it.
        """
        key = (req.gpu_models, req.min_gpu_memory_mib, req.regions)
        hit = self._eligible_cache.get(key)
        if hit is not None:
            return hit
        mask = self.gpu_exists & self.gpu_healthy
        if req.regions:
            mask = mask & self.in_regions(req.regions)[:, None]
        if req.gpu_models:
            ids = [self.model_id[m] for m in req.gpu_models if m in self.model_id]
            mask = mask & np.isin(self.gpu_model, np.array(ids, dtype=np.int64))
        if req.min_gpu_memory_mib:
            mask = mask & (self.gpu_mem_mib - self.gpu_mem_foreign_mib >= req.min_gpu_memory_mib)
        mask.setflags(write=False)  # shared by every caller until health changes
        self._eligible_cache[key] = mask
        return mask

    def fits(self, req: WorkerRequest, nodes: IntArray | None = None) -> BoolArray:
        """Which nodes (all, or the given indices) can host one worker of ``req`` right now."""
        sel = slice(None) if nodes is None else nodes
        ok = (
            self.schedulable[sel]
            & (self.cpu_free[sel] >= req.cpu_milli)
            & (self.mem_free[sel] >= req.memory_mib)
        )
        if req.regions:
            ok &= self.in_regions(req.regions)[sel]
        if req.gpus == 0:
            return ok
        elig = self.eligible_gpus(req)[sel]
        free = self.gpu_free[sel]
        if req.shares_gpu:
            return ok & ((free >= req.gpu_milli) & elig).any(axis=1)
        whole = ((free == MILLI_PER_GPU) & elig).sum(axis=1)
        return ok & (whole >= req.gpus)  # type: ignore[no-any-return]

    def ever_fits(self, req: WorkerRequest) -> BoolArray:
        """Which nodes could host one worker of ``req`` if they were empty, healthy and nobody
        else held GPU memory: hardware, not a passing state (a hot GPU must not get a job
        rejected for good)."""
        ok = (self.cpu_cap >= req.cpu_milli) & (self.mem_cap >= req.memory_mib)
        if req.regions:
            ok &= self.in_regions(req.regions)
        if req.gpus == 0:
            return ok
        return ok & (self.hardware_gpus(req).sum(axis=1) >= req.gpus)  # type: ignore[no-any-return]

    def hardware_gpus(self, req: WorkerRequest) -> BoolArray:
        """``[N, G]`` mask of GPUs whose model, memory and region suit ``req``, whatever their
        health."""
        hw = self.gpu_exists & (self.gpu_mem_mib >= req.min_gpu_memory_mib)
        if req.regions:
            hw = hw & self.in_regions(req.regions)[:, None]
        if req.gpu_models:
            ids = [self.model_id[m] for m in req.gpu_models if m in self.model_id]
            hw = hw & np.isin(self.gpu_model, np.array(ids, dtype=np.int64))
        return hw

    def room(
        self, req: WorkerRequest, nodes: IntArray | None = None, empty: bool = False
    ) -> IntArray:
        """How many more workers of ``req`` each node (all, or the given ones) could take now;
        with ``empty``, how many it could take if it were empty and healthy (cordons, health and
        foreign memory ignored: what the hardware could ever hold)."""
        sel = slice(None) if nodes is None else nodes
        big = np.iinfo(np.int64).max // 4
        cpu_free = (self.cpu_cap if empty else self.cpu_free)[sel]
        mem_free = (self.mem_cap if empty else self.mem_free)[sel]
        room = np.minimum(
            cpu_free // req.cpu_milli if req.cpu_milli else np.full(len(cpu_free), big),
            mem_free // req.memory_mib if req.memory_mib else np.full(len(mem_free), big),
        )
        if req.gpus:
            elig, free = (
                (self.hardware_gpus(req) if empty else self.eligible_gpus(req))[sel],
                (self.gpu_cap if empty else self.gpu_free)[sel],
            )
            if req.shares_gpu:
                gpu = ((free // req.gpu_milli) * elig).sum(axis=1)
            else:
                gpu = ((free == MILLI_PER_GPU) & elig).sum(axis=1) // req.gpus
            room = np.minimum(room, gpu)
        if req.regions:
            room = np.where(self.in_regions(req.regions)[sel], room, 0)
        if empty:
            return room
        return np.where(self.schedulable[sel], room, 0)

    def best_domain(self, req: WorkerRequest, node: int, allowed: BoolArray) -> int | None:
        """The NVLink domain of ``node`` holding at least ``req.gpus`` free GPUs among
        ``allowed`` with the fewest to spare (best fit; lowest id on ties), or None."""
        free = allowed & (self.gpu_free[node] == MILLI_PER_GPU)
        doms = self.gpu_domain[node][free]
        if len(doms) and doms.min() >= 0:  # domain ids are small: count them directly
            counts = np.bincount(doms)
            ok = counts >= max(req.gpus, 1)  # a domain with no free GPU is none
            if not ok.any():
                return None
            values = np.flatnonzero(ok)
            return int(values[np.argmin(counts[ok])])
        values, counts = np.unique(doms, return_counts=True)
        ok = counts >= req.gpus
        if not ok.any():
            return None
        return int(values[ok][np.argmin(counts[ok])])

    def max_free_in_domain(self, req: WorkerRequest, nodes: IntArray) -> IntArray:
        """Per node: the most free eligible whole GPUs found inside one NVLink domain."""
        free = self.eligible_gpus(req)[nodes] & (self.gpu_free[nodes] == MILLI_PER_GPU)
        dom = self.gpu_domain[nodes]
        best = np.zeros(len(nodes), dtype=np.int64)
        if len(self.domains) == 1:
            return free.sum(axis=1)  # type: ignore[no-any-return]
        for d in self.domains:
            best = np.maximum(best, (free & (dom == d)).sum(axis=1))
        return best

    def signature(self, nodes: IntArray) -> IntArray:
        """One row per node holding everything a cacheable policy may score on; nodes with equal
        rows are interchangeable for scoring."""
        cols = [
            self.cpu_free[nodes, None],
            self.mem_free[nodes, None],
            self.schedulable[nodes, None],
            self.gpu_free[nodes],
            self.gpu_model[nodes],
            self.gpu_healthy[nodes],
            self.gpu_domain[nodes],
            self.gpu_mem_mib[nodes],
            self.shape_count[nodes],
        ]
        return np.concatenate([c.astype(np.int64) for c in cols], axis=1)

    # ------------------------------------------------------------ mutations
    def take(
        self, node: int, gpus: Sequence[int], gpu_milli: int, cpu_milli: int, memory_mib: int
    ) -> None:
        """Allocate; raises if it would over-allocate (the core never should)."""
        if self.cpu_free[node] < cpu_milli or self.mem_free[node] < memory_mib:
            raise ValueError(f"node {self.names[node]}: CPU or memory over-allocated")
        for g in gpus:
            if self.gpu_free[node, g] < gpu_milli:
                raise ValueError(f"node {self.names[node]} GPU {g}: over-allocated")
        self.cpu_free[node] -= cpu_milli
        self.mem_free[node] -= memory_mib
        for g in gpus:
            self.gpu_free[node, g] -= gpu_milli
        if gpus:
            self.shape_count[node, _shape_class(len(gpus), gpu_milli)] += 1
        self.version[node] += 1

    def give(
        self, node: int, gpus: Sequence[int], gpu_milli: int, cpu_milli: int, memory_mib: int
    ) -> None:
        """Release what :meth:`take` allocated."""
        self.cpu_free[node] += cpu_milli
        self.mem_free[node] += memory_mib
        for g in gpus:
            self.gpu_free[node, g] += gpu_milli
        if gpus:
            self.shape_count[node, _shape_class(len(gpus), gpu_milli)] -= 1
        if (
            self.cpu_free[node] > self.cpu_cap[node]
            or self.mem_free[node] > self.mem_cap[node]
            or (self.gpu_free[node] > self.gpu_cap[node]).any()
        ):
            raise ValueError(f"node {self.names[node]}: released more than was allocated")
        self.version[node] += 1

    def set_gpu_health(self, node: int, gpu: int, healthy: bool) -> None:
        if bool(self.gpu_healthy[node, gpu]) != healthy:
            self.gpu_healthy[node, gpu] = healthy
            self._eligible_cache.clear()
            self.health_version += 1
            self.layout_version += 1
            self.version[node] += 1

    def set_foreign_memory(self, node: int, gpu: int, mib: int) -> None:
        if int(self.gpu_mem_foreign_mib[node, gpu]) != mib:
            self.gpu_mem_foreign_mib[node, gpu] = mib
            self._eligible_cache.clear()
            self.health_version += 1
            self.layout_version += 1
            self.version[node] += 1

    def set_schedulable(self, node: int, schedulable: bool) -> None:
        if bool(self.schedulable[node]) != schedulable:
            self.schedulable[node] = schedulable
            self.layout_version += 1
            self.version[node] += 1


_A = TypeVar("_A", bound=NDArray[Any])


def _frozen(a: _A) -> _A:
    view: _A = a.view()
    view.setflags(write=False)
    return view


class ReadOnlyFleet:
    """A :class:`Fleet` as policies see it: the same arrays as views that cannot be written
    (they follow the fleet's changes; a policy that writes into one raises ``ValueError``),
    the read-only queries, and ``derived`` (policies' own caches). Fleet arrays are changed
    in place and never rebound, so the views stay current."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self.num_nodes = fleet.num_nodes
        self.max_gpus = fleet.max_gpus
        self.names = fleet.names
        self.model_names = fleet.model_names
        self.model_id = dict(fleet.model_id)
        self.derived = fleet.derived
        self.eligible_gpus = fleet.eligible_gpus
        self.in_regions = fleet.in_regions
        self.fits = fleet.fits
        self.room = fleet.room
        self.best_domain = fleet.best_domain
        self.max_free_in_domain = fleet.max_free_in_domain
        self.cpu_cap: IntArray = _frozen(fleet.cpu_cap)
        self.mem_cap: IntArray = _frozen(fleet.mem_cap)
        self.cpu_free: IntArray = _frozen(fleet.cpu_free)
        self.mem_free: IntArray = _frozen(fleet.mem_free)
        self.gpu_count: IntArray = _frozen(fleet.gpu_count)
        self.rack: IntArray = _frozen(fleet.rack)
        self.region_names = fleet.region_names
        self.region: IntArray = _frozen(fleet.region)
        self.schedulable: BoolArray = _frozen(fleet.schedulable)
        self.version: IntArray = _frozen(fleet.version)
        self.gpu_exists: BoolArray = _frozen(fleet.gpu_exists)
        self.gpu_model: IntArray = _frozen(fleet.gpu_model)
        self.gpu_mem_mib: IntArray = _frozen(fleet.gpu_mem_mib)
        self.gpu_domain: IntArray = _frozen(fleet.gpu_domain)
        self.gpu_healthy: BoolArray = _frozen(fleet.gpu_healthy)
        self.gpu_cap: IntArray = _frozen(fleet.gpu_cap)
        self.gpu_free: IntArray = _frozen(fleet.gpu_free)
        self.shape_count: IntArray = _frozen(fleet.shape_count)

    @property
    def health_version(self) -> int:
        return self._fleet.health_version

    @property
    def layout_version(self) -> int:
        return self._fleet.layout_version

    @property
    def total_gpus(self) -> int:
        return self._fleet.total_gpus

    @property
    def total_gpu_milli(self) -> int:
        return self._fleet.total_gpu_milli


def _shape_class(gpus: int, gpu_milli: int) -> int:
    return 0 if gpu_milli < MILLI_PER_GPU else gpus
