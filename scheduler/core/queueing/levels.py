"""Attained-service levels over time: demotion wake-ups and starvation promotion.

A queue order with rank classes (``las``: Tiresias's discretised LAS) ranks a job by the
service it attained *since its last starvation promotion* (its "level service"). Two things
happen because time passes rather than because an event arrived; the core learns of neither
by itself, so this module tells the driver when to look (``next_wake_s``) and applies them:

 1. **Demotion at the crossing.** A running job's level service grows as it runs; the moment
    it reaches the order's next boundary (``QueueOrderBase.next_rank_change_gpu_s``) it ranks in
    the next class, and a waiting job of a lower class may preempt it. The crossing time of
    every running job is known when it starts (service, start, GPUs are fixed during a run),
    so it is kept in a heap; ``next_wake_s`` is the earliest one still ahead while
    preemption is on and jobs wait. A job that *entered* its class at this very instant
    ranks below the jobs already waiting in that class (:meth:`entered_class_at_s`; Tiresias
    appends a demoted job to the end of its new queue).
 2. **Starvation promotion.** A requeued job of class > 0 that has waited
    ``QueueOrderBase.promote_after_s(ran)`` seconds (its waits since its last promotion, counted
    from its first requeue; ``ran``: seconds it ran since then) goes back to class 0 and its
    level service restarts at 0 (Tiresias's PROMOTEKNOB rule). Its due time is fixed while
    it waits, so it is kept in a heap too.

The facts (base, waits, promotions) are in the core snapshot (``JobProgress``); the heaps and
wake-ups are derived from them and the running set, so a restored core rebuilds them.
It reads the facts (:class:`~scheduler.core.policy.StateView`) and changes only its own books; the cycle
re-keys the jobs :meth:`LevelBook.promote` returns (``cycle.py``, step 1).
"""

from __future__ import annotations

import heapq
import math

from scheduler.core.model import MILLI_PER_GPU, Job
from scheduler.core.policy import StateView
from scheduler.core.queueing.queues import crossing_s


