"""Policies by name, one table per kind (``scheduler/core/policy.py``): an explicit registry
(no import-time magic). The core's own defaults (``priority`` order, ``quota`` admission,
``cheapest`` preemption) are registered beside the policies of this package."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from scheduler.core.policy import (
    AdmissionPolicy,
    PackingPolicy,
    PreemptionPolicy,
    QueueOrderPolicy,
)
from scheduler.core.preemption.reclaim import CheapestFirst
from scheduler.core.queueing.admission import QuotaAdmission
from scheduler.policies.admission_nominal import NominalAdmission
from scheduler.policies.base import PolicyContext
from scheduler.policies.best_fit import BestFitPacking
from scheduler.policies.dot_product import DotProductPacking
from scheduler.policies.fgd import FgdPacking
from scheduler.policies.frag_pack import FragPackPacking
from scheduler.policies.gpu_clustering import GpuClusteringPacking
from scheduler.policies.gpu_packing import GpuPackingPacking
from scheduler.policies.preempt_newest import NewestFirst
from scheduler.policies.queue_drf import DrfOrder
from scheduler.policies.queue_fifo import FifoOrder
from scheduler.policies.queue_las import LasOrder
from scheduler.policies.queue_priority import PriorityOrder
from scheduler.policies.queue_sjf import SjfOrder
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


_T = TypeVar("_T")


def lookup(table: Mapping[str, _T], kind: str, name: str) -> _T:
    """``table[name]``, or :class:`UnknownPolicy` naming the ``kind``, the name and the known
    names (one error for every registry and every caller that checks a name)."""
    try:
        return table[name]
    except KeyError:
        raise UnknownPolicy(f"unknown {kind} {name!r}; known: {', '.join(table)}") from None


def make_packing(name: str, ctx: PolicyContext) -> PackingPolicy:
    return lookup(PACKING, "packing policy", name)(ctx)


QUEUE: dict[str, Callable[[], QueueOrderPolicy]] = {
    "fifo": FifoOrder,
    "priority": PriorityOrder,
    "sjf": SjfOrder,
    "las": LasOrder,
    "drf": DrfOrder,
}


def make_queue(name: str) -> QueueOrderPolicy:
    return lookup(QUEUE, "queue policy", name)()


ADMISSION: dict[str, Callable[[], AdmissionPolicy]] = {
    "quota": QuotaAdmission,
    "nominal": NominalAdmission,
}


def make_admission(name: str) -> AdmissionPolicy:
    return lookup(ADMISSION, "admission policy", name)()


PREEMPTION: dict[str, Callable[[int], PreemptionPolicy]] = {
    "cheapest": CheapestFirst,
    "newest": NewestFirst,
}


def make_preemption(name: str, depth: int) -> PreemptionPolicy:
    """``depth``: pending jobs per team that may look for victims in one cycle."""
    return lookup(PREEMPTION, "preemption policy", name)(depth)
