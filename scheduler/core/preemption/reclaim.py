"""Preemption inside a scheduling cycle: find the victims that let a waiting job start. The
search reads the scheduler's facts (:class:`~scheduler.core.policy.StateView`) and returns a
:class:`~scheduler.core.policy.Victims` decision; the cycle stops them and starts the job
(``cycle.py``, step 6). :class:`CheapestFirst` is the ``cheapest`` preemption policy (the
default); subclasses change only the order of candidates within a tier
(:meth:`CheapestFirst.order`, e.g. ``scheduler/policies/preempt_newest.py``).

Only the first ``CoreConfig.preemption_depth`` pending jobs of each team (in queue order) look
for victims in one cycle, as Kueue considers a queue's head and Slurm bounds its main loop
with ``default_queue_depth``: a long queue does not turn every event into thousands of
searches, and jobs further back get their turn as those ahead start.

Victims, in tiers (Kueue's order: reclaim lent quota before preempting by priority):
 1. if the waiting job's team stays within its nominal quota, running jobs of other teams in
    its cohort that borrow;
 2. lower-priority running jobs, or equal-priority ones the queue order ranks below it (LAS
    levels; a job that entered the waiting job's class at this very instant, demoted as its
    attained service crossed a boundary, counts as below it: ``levels.py``), of its own team
    when quotas are on.
Cheapest lost work (``cost.py``) first inside each tier; jobs started this instant are
spared. The what-if of a search lifts the candidates' quota charges in the quota book and puts
every one back before the search returns.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, Job
from scheduler.core.outcomes import PreemptReason
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.gang_room import GangRoom
from scheduler.core.policy import StateView, Victims
from scheduler.core.preemption.cost import lost_s, select_victims
from scheduler.core.queueing.quota import ANY_MODEL, QuotaBook

_Row = tuple[str, int, int, float, float, float]


class RunningView:
    """Jobs running since before one instant, as arrays (rows sorted by job id). ``stops``:
    the state's count of stopped runs when built; stops the cycle reports (``stopped``) keep it
    current, any other stop makes it stale."""

    def __init__(self, s: StateView, rows: dict[str, _Row] | None = None) -> None:
        """``rows``: each running job's fixed facts by job id, kept by the caller across
        instants (a run's team, priority, size, start, checkpoint interval and the service
        it had when it started do not change while it runs)."""
        rows = {} if rows is None else rows
        now = s.now_s
        ids: list[str] = []
        facts: list[_Row] = []
        for vid in sorted(s.running):
            started = s.started_at_s[vid]
            if started >= now:
                continue
            row = rows.get(vid)
            if row is None or row[3] != started:
                job = s.jobs[vid]
                row = rows[vid] = (
                    job.team,
                    job.priority,
                    job.total_gpu_milli,
                    started,
                    job.checkpoint_interval_s or 0.0,  # 0: never checkpoints
                    s.levels.service_gpu_s(vid),
                )
            ids.append(vid)
            facts.append(row)
        if len(rows) > 2 * len(s.running) + 64:  # forget runs that ended
            for vid in [v for v in rows if v not in s.running]:
                del rows[vid]
        self.at_s = now
        self.stops = s.stops
        self.ids = ids
        self.row = {vid: i for i, vid in enumerate(ids)}
        teams = [r[0] for r in facts]
        self.teams = sorted(set(teams))
        team_id = {t: i for i, t in enumerate(self.teams)}
        self.team = np.array([team_id[t] for t in teams], dtype=np.int64)
        self.priority = np.array([r[1] for r in facts], dtype=np.int64)
        self.gpu_milli = np.array([r[2] for r in facts], dtype=np.int64)
        self.started_at_s = np.array([r[3] for r in facts], dtype=np.float64)
        interval = np.array([r[4] for r in facts], dtype=np.float64)
        before = np.array([r[5] for r in facts], dtype=np.float64)
        gpus = self.gpu_milli / MILLI_PER_GPU
        ran = np.maximum(0.0, s.now_s - self.started_at_s)
        self.rank = s.queue.rank_classes(before + ran * gpus)
        # demoted into its class at this instant: behind the jobs already waiting in it
        self.fresh = np.zeros(len(ids), dtype=np.bool_)
        if s.queue.uses_rank_class:
            for i in np.flatnonzero(self.rank > s.queue.rank_classes(before)).tolist():
                self.fresh[i] = s.levels.entered_class_at_s(ids[i]) == s.now_s
        self.lost_gpu_s = lost_s(ran, interval) * gpus  # work lost if stopped now
        self.alive = np.ones(len(ids), dtype=np.bool_)  # False once stopped in this instant


class CheapestFirst:
    """The ``cheapest`` preemption policy: the tiers of the module docstring, cheapest lost
    work first inside each (then lower priority first among the lower tier), job id on ties."""

    name: ClassVar[str] = "cheapest"

    def __init__(self, depth: int = 8) -> None:
        self.depth = depth  # ``CoreConfig.preemption_depth``
        self._no_victims: set[tuple[object, ...]] = set()
        self._searches: dict[str, int] = {}  # victim searches per team in this cycle
        self._cycle = -1
        self._view: RunningView | None = None
        self._rows: dict[str, _Row] = {}  # running jobs' fixed facts, for RunningView

    def order(self, view: RunningView, rows: IntArray, reclaim: bool) -> IntArray:
        """Candidate rows of one tier in the order they are tried (``reclaim``: the tier of
        lent quota taken back; else lower priorities)."""
        idx = np.arange(len(view.ids))
        if reclaim:
            return rows[np.lexsort((idx[rows], view.lost_gpu_s[rows]))]
        return rows[np.lexsort((idx[rows], view.lost_gpu_s[rows], view.priority[rows]))]

    def victims(self, job: Job, state: StateView) -> Victims | None:
        """The cheapest victims that let ``job`` be admitted and placed. A search that found
        nobody is not repeated in this cycle for an equivalent job (same shape, team, priority
        and rank class): preempting only ever removes candidates."""
        s = state
        if self._cycle != s.cycles:
            self._cycle = s.cycles
            self._no_victims.clear()
            self._searches.clear()
        searched = self._searches.get(job.team, 0)
        if searched >= self.depth:
            return None
        memo = (
            job.shape_key(),
            job.team,
            job.priority,
            s.queue.rank_class(s.levels.service_gpu_s(job.job_id)),
        )
        self._searches[job.team] = searched + 1
        if memo in self._no_victims:
            return None
        found = self._victims(job, s)
        if not found:
            self._no_victims.add(memo)
            return None
        return Victims(job.job_id, tuple(found), tuple(self._reason(job, v, s) for v in found))

    def _reason(self, job: Job, victim_id: str, s: StateView) -> PreemptReason:
        """Why ``victim_id`` makes way for ``job`` (the tiers of the module docstring)."""
        victim = s.jobs[victim_id]
        quota = s.quota
        if quota is not None and victim.team != job.team and quota.is_borrowing(victim.team):
            return PreemptReason.QUOTA_RECLAIM
        if victim.priority < job.priority:
            return PreemptReason.PRIORITY
        return PreemptReason.ATTAINED_SERVICE

    def exhausted(self, team: str, state: StateView) -> bool:
        """Have ``depth`` of ``team``'s jobs looked for victims in this cycle (a search
        answered by the memo counts)?"""
        return self._cycle == state.cycles and self._searches.get(team, 0) >= self.depth

    def stopped(self, job_id: str, state: StateView) -> None:
        """The cycle stopped ``job_id`` on this policy's word: no victim for the rest of this
        instant (the view stays current without a rebuild)."""
        view = self._view
        if view is not None and view.at_s == state.now_s and view.stops + 1 == state.stops:
            view.stops = state.stops
            i = view.row.get(job_id)
            if i is not None:
                view.alive[i] = False

    def bar(self, team: str, state: StateView) -> float:
        """Victims are lower-priority runs (``_victims``' first test), unless the queue order
        ranks equal priorities (then any job may find some) or the team may reclaim lent
        quota: it is within its nominal total and a team of its cohort borrows."""
        s = state
        if s.queue.uses_rank_class:
            return -math.inf
        book = s.quota
        if book is not None and _may_reclaim(team, book):
            return -math.inf
        return float(min(s.running_priorities, default=math.inf))

    def _running(self, s: StateView) -> RunningView:
        """The running jobs' view, built once per instant while no run stops behind its back
        (jobs started at this instant are spared anyway; jobs the cycle stopped are marked)."""
        if self._view is None or self._view.at_s != s.now_s or self._view.stops != s.stops:
            self._view = RunningView(s, self._rows)
        return self._view

    def _victims(self, job: Job, s: StateView) -> list[str] | None:
        book = s.quota
        if (
            book is None
            and not s.queue.uses_rank_class
            and min(s.running_priorities, default=job.priority) >= job.priority
        ):
            return None  # nobody runs at a lower priority: no candidate at all
        view = self._running(s)
        if not view.ids:
            return None
        mine = s.queue.rank_class(s.levels.service_gpu_s(job.job_id))
        if book is None:
            same_team = np.ones(len(view.ids), dtype=np.bool_)
            reclaim = np.zeros(len(view.ids), dtype=np.bool_)
        else:
            same_team = view.team == (view.teams.index(job.team) if job.team in view.teams else -1)
            cohort = book.cohort.get(job.team)
            lenders = [
                t != job.team
                and cohort is not None
                and book.cohort.get(t) == cohort
                and book.is_borrowing(t)
                for t in view.teams
            ]
            reclaim = np.array(lenders, dtype=np.bool_)[view.team] & view.alive
            if not s.admission.may_reclaim(job, book):
                reclaim[:] = False
        lower = (
            view.alive
            & same_team
            & ~reclaim
            & (
                (view.priority < job.priority)
                | ((view.priority == job.priority) & (view.rank > mine))
                | ((view.priority == job.priority) & (view.rank == mine) & view.fresh)
            )
        )
        if not reclaim.any() and not lower.any():
            return None
        freed = int(view.gpu_milli[reclaim | lower].sum())
        if int(s.fleet.gpu_free.sum()) + freed < job.total_gpu_milli:
            return None  # even stopping every candidate would not free enough GPU
        first = self.order(view, np.flatnonzero(reclaim), reclaim=True)
        then = self.order(view, np.flatnonzero(lower), reclaim=False)
        order = [view.ids[i] for i in (*first.tolist(), *then.tolist())]
        what_if = _WhatIf(s)
        return select_victims(order, what_if.remove, what_if.restore, lambda: what_if.admits(job))


def _may_reclaim(team: str, book: QuotaBook) -> bool:
    """Could some job of ``team`` reclaim lent quota now? (A superset of the jobs
    ``within_nominal`` admits: the team is below its nominal total and a cohort member
    borrows.)"""
    cohort = book.cohort.get(team)
    if cohort is None:
        return False
    q = book.quota.get((team, ANY_MODEL))
    if q is not None and book.used.get((team, ANY_MODEL), 0) > q.nominal_gpus * MILLI_PER_GPU:
        return False
    return any(
        t != team and book.cohort.get(t) == cohort and book.is_borrowing(t)
        for t in book.members.get(cohort, ())
    )


class _WhatIf:
    """Victims taken out of the books without touching the fleet: their quota charges are
    lifted (and put back by ``restore``), and a :class:`GangRoom` per candidate shape counts
    their resources free (exactly what the placer would find; ``gang_room.py``)."""

    def __init__(self, state: StateView) -> None:
        self.s = state
        self.out: list[str] = []
        self.rooms: dict[tuple[object, ...], GangRoom] = {}

    def remove(self, vid: str) -> None:
        s = self.s
        self.out.append(vid)
        for room in self.rooms.values():
            room.count(s.running[vid])
        if s.quota is not None:
            s.quota.charge(s.jobs[vid].team, s.charged[vid], sign=-1)

    def restore(self, vid: str) -> None:
        s = self.s
        self.out.remove(vid)
        for room in self.rooms.values():
            room.count(s.running[vid], sign=-1)
        if s.quota is not None:
            s.quota.charge(s.jobs[vid].team, s.charged[vid])

    def admits(self, job: Job) -> bool:
        """Would ``job`` pass its quota and fit the fleet with the victims gone?"""
        s = self.s
        if s.quota is not None:
            admitted, _ = s.admission.admit(job, s.quota, s.fleet)
            if admitted is None:
                return False
            job = admitted
        shape = job.shape_key()
        room = self.rooms.get(shape)
        if room is None:
            room = self.rooms[shape] = GangRoom(s.fleet, job)
            for vid in self.out:
                room.count(s.running[vid], refresh=False)
            room.refresh_stale()
        return room.fits()
