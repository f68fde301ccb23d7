"""A long random run of the core: a seeded event stream, an independent model of what the core
must have done, and a checker of its state (``test_long_run.py`` drives it).

**The stream** (:class:`Stream`) runs over a heterogeneous fleet of 32 nodes (:data:`FLEET`:
8-GPU H100 nodes with two NVLink domains, 8-GPU A100 nodes with one, 4-GPU L4, 2- and 1-GPU T4
nodes with a domain per GPU, two CPU-only nodes, four racks; one GPU starts unhealthy). It
sends the events in groups (one ``handle`` call each, 1 to 19 events at one instant) drawn
from the state of the run: submissions of every shape (CPU-only, GPU-sharing, whole GPUs,
multi-GPU gangs ``any`` / ``same_node`` / ``same_nvlink`` / ``same_rack``, pinned GPU models,
a minimum GPU memory, priority classes, five teams, estimated durations or none, checkpoint
intervals or none; a few that can never fit and a few reusing a live job's id), finishes
(succeeded, failed), interruptions, cancels (of pending, running and unknown jobs), cordon,
uncordon, drain, node loss and return, operator GPU health marks, NVML telemetry (heat, drain
XIDs, harmless XIDs, ECC growth and resets, memory held by others) and ticks, with a ``Tick``
at ``next_wake_s()`` when one is due first. Submission weights fall as the queue grows, so
finishes and cancels keep it bounded; nodes come back more often the more are out.

**Churn** (quotas, priority classes, policies): the core has no event that changes its
configuration; the service adopts a new ``SchedulerConfig`` by restoring the core from its own
snapshot under it (``scheduler/runtime/recovery.py``, step 3). The stream does the same: it
runs in segments, and between two it takes a snapshot (``scheduler.core.snapshot.take``) and
restores it under the next segment's config (``restore``), drawn per segment: quotas (off,
or a ``"*"`` quota for every team plus per-model quotas for some, nominal, borrowing and
lending limits, cohorts; the teams stay the same five unless ``Churn.drop_teams``), priority
classes (values, fleet and team defaults), packing policy, queue order, backfill, preemption
and its depth, aging, fair-share half-life. Priority classes never reach the core: as in the service (``authz.py``) a job names
a class (or none) and is submitted with that class's value *under the segment's classes*, so
jobs queued or running across a class change keep the value they were submitted with.

**The model** (:class:`Model`) follows the stream and the actions on its own books (from the
``Node`` list, never from the core's arrays): what runs where, what is pending, node off
reasons, GPU marks (the rules of ``scheduler/core/health.py``: hot, drain XIDs, ECC growth,
operator marks, the all-clear of an uncordon), ECC baselines and memory held by others. For
every ``handle`` call it predicts the actions of each event in order (``Release`` of a
finished or cancelled live job, ``Preempt`` of every job on a drained or lost node in job id
order, ``Reject`` of a reused live id) and then checks each action of the cycle:

* a ``Launch`` is of a pending job, places exactly ``num_workers`` workers each with the
  job's CPU, memory, GPU count and milli-GPU, on existing distinct GPUs of allowed models with
  the minimum memory left after others' memory, on a node that is not cordoned, drained or
  lost, on GPUs healthy at that moment, within every node's CPU, memory and each GPU's 1000
  milli, as its topology says (one node; one node and one NVLink domain; one rack); and under
  quotas, with the launch counted, for every quota key it charges (its models and ``"*"``):
  ``used <= nominal + borrowing_limit``; if the team now borrows, the cohort's borrowing on
  that key is within what the other members lend (``min(lending_limit, unused nominal)``);
  the cohort's use is within its nominal total; a team naming models uses only those; a team
  with no quota starts nothing (a submission of it is refused);
* a cycle's ``Preempt`` happens only with preemption on, of a running job that did not start
  at this instant, for the ``Launch`` that follows it (its cause names that job), and is of a
  lower-priority job (or, under ``las``, an equal priority) of the same team when quotas are
  on, or of another team of the cohort that was borrowing; a ``PRIORITY`` reason names a lower
  priority and ``QUOTA_RECLAIM`` another team.

Quotas are checked at each launch, where the core promises them, and not on the state after a
call: a restore under smaller quotas keeps the jobs running past them (``snapshot.py``, step
4), and the lending bound can be crossed afterwards by a lender taking back its own nominal
quota. Likewise a job may keep running on a GPU that turned unhealthy or hot, or on a node
that was cordoned, after it started; only a drain or a node loss evacuates.

**The state check** (:func:`check_state`, every ``check_every`` events, and after each
restore) recomputes usage from ``ClusterState.running`` against the ``Node`` list: no GPU past
1000 milli, no node past its CPU or memory, every gang whole with the job's request per worker
and its topology, GPU models and hardware memory respected, no job on a drained or lost node
(a drain or loss evacuates; a cordon, an operator mark or a hot GPU leaves running work be:
``events.py``, ``health.py``), quota use as the placements charge it, and the core's own
``check_invariants()``. :meth:`Model.compare` then checks that the core agrees with the model
(running placements, pending set, off reasons, GPU health, foreign memory) and that every
running job started when its node and GPUs were fit.

**Determinism**: every call's actions go into a sha256 of their ``repr``; two runs of one seed
must give the same digest (``test_long_run.py`` reruns a prefix, also under another
``PYTHONHASHSEED``).
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
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
from scheduler.core.health import HealthRules
from scheduler.core.model import MILLI_PER_GPU, Gpu, Job, Node, Placement, Topology, WorkerRequest
from scheduler.core.outcomes import PreemptReason, ReleaseOutcome, RunOutcome
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.core.queueing.priority import PriorityClasses
from scheduler.core.queueing.quota import ANY_MODEL, Quota, QuotaConfig
from scheduler.core.snapshot import restore, take
from scheduler.core.state import ClusterState
from scheduler.core.verdict import Code
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import make_packing, make_queue

TEAMS = ("ads", "nlp", "rl", "speech", "vision")
MODELS = ("A100", "H100", "L4", "T4")
RULES = HealthRules()  # the core's default rules (CoreConfig.health); the model reads them
HARMLESS_XIDS = (13, 31, 43, 45)
DRAIN_XIDS = tuple(sorted(RULES.drain_xids))
KINDS = (
    "submit",
    "finish",
    "interrupt",
    "cancel",
    "node out",
    "node back",
    "gpu health",
    "telemetry",
    "tick",
)


def _node(
    name: str,
    rack: str,
    gpus: int,
    model: str,
    gpu_mib: int,
    per_domain: int,
    cpu_milli: int,
    memory_mib: int,
    sick: tuple[int, ...] = (),
) -> Node:
    return Node(
        name,
        cpu_milli,
        memory_mib,
        tuple(Gpu(model, gpu_mib, g // per_domain, g not in sick) for g in range(gpus)),
        (("rack", rack), ("zone", "z0")),
    )


def fleet() -> tuple[Node, ...]:
    """32 nodes in 4 racks: 6 H100x8 (NVLink 4+4), 6 A100x8 (one domain), 8 L4x4, 6 T4x2,
    4 T4x1 (a domain per GPU), 2 CPU-only; GPU 3 of ``a100-1`` starts unhealthy."""
    out: list[Node] = []
    for i in range(6):
        out.append(_node(f"h100-{i}", f"r{i % 4}", 8, "H100", 81_920, 4, 96_000, 786_432))
    for i in range(6):
        sick = (3,) if i == 1 else ()
        out.append(
            _node(f"a100-{i}", f"r{(i + 1) % 4}", 8, "A100", 40_960, 8, 64_000, 524_288, sick)
        )
    for i in range(8):
        out.append(_node(f"l4-{i}", f"r{i % 4}", 4, "L4", 24_576, 1, 48_000, 196_608))
    for i in range(6):
        out.append(_node(f"t4x2-{i}", f"r{(i + 2) % 4}", 2, "T4", 16_384, 1, 32_000, 131_072))
    for i in range(4):
        out.append(_node(f"t4x1-{i}", f"r{i}", 1, "T4", 16_384, 1, 16_000, 65_536))
    for i in range(2):
        out.append(_node(f"cpu-{i}", f"r{i * 2}", 0, "", 0, 1, 128_000, 524_288))
    return tuple(out)


FLEET = fleet()
TYPICAL = TypicalShapes.from_requests(
    [WorkerRequest(1000, 0, 1, 250), WorkerRequest(1000, 0, 1, 500), WorkerRequest(1000, 0, 1)]
    + [WorkerRequest(1000, 0, g) for g in (2, 4, 8)]
)
CTX = PolicyContext(seed=11, typical=TYPICAL)


# ------------------------------------------------------------------------------ segments
@dataclass(frozen=True, slots=True)
class Churn:
    """What a segment's policies are drawn from. The default packings are the fast ones;
    ``fgd``, ``frag_pack`` and ``gpu_clustering`` cost more a cycle (the short streams of
    ``test_long_run.py`` draw them too)."""

    packings: tuple[str, ...] = ("best_fit", "dot_product", "gpu_packing", "topology", "random")
    queues: tuple[str, ...] = ("priority", "fifo", "sjf", "las", "drf")
    backfills: tuple[Literal["none", "greedy", "easy"], ...] = ("easy", "greedy", "none")
    # chance that a team has no quota at all in a segment with quotas (0: every team has one;
    # see ``test_long_run.py`` for what the core does with a team dropped from the quotas)
    drop_teams: float = 0.0


def draw_quotas(rng: random.Random, drop_teams: float = 0.0) -> QuotaConfig | None:
    """Quotas for the five teams, or None (a quarter of segments): every team (but those
    dropped, each with chance ``drop_teams``) a ``"*"`` quota; some teams also per-model
    quotas (they may then use only those models); limits in whole or half GPUs, some
    unlimited; two cohorts or one or none."""
    if rng.random() < 0.25:
        return None
    quotas: list[Quota] = []
    for team in TEAMS:
        if drop_teams and rng.random() < drop_teams:
            continue
        nominal = rng.choice((0.0, 4.0, 12.0, 24.0, 40.0, 64.5))
        quotas.append(
            Quota(
                team,
                ANY_MODEL,
                nominal,
                rng.choice((None, 0.0, 8.0, 32.0)),
                rng.choice((None, 0.0, 6.5, 16.0)),
            )
        )
        if rng.random() < 0.35:
            for model in rng.sample(MODELS, rng.randint(1, 3)):
                quotas.append(
                    Quota(team, model, rng.choice((2.0, 8.0, 16.0, 30.0)), rng.choice((None, 4.0)))
                )
    teams = sorted({q.team for q in quotas})
    rng.shuffle(teams)
    split = rng.choice((0, 2, 3, 5))
    cohorts = [(t, "east") for t in teams[:split]] + [(t, "west") for t in teams[split:][:2]]
    return QuotaConfig(tuple(quotas), tuple(sorted(cohorts)))


def draw_classes(rng: random.Random) -> PriorityClasses:
    names = ("batch", "research", "production", "critical")
    values = dict(zip(names, sorted(rng.sample(range(-5, 1000), 4)), strict=True))
    if rng.random() < 0.3:  # two classes of equal value
        values["research"] = values["batch"]
    teams = {t: rng.choice(names) for t in TEAMS if rng.random() < 0.4}
    return PriorityClasses(values, teams, rng.choice((None, "batch", "research")))


def draw_config(rng: random.Random, churn: Churn, seed: int) -> SchedulerConfig:
    return SchedulerConfig(
        packing=rng.choice(churn.packings),
        queue=rng.choice(churn.queues),
        backfill=rng.choice(churn.backfills),
        preemption=rng.random() < 0.75,
        preemption_depth=rng.choice((1, 2, 4, 8)),
        aging_s=rng.choice((None, None, 600.0, 3600.0)),
        fair_share_half_life_s=rng.choice((None, 1800.0)),
        seed=seed,
        quotas=draw_quotas(rng, churn.drop_teams),
        priority_classes=draw_classes(rng),
    )


def adopt(core: ClusterState, sched: SchedulerConfig) -> ClusterState:
    """The core restored from its own snapshot under ``sched`` (recovery's step 3, with the
    packing context fragmentation-aware policies need)."""
    packing = make_packing(sched.packing, sched.context(CTX))
    snap = take(core)
    return restore(snap, packing, sched.core_config(), make_queue(sched.queue), sched.quotas)


# --------------------------------------------------------------------------------- model
@dataclass(slots=True)
class Running:
    job: Job
    placement: Placement
    call: int  # the handle call that launched it
    at_s: float


class Ids:
    """A list with O(1) add, remove and random pick (pick order depends on the run only)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.pos: dict[str, int] = {}

    def add(self, x: str) -> None:
        self.pos[x] = len(self.items)
        self.items.append(x)

    def remove(self, x: str) -> None:
        i = self.pos.pop(x)
        last = self.items.pop()
        if last != x:
            self.items[i] = last
            self.pos[last] = i

    def __contains__(self, x: object) -> bool:
        return x in self.pos

    def __len__(self) -> int:
        return len(self.items)

    def pick(self, rng: random.Random) -> str:
        return self.items[rng.randrange(len(self.items))]


