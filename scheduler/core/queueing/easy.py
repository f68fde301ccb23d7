"""EASY backfill with exact fit checks (Lifka 1995; Mu'alem and Feitelson, IEEE TPDS 2001).

The first job in queue order that cannot start (the *head*) gets a reservation at its shadow
time: the earliest estimated end of a running job after which, with every job estimated to end
by then gone, the head fits the fleet (node boundaries, topology, GPU models and health count:
``gang_room.py`` answers exactly what the placer would). A later job may start now only if it
is estimated to end by the shadow time, or if the head still fits at the shadow time with that
job running. Jobs with no estimate never end in this arithmetic.

Nothing is released from the fleet for these what-ifs: one :class:`GangRoom` counts the jobs
ending by the shadow time as free on top of the live fleet, so checking a backfill candidate
costs a recount of the nodes it touches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from scheduler.core.model import Job, Placement
from scheduler.core.placement.fleet import Fleet
from scheduler.core.placement.gang_room import GangRoom
from scheduler.core.placement.reservation import release

Ends = Callable[[], list[tuple[float, str]]]


class EasyWindow:
    def __init__(
        self,
        head: Job,
        fleet: Fleet,
        running: Mapping[str, Placement],
        ends: Ends,
        now_s: float,
        known_shadow_s: float | None = None,
    ) -> None:
        self.head = head
        self._fleet = fleet
        self._running = running
        self._ends = ends
        self._at_shadow: GangRoom | None = None  # the fleet as the head will find it
        # jobs past their estimated end are due any moment: a shadow time in the past is now
        shadow = self._shadow(now_s) if known_shadow_s is None else known_shadow_s
        self.time_s = max(shadow, now_s)
        self.failed_shapes: set[tuple[object, ...]] = set()  # long jobs that would delay the head

    def ends_in_time(self, job: Job, now_s: float) -> bool:
        est = job.estimated_duration_s
        return est is not None and now_s + est <= self.time_s

    def _shadow(self, now_s: float) -> float:
        """Release running jobs in estimated-end order until the head fits; the end time at
        which it does (inf: never). Leaves ``_at_shadow`` counting every job ending by then,
        or by now when that is later (overdue jobs are due any moment)."""
        room = GangRoom(self._fleet, self.head)
        ends = self._ends()
        need = self.head.total_gpu_milli
        free = int(self._fleet.gpu_free.sum())
        when = math.inf
        i = 0
        while i < len(ends) and not room.fits():
            p = self._running[ends[i][1]]
            room.count(p, refresh=False)
            free += sum(w.gpu_milli * len(w.gpu_indices) for w in p.workers)
            when = ends[i][0]
            i += 1
            if free >= need:  # recount only once enough GPU is free at all
                room.refresh_stale()
        room.refresh_stale()
        if not room.fits():
            return math.inf
        until = max(when, now_s)  # ties end together; so do all overdue jobs
        while i < len(ends) and ends[i][0] <= until:
            room.count(self._running[ends[i][1]])
            i += 1
        self._at_shadow = room
        return when

    def _room_at_shadow(self) -> GangRoom:
        if self._at_shadow is None:
            room = GangRoom(self._fleet, self.head)
            for end_s, job_id in self._ends():
                if end_s > self.time_s:
                    break
                room.count(self._running[job_id])
            self._at_shadow = room
        return self._at_shadow

    def try_backfill(self, job: Job, placement: Placement) -> bool:
        """``placement`` of a job that would run past the shadow time was just taken from the
        fleet: keep it if the head still fits at the shadow time; otherwise give it back to
        the fleet and return False."""
        if math.isinf(self.time_s):
            return True  # no reservation can be honoured anyway: nothing to protect
        room = self._room_at_shadow()
        nodes = sorted({w.node_index for w in placement.workers})
        room.refresh(nodes)
        if room.fits():
            return True
        release(self._fleet, placement)
        room.refresh(nodes)
        return False

    def started(self, job: Job, placement: Placement, now_s: float) -> None:
        """A job that ends by the shadow time started in the window: its resources are taken
        now and free again when the head starts."""
        room = self._at_shadow
        if room is None:
            return
        room.refresh(sorted({w.node_index for w in placement.workers}))  # the fleet changed
        if self.ends_in_time(job, now_s):
            room.count(placement)

    def running_changed(self) -> None:
        """Jobs were preempted or started outside the window's checks: recount lazily."""
        self._at_shadow = None
