"""The published FGD experiment's workload protocol (``../shared/traces/README.md``).

1. Pods sorted by name, then shuffled with the seed.
2. Inflate to ``inflate`` x the fleet's GPUs: if the trace asks for less, pods drawn uniformly
   with replacement are appended until the next draw would pass the target; if it asks for
   more, pods are removed uniformly at random until the total is at or below the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulations.traces.alibaba import TracePod


def arrivals(
    pods: Sequence[TracePod], total_gpu_milli: int, seed: int, inflate: float = 1.3
) -> list[TracePod]:
    if not pods:
        raise ValueError("the pod list is empty")
    if inflate <= 0:
        raise ValueError(f"inflate must be > 0, got {inflate}")
    rng = np.random.default_rng(seed)
    ordered = sorted(pods, key=lambda p: p.name)
    out = [ordered[i] for i in rng.permutation(len(ordered))]
    target = inflate * total_gpu_milli
    asked = sum(p.gpu_request_milli for p in out)
    if asked < target:
        while True:
            extra = ordered[int(rng.integers(len(ordered)))]
            if asked + extra.gpu_request_milli > target:
                break
            out.append(extra)
            asked += extra.gpu_request_milli
    else:
        while asked > target:
            victim = int(rng.integers(len(out)))
            asked -= out[victim].gpu_request_milli
            del out[victim]
    return out
