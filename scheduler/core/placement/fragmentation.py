"""GPU fragmentation as FGD defines it (Weng et al., USENIX ATC'23, section 3; the authors'
simulator, ``pkg/utils/frag.go``), vectorized over nodes.

A workload is summarised by its *typical shapes* ``t`` (CPU milli, GPU milli per GPU, GPU count,
allowed models) with popularity ``p_t``. A node's fragmentation is

    F(n) = sum_t p_t * frag_t(n)
    frag_t(n) = idle(n)                                   if t asks for no GPU (FGD counts a
                                                          CPU-only shape as unable to use any GPU)
              = idle(n)                                   if t does not fit n (CPU or GPU count)
              = idle(n) - sum_{g usable by t, free_g >= milli_t} free_g   otherwise

where ``idle(n)`` is the free milli-GPU of the node's healthy GPUs and "fits" ignores memory,
as in the paper (a shape may carry memory too; see ``TypicalShapes.from_requests``). All
quantities are milli-GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.policy import FleetView

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Shape:
    cpu_milli: int
    gpu_milli: int  # per GPU; 0 for CPU-only
    gpus: int
    gpu_models: tuple[str, ...]
    memory_mib: int = 0  # 0: memory is not considered (FGD's definition)


@dataclass(frozen=True, slots=True)
class TypicalShapes:
    shapes: tuple[Shape, ...]
    weights: tuple[float, ...]  # sum to 1

    @staticmethod
    def from_requests(
        requests: Iterable[WorkerRequest], coverage_pct: float = 95.0, with_memory: bool = False
    ) -> TypicalShapes:
        """The most popular shapes that together cover ``coverage_pct`` % of the requests,
        reweighted to sum to 1 (ties in popularity: larger shape first, as FGD does).
        ``with_memory`` makes memory part of a shape (FGD ignores memory)."""
        counts: Counter[Shape] = Counter()
        total = 0
        for r in requests:
            milli = r.gpu_milli if r.gpus else 0
            mem = r.memory_mib if with_memory else 0
            counts[Shape(r.cpu_milli, milli, r.gpus, r.gpu_models, mem)] += 1
            total += 1
        if total == 0:
            raise ValueError("typical shapes need at least one request")
        ordered = sorted(counts.items(), key=lambda kv: (kv[1], _shape_order(kv[0])), reverse=True)
        target = coverage_pct * total / 100.0
        chosen: list[tuple[Shape, int]] = []
        covered = 0
        for shape, n in ordered:
            if covered >= target:
                break
            chosen.append((shape, n))
            covered += n
        return TypicalShapes(tuple(s for s, _ in chosen), tuple(n / covered for _, n in chosen))


def _shape_order(s: Shape) -> tuple[int, int, int, str, int]:
    return (s.cpu_milli, s.gpu_milli, s.gpus, "|".join(s.gpu_models), s.memory_mib)


class FragModel:
    """Typical shapes bound to one fleet, with per-(GPU, shape) usability precomputed."""

    def __init__(self, fleet: FleetView, typical: TypicalShapes) -> None:
        self.fleet = fleet
        self.typical = typical
        shapes = typical.shapes
        self.p: FloatArray = np.array(typical.weights, dtype=np.float64)
        self.cpu: IntArray = np.array([s.cpu_milli for s in shapes], dtype=np.int64)
        self.milli: IntArray = np.array([s.gpu_milli for s in shapes], dtype=np.int64)
        self.num: IntArray = np.array([s.gpus for s in shapes], dtype=np.int64)
        self.mem: IntArray = np.array([s.memory_mib for s in shapes], dtype=np.int64)
        self.gpu_shape = self.milli > 0
        self._usable_health = -1
        self._usable = np.zeros((fleet.num_nodes, fleet.max_gpus, len(shapes)), dtype=np.bool_)
        self._refresh_usable()
        self._stamp: IntArray = np.full(fleet.num_nodes, -1, dtype=np.int64)
        self._frag: FloatArray = np.zeros(fleet.num_nodes, dtype=np.float64)

    def _refresh_usable(self) -> None:
        fleet = self.fleet
        base = fleet.gpu_exists & fleet.gpu_healthy
        for t, s in enumerate(self.typical.shapes):
            if s.gpu_models:
                ids = np.array([fleet.model_id.get(m, -1) for m in s.gpu_models], dtype=np.int64)
                self._usable[:, :, t] = base & np.isin(fleet.gpu_model, ids)
            else:
                self._usable[:, :, t] = base
        self._usable_health = fleet.health_version

    def usable(self, nodes: IntArray) -> NDArray[np.bool_]:
        if self.fleet.health_version != self._usable_health:
            self._refresh_usable()
        return self._usable[nodes]

    def frag(self, nodes: IntArray | None = None) -> FloatArray:
        """F(n) for the given nodes (default: all), in milli-GPU (cached per node version)."""
        fleet = self.fleet
        if fleet.health_version != self._usable_health:
            self._stamp[:] = -1
        if nodes is None:
            stale = np.flatnonzero(self._stamp != fleet.version)
        else:
            stale = nodes[self._stamp[nodes] != fleet.version[nodes]]
        if len(stale):
            left = np.where(fleet.gpu_healthy[stale], fleet.gpu_free[stale], 0)  # [n,G]
            self._frag[stale] = self._frag_from(
                left, fleet.cpu_free[stale], fleet.mem_free[stale], self.usable(stale)
            )
            self._stamp[stale] = fleet.version[stale]
        return self._frag if nodes is None else self._frag[nodes]

    def _frag_from(
        self, left: IntArray, cpu: IntArray, mem: IntArray, usable: NDArray[np.bool_]
    ) -> FloatArray:
        """F for arbitrary states: ``left`` [..., G], ``cpu`` and ``mem`` [...], ``usable`` [..., G, T]."""
        idle = left.sum(axis=-1).astype(np.float64)  # [...]
        ok_gpu = usable & (left[..., None] >= self.milli)  # [..., G, T]
        count = ok_gpu.sum(axis=-2)  # [..., T]
        fit_sum = (ok_gpu * left[..., None]).sum(axis=-2)  # [..., T]
        fits = (
            (count >= self.num)
            & (cpu[..., None] >= self.cpu)
            & (mem[..., None] >= self.mem)
            & self.gpu_shape
        )
        per_t = idle[..., None] - np.where(fits, fit_sum, 0)
        return per_t @ self.p  # type: ignore[no-any-return]

    def frag_after_share(
        self, nodes: IntArray, cpu_milli: int, memory_mib: int, gpu_milli: int
    ) -> FloatArray:
        """``[n, G]``: F of each node after a sharing worker (``gpu_milli`` on GPU g, ``cpu_milli``)
        lands on GPU g. Entries for GPUs it cannot take are +inf. The caller masks eligibility."""
        fleet = self.fleet
        left = np.where(fleet.gpu_healthy[nodes], fleet.gpu_free[nodes], 0)  # [n,G]
        usable = self.usable(nodes)  # [n,G,T]
        cpu_after = fleet.cpu_free[nodes] - cpu_milli  # [n]
        mem_after = fleet.mem_free[nodes] - memory_mib  # [n]
        m = self.milli  # [T]
        ok = usable & (left[..., None] >= m)  # [n,G,T]
        count = ok.sum(axis=1)  # [n,T]
        fit_sum = (ok * left[..., None]).sum(axis=1)  # [n,T]
        new = left - gpu_milli  # [n,G] value of GPU g after taking it
        ok_new = usable & (new[..., None] >= m)  # [n,G,T]
        count_g = count[:, None, :] - ok + ok_new  # [n,G,T]
        fit_g = fit_sum[:, None, :] - ok * left[..., None] + ok_new * new[..., None]
        idle_g = (left.sum(axis=1) - gpu_milli).astype(np.float64)  # [n]
        fits = (
            (count_g >= self.num)
            & (cpu_after[:, None, None] >= self.cpu)
            & (mem_after[:, None, None] >= self.mem)
            & self.gpu_shape
        )
        per_t = idle_g[:, None, None] - np.where(fits, fit_g, 0)
        out: FloatArray = per_t @ self.p
        out[new < 0] = np.inf
        return out

    def frag_after_whole(
        self, nodes: IntArray, cpu_milli: int, memory_mib: int, gpus: IntArray
    ) -> FloatArray:
        """``[n]``: F after a worker takes ``cpu_milli`` and the GPUs flagged in ``gpus`` [n,G]
        (a 0/1 mask of whole GPUs; all zero for a CPU-only worker)."""
        fleet = self.fleet
        left = np.where(fleet.gpu_healthy[nodes], fleet.gpu_free[nodes], 0)
        left = np.where(gpus.astype(np.bool_), 0, left)
        cpu, mem = fleet.cpu_free[nodes] - cpu_milli, fleet.mem_free[nodes] - memory_mib
        return self._frag_from(left, cpu, mem, self.usable(nodes))

    def total(self, nodes: Sequence[int] | None = None) -> float:
        return float(self.frag(None if nodes is None else np.asarray(nodes, dtype=np.int64)).sum())


def frag_model(fleet: FleetView, typical: TypicalShapes) -> FragModel:
    """The fleet's fragmentation model for these shapes, shared by everyone who asks (so the
    per-node cache is computed once per node change)."""
    key = ("frag", typical)
    model = fleet.derived.get(key)
    if not isinstance(model, FragModel):
        model = fleet.derived[key] = FragModel(fleet, typical)
    return model


class FragTracker:
    """Cluster fragmentation, kept up to date by recomputing only nodes that changed."""

    def __init__(self, model: FragModel) -> None:
        self.model = model

    def amount_milli(self) -> float:
        return float(self.model.frag().sum())
