"""One scheduling cycle, in numbered steps (the code cites them).

:func:`run_cycle` walks the pending jobs once, in queue order, and returns the launches and
preemptions it made. It decides; the facts it reads and changes are ``facts.py``'s, changed
only through their methods. The policies it asks are ``policy.py``'s four kinds.

 1. **Time passes.** Jobs pending past the aging bound move to the front lane; waiting jobs
    whose starvation promotion is due (LAS) go back to class 0 and are keyed again.
 2. **Walk.** Pending jobs in queue order (each team's queue merged by its team key), until
    step 8 ends the walk.
 3. **Known answers.** Nothing is freed during a walk except by preemption, so a job whose
    shape already failed this cycle gets that verdict again without a try (unless it may
    still look for victims); behind an EASY reservation, a job that would not end by the
    shadow time, of a shape that already failed to backfill, is held.
 4. **Admission.** With quotas, the admission policy restricts the job to the GPU models its
    team may use now; a job over quota waits (``WAIT_QUOTA``) unless step 6 finds victims.
 5. **Placement.** The placer places the whole gang or nothing (``placement/placer.py``);
    behind a reservation the job starts only if EASY allows it (``queueing/easy.py``).
 6. **Preemption.** A job that cannot be admitted or placed asks the preemption policy for
    victims (a :class:`~scheduler.core.policy.Victims` decision); the cycle stops them
    (they re-enter the queue in step 9) and admits, places and starts the job.
 7. **No room.** The job waits with a capacity verdict. Strict order (backfill ``none``,
    unless the queue order scans fit-first) stops the walk behind it; under EASY the first
    such job, and with aging a job in the front lane, gets a reservation (its shadow time),
    which the jobs behind it may not delay.
 8. **Early end.** The walk stops when nothing behind can start: not even the smallest
    pending worker fits the free GPUs (once reserved, under EASY) and no team may still look
    for victims; every pending shape failed; the backfill depth behind a reservation is
    reached; or behind it only jobs too long to backfill are left. Jobs behind the stop keep
    the verdict of the last cycle that reached them (``ClusterState.verdict_of``).
 9. **Apply.** Started jobs leave the queue, preempted ones re-enter it, and a reserved head
    moves to the front lane so that later arrivals, whatever their key, are backfilled
    around it instead of taking its place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scheduler.core.actions import Action, Launch
from scheduler.core.facts import Facts
from scheduler.core.model import MILLI_PER_GPU, Job, Placement
from scheduler.core.queueing.easy import EasyWindow
from scheduler.core.verdict import Code, Verdict

Shape = tuple[object, ...]


def run_cycle(facts: Facts, trigger: str) -> list[Action]:
    """One scheduling cycle; ``trigger`` names the events that started it (the actions'
    cause)."""
    facts.cycles += 1
    facts.blocked_by = None
    _pass_time(facts)  # step 1
    if not len(facts.queues):
        return []
    return _Walk(facts, trigger).run()


def _pass_time(facts: Facts) -> None:
    """Step 1: aging and starvation promotion."""
    facts.age_queue()
    for job_id in facts.levels.promote():
        facts.rekey(facts.jobs[job_id])


class _Walk:
    """Steps 2-9 of one cycle, with what the walk learns as it goes."""

    def __init__(self, facts: Facts, trigger: str) -> None:
        self.f = facts
        self.trigger = trigger
        self.actions: list[Action] = []
        self.failed: set[Shape] = set()  # shapes that did not fit this cycle
        self.failed_pending = 0  # ... of which pending shapes (a job's shape before admission)
        self.capacity_verdicts: dict[Shape, Verdict] = {}  # ... and the verdict they got
        self.reasons: dict[Shape, str] = {}
        self.done: list[Job] = []  # started this cycle: out of the queue in step 9
        self.requeue: list[Job] = []  # preempted this cycle: back in the queue in step 9
        self.window: EasyWindow | None = None  # the reservation, once a head got one
        self.held = Verdict(Code.WAIT_ORDER, "")  # set with the reservation, used after it
        self.behind = 0  # jobs examined behind the reservation
        self.smallest = min((_worker_gpu_milli(shape) for shape in facts.queues.shapes), default=0)
        self.free = int(facts.fleet.gpu_free.sum())
        self.only_short_memo = (-1, -1)  # see _only_short_left
        # teams with jobs ahead in the walk that may still find victims this cycle: a team
        # leaves when the walk passed its last job whose priority is above the policy's bar
        # (``PreemptionPolicy.bar``), or when the policy says it used up its searches (they
        # only grow within a cycle); a start or a stop that changed the quota book may lower
        # a bar, and the team is back with all its jobs ahead counted (``_rebar``)
        self.unvisited = {t: len(q) for t, q in facts.queues.queues.items()}
        self.bars: dict[str, float] = {}
        self.hopeful: dict[str, int] = {}
        self.searching: set[str] = set()
        policy = facts.preemption
        if facts.preempting and policy is not None:
            for t in self.unvisited:
                bar = self.bars[t] = policy.bar(t, facts)
                self.hopeful[t] = facts.queues.above(t, bar)
            self.searching = {t for t, n in self.hopeful.items() if n}

    def run(self) -> list[Action]:
        f = self.f
        jobs = f.jobs
        track = f.preempting  # only preemption needs to know which teams are still ahead
        # step 3's commonest answers, inlined (what ``_known`` answers, and ``give``): without
        # quotas and preemption, a job whose shape failed this cycle gets that shape's verdict,
        # and behind the reservation a job too long to backfill, of a shape that failed to, is
        # held
        quick = f.quota is None and f.preemption is None
        now = f.now_s
        shape_of, capacity = f.queues.shape_of, self.capacity_verdicts
        verdicts, verdict_cycle, cycle = f.verdicts, f.verdict_cycle, f.cycles
        depth = f.config.backfill_depth
        for job_id in f.queues.merged(f.merge_key, _usage_version(f)):  # step 2
            if self.free < self.smallest and self._out_of_room():  # step 8
                break
            if self.window is not None:  # step 8: the backfill depth behind a reservation
                self.behind += 1
                if self.behind > depth:
                    break
            if quick:
                shape = shape_of[job_id]
                hit = capacity.get(shape)
                window = self.window
                if hit is None and window is not None and shape in window.failed_shapes:
                    est = jobs[job_id].estimated_duration_s
                    if est is None or now + est > window.time_s:
                        if self._only_short_left(window):
                            break  # step 8: nothing pending can start
                        hit = self.held
                if hit is not None:
                    verdicts[job_id] = hit
                    verdict_cycle[job_id] = cycle
                    continue
            known = self._known(job_id)  # step 3
            if isinstance(known, _Stop):
                break
            if known is not None:
                f.give(job_id, known)
            elif isinstance(self._try(job_id), _Stop):
                break
            if track:
                self._visited(jobs[job_id])
        self._apply()  # step 9
        return self.actions

    # ----------------------------------------------------------- step 8
    def _out_of_room(self) -> bool:
        """Not even the smallest pending job's worker has room (EASY: once reserved), and
        preemption cannot make any: it is off, or (under EASY) every team with pending jobs
        used up its victim searches for this cycle."""
        f = self.f
        return (
            self.free < self.smallest
            and (self.window is not None or f.config.backfill != "easy")
            and (not f.preempting or (f.config.backfill == "easy" and not self.searching))
        )

    def _visited(self, job: Job) -> None:
        team = job.team
        self.unvisited[team] -= 1
        if job.priority > self.bars[team]:
            left = self.hopeful[team] - 1
            self.hopeful[team] = left
            if left <= 0:
                self.searching.discard(team)

    def _rebar(self) -> None:
        """After a start or a stop with quotas on: a team whose bar fell may find victims
        again; every job of it still ahead counts (more than it may need: never fewer)."""
        f = self.f
        policy = f.preemption
        if f.quota is None or policy is None or not f.preempting:
            return
        for team, left in self.unvisited.items():
            if left <= 0:
                continue
            bar = policy.bar(team, f)
            if bar < self.bars[team]:
                self.bars[team] = bar
                self.hopeful[team] = left
                if not policy.exhausted(team, f):
                    self.searching.add(team)

    def _only_short_left(self, window: EasyWindow) -> bool:
        """True when every pending shape either does not fit now, or may only start jobs that
        end by the shadow time and has no such job pending."""
        # within a cycle both sets only grow and the queues do not change: a "no" stands
        # until one of them grew
        key = (len(self.failed), len(window.failed_shapes))
        if key == self.only_short_memo:
            return False
        room = window.time_s - self.f.now_s
        queues = self.f.queues
        for shape in queues.shapes:
            if shape in self.failed:
                continue
            if shape not in window.failed_shapes or queues.shortest(shape) <= room:
                self.only_short_memo = key
                return False
        return True

    # ----------------------------------------------------------- step 3
    def _known(self, job_id: str) -> Verdict | _Stop | None:
        """A verdict the walk already knows for this job, ``_STOP`` if nothing behind can
        start either, or None: try it. Without quotas only (a quota verdict depends on the
        team, not on the shape)."""
        f = self.f
        if f.quota is not None:
            return None
        shape = f.queues.shape_of[job_id]
        failed: Verdict | None = self.capacity_verdicts.get(shape)
        known = failed
        if failed is not None:
            policy = f.preemption
            if policy is None or policy.exhausted(f.jobs[job_id].team, f):
                return known
            known = None  # it does not fit, but it may still look for victims
        window = self.window
        if (
            window is not None
            and shape in window.failed_shapes
            and not window.ends_in_time(f.jobs[job_id], f.now_s)
        ):
            if self._only_short_left(window):
                return _STOP  # nothing pending can start: no shape fits, or only short ones
            return self.held
        if failed is not None and window is not None:
            job = f.jobs[job_id]
            if job.priority <= self.bars.get(job.team, -math.inf):
                # below its team's bar: a search that cannot find victims, counted as the
                # policy counts searches; steps 5 and 7 would only repeat the shape's verdict
                return f.verdicts[job_id] if self._preempt_for(job) else failed
        return known

    # ------------------------------------------------------- steps 4-7
    def _try(self, job_id: str) -> _Stop | None:
        """Admit, place or preempt for one job; ``_STOP`` ends the walk."""
        f = self.f
        job = f.jobs[job_id]
        if f.quota is not None:  # step 4
            admitted, why = f.admission.admit(job, f.quota, f.fleet)
            if admitted is None:
                assert why is not None
                if not self._preempt_for(job):  # step 6
                    f.set_verdict(job_id, why.code, why.reason)
                return None
            job = admitted
        shape = job.shape_key()
        window = self.window
        short = window is None or window.ends_in_time(job, f.now_s)
        if window is not None and not short and shape in window.failed_shapes:
            if f.quota is None and self._only_short_left(window):
                return _STOP  # step 8: behind the reservation only jobs too long are left
            f.give(job_id, self.held)
            return None
        placement = None if shape in self.failed else f.placer.place(job)  # step 5
        if placement is None:
            if self._preempt_for(f.jobs[job_id]):  # step 6
                return None
            return self._no_room(job, shape)  # step 7
        if window is not None and not short and not window.try_backfill(job, placement):
            window.failed_shapes.add(shape)
            f.give(job_id, self.held)
            return None
        self._start(job, placement)
        return None

    def _start(self, job: Job, placement: Placement) -> None:
        """Step 5: start a placed job (under EASY's rules if behind a reservation)."""
        f = self.f
        window = self.window
        f.start(job, placement, checked=window is not None)
        if window is not None:
            window.started(job, placement, f.now_s)
        self.free = int(f.fleet.gpu_free.sum())
        self._rebar()
        self.done.append(f.jobs[job.job_id])
        f.set_verdict(job.job_id, Code.FIT, "placed")
        self.actions.append(Launch(job.job_id, placement, f.now_s, self.trigger))

    def _preempt_for(self, job: Job) -> bool:
        """Step 6: ask the preemption policy for victims; stop them and start ``job``."""
        f = self.f
        policy = f.preemption
        if policy is None:
            return False
        decision = policy.victims(job, f)
        if decision is None:
            if job.team in self.searching and policy.exhausted(job.team, f):
                self.searching.discard(job.team)
            return False
        for victim, reason in zip(decision.job_ids, decision.reasons, strict=True):
            self.actions.append(f.preempt(victim, f"preempted for {job.job_id}", reason))
            policy.stopped(victim, f)
            self.requeue.append(f.jobs[victim])
        admitted: Job | None = job
        if f.quota is not None:
            admitted, _ = f.admission.admit(job, f.quota, f.fleet)
        assert admitted is not None, "victim selection promised admission"
        placement = f.placer.place(admitted)
        assert placement is not None, "victim selection promised a placement"
        f.start(admitted, placement)
        self.free = int(f.fleet.gpu_free.sum())  # the victims may have freed more than it took
        self._rebar()
        f.set_verdict(
            job.job_id, Code.FIT, f"placed after preempting {', '.join(decision.job_ids)}"
        )
        self.actions.append(Launch(job.job_id, placement, f.now_s, self.trigger))
        if self.window is not None:
            self.window.running_changed()
        self.done.append(job)
        return True

    def _no_room(self, job: Job, shape: Shape) -> _Stop | None:
        """Step 7: the job waits for capacity; strict order stops, EASY reserves."""
        f = self.f
        job_id = job.job_id
        if shape not in self.failed:
            self.failed.add(shape)
            self.failed_pending += shape in f.queues.shapes
        if shape not in self.reasons:
            self.reasons[shape] = _capacity_reason(f, job)
        f.set_verdict(job_id, Code.WAIT_CAPACITY, self.reasons[shape])
        self.capacity_verdicts[shape] = f.verdicts[job_id]
        if f.config.backfill == "none" and not f.queue.fit_first:
            f.blocked_by = job_id
            return _STOP
        if self.window is None and (
            f.config.backfill == "easy" or f.queues.where[job_id][1][0] == 0
        ):
            self._reserve(job)
        if self.failed_pending == len(f.queues.shapes) and (f.quota is None or not self.searching):
            # step 8: every pending shape failed, nothing else can start; with quotas a job is
            # restricted to fewer GPU models, never more, so its shape fails too once the
            # unrestricted one did, and it may not look for victims either
            return _STOP
        return None

    def _reserve(self, job: Job) -> None:
        """Step 7: EASY's head, or a job past the aging bound, gets a reservation so that
        nothing delays it. The shadow depends only on the head and the running set: reused
        while neither changed (cycles triggered by arrivals alone)."""
        f = self.f
        key = (job.job_id, f.profile_version, f.fleet.layout_version)
        known = f.shadow_memo[1] if f.shadow_memo[0] == key else None
        self.window = EasyWindow(job, f.fleet, f.running, f.ends, f.now_s, known)
        f.shadow_memo = (key, self.window.time_s)
        if not math.isinf(self.window.time_s):
            f.reserved_at_s.setdefault(job.job_id, self.window.time_s)
        self.held = f.pooled(Code.WAIT_ORDER, f"held for the reservation of {job.job_id}")

    # ----------------------------------------------------------- step 9
    def _apply(self) -> None:
        f = self.f
        for job in self.done:
            f.queues.remove(job)
        for job in self.requeue:
            f.enqueue(job)
        window = self.window
        if window is not None and not math.isinf(window.time_s):
            # a reservation is a promise: the reserved head moves to the front lane, so that
            # jobs arriving later, whatever their key (shorter under ``sjf``, a poorer team
            # under ``drf``), are backfilled around it instead of taking its place
            f.to_front(window.head)


def _usage_version(facts: Facts) -> Callable[[], int]:
    """The counter that moves when a team key may change within a cycle (the clock stands
    still during one, and only starts and stops change usage)."""
    return lambda: facts.usage_version


class _Stop:
    """A step's answer: end the walk."""


_STOP = _Stop()


def _capacity_reason(facts: Facts, job: Job) -> str:
    elig = facts.fleet.eligible_gpus(job.worker)
    free = int(facts.fleet.gpu_free[elig].sum())
    head = f"needs {job.total_gpu_milli / MILLI_PER_GPU:g} GPUs for {job.num_workers} worker(s); "
    if job.worker.regions:  # residency: say where it looked
        where = (
            f"{free / MILLI_PER_GPU:g} usable GPUs free in region {'|'.join(job.worker.regions)}"
        )
        return head + where + (" but not in a fitting place" if free >= job.total_gpu_milli else "")
    return head + f"{free / MILLI_PER_GPU:g} usable GPUs free but not in a fitting place"


def _worker_gpu_milli(shape: Shape) -> int:
    """Milli-GPU one worker of a ``Job.shape_key()`` asks for."""
    worker_key = shape[0]
    assert isinstance(worker_key, tuple)
    gpus, milli = worker_key[2], worker_key[3]
    assert isinstance(gpus, int) and isinstance(milli, int)
    return gpus * milli
