"""``ClusterState``: the one mutator of the core. Events in, actions out, deterministically.

``handle(*events)`` applies the events in order, then runs one scheduling cycle:
 1. pending jobs are taken in ``Job.order_key()`` order (priority, submit time, id);
 2. each is placed whole by the :class:`Placer` or stays pending with a verdict;
 3. within a cycle, once a request shape failed to fit, later jobs of the same shape and
    topology are not tried again (nothing was freed in between).
In fail-fast mode (trace replay of the FGD protocol) a job that does not fit now is rejected
instead of waiting.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scheduler.core import invariants
from scheduler.core.actions import Action, Launch, Reject, Release
from scheduler.core.events import (
    Event,
    GpuHealthChanged,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeCordoned,
    NodeUncordoned,
    Tick,
)
from scheduler.core.fleet import Fleet
from scheduler.core.model import Job, Node, Placement
from scheduler.core.packing import PackingPolicy
from scheduler.core.placer import Placer
from scheduler.core.reservation import release
from scheduler.core.verdict import Code, Verdict


@dataclass(frozen=True, slots=True)
class CoreConfig:
    seed: int = 0
    fail_fast: bool = False  # reject a job that does not fit now instead of queueing it


class ClusterState:
    def __init__(
        self,
        nodes: list[Node] | tuple[Node, ...],
        packing: PackingPolicy,
        config: CoreConfig | None = None,
    ) -> None:
        self.config = config or CoreConfig()
        self.fleet = Fleet(nodes)
        self.rng = np.random.default_rng(self.config.seed)
        self.placer = Placer(self.fleet, packing, self.rng)
        self.jobs: dict[str, Job] = {}
        self.running: dict[str, Placement] = {}
        self.verdicts: dict[str, Verdict] = {}
        self._pending: list[tuple[tuple[int, float, str], str]] = []
        self.now_s = 0.0

    # ------------------------------------------------------------------ views
    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(job_id for _, job_id in self._pending)

    def check_invariants(self) -> list[str]:
        return invariants.check(self.fleet, self.running, self.jobs)

    @property
    def placements(self) -> Mapping[str, Placement]:
        return self.running

    # ---------------------------------------------------------------- mutator
    def handle(self, *events: Event) -> list[Action]:
        actions: list[Action] = []
        for ev in events:
            if ev.now_s < self.now_s:
                raise ValueError(
                    f"event {type(ev).__name__} at {ev.now_s}s is before the core's clock {self.now_s}s"
                )
            self.now_s = ev.now_s
            actions.extend(self._apply(ev))
        actions.extend(self._cycle(_describe(events)))
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
            if reason is not None:
                self.verdicts[job.job_id] = Verdict(Code.NEVER, reason)
                return [Reject(job.job_id, Code.NEVER, reason, ev.now_s, ev.cause)]
            bisect.insort(self._pending, (job.order_key(), job.job_id))
            return []
        if isinstance(ev, (JobFinished, JobCancelled)):
            return self._end(ev.job_id, ev.now_s, ev.cause)
        if isinstance(ev, NodeCordoned | NodeUncordoned):
            fleet.set_schedulable(self._node(ev.node), isinstance(ev, NodeUncordoned))
            return []
        if isinstance(ev, GpuHealthChanged):
            fleet.set_gpu_health(self._node(ev.node), ev.gpu_index, ev.healthy)
            return []
        if isinstance(ev, Tick):
            return []
        raise TypeError(f"unknown event {ev!r}")

    def _node(self, name: str) -> int:
        try:
            return self.fleet.index[name]
        except KeyError:
            raise ValueError(f"unknown node {name!r}") from None

    def _end(self, job_id: str, now_s: float, cause: str) -> list[Action]:
        placement = self.running.pop(job_id, None)
        if placement is not None:
            release(self.fleet, placement)
            return [Release(job_id, now_s, cause)]
        job = self.jobs.get(job_id)
        if job is not None:
            i = bisect.bisect_left(self._pending, (job.order_key(), job_id))
            if i < len(self._pending) and self._pending[i][1] == job_id:
                del self._pending[i]
                return [Release(job_id, now_s, cause)]
        return []

    def _cycle(self, trigger: str) -> list[Action]:
        """One scheduling cycle; ``trigger`` names the events that started it (the actions'
        cause)."""
        actions: list[Action] = []
        failed: set[tuple[object, ...]] = set()
        keep: list[tuple[tuple[int, float, str], str]] = []
        for entry in self._pending:
            job = self.jobs[entry[1]]
            shape = (job.worker.key(), job.num_workers, job.topology)
            placement = None if shape in failed else self.placer.place(job)
            if placement is None:
                failed.add(shape)
                reason = "no node (set) has the free resources for the whole gang now"
                self.verdicts[job.job_id] = Verdict(Code.WAIT_CAPACITY, reason)
                if self.config.fail_fast:
                    actions.append(
                        Reject(job.job_id, Code.WAIT_CAPACITY, reason, self.now_s, trigger)
                    )
                else:
                    keep.append(entry)
                continue
            self.running[job.job_id] = placement
            self.verdicts[job.job_id] = Verdict(Code.FIT, "placed")
            actions.append(Launch(job.job_id, placement, self.now_s, trigger))
        self._pending = keep
        return actions


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