class Violation(AssertionError):
    pass


class Model:
    """The run as it must be, on books of its own (see the module docstring)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = tuple(nodes)
        self.index = {n.name: i for i, n in enumerate(nodes)}
        self.rack = [n.label("rack") for n in nodes]
        self.cpu_used = [0] * len(nodes)
        self.mem_used = [0] * len(nodes)
        self.gpu_used = [[0] * len(n.gpus) for n in nodes]
        self.jobs: dict[str, Job] = {}  # live: pending or running
        self.pending = Ids()
        self.running: dict[str, Running] = {}
        self.running_ids = Ids()
        self.off: dict[str, set[str]] = {}
        self.off_since: dict[str, int] = {}  # node -> call since which it is off
        self.marks: dict[tuple[int, int], set[str]] = {}  # judged GPUs only
        self.ecc: dict[tuple[int, int], int] = {}
        self.foreign: dict[tuple[int, int], int] = {}
        self.bad_since: dict[tuple[int, int], int] = {}  # GPU -> call since it is unhealthy
        # milli-GPU per (team, model) and (team, "*") of the running jobs, from the Node list
        self.team_used: dict[tuple[str, str], int] = {}
        self.call = 0
        self.now_s = 0.0
        self.sched: SchedulerConfig = SchedulerConfig()
        self.stats: Counter[str] = Counter()

    # ---------------------------------------------------------------- views
    def healthy(self, n: int, g: int) -> bool:
        held = self.marks.get((n, g))
        return self.nodes[n].gpus[g].healthy if held is None else not held

    # ------------------------------------------------------------- mutators
    def _take(self, r: Running, sign: int) -> None:
        for w in r.placement.workers:
            n = self.index[w.node]
            self.cpu_used[n] += sign * w.cpu_milli
            self.mem_used[n] += sign * w.memory_mib
            for g in w.gpu_indices:
                self.gpu_used[n][g] += sign * w.gpu_milli
        _charge(self.team_used, r.job.team, self.nodes, r.placement, sign)

    def _stop(self, job_id: str, requeue: bool) -> Running:
        r = self.running.pop(job_id)
        self.running_ids.remove(job_id)
        self._take(r, -1)
        if requeue:
            self.pending.add(job_id)
        else:
            del self.jobs[job_id]
        return r

    def _health_changed(self, n: int, g: int, was: bool) -> None:
        now = self.healthy(n, g)
        if was and not now:
            self.bad_since[(n, g)] = self.call
        elif now and not was:
            self.bad_since.pop((n, g), None)

    def _set_off(self, node: str, why: str, on: bool) -> None:
        held = self.off.setdefault(node, set())
        before = bool(held)
        if on:
            held.add(why)
        else:
            held.discard(why)
        if held and not before:
            self.off_since[node] = self.call
        elif not held:
            self.off_since.pop(node, None)

    # --------------------------------------------------------------- replay
    def replay(self, events: Sequence[Event], actions: Sequence[Action]) -> None:
        """Follow one ``handle(*events)`` call that answered ``actions``; raise
        :class:`Violation` at the first action that is not what the core promises."""
        self.call += 1
        it = _Cursor(actions)
        for ev in events:
            self.now_s = ev.now_s
            self._event(ev, it)
        victims: list[Preempt] = []
        borrowing: set[str] = set()
        while it.more():
            a = it.next()
            if isinstance(a, Launch):
                self._launch(a, victims, borrowing)
                victims = []
            elif isinstance(a, Preempt):
                if not victims:
                    borrowing = self._borrowing()
                self._victim(a)
                victims.append(a)
            else:
                raise Violation(f"unexpected action in the cycle: {a!r}")
        if victims:
            raise Violation(f"preempted {[v.job_id for v in victims]} for no launch")

    def _event(self, ev: Event, it: _Cursor) -> None:
        if isinstance(ev, JobSubmitted):
            job = ev.job
            if job.job_id in self.jobs:
                it.expect(Reject, job.job_id, "a reused live job id")
                self.stats["reject duplicate"] += 1
                return
            rej = it.take_if(Reject, job.job_id)
            if rej is not None:
                if rej.code is not Code.NEVER:
                    raise Violation(f"{rej!r}: a submission is rejected only as never fitting")
                self.stats["reject never"] += 1
                return
            self.jobs[job.job_id] = job
            self.pending.add(job.job_id)
        elif isinstance(ev, JobFinished | JobCancelled):
            outcome = (
                ReleaseOutcome.CANCELLED
                if isinstance(ev, JobCancelled)
                else ReleaseOutcome(ev.outcome.value)
            )
            if ev.job_id in self.running:
                self._release(it.expect(Release, ev.job_id, "the end of a running job"), outcome)
                self._stop(ev.job_id, requeue=False)
            elif ev.job_id in self.pending:
                self._release(it.expect(Release, ev.job_id, "the end of a pending job"), outcome)
                self.pending.remove(ev.job_id)
                del self.jobs[ev.job_id]
        elif isinstance(ev, JobInterrupted):
            if ev.job_id in self.running:
                p = it.expect(Preempt, ev.job_id, "an interrupted run")
                if p.reason is not PreemptReason.INTERRUPTED:
                    raise Violation(f"{p!r}: an interruption's reason is interrupted")
                self._stop(ev.job_id, requeue=True)
        elif isinstance(ev, NodeCordoned):
            self._set_off(ev.node, "cordon", True)
        elif isinstance(ev, NodeUncordoned):
            n = self.index[ev.node]
            for g in range(len(self.nodes[n].gpus)):
                held = self.marks.get((n, g))
                if held is not None:
                    was = not held
                    held.intersection_update(("hot",))
                    self._health_changed(n, g, was)
            self._set_off(ev.node, "cordon", False)
            self._set_off(ev.node, "drain", False)
        elif isinstance(ev, NodeDrained):
            self._set_off(ev.node, "drain", True)
            self._evacuate(ev.node, PreemptReason.DRAIN, it)
        elif isinstance(ev, NodeLost):
            self._set_off(ev.node, "lost", True)
            self._evacuate(ev.node, PreemptReason.NODE_LOST, it)
        elif isinstance(ev, NodeJoined):
            self._set_off(ev.node, "lost", False)
        elif isinstance(ev, GpuHealthChanged):
            n = self.index[ev.node]
            was = self.healthy(n, ev.gpu_index)
            held = self.marks.setdefault((n, ev.gpu_index), set())
            if ev.healthy:
                held.clear()
            else:
                held.add("operator")
            self._health_changed(n, ev.gpu_index, was)
        elif isinstance(ev, GpuTelemetry):
            self._telemetry(ev, it)
        elif not isinstance(ev, Tick):
            raise TypeError(f"unknown event {ev!r}")

    def _telemetry(self, ev: GpuTelemetry, it: _Cursor) -> None:
        n, g = self.index[ev.node], ev.gpu_index
        key = (n, g)
        was = self.healthy(n, g)
        held = self.marks.setdefault(key, set())
        if ev.temperature_c >= RULES.max_temperature_c:
            held.add("hot")
        elif ev.temperature_c <= RULES.max_temperature_c - RULES.cool_down_c:
            held.discard("hot")
        drain = False
        for code in set(ev.xids) & RULES.drain_xids:
            held.add(f"xid {code}")
            drain = True
        if ev.ecc_uncorrected > self.ecc.get(key, 0):
            held.add("ecc")
            drain = True
        self.ecc[key] = ev.ecc_uncorrected
        if self.gpu_used[n][g] == 0:
            self.foreign[key] = ev.memory_used_mib
        self._health_changed(n, g, was)
        if drain:
            self.stats["telemetry drain"] += 1
            self._set_off(ev.node, "drain", True)
            self._evacuate(ev.node, PreemptReason.DRAIN, it)

    def _evacuate(self, node: str, reason: PreemptReason, it: _Cursor) -> None:
        on = sorted(j for j, r in self.running.items() if node in r.placement.nodes)
        for job_id in on:
            p = it.expect(Preempt, job_id, f"evacuating {node}")
            if p.reason is not reason:
                raise Violation(f"{p!r}: evacuating {node} gives reason {reason}")
            self._stop(job_id, requeue=True)
            self.stats[f"preempt {reason.value}"] += 1

    @staticmethod
    def _release(a: Release, outcome: ReleaseOutcome) -> None:
        if a.outcome is not outcome:
            raise Violation(f"{a!r}: expected outcome {outcome}")

    def _borrowing(self) -> set[str]:
        quotas = self.sched.quotas
        if quotas is None:
            return set()
        used = self.team_used
        return {
            q.team
            for q in quotas.quotas
            if used.get((q.team, q.gpu_model), 0) > q.nominal_gpus * MILLI_PER_GPU
        }

    def _victim(self, a: Preempt) -> None:
        r = self.running.get(a.job_id)
        if r is None:
            raise Violation(f"{a!r}: preempts a job that is not running")
        if not self.sched.preemption:
            raise Violation(f"{a!r}: preemption is off")
        if r.at_s >= a.now_s:
            raise Violation(f"{a!r}: the job started at this instant ({r.at_s}s)")
        self._stop(a.job_id, requeue=True)

    def _launch(self, a: Launch, victims: list[Preempt], borrowing: set[str]) -> None:
        job_id = a.job_id
        job = self.jobs.get(job_id)
        if job is None or job_id not in self.pending:
            raise Violation(f"launch of {job_id}, which is not pending")
        for v in victims:
            self._check_victim(v, job, borrowing)
        p = a.placement
        errors = _placement_errors(job, p, self.nodes, self.index, self.rack)
        if errors:
            raise Violation(f"launch of {job_id}: {'; '.join(errors)} in {a!r}")
        sched = self.sched
        for w in p.workers:
            n = self.index[w.node]
            if self.off.get(w.node):
                errors.append(f"worker on {w.node}, which is {sorted(self.off[w.node])}")
            if self.cpu_used[n] + w.cpu_milli > self.nodes[n].cpu_milli:
                errors.append(f"CPU of {w.node} over-allocated")
            if self.mem_used[n] + w.memory_mib > self.nodes[n].memory_mib:
                errors.append(f"memory of {w.node} over-allocated")
            self.cpu_used[n] += w.cpu_milli
            self.mem_used[n] += w.memory_mib
            for g in w.gpu_indices:
                if not self.healthy(n, g):
                    errors.append(f"GPU {g} of {w.node} is unhealthy {self.marks.get((n, g))}")
                need = job.worker.min_gpu_memory_mib
                left = self.nodes[n].gpus[g].memory_mib - self.foreign.get((n, g), 0)
                if need and left < need:
                    errors.append(f"GPU {g} of {w.node} has {left} MiB not held by others < {need}")
                if self.gpu_used[n][g] + w.gpu_milli > MILLI_PER_GPU:
                    errors.append(f"GPU {g} of {w.node} over-allocated")
                self.gpu_used[n][g] += w.gpu_milli
        self.pending.remove(job_id)
        self.running[job_id] = Running(job, p, self.call, a.now_s)
        self.running_ids.add(job_id)
        _charge(self.team_used, job.team, self.nodes, p)
        if sched.quotas is not None and job.team not in sched.quotas.teams:
            errors.append(f"team {job.team} has no quota (a submission of it is refused)")
        elif sched.quotas is not None and job.worker.gpus:
            errors += _quota_errors(sched.quotas, job, p, self.nodes, self.team_used)
        if errors:
            raise Violation(f"launch of {job_id}: {'; '.join(errors)} in {a!r}")
        self.stats["launch"] += 1
        self.stats[f"launch {job.topology.value} x{job.num_workers > 1}"] += 1
        if victims:
            self.stats["launch after preempting"] += 1
        if sched.quotas is not None and any(
            q.team == job.team
            and self.team_used.get((q.team, q.gpu_model), 0) > q.nominal_gpus * 1000
            for q in sched.quotas.quotas
        ):
            self.stats["launch borrowing"] += 1

    def _check_victim(self, v: Preempt, job: Job, borrowing: set[str]) -> None:
        victim = self.jobs[v.job_id]
        if v.cause != f"preempted for {job.job_id}":
            raise Violation(f"{v!r}: not for {job.job_id}, which it precedes")
        quotas = self.sched.quotas
        cohort = dict(quotas.cohorts) if quotas is not None else {}
        lender = (
            quotas is not None
            and victim.team != job.team
            and victim.team in borrowing
            and cohort.get(job.team) is not None
            and cohort.get(victim.team) == cohort.get(job.team)
        )
        lower = victim.priority < job.priority or (
            self.sched.queue == "las" and victim.priority == job.priority
        )
        if not lender and not (lower and (quotas is None or victim.team == job.team)):
            raise Violation(
                f"{v!r}: {v.job_id} ({victim.team}, priority {victim.priority}) is no victim "
                f"for {job.job_id} ({job.team}, priority {job.priority})"
            )
        if v.reason is PreemptReason.PRIORITY and not victim.priority < job.priority:
            raise Violation(f"{v!r}: reason priority, but {victim.priority} >= {job.priority}")
        if v.reason is PreemptReason.QUOTA_RECLAIM and victim.team == job.team:
            raise Violation(f"{v!r}: reason quota reclaim within team {job.team}")
        self.stats[f"preempt {v.reason.value}"] += 1

    # ------------------------------------------------------------- checking
    def compare(self, core: ClusterState) -> list[str]:
        """Where the core's state differs from the model's, or a running job started when
        its node or a GPU of it was already out."""
        errors: list[str] = []
        if core.running.keys() != self.running.keys():
            errors.append(
                f"running: core only {sorted(core.running.keys() - self.running.keys())[:5]}, "
                f"model only {sorted(self.running.keys() - core.running.keys())[:5]}"
            )
        for job_id, r in self.running.items():
            if core.running.get(job_id, r.placement) != r.placement:
                errors.append(f"{job_id}: the core's placement is not the one launched")
            for w in r.placement.workers:
                n = self.index[w.node]
                since = self.off_since.get(w.node)
                if since is not None and r.call >= since:
                    errors.append(f"{job_id} started on {w.node} while it was off")
                if "drain" in self.off.get(w.node, ()) or "lost" in self.off.get(w.node, ()):
                    errors.append(f"{job_id} still runs on {w.node} {sorted(self.off[w.node])}")
                for g in w.gpu_indices:
                    bad = self.bad_since.get((n, g))
                    if bad is not None and r.call >= bad:
                        errors.append(f"{job_id} started on unhealthy GPU {g} of {w.node}")
        pending = set(core.pending)
        if pending != self.pending.pos.keys():
            errors.append(
                f"pending: core only {sorted(pending - self.pending.pos.keys())[:5]}, "
                f"model only {sorted(self.pending.pos.keys() - pending)[:5]}"
            )
        core_off = {n: set(s) for n, s in core.off.items() if s}
        mine = {n: s for n, s in self.off.items() if s}
        if core_off != mine:
            errors.append(f"off reasons: core {core_off}, model {mine}")
        fleet = core.fleet
        for n, node in enumerate(self.nodes):
            for g in range(len(node.gpus)):
                if bool(fleet.gpu_healthy[n, g]) != self.healthy(n, g):
                    errors.append(
                        f"health of GPU {g} of {node.name}: core {fleet.gpu_healthy[n, g]}"
                    )
                if int(fleet.gpu_mem_foreign_mib[n, g]) != self.foreign.get((n, g), 0):
                    errors.append(f"foreign memory of GPU {g} of {node.name} differs")
        return errors


def _charge(
    out: dict[tuple[str, str], int],
    team: str,
    nodes: Sequence[Node],
    p: Placement,
    sign: int = 1,
) -> None:
    """Add (or take back) what ``p`` charges ``team`` per GPU model and in all, dropping
    zeros."""
    for w in p.workers:
        if not w.gpu_indices or not 0 <= w.node_index < len(nodes):
            continue
        node = nodes[w.node_index]
        for g in w.gpu_indices:
            if not 0 <= g < len(node.gpus):
                continue  # a GPU that does not exist: _placement_errors says so
            for key in ((team, node.gpus[g].model), (team, ANY_MODEL)):
                left = out.get(key, 0) + sign * w.gpu_milli
                if left:
                    out[key] = left
                else:
                    del out[key]


def _quota_errors(
    quotas: QuotaConfig,
    job: Job,
    p: Placement,
    nodes: Sequence[Node],
    used: dict[tuple[str, str], int],
) -> list[str]:
    """What the launch of ``job`` at ``p`` (counted in ``used``) broke of its team's quotas."""
    errors: list[str] = []
    team = job.team
    book = {(q.team, q.gpu_model): q for q in quotas.quotas}
    cohort = dict(quotas.cohorts)
    members = [t for t, c in quotas.cohorts if c == cohort.get(team)] if team in cohort else [team]
    named = [m for (t, m) in book if t == team and m != ANY_MODEL]
    charged = {ANY_MODEL} | {
        nodes[w.node_index].gpus[g].model for w in p.workers for g in w.gpu_indices
    }
    if named and not charged - {ANY_MODEL} <= set(named):
        errors.append(f"team {team} may use only {named}, got {sorted(charged)}")

    def nominal(t: str, k: str) -> float:
        q = book.get((t, k))
        return 0.0 if q is None else q.nominal_gpus * MILLI_PER_GPU

    def borrowed(t: str, k: str) -> float:
        return max(0.0, used.get((t, k), 0) - nominal(t, k))

    for key in sorted(charged):
        q = book.get((team, key))
        if q is None:
            continue
        mine = used.get((team, key), 0)
        limit = math.inf if q.borrowing_limit_gpus is None else q.borrowing_limit_gpus * 1000
        if mine > nominal(team, key) + limit:
            errors.append(f"{team}/{key}: uses {mine} > nominal {q.nominal_gpus} + borrowing")
        if borrowed(team, key) > 0:
            others = [o for o in members if o != team and (o, key) in book]
            lent = 0.0
            for o in others:
                ll = book[(o, key)].lending_limit_gpus
                lend = math.inf if ll is None else ll * MILLI_PER_GPU
                lent += min(lend, max(0.0, nominal(o, key) - used.get((o, key), 0)))
            taken = borrowed(team, key) + sum(borrowed(o, key) for o in others)
            if taken > lent:
                errors.append(f"{team}/{key}: cohort borrows {taken} > {lent} lent")
        if team in cohort:
            total = sum(used.get((m, key), 0) for m in members)
            if total > sum(nominal(m, key) for m in members):
                errors.append(f"{team}/{key}: cohort {cohort[team]} uses {total} > its nominal")
    return errors


