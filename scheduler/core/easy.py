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
from scheduler.core.model import Job, Placement, Topology
from scheduler.core.placer import Placer
from scheduler.core.reservation import reacquire, release

Ends = Callable[[], list[tuple[float, str]]]


class EasyWindow:
    def __init__(
        self,
        head: Job,
        fleet: Fleet,
        placer: Placer,
        running: Mapping[str, Placement],
        ends: Ends,
        known_shadow_s: float | None = None,
    ) -> None:
        self.head = head
        self._fleet = fleet
        self._placer = placer
        self._running = running
        self._ends = ends
        self.time_s = self._shadow() if known_shadow_s is None else known_shadow_s
        self.failed_shapes: set[tuple[object, ...]] = set()  # long jobs that would delay the head

    def ends_in_time(self, job: Job, now_s: float) -> bool:
        est = job.estimated_duration_s
        return est is not None and now_s + est <= self.time_s

    def _with_released(
        self, until_s: float, probe: Callable[[], bool], stop_early: bool, skip: int = 0
    ) -> tuple[bool, float]:
        """Release running jobs in end order up to ``until_s``; run ``probe`` after each release
        once the GPUs freed so far could hold the head at all (or only at the end); restore
        everything. Returns (probe result, the end time at which it succeeded)."""
        need = self.head.total_gpu_milli
        free = int(self._fleet.gpu_free.sum())
        released: list[Placement] = []
        try:
            for i, (end_s, job_id) in enumerate(self._ends()):
                if end_s > until_s:
                    break
                p = self._running[job_id]
                release(self._fleet, p)
                released.append(p)
                free += sum(w.gpu_milli * len(w.gpu_indices) for w in p.workers)
                if stop_early and i >= skip and free >= need and self._room() and probe():
                    return True, end_s
            if not stop_early:
                return free >= need and self._room() and probe(), until_s
            return False, math.inf
        finally:
            for p in reversed(released):
                reacquire(self._fleet, p)

    def _room(self) -> bool:
        """Cheap necessary condition for the head to fit: enough nodes with room per worker."""
        head = self.head
        if head.topology in (Topology.SAME_NODE, Topology.SAME_NVLINK) and head.num_workers > 1:
            return bool(self._fleet.room(head.worker.scaled(head.num_workers)).max() >= 1)
        return bool(self._fleet.room(head.worker).sum() >= head.num_workers)

    def _head_fits(self) -> bool:
        p = self._placer.place(self.head)
        if p is None:
            return False
        release(self._fleet, p)
        return True

    def _shadow(self) -> float:
        start = self._first_possible()
        if start is None:
            return math.inf
        found, when = self._with_released(math.inf, self._head_fits, stop_early=True, skip=start)
        return when if found else math.inf

    def _first_possible(self) -> int | None:
        """Index into the end-ordered releases from which the head could possibly fit, by
        counting whole free GPUs per node without touching the fleet (a necessary condition
        for whole-GPU heads; sharing or CPU-only heads start at 0). None: never."""
        head = self.head
        w = head.worker
        if w.gpus == 0 or w.shares_gpu:
            return 0
        per, workers = (
            (w.gpus * head.num_workers, 1)
            if head.topology in (Topology.SAME_NODE, Topology.SAME_NVLINK)
            else (w.gpus, head.num_workers)
        )
        fleet = self._fleet
        elig = fleet.eligible_gpus(w)
        whole = ((fleet.gpu_free == 1000) & elig).sum(axis=1)
        room = int((whole // per).sum())
        if room >= workers:
            return 0
        gpu_free: dict[tuple[int, int], int] = {}
        node_whole: dict[int, int] = {}
        for i, (_, job_id) in enumerate(self._ends()):
            for wp in self._running[job_id].workers:
                n = wp.node_index
                for g in wp.gpu_indices:
                    if not elig[n, g]:
                        continue
                    before = gpu_free.get((n, g), int(fleet.gpu_free[n, g]))
                    after = before + wp.gpu_milli
                    gpu_free[(n, g)] = after
                    if before < 1000 <= after:
                        old = node_whole.get(n, int(whole[n]))
                        node_whole[n] = old + 1
                        room += (old + 1) // per - old // per
            if room >= workers:
                return i
        return None

    def head_fits_at_shadow(self) -> bool:
        """With the jobs started so far (including a tentative backfill) still running past
        the shadow time, does the head fit once the jobs ending by then are gone?"""
        if math.isinf(self.time_s):
            return True  # no reservation can be honoured anyway: nothing to protect
        found, _ = self._with_released(self.time_s, self._head_fits, stop_early=False)
        return found
