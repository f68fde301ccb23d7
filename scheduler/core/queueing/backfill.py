"""Start-time estimates on aggregate GPU capacity (milli-GPU), as ``squeue --start`` gives.

Each pending job, in queue order, is placed at the earliest time the capacity profile has room
for it for its whole estimated duration, and then reserved (conservative backfill). Node
boundaries and topology are not modelled, so an estimate is an estimate; the exact EASY
reservation used for scheduling is in ``easy.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def estimate_starts(
    now_s: float,
    capacity_milli: int,
    running: Sequence[tuple[float, int]],
    pending: Sequence[tuple[int, float | None]],
) -> list[float]:
    """Earliest start of each pending job, in queue order, on an aggregate capacity profile.

    ``running``: (estimated end, milli) of running jobs; ``pending``: (milli, estimated
    duration or None) in queue order. Each job is placed at the earliest time the profile has
    room for it for its whole estimated duration, and then reserved (conservative backfill, as
    ``squeue --start`` reports). A job with no estimate holds its GPUs forever; a job bigger
    than the capacity, or with no room ever, gets inf.
    """
    # profile: sorted breakpoints t_i with the capacity in use from t_i on
    times: list[float] = [now_s]
    used: list[int] = [sum(m for _, m in running)]
    for end_s, milli in running:
        _add(times, used, max(end_s, now_s), math.inf, -milli)
    out: list[float] = []
    for milli, dur in pending:
        if milli > capacity_milli:
            out.append(math.inf)
            continue
        d = math.inf if dur is None else dur
        start = math.inf
        for i, t in enumerate(times):
            end = t + d
            if all(
                used[j] + milli <= capacity_milli for j in range(i, len(times)) if times[j] < end
            ):
                start = t
                break
        out.append(start)
        if not math.isinf(start):
            _add(times, used, start, start + d, milli)
    return out


def _add(times: list[float], used: list[int], start: float, end: float, milli: int) -> None:
    """Add ``milli`` of use over [start, end) to the step profile."""
    for t in (start, end):
        if math.isinf(t) or t in times:
            continue
        i = next((k for k, x in enumerate(times) if x > t), len(times))
        times.insert(i, t)
        used.insert(i, used[i - 1] if i > 0 else 0)
    for k, t in enumerate(times):
        if start <= t < end:
            used[k] += milli