def _placement_errors(
    job: Job,
    p: Placement,
    nodes: Sequence[Node],
    index: dict[str, int],
    rack: Sequence[str],
) -> list[str]:
    """What of ``p`` does not fit ``job``'s gang, request and topology on ``nodes``."""
    errors: list[str] = []
    w0 = job.worker
    if p.job_id != job.job_id:
        errors.append(f"placement of {p.job_id}")
    if len(p.workers) != job.num_workers:
        errors.append(f"{len(p.workers)} of {job.num_workers} workers placed (gang broken)")
    domains: set[int] = set()
    for w in p.workers:
        n = index.get(w.node)
        if n is None or n != w.node_index:
            errors.append(f"worker on unknown node {w.node} (index {w.node_index})")
            continue
        node = nodes[n]
        gpu_milli = w0.gpu_milli if w0.gpus else 0
        if (w.cpu_milli, w.memory_mib, w.gpu_milli) != (w0.cpu_milli, w0.memory_mib, gpu_milli):
            errors.append(f"worker on {w.node} takes {w}, the job asks {w0}")
        if len(w.gpu_indices) != w0.gpus or len(set(w.gpu_indices)) != len(w.gpu_indices):
            errors.append(f"worker on {w.node} has GPUs {w.gpu_indices}, wants {w0.gpus}")
        for g in w.gpu_indices:
            if not 0 <= g < len(node.gpus):
                errors.append(f"GPU {g} does not exist on {w.node}")
                continue
            gpu = node.gpus[g]
            if w0.gpu_models and gpu.model not in w0.gpu_models:
                errors.append(f"GPU {g} of {w.node} is {gpu.model}, not of {w0.gpu_models}")
            if gpu.memory_mib < w0.min_gpu_memory_mib:
                errors.append(
                    f"GPU {g} of {w.node} has {gpu.memory_mib} MiB < {w0.min_gpu_memory_mib}"
                )
            domains.add(gpu.nvlink_domain)
    names = {w.node for w in p.workers}
    if job.on_one_node and len(names) > 1:
        errors.append(f"{job.topology.value} gang on {sorted(names)}")
    if job.topology is Topology.SAME_NVLINK and len(domains) > 1:
        errors.append(f"same_nvlink gang over NVLink domains {sorted(domains)}")
    if job.topology is Topology.SAME_RACK:
        racks = {rack[index[x]] for x in names if x in index}
        if len(racks) > 1:
            errors.append(f"same_rack gang over racks {sorted(racks)}")
    return errors


