"""What packing policies share: how they are built (a context) and common node sums."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.core.placement.packing import FloatArray
from scheduler.core.policy import FleetView

# FGD's simulator normalises by the largest node spec it supports (pkg/type/open-gpu-share/utils/
# const.go: MaxSpecCpu = 128000 milli, MaxSpecGpu = 8000 milli); we keep them as defaults.
MAX_SPEC_CPU_MILLI = 128_000
MAX_SPEC_GPU_MILLI = 8_000


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a factory may use to build a policy: a seed for its own random stream and the
    workload's typical shapes (needed by fragmentation-aware policies)."""

    seed: int = 0
    typical: TypicalShapes | None = None
    cpu_norm_milli: int = MAX_SPEC_CPU_MILLI
    gpu_norm_milli: int = MAX_SPEC_GPU_MILLI


def gpu_left(fleet: FleetView, nodes: IntArray) -> IntArray:
    """Free milli-GPU per node, summed over its GPUs."""
    return fleet.gpu_free[nodes].sum(axis=1)  # type: ignore[no-any-return]


def floor_int(x: FloatArray) -> FloatArray:
    """Go's ``int64(x)``: truncation toward zero."""
    out: FloatArray = np.trunc(x)
    return out
