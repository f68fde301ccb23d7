"""Context for the packing targets: how much GPU capacity an *offline* packer would still leave
in gaps. Takes the sharing pods (``gpu_milli < 1000``) that arrived by a given arrived % under
the published protocol and packs them best-fit-decreasing into GPUs; the unused milli on the
GPUs it opens, as % of the fleet's GPU capacity, is what even a clairvoyant packer that places
every sharing pod would waste. (It is not a strict lower bound for the online replay, which
may fail some pods instead of placing them.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scheduler.core.model import MILLI_PER_GPU
from simulations.protocol import arrivals
from simulations.traces.alibaba import TracePod


def offline_gap_pct(
    pods: Sequence[TracePod], total_gpu_milli: int, seed: int, upto_pct: float = 100.0
) -> float:
    items: list[int] = []
    arrived = 0
    for p in arrivals(pods, total_gpu_milli, seed):
        arrived += p.gpu_request_milli
        if arrived > upto_pct / 100.0 * total_gpu_milli:
            break
        if p.num_gpu == 1 and p.gpu_milli < MILLI_PER_GPU:
            items.append(p.gpu_milli)
    gaps = np.zeros(len(items), dtype=np.int64)  # free milli of each opened GPU
    opened = 0
    for size in sorted(items, reverse=True):
        free = gaps[:opened]
        ok = np.flatnonzero(free >= size)
        if len(ok):
            g = ok[np.argmin(free[ok])]
            gaps[g] -= size
        else:
            gaps[opened] = MILLI_PER_GPU - size
            opened += 1
    return float(gaps[:opened].sum()) / total_gpu_milli * 100.0
