"""Packing policies by name: an explicit registry (no import-time magic)."""

from __future__ import annotations

from collections.abc import Callable

from scheduler.core.packing import PackingPolicy
from scheduler.policies.base import PolicyContext
from scheduler.policies.best_fit import BestFitPacking
from scheduler.policies.dot_product import DotProductPacking
from scheduler.policies.fgd import FgdPacking
from scheduler.policies.gpu_clustering import GpuClusteringPacking
from scheduler.policies.gpu_packing import GpuPackingPacking
from scheduler.policies.random_ import RandomPacking

Factory = Callable[[PolicyContext], PackingPolicy]

PACKING: dict[str, Factory] = {
    "random": RandomPacking,
    "dot_product": DotProductPacking,
    "gpu_clustering": GpuClusteringPacking,
    "gpu_packing": GpuPackingPacking,
    "best_fit": BestFitPacking,
    "fgd": FgdPacking,
}

NEEDS_TYPICAL = frozenset({"fgd"})


class UnknownPolicy(ValueError):
    pass


def make_packing(name: str, ctx: PolicyContext) -> PackingPolicy:
    try:
        factory = PACKING[name]
    except KeyError:
        raise UnknownPolicy(f"unknown packing policy {name!r}; known: {', '.join(PACKING)}") from None
    return factory(ctx)