def check_state(core: ClusterState, nodes: Sequence[Node]) -> list[str]:
    """The core's running set recomputed against the ``Node`` list (not the core's arrays):
    over-allocation, gangs, requests, topology, no job on a drained or lost node, the quota
    use its placements charge; then the core's own ``check_invariants()``."""
    errors: list[str] = []
    index = {n.name: i for i, n in enumerate(nodes)}
    rack = [n.label("rack") for n in nodes]
    cpu = [0] * len(nodes)
    mem = [0] * len(nodes)
    gpu = [[0] * len(n.gpus) for n in nodes]
    used: dict[tuple[str, str], int] = {}
    for job_id in sorted(core.running):
        p = core.running[job_id]
        job = core.jobs.get(job_id)
        if job is None:
            errors.append(f"{job_id} runs but is unknown")
            continue
        errors += [f"{job_id}: {e}" for e in _placement_errors(job, p, nodes, index, rack)]
        for w in p.workers:
            n = index.get(w.node)
            if n is None:
                continue
            off = core.off.get(w.node, set())
            if "drain" in off or "lost" in off:
                errors.append(f"{job_id} runs on {w.node}, which is {sorted(off)}")
            cpu[n] += w.cpu_milli
            mem[n] += w.memory_mib
            for g in w.gpu_indices:
                if 0 <= g < len(gpu[n]):
                    gpu[n][g] += w.gpu_milli
        _charge(used, job.team, nodes, p)
    for n, node in enumerate(nodes):
        if cpu[n] > node.cpu_milli:
            errors.append(f"CPU of {node.name} over-allocated: {cpu[n]} > {node.cpu_milli}")
        if mem[n] > node.memory_mib:
            errors.append(f"memory of {node.name} over-allocated: {mem[n]} > {node.memory_mib}")
        for g, milli in enumerate(gpu[n]):
            if milli > MILLI_PER_GPU:
                errors.append(f"GPU {g} of {node.name} over-allocated: {milli} milli")
    if core.quota is not None:
        theirs = {k: v for k, v in core.quota.used.items() if v}
        if theirs != used:
            errors.append(
                f"quota use: core {sorted(theirs.items())}, placements {sorted(used.items())}"
            )
    errors += [f"check_invariants: {e}" for e in core.check_invariants()]
    return errors


