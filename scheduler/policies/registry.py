"""Packing policies by name: an explicit registry (no import-time magic)."""

from __future__ import annotations

from collections.abc import Callable

from scheduler.core.packing import PackingPolicy
from scheduler.policies.base import PolicyContext
from scheduler.policies.best_fit import BestFitPacking
from scheduler.policies.dot_product import DotProductPacking
from scheduler.policies.fgd import FgdPacking
from scheduler.policies.frag_pack import FragPackPacking
from scheduler.policies.gpu_clustering import GpuClusteringPacking
from scheduler.policies.gpu_packing import GpuPackingPacking
from scheduler.policies.random_ import RandomPacking
from scheduler.policies.topology import TopologyPacking

Factory = Callable[[PolicyContext], PackingPolicy]

PACKING: dict[str, Factory] = {
    "random": RandomPacking,
    "dot_product": DotProductPacking,
    "gpu_clustering": GpuClusteringPacking,
    "gpu_packing": GpuPackingPacking,
    "best_fit": BestFitPacking,
    "fgd": FgdPacking,
    "topology": TopologyPacking,
    "frag_pack": FragPackPacking,
}

NEEDS_TYPICAL = frozenset({"fgd", "frag_pack"})


class UnknownPolicy(ValueError):
    pass


def make_packing(name: str, ctx: PolicyContext) -> PackingPolicy:
    try:
        factory = PACKING[name]
    except KeyError:
        raise UnknownPolicy(
            f"unknown packing policy {name!r}; known: {', '.join(PACKING)}"
        ) from None
    return factory(ctx)
