"""``ClusterState``: the one mutator of the core. Events in, actions out, deterministically.

``handle(*events)`` applies the events in order to the facts (``facts.py``: a job submitted,
finished or cancelled; a node cordoned, drained, lost or back; GPU health and telemetry),
then runs one scheduling cycle (``cycle.py``, numbered steps) and returns every action taken:
rejections at submission, releases, preemptions for node loss and drains, then the cycle's
launches and preemptions. The views below (verdicts, pending info, next wake-up) are derived
from the facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.core.actions import Action, Reject
from scheduler.core.cycle import run_cycle
from scheduler.core.events import (
    Event,
    GpuHealthChanged,
    GpuTelemetry,
    JobCancelled,
    JobFinished,
    JobInterrupted,
    JobSubmitted,
    NodeCordoned,
    NodeDrained,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
    Tick,
)
from scheduler.core.facts import Backfill, CoreConfig, Facts
from scheduler.core.outcomes import PreemptReason, ReleaseOutcome, RunOutcome
from scheduler.core.queueing.backfill import estimate_starts
from scheduler.core.verdict import Code, Verdict

__all__ = ["Backfill", "ClusterState", "CoreConfig", "PendingInfo"]


@dataclass(frozen=True, slots=True)
class PendingInfo:
    """Why a job waits, where it stands and when it should start (data for API and CLI)."""

    job_id: str
    team: str
    position: int  # 1-based, in the merged queue order
    code: Code
    reason: str
    estimated_start_s: float  # inf when no estimate can be given


class ClusterState(Facts):
    """The facts (``facts.py``), changed only by :meth:`handle`."""

    def handle(self, *events: Event) -> list[Action]:
        actions: list[Action] = []
        for ev in events:
            if ev.now_s < self.now_s:
                raise ValueError(
                    f"event {type(ev).__name__} at {ev.now_s}s is before the core's clock {self.now_s}s"
                )
            self.now_s = ev.now_s
            actions.extend(self._apply(ev))
        actions.extend(run_cycle(self, _describe(events)))
        return actions

    def _apply(self, ev: Event) -> list[Action]:
        fleet = self.fleet
        if isinstance(ev, JobSubmitted):
            job = ev.job
            if job.job_id in self.jobs:
                return [
                    Reject(
                        job.job_id,
                        Code.NEVER,
                        f"job id {job.job_id!r} already used",
                        ev.now_s,
                        ev.cause,
                    )
                ]
            self.jobs[job.job_id] = job
            reason = self.placer.never_fits(job)
            if reason is None and self.quota is not None:
                reason = self.admission.never(job, self.quota, self.fleet)
            if reason is not None:
                self.verdicts[job.job_id] = Verdict(Code.NEVER, reason)
                return [Reject(job.job_id, Code.NEVER, reason, ev.now_s, ev.cause)]
            self.enqueue(job)
            return []
        if isinstance(ev, JobFinished):
            return self.end_job(ev.job_id, ev.now_s, ev.cause, _RELEASE_OF[ev.outcome])
        if isinstance(ev, JobCancelled):
            return self.end_job(ev.job_id, ev.now_s, ev.cause, ReleaseOutcome.CANCELLED)
        if isinstance(ev, NodeCordoned):
            self.set_off(ev.node, "cordon", True, ev.cause)
            return []
        if isinstance(ev, NodeDrained):
            self.set_off(ev.node, "drain", True, ev.cause)
            return self.evacuate(ev.node, f"drain {ev.node} ({ev.cause})", PreemptReason.DRAIN)
        if isinstance(ev, NodeUncordoned):  # the operator's all-clear lifts a drain too
            n = self._node(ev.node)
            # ... and the GPU marks that caused it (the GPUs were seen to; health.py)
            for g, healthy in self.health.all_clear(ev.node, int(fleet.gpu_count[n])):
                fleet.set_gpu_health(n, g, healthy)
            self.set_off(ev.node, "cordon", False)
            self.set_off(ev.node, "drain", False)
            return []
        if isinstance(ev, NodeJoined):
            self.set_off(ev.node, "lost", False)
            return []
        if isinstance(ev, NodeLost):
            self.set_off(ev.node, "lost", True, ev.cause)
            return self.evacuate(ev.node, f"{ev.node} lost ({ev.cause})", PreemptReason.NODE_LOST)
        if isinstance(ev, GpuHealthChanged):
            self._gpu(ev.node, ev.gpu_index)
            healthy = self.health.set_operator(ev.node, ev.gpu_index, ev.healthy)
            fleet.set_gpu_health(self._node(ev.node), ev.gpu_index, healthy)
            return []
        if isinstance(ev, GpuTelemetry):
            n, g = self._gpu(ev.node, ev.gpu_index)
            seen = self.health.observe(ev)
            if fleet.gpu_free[n, g] == fleet.gpu_cap[n, g]:  # nothing of ours on it
                fleet.set_foreign_memory(n, g, ev.memory_used_mib)
            fleet.set_gpu_health(n, g, seen.healthy)
            if seen.drain is None:
                return []
            self.set_off(ev.node, "drain", True, seen.drain)
            return self.evacuate(ev.node, seen.drain, PreemptReason.DRAIN)
        if isinstance(ev, JobInterrupted):
            if ev.job_id not in self.running:
                return []
            action = self.preempt(ev.job_id, ev.cause, PreemptReason.INTERRUPTED)
            self.enqueue(self.jobs[ev.job_id])
            return [action]
        if isinstance(ev, Tick):
            return []
        raise TypeError(f"unknown event {ev!r}")

    # ---------------------------------------------------------------- views
    def next_wake_s(self) -> float:
        """The earliest time after ``now_s`` at which time passing alone changes what a cycle
        decides, so a driver should send a ``Tick`` then; inf: none. Only a queue order with
        rank classes has such times (``levels.py``): a running job demoted as its attained
        service crosses a boundary while preemption is on and jobs wait, or a waiting job's
        starvation promotion. Derived from the facts: a snapshot needs nothing more."""
        return self.levels.next_wake_s()

    def verdict_of(self, job_id: str) -> Verdict:
        """The job's verdict as of the last cycle. Jobs the cycle did not reach get it derived:
        behind the blocking head (strict order), or waiting because no pending shape fit."""
        v = self.verdicts.get(job_id)
        if v is not None and (
            self.verdict_cycle.get(job_id) == self.cycles or job_id not in self.queues
        ):
            return v
        if self.blocked_by is not None and job_id != self.blocked_by:
            return Verdict(Code.WAIT_ORDER, f"behind {self.blocked_by} (strict queue order)")
        if v is not None:
            return v
        return Verdict(
            Code.WAIT_CAPACITY,
            "not reached this cycle: no pending job shape fits the free capacity",
        )

    # ---------------------------------------------------------------- views
    def pending_info(self) -> list[PendingInfo]:
        """Every pending job with its position, verdict and estimated start: an aggregate GPU
        profile from running jobs' estimated ends (what is left after their checkpoints) and
        the queue ahead (``backfill.py``), except for the job holding the EASY reservation,
        whose start is its shadow time (exact: node boundaries and topology count)."""
        order = [self.jobs[j] for j in self.queues.merged(self.merge_key)]
        running = []
        for job_id in sorted(self.running):
            entry = self._end_of.get(job_id)
            running.append(
                (math.inf if entry is None else entry[0], self.jobs[job_id].total_gpu_milli)
            )
        starts = estimate_starts(
            self.now_s,
            self.fleet.total_gpu_milli,
            running,
            [(j.total_gpu_milli, j.estimated_duration_s) for j in order],
        )
        (head, version, layout), shadow_s = self.shadow_memo
        reserved = version == self.profile_version and layout == self.fleet.layout_version
        out = []
        for pos, (job, start) in enumerate(zip(order, starts, strict=True), 1):
            if reserved and job.job_id == head and not math.isinf(shadow_s):
                start = max(shadow_s, self.now_s)
            v = self.verdict_of(job.job_id)
            out.append(PendingInfo(job.job_id, job.team, pos, v.code, v.reason, start))
        return out


_RELEASE_OF = {
    RunOutcome.SUCCEEDED: ReleaseOutcome.SUCCEEDED,
    RunOutcome.FAILED: ReleaseOutcome.FAILED,
}


def _describe(events: tuple[Event, ...], most: int = 3) -> str:
    """``JobSubmitted(j1), JobFinished(j0)``: what a cycle's actions trace back to."""
    parts = []
    for ev in events[:most]:
        subject = getattr(ev, "job_id", None) or getattr(ev, "node", None)
        if isinstance(ev, JobSubmitted):
            subject = ev.job.job_id
        parts.append(f"{type(ev).__name__}({subject})" if subject else type(ev).__name__)
    if len(events) > most:
        parts.append(f"+{len(events) - most} more")
    return ", ".join(parts) or "cycle"