A = TypeVar("A", Launch, Preempt, Reject, Release)


class _Cursor:
    """The actions of one call, taken in order by what each event must have produced."""

    def __init__(self, actions: Sequence[Action]) -> None:
        self.actions = actions
        self.i = 0

    def more(self) -> bool:
        return self.i < len(self.actions)

    def next(self) -> Action:
        self.i += 1
        return self.actions[self.i - 1]

    def take_if(self, kind: type[A], job_id: str) -> A | None:
        if self.more():
            a = self.actions[self.i]
            if isinstance(a, kind) and a.job_id == job_id:
                self.i += 1
                return a
        return None

    def expect(self, kind: type[A], job_id: str, why: str) -> A:
        a = self.take_if(kind, job_id)
        if a is None:
            got = self.actions[self.i] if self.more() else "nothing"
            raise Violation(f"{why}: expected {kind.__name__} of {job_id}, got {got!r}")
        return a


# -------------------------------------------------------------------------------- stream
class Stream:
    """The events of one seed, drawn from the state of the run (``Model``)."""

    def __init__(self, rng: random.Random, model: Model) -> None:
        self.rng = rng
        self.m = model
        self.now_s = 0.0
        self.serial = 0
        self.names = [n.name for n in model.nodes]
        self.gpu_nodes = [n.name for n in model.nodes if n.gpus]
        self.group_max = 19
        self.queue_target = 8

    def group(self, wake_s: float) -> list[Event]:
        """The next ``handle`` call's events: a ``Tick`` at ``wake_s`` if that comes first,
        else 1 to ``group_max`` events at the next instant, their kinds weighted by the state
        before the group (events of one group may then race: a job finished twice, a job
        cancelled after it finished; the core must take those too)."""
        m, rng = self.m, self.rng
        step = rng.expovariate(1 / 20.0)
        if wake_s < self.now_s + step:  # the core asked to be woken first
            self.now_s = max(self.now_s, wake_s)
            return [Tick(self.now_s, "wake")]
        self.now_s += step
        waiting, running, q = len(m.pending), len(m.running_ids), self.queue_target
        out = sum(1 for held in m.off.values() if held)
        weights = (
            30.0 if waiting < q else 8.0 if waiting < 3 * q else 1.0,  # submit
            0.0 if not running else 14.0 if waiting < 3 * q else 26.0,  # finish
            2.0 if running else 0.0,  # interrupt
            4.0 if waiting < 2 * q else 14.0,  # cancel
            0.4 if out < 4 else 0.05,  # cordon, drain, lose
            1.5 + out,  # uncordon, join
            1.5,  # GPU health
            14.0,  # telemetry
            2.0,  # tick
        )
        kinds = rng.choices(KINDS, weights, k=rng.randint(1, self.group_max))
        m.stats.update(kinds)
        return [self.event(kind) for kind in kinds]

    def event(self, kind: str) -> Event:
        m, rng, t = self.m, self.rng, self.now_s
        if kind == "submit":
            return JobSubmitted(t, self.job())
        if kind in ("finish", "interrupt"):
            job_id = m.running_ids.pick(rng)
            if kind == "interrupt":
                return JobInterrupted(t, job_id)
            outcome = RunOutcome.FAILED if rng.random() < 0.1 else RunOutcome.SUCCEEDED
            return JobFinished(t, job_id, outcome=outcome)
        if kind == "cancel":
            r = rng.random()
            if r < 0.6 and len(m.pending):
                return JobCancelled(t, m.pending.pick(rng))
            if r < 0.9 and len(m.running_ids):
                return JobCancelled(t, m.running_ids.pick(rng))
            return JobCancelled(t, f"gone-{rng.randrange(10**6)}")
        if kind == "node out":
            node = rng.choice(self.names)
            return rng.choice((NodeCordoned, NodeDrained, NodeLost))(t, node)
        if kind == "node back":
            off = sorted(n for n, s in m.off.items() if s)
            node = rng.choice(off) if off and rng.random() < 0.9 else rng.choice(self.names)
            if "lost" in m.off.get(node, ()) and rng.random() < 0.8:
                return NodeJoined(t, node)
            return NodeUncordoned(t, node)
        if kind == "gpu health":
            node, g = self.gpu()
            return GpuHealthChanged(t, node, g, healthy=rng.random() < 0.55)
        if kind == "telemetry":
            return self.telemetry()
        return Tick(t)

    def gpu(self) -> tuple[str, int]:
        node = self.rng.choice(self.gpu_nodes)
        return node, self.rng.randrange(len(self.m.nodes[self.m.index[node]].gpus))

    def telemetry(self) -> GpuTelemetry:
        rng, m = self.rng, self.m
        node, g = self.gpu()
        key = (m.index[node], g)
        ecc = m.ecc.get(key, 0)
        r = rng.random()
        xids: tuple[int, ...] = ()
        if r < 0.004:
            ecc += 1  # an uncorrected error: drain
        elif r < 0.01:
            ecc = 0  # a reset: the new baseline
        elif r < 0.014:
            xids = (rng.choice(DRAIN_XIDS),)
        elif r < 0.04:
            xids = (rng.choice(HARMLESS_XIDS),)
        hot = rng.random() < 0.03
        temp = rng.uniform(87, 95) if hot else rng.uniform(35, 86)
        foreign = rng.choice((0, 0, 0, 0, 512, 4096, 30_000))
        total = m.nodes[key[0]].gpus[g].memory_mib
        return GpuTelemetry(
            self.now_s,
            node,
            g,
            min(foreign, total),
            total,
            rng.uniform(0, 100),
            temp,
            250.0,
            ecc,
            xids,
        )

    def job(self) -> Job:
        rng, m = self.rng, self.m
        r = rng.random()
        if r < 0.005 and m.jobs:  # a live job's id again
            return m.jobs[m.pending.pick(rng) if len(m.pending) else m.running_ids.pick(rng)]
        self.serial += 1
        job_id = f"j{self.serial:07d}"
        shape = rng.random()
        workers = rng.choice((1, 1, 1, 2, 2, 3, 4))
        models: tuple[str, ...] = ()
        if rng.random() < 0.3:
            models = tuple(sorted(rng.sample(MODELS, rng.randint(1, 2))))
        min_mib = rng.choice((0,) * 8 + (20_000, 40_000))
        topo = Topology.ANY
        if shape < 0.1:  # CPU-only
            gpus, milli, models, min_mib = 0, MILLI_PER_GPU, (), 0
            topo = rng.choice((Topology.ANY, Topology.SAME_NODE, Topology.SAME_RACK))
        elif shape < 0.35:  # sharing one GPU per worker
            gpus, milli = 1, rng.choice((100, 200, 250, 300, 500, 750))
            topo = rng.choice((Topology.ANY, Topology.SAME_RACK))
        elif shape < 0.6:
            gpus, milli = 1, MILLI_PER_GPU
            topo = rng.choice(tuple(Topology))
        else:
            gpus, milli = rng.choice((2, 2, 4, 4, 8)), MILLI_PER_GPU
            topo = rng.choice(tuple(Topology))
            if gpus == 8:
                workers = min(workers, 2)
        if rng.random() < 0.01:  # never fits anywhere
            models = ("B200",) if rng.random() < 0.5 else models
            gpus, milli, workers, topo = 8, MILLI_PER_GPU, 3, Topology.SAME_NODE
        classes = m.sched.priority_classes or PriorityClasses()
        team = rng.choice(TEAMS)
        name = rng.choice((None, *sorted(classes.values))) if classes.values else None
        est = rng.choice((None, 60.0, 600.0, 3600.0, rng.uniform(10, 20_000)))
        return Job(
            job_id,
            WorkerRequest(
                rng.choice((250, 1000, 4000, 8000, 16_000)),
                rng.choice((512, 4096, 32_768, 65_536, 131_072)),
                gpus,
                milli,
                models,
                min_mib,
            ),
            num_workers=workers,
            team=team,
            priority=classes.value(team, name),
            submitted_at_s=self.now_s,
            topology=topo,
            estimated_duration_s=est,
            checkpoint_interval_s=rng.choice((None, 300.0, 1800.0)),
        )