class LevelBook:
    def __init__(self, state: StateView) -> None:
        self.s = state
        self.base_gpu_s: dict[str, float] = {}  # attained service at the last promotion
        self.waited_s: dict[str, float] = {}  # waits since then that ended (job restarted)
        self.waiting_since_s: dict[str, float] = {}  # requeued jobs: the wait under way
        self.promotions: dict[str, int] = {}
        # (time, job, started at, level service at start, boundary) per running job
        self._crossings: list[tuple[float, str, float, float, float]] = []
        self._dues: list[tuple[float, str]] = []  # (promotion due, job) of waiting jobs

    def service_gpu_s(self, job_id: str) -> float:
        """The attained service that decides the job's class (GPU-s since its last
        promotion; while it runs, as of its start)."""
        return self.s.attained_gpu_s.get(job_id, 0.0) - self.base_gpu_s.get(job_id, 0.0)

    # ------------------------------------------------------------ the hooks
    def started(self, job: Job, started_at_s: float, new_run: bool) -> None:
        """A job starts running (``new_run``: False when a restore puts it back): its wait
        ends, and its first crossing is watched."""
        s = self.s
        since = self.waiting_since_s.pop(job.job_id, None)
        if since is not None and new_run:
            self.waited_s[job.job_id] = self.waited_s.get(job.job_id, 0.0) + s.now_s - since
        if s.preempting and s.queue.uses_rank_class:
            service = self.service_gpu_s(job.job_id)
            self._watch_crossing(job, started_at_s, service, service)

    def requeued(self, job_id: str) -> None:
        """A running job was stopped to wait again: its wait starts now."""
        if self.s.queue.promotes:
            self.waiting_since_s[job_id] = self.s.now_s

    def queued(self, job: Job) -> None:
        """A job is in the queue (again): watch its promotion."""
        due = self._due(job.job_id)
        if due is not None:
            heapq.heappush(self._dues, (due, job.job_id))

    def ended(self, job_id: str) -> None:
        self.waiting_since_s.pop(job_id, None)

    # ----------------------------------------------------------- promotion
    def _due(self, job_id: str) -> float | None:
        """When the waiting job ``job_id`` is to be promoted, or None (not waiting after a
        requeue, in class 0, or the order does not promote)."""
        s = self.s
        since = self.waiting_since_s.get(job_id)
        if since is None or not s.queue.promotes or job_id not in s.pending_ids:
            return None
        service = self.service_gpu_s(job_id)
        if s.queue.rank_class(service) == 0:
            return None
        gpus = s.jobs[job_id].total_gpu_milli / MILLI_PER_GPU
        ran_s = service / gpus if gpus > 0 else 0.0
        return since + s.queue.promote_after_s(ran_s) - self.waited_s.get(job_id, 0.0)

    def promote(self) -> list[str]:
        """Promote every waiting job whose promotion is due (oldest due first); returns them,
        in that order, for the caller to key again in the queue."""
        s = self.s
        heap = self._dues
        promoted: list[str] = []
        while heap and heap[0][0] <= s.now_s:
            due, job_id = heapq.heappop(heap)
            if self._due(job_id) != due:
                continue  # it started, ended or was promoted since
            self.base_gpu_s[job_id] = s.attained_gpu_s.get(job_id, 0.0)
            self.waited_s.pop(job_id, None)
            self.waiting_since_s.pop(job_id, None)
            self.promotions[job_id] = self.promotions.get(job_id, 0) + 1
            promoted.append(job_id)
        return promoted

    # ------------------------------------------------------------ demotion
    def _watch_crossing(self, job: Job, started_at_s: float, service: float, above: float) -> None:
        """Push the running job's next crossing of a boundary above ``above``."""
        boundary = self.s.queue.next_rank_change_gpu_s(above)
        t = crossing_s(service, started_at_s, job.total_gpu_milli / MILLI_PER_GPU, boundary)
        if not math.isinf(t):
            heapq.heappush(self._crossings, (t, job.job_id, started_at_s, service, boundary))

    def entered_class_at_s(self, job_id: str) -> float | None:
        """When the running job ``job_id`` entered its current class during this run (the
        crossing time of the highest boundary it passed), or None if it did not change class
        since it started."""
        s = self.s
        job = s.jobs[job_id]
        gpus = job.total_gpu_milli / MILLI_PER_GPU
        started = s.started_at_s[job_id]
        service = self.service_gpu_s(job_id)
        now_service = service + max(0.0, s.now_s - started) * gpus
        boundary = s.queue.next_rank_change_gpu_s(service)
        if math.isinf(boundary) or not boundary <= now_service:
            return None
        while (
            not math.isinf(nxt := s.queue.next_rank_change_gpu_s(boundary)) and nxt <= now_service
        ):
            boundary = nxt
        return crossing_s(service, started, gpus, boundary)

    # ------------------------------------------------------------- wake-up
    def next_wake_s(self) -> float:
        """The earliest time after ``now`` at which a running job crosses a boundary (while
        preemption is on and jobs wait) or a waiting job's promotion is due; inf: none."""
        s = self.s
        now = s.now_s
        best = math.inf
        if s.preempting and s.queue.uses_rank_class and s.pending_ids:
            heap = self._crossings
            while heap:
                t, job_id, started, service, boundary = heap[0]
                if (
                    job_id not in s.running
                    or s.started_at_s[job_id] != started
                    or self.service_gpu_s(job_id) != service
                ):
                    heapq.heappop(heap)  # that run ended
                    continue
                if t > now:
                    best = t
                    break
                heapq.heappop(heap)  # crossed already: watch the boundary after it
                self._watch_crossing(s.jobs[job_id], started, service, boundary)
        for due, job_id in self._dues:  # few: only requeued jobs of class > 0
            if now < due < best and self._due(job_id) == due:
                best = due
        return best
