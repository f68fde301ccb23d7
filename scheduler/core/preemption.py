"""Choosing preemption victims by the work each would lose.

A running job that checkpoints every ``checkpoint_interval_s`` loses, when stopped, the work
since its last checkpoint: ``(now - start) mod interval`` seconds on each of its GPUs; one that
never checkpoints loses everything since it started. Victims are tried cheapest first within
each tier (borrowed capacity reclaimed before lower priorities), added until the waiting job
fits, and then any victim the job turns out not to need is spared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from scheduler.core.fleet import Fleet
from scheduler.core.model import MILLI_PER_GPU, Job, Placement
from scheduler.core.placer import Placer
from scheduler.core.reservation import reacquire, release


def saved_and_lost_s(job: Job, started_at_s: float, now_s: float) -> tuple[float, float]:
    """(seconds of this run kept by the last checkpoint, seconds lost) if stopped now."""
    ran = max(0.0, now_s - started_at_s)
    interval = job.checkpoint_interval_s
    if interval is None or interval <= 0:
        return 0.0, ran
    saved = math.floor(ran / interval) * interval
    return saved, ran - saved


def lost_gpu_s(job: Job, started_at_s: float, now_s: float) -> float:
    return saved_and_lost_s(job, started_at_s, now_s)[1] * job.total_gpu_milli / MILLI_PER_GPU


def select_victims(
    job: Job,
    candidates: Sequence[str],
    fleet: Fleet,
    placer: Placer,
    running: Mapping[str, Placement],
) -> list[str] | None:
    """The victims (a subset of ``candidates``, in their order) whose removal lets ``job`` be
    placed, or None. The fleet is left exactly as it was."""
    out: list[str] = []  # currently released, in order
    fits = False
    try:
        for v in candidates:
            release(fleet, running[v])
            out.append(v)
            if _fits(job, fleet, placer):
                fits = True
                break
        if not fits:
            return None
        for v in reversed(out[:-1]):  # spare whoever is not needed after all
            reacquire(fleet, running[v])
            if _fits(job, fleet, placer):
                out.remove(v)
            else:
                release(fleet, running[v])
        return list(out)
    finally:
        for v in reversed(out):
            reacquire(fleet, running[v])


def _fits(job: Job, fleet: Fleet, placer: Placer) -> bool:
    p = placer.place(job)
    if p is None:
        return False
    release(fleet, p)
    return True