# ----------------------------------------------------------------------------------- run
@dataclass(slots=True)
class Result:
    seed: int
    events: int = 0
    calls: int = 0
    segments: int = 0
    digest: str = ""
    prefix_digest: str = ""  # after the first ``prefix_events`` events (at a call boundary)
    violation: str | None = None
    stats: Counter[str] = field(default_factory=Counter)
    max_pending: int = 0
    max_running: int = 0


def run(
    seed: int,
    events: int,
    *,
    segment_events: int = 100_000,
    check_every: int = 1000,
    churn: Churn | None = None,
    prefix_events: int = 0,
    nodes: tuple[Node, ...] = FLEET,
) -> Result:
    """Drive ``events`` events of ``seed`` through the core; stop at the first violation
    (``Result.violation`` says what, at which event and call)."""
    churn = churn or Churn()
    rng = random.Random(seed)
    model = Model(nodes)
    stream = Stream(rng, model)
    res = Result(seed, stats=model.stats)
    digest = hashlib.sha256()
    model.sched = draw_config(rng, churn, seed)
    core = build_core(model.sched, nodes, CTX)
    next_segment = segment_events
    next_check = check_every
    res.segments = 1
    while res.events < events:
        if res.events >= next_segment:
            model.sched = draw_config(rng, churn, seed)
            core = adopt(core, model.sched)
            next_segment += segment_events
            res.segments += 1
            if _failed(res, model.compare(core) + check_state(core, nodes), "after restore"):
                break
        group = stream.group(core.next_wake_s())
        try:
            actions = core.handle(*group)
        except Exception as e:  # the core must answer every event of the stream
            res.violation = f"seed {seed} event {res.events} call {res.calls}: raised {e!r}"
            break
        res.events += len(group)
        res.calls += 1
        digest.update(repr(actions).encode())
        if prefix_events and not res.prefix_digest and res.events >= prefix_events:
            res.prefix_digest = digest.hexdigest()
        try:
            model.replay(group, actions)
        except Violation as e:
            res.violation = f"seed {seed} event {res.events} call {res.calls}: {e}"
            break
        res.max_pending = max(res.max_pending, len(model.pending))
        res.max_running = max(res.max_running, len(model.running))
        if res.events >= next_check or res.events >= events:
            next_check += check_every
            if _failed(res, model.compare(core) + check_state(core, nodes), "state"):
                break
    res.digest = digest.hexdigest()
    return res


def _failed(res: Result, errors: list[str], what: str) -> bool:
    if errors:
        res.violation = (
            f"seed {res.seed} event {res.events} call {res.calls} ({what}): "
            + "; ".join(errors[:5])
        )
    return bool(errors)


if __name__ == "__main__":  # python -m tests.property.long_run SEED EVENTS [PREFIX]
    args = [int(a) for a in sys.argv[1:]]
    r = run(args[0], args[1], prefix_events=args[2] if len(args) > 2 else 0)
    print(r.prefix_digest or r.digest, r.violation or "ok", r.events, r.calls)
