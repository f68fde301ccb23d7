"""EASY backfill with exact fit checks (Lifka 1995; Mu'alem and Feitelson, IEEE TPDS 2001).

The first job in queue order that cannot start (the *head*) gets a reservation at its shadow
time: the earliest estimated end of a running job after which, with every job estimated to end
by then gone, the head fits the fleet (checked with the real placer, so node boundaries,
topology and GPU models count). A later job may start now only if it is estimated to end by the
shadow time, or if the head still fits at the shadow time with that job running. Jobs with no
estimate never end in this arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from scheduler.core.fleet import Fleet
from scheduler.core.model import Job, Placement
from scheduler.core.placer import Placer
from scheduler.core.reservation import reacquire, release

Ends = Callable[[], list[tuple[float, str]]]


class EasyWindow:
    def __init__(
        self, head: Job, fleet: Fleet, placer: Placer, running: Mapping[str, Placement], ends: Ends
    ) -> None:
        self.head = head
        self._fleet = fleet
        self._placer = placer
        self._running = running
        self._ends = ends
        self.time_s = self._shadow()
        self.failed_shapes: set[tuple[object, ...]] = set()  # long jobs that would delay the head

    def ends_in_time(self, job: Job, now_s: float) -> bool:
        est = job.estimated_duration_s
        return est is not None and now_s + est <= self.time_s

    def _with_released(
        self, until_s: float, probe: Callable[[], bool], stop_early: bool
    ) -> tuple[bool, float]:
        """Release running jobs in end order up to ``until_s``; after each (or only at the end)
        run ``probe``; restore everything. Returns (probe result, time it succeeded)."""
        released: list[Placement] = []
        found, when = False, math.inf
        try:
            for end_s, job_id in self._ends():
                if end_s > until_s:
                    break
                p = self._running[job_id]
                release(self._fleet, p)
                released.append(p)
                if stop_early and probe():
                    return True, end_s
            if not stop_early:
                found = probe()
                when = until_s
            return found, when
        finally:
            for p in reversed(released):
                reacquire(self._fleet, p)

    def _head_fits(self) -> bool:
        p = self._placer.place(self.head)
        if p is None:
            return False
        release(self._fleet, p)
        return True

    def _shadow(self) -> float:
        found, when = self._with_released(math.inf, self._head_fits, stop_early=True)
        return when if found else math.inf

    def head_fits_at_shadow(self) -> bool:
        """With the jobs started so far (including a tentative backfill) still running past
        the shadow time, does the head fit once the jobs ending by then are gone?"""
        if math.isinf(self.time_s):
            return True  # no reservation can be honoured anyway: nothing to protect
        found, _ = self._with_released(self.time_s, self._head_fits, stop_early=False)
        return found
