"""Choosing preemption victims by the work each would lose.

A running job that checkpoints every ``checkpoint_interval_s`` loses, when stopped, the work
since its last checkpoint: ``(now - start) mod interval`` seconds on each of its GPUs; one that
never checkpoints loses everything since it started. Victims are tried cheapest first within
each tier (borrowed capacity reclaimed before lower priorities), added until the waiting job
fits, and then any victim the job turns out not to need is spared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from scheduler.core.model import Job

FloatArray = NDArray[np.float64]


def saved_and_lost_s(job: Job, started_at_s: float, now_s: float) -> tuple[float, float]:
    """(seconds of this run kept by the last checkpoint, seconds lost) if stopped now."""
    ran = max(0.0, now_s - started_at_s)
    interval = job.checkpoint_interval_s
    if interval is None or interval <= 0:
        return 0.0, ran
    saved = math.floor(ran / interval) * interval
    return saved, ran - saved


def lost_s(ran_s: FloatArray, interval_s: FloatArray) -> FloatArray:
    """:func:`saved_and_lost_s`'s lost seconds for many runs at once (interval 0: never
    checkpoints)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(interval_s > 0, ran_s - np.floor(ran_s / interval_s) * interval_s, ran_s)


def select_victims(
    candidates: Sequence[str],
    remove: Callable[[str], None],
    restore: Callable[[str], None],
    admits: Callable[[], bool],
) -> list[str] | None:
    """The victims (a subset of ``candidates``, in their order) whose removal lets the waiting
    job be admitted and placed (``admits``), or None. ``remove`` / ``restore`` take a victim's
    resources (and quota charge) out of and back into the books; everything is restored."""
    out: list[str] = []  # currently removed, in order
    try:
        for v in candidates:
            remove(v)
            out.append(v)
            if admits():
                break
        else:
            return None
        for v in reversed(out[:-1]):  # spare whoever is not needed after all
            restore(v)
            if admits():
                out.remove(v)
            else:
                remove(v)
        return list(out)
    finally:
        for v in reversed(out):
            restore(v)
