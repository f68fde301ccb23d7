"""A snapshot of the scheduling core: its facts as pure data, and a core rebuilt from them.

"State, not replay" (DESIGN.md): the live service restarts from the last snapshot plus the
events after it. A :class:`CoreSnapshot` holds what the core *knows* (live jobs, where they run,
what they did so far, node and GPU health, random streams, the clock), never what it derives
(quota charges, team usage, estimated ends, queue keys, per-shape caches); :func:`restore`
rebuilds those from the facts under today's fleet and policies.

The contract (``tests/property/test_snapshot.py``): on the same nodes and config,
``restore(take(s))`` answers every further event exactly as ``s`` does (same actions, same
``pending_info()``), and ``take(restore(take(s))) == take(s)``. Jobs that finished, were
cancelled or were rejected are history, kept by the shell, not here: a restored core does not
know their ids (a resubmitted id is the shell's to refuse).

Steps of :func:`restore` (numbered as the code below):
 1. A fresh :class:`ClusterState` on ``nodes`` (default: the snapshot's) with today's
    policies, config and quotas; its clock, cycle count and random streams set as they were.
 2. Node and GPU facts: off-reasons (cordon, drain, lost), the health book (its marks set the
    fleet's GPU health), memory held by others. Facts about a node that is gone are dropped
    (nothing of ours runs there, or step 4 fails); a GPU index the node lacks is a mismatch.
 3. Per-job counters (progress, attained service, preemptions, first reservation, and the
    starvation-promotion facts: ``levels.py``).
 4. Running jobs take their placements again (node indices re-read by node name); quota
    charges and team usage follow, even past a quota that shrank since.
 5. Pending jobs go back to their lane (front or normal), keyed by today's queue order.
    Wake-ups (demotion crossings, promotion due times) are derived from steps 3-5, not kept.
 6. Verdicts, the strict-order blocker, fair-share averages, and the EASY shadow time when
    it was current (kept only on the same nodes: it is a fact about that fleet).
 7. The invariant checker must find nothing; else :class:`SnapshotMismatch`.

``snapshot.py`` is the core's own serializer: it reads and sets some of ``ClusterState``'s
private facts by name (queues, verdict cycles, fair-share averages, the shadow memo), so a
change to those must change this file too (the property test catches a miss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from typing import Any

import numpy as np

from scheduler.core.model import Job, Node, Placement
from scheduler.core.placement.fleet import Fleet
from scheduler.core.policy import (
    AdmissionPolicy,
    PackingPolicy,
    PreemptionPolicy,
    QueueOrderPolicy,
)
from scheduler.core.queueing.quota import QuotaConfig
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.core.verdict import Verdict

FORMAT = 1  # bump when a field changes meaning; restore() refuses other formats


class SnapshotMismatch(ValueError):
    """The snapshot does not fit the fleet it is restored onto (a running job on a node or GPU
    that is not there, or more than a node holds); the message names the job or node."""


class Lane(StrEnum):
    """A pending job's lane: ``front`` (past the aging bound, or holding the EASY
    reservation; oldest first) goes before every ``normal`` one (the queue order's)."""

    FRONT = "front"
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class RngState:
    """A numpy PCG64 generator's state, exactly (``bit_generator.state``)."""

    bit_generator: str
    state: int
    inc: int
    has_uint32: int
    uinteger: int


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What a live job did so far: checkpointed work (s), GPU-seconds of service received,
    times preempted, and the first shadow time promised to it (None: never reserved); and for
    a queue order's starvation promotion (``levels.py``): its attained service at its last
    promotion, the seconds it waited since then in waits that ended, since when it waits now
    after a requeue (None: not so), and how often it was promoted. The last four were added
    later: a snapshot without them reads as zero / None."""

    progress_s: float = 0.0
    attained_gpu_s: float = 0.0
    preemptions: int = 0
    reserved_at_s: float | None = None
    level_base_gpu_s: float = 0.0
    waited_s: float = 0.0
    waiting_since_s: float | None = None
    promotions: int = 0


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A queued job. ``verdict`` is the last one given (None: no cycle reached it yet), in
    cycle ``verdict_cycle`` (-1 with no verdict)."""

    job: Job
    lane: Lane
    verdict: Verdict | None
    verdict_cycle: int
    progress: JobProgress


@dataclass(frozen=True, slots=True)
class RunningJob:
    job: Job
    placement: Placement
    started_at_s: float
    verdict: Verdict | None
    progress: JobProgress


@dataclass(frozen=True, slots=True)
class OffReason:
    """One reason a node takes no new work (``cordon``, ``drain``, ``lost``), since when and
    what set it (``ClusterState.off_since``)."""

    why: str
    since_s: float
    cause: str


@dataclass(frozen=True, slots=True)
class NodeOff:
    node: str
    reasons: tuple[OffReason, ...]  # sorted by ``why``


@dataclass(frozen=True, slots=True)
class GpuHealth:
    """The health book's record of one GPU: the marks against it (sorted; empty: judged
    healthy, which overrides the node's own ``Gpu.healthy``) and its last uncorrected ECC
    count (the baseline of the next reading)."""

    node: str
    gpu_index: int
    reasons: tuple[str, ...]
    ecc_uncorrected: int


@dataclass(frozen=True, slots=True)
class ForeignMemory:
    """MiB held on a GPU by processes gpuyard did not place (from telemetry)."""

    node: str
    gpu_index: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class TeamAverage:
    """A team's fair-share decayed usage (``fairshare.py``) as of ``at_s``."""

    team: str
    gpu_milli: float
    cpu_milli: float
    memory_mib: float
    at_s: float


@dataclass(frozen=True, slots=True)
class Shadow:
    """The EASY reservation still current when the snapshot was taken: its head and shadow
    time (inf: none could be promised). It moves ``pending_info``'s estimate for the head and
    is reused by the next cycle while nothing that could move it happened."""

    head: str
    time_s: float


@dataclass(frozen=True, slots=True)
class CoreSnapshot:
    """The facts of a :class:`ClusterState`; every tuple sorted (jobs by id, nodes and GPUs
    by name and index, teams by name), so equal states give equal snapshots.

    ``packing`` names the packing policy in use; ``packing_rng`` is its own random stream
    (a policy that draws exposes its ``numpy.random.Generator`` as ``rng``: ``random``), None
    for policies that do not draw.
    """

    format: int
    now_s: float
    cycles: int
    nodes: tuple[Node, ...]
    rng: RngState
    packing: str
    packing_rng: RngState | None
    pending: tuple[PendingJob, ...]
    running: tuple[RunningJob, ...]
    lost_gpu_s: float
    blocked_by: str | None  # strict order: the head that blocked the last cycle
    off: tuple[NodeOff, ...]
    gpu_health: tuple[GpuHealth, ...]
    foreign_memory: tuple[ForeignMemory, ...]
    fair_share: tuple[TeamAverage, ...]  # empty without a half-life
    shadow: Shadow | None


# --------------------------------------------------------------------- take
def take(state: ClusterState) -> CoreSnapshot:
    """The facts of ``state`` as pure data; ``state`` is not changed."""
    s = state
    pending = []
    for job_id, (_, key) in sorted(s.queues.where.items()):
        pending.append(
            PendingJob(
                s.jobs[job_id],
                Lane.FRONT if key[0] == 0 else Lane.NORMAL,
                s.verdicts.get(job_id),
                s.verdict_cycle.get(job_id, -1),
                _progress(s, job_id),
            )
        )
    running = [
        RunningJob(
            s.jobs[job_id],
            s.running[job_id],
            s.started_at_s[job_id],
            s.verdicts.get(job_id),
            _progress(s, job_id),
        )
        for job_id in sorted(s.running)
    ]
    fleet = s.fleet
    foreign = [
        ForeignMemory(fleet.names[int(n)], int(g), int(fleet.gpu_mem_foreign_mib[n, g]))
        for n, g in zip(*np.nonzero(fleet.gpu_mem_foreign_mib), strict=True)
    ]
    fair = s._fair
    averages = (
        []
        if fair is None
        else [TeamAverage(t, *fair._avg[t], fair._at_s[t]) for t in sorted(fair._avg)]
    )
    (head, version, layout), shadow_s = s.shadow_memo
    current = version == s.profile_version and layout == fleet.layout_version
    book = s.health
    return CoreSnapshot(
        format=FORMAT,
        now_s=s.now_s,
        cycles=s.cycles,
        nodes=fleet.nodes,
        rng=_rng_state(s.rng),
        packing=s.placer.packing.name,
        packing_rng=_policy_rng(s.placer.packing),
        pending=tuple(pending),
        running=tuple(running),
        lost_gpu_s=s.lost_gpu_s,
        blocked_by=s.blocked_by,
        off=tuple(
            NodeOff(n, tuple(OffReason(w, *s.off_since[n][w]) for w in sorted(held)))
            for n, held in sorted(s.off.items())
            if held
        ),
        gpu_health=tuple(
            GpuHealth(n, g, book.why(n, g), book.ecc_seen.get((n, g), 0))
            for n, g in sorted(book.reasons.keys() | book.ecc_seen.keys())
        ),
        foreign_memory=tuple(sorted(foreign, key=lambda f: (f.node, f.gpu_index))),
        fair_share=tuple(averages),
        shadow=Shadow(head, shadow_s) if current else None,
    )


def _progress(s: ClusterState, job_id: str) -> JobProgress:
    levels = s.levels
    return JobProgress(
        s.progress_s.get(job_id, 0.0),
        s.attained_gpu_s.get(job_id, 0.0),
        s.preemptions.get(job_id, 0),
        s.reserved_at_s.get(job_id),
        levels.base_gpu_s.get(job_id, 0.0),
        levels.waited_s.get(job_id, 0.0),
        levels.waiting_since_s.get(job_id),
        levels.promotions.get(job_id, 0),
    )


def _rng_state(rng: np.random.Generator) -> RngState:
    st: Mapping[str, Any] = rng.bit_generator.state
    inner = st.get("state")
    # PCG64's layout (what default_rng makes); another bit generator would need its own
    if not isinstance(inner, Mapping) or set(inner) != {"state", "inc"}:
        raise TypeError(f"cannot snapshot a {st.get('bit_generator')} generator (PCG64 only)")
    return RngState(
        str(st["bit_generator"]),
        int(inner["state"]),
        int(inner["inc"]),
        int(st["has_uint32"]),
        int(st["uinteger"]),
    )


def _set_rng(rng: np.random.Generator, st: RngState) -> None:
    rng.bit_generator.state = {
        "bit_generator": st.bit_generator,
        "state": {"state": st.state, "inc": st.inc},
        "has_uint32": st.has_uint32,
        "uinteger": st.uinteger,
    }


def _policy_rng(packing: PackingPolicy) -> RngState | None:
    rng = getattr(packing, "rng", None)
    return _rng_state(rng) if isinstance(rng, np.random.Generator) else None


# ------------------------------------------------------------------ restore
def restore(
    snap: CoreSnapshot,
    packing: PackingPolicy,
    config: CoreConfig | None = None,
    queue: QueueOrderPolicy | None = None,
    quotas: QuotaConfig | None = None,
    nodes: Sequence[Node] | None = None,
    admission: AdmissionPolicy | None = None,
    preemption: PreemptionPolicy | None = None,
) -> ClusterState:
    """A fresh core holding the snapshot's facts, on ``nodes`` (default: ``snap.nodes``) under
    today's ``config``, ``queue`` order, ``quotas`` and admission and preemption policies (as
    :class:`ClusterState` takes them).

    Pass a fresh ``packing`` policy (policies cache per fleet); its random stream is restored
    when it is the snapshot's policy. Pending jobs are always kept (a job that can no longer
    fit waits, as any would). Off-reasons, health records and foreign memory of a node not in
    ``nodes`` are dropped silently: the node is gone and, if this returns, nothing of ours
    runs there. Raises :class:`SnapshotMismatch` naming the job or node when a running job's
    placement names a node or GPU that ``nodes`` lacks or over-allocates it, or a health or
    memory record names a GPU its node does not have; ``ValueError`` on another format.
    """
    if snap.format != FORMAT:
        raise ValueError(f"snapshot format {snap.format}; this core reads format {FORMAT}")
    nodes = snap.nodes if nodes is None else tuple(nodes)
    # step 1: today's core, with the clock and random streams as they were
    state = ClusterState(nodes, packing, config, queue, quotas, admission, preemption)
    fleet = state.fleet
    state.now_s = snap.now_s
    state.cycles = snap.cycles
    state.lost_gpu_s = snap.lost_gpu_s
    _set_rng(state.rng, snap.rng)
    policy_rng = getattr(packing, "rng", None)
    if (
        snap.packing_rng is not None
        and packing.name == snap.packing
        and isinstance(policy_rng, np.random.Generator)
    ):
        _set_rng(policy_rng, snap.packing_rng)

    # step 2: node and GPU facts
    for off in snap.off:
        if off.node in fleet.index:
            for r in off.reasons:
                state.set_off(off.node, r.why, True, r.cause)
                state.off_since[off.node][r.why] = (r.since_s, r.cause)
    for rec in snap.gpu_health:
        if rec.node not in fleet.index:
            continue
        n = _gpu(fleet, rec.node, rec.gpu_index, "a health record")
        state.health.reasons[(rec.node, rec.gpu_index)] = set(rec.reasons)
        state.health.ecc_seen[(rec.node, rec.gpu_index)] = rec.ecc_uncorrected
        fleet.set_gpu_health(n, rec.gpu_index, not rec.reasons)
    for mem in snap.foreign_memory:
        if mem.node in fleet.index:
            n = _gpu(fleet, mem.node, mem.gpu_index, "foreign memory")
            fleet.set_foreign_memory(n, mem.gpu_index, mem.memory_mib)

    # step 3: what each live job did so far (before step 4: estimated ends count progress)
    lives: list[RunningJob | PendingJob] = [*snap.running, *snap.pending]
    ids = sorted(live.job.job_id for live in lives)
    twice = [a for a, b in pairwise(ids) if a == b]
    if twice:
        raise SnapshotMismatch(f"job {twice[0]!r} is in the snapshot twice")
    for live in lives:
        _install_progress(state, live.job.job_id, live.progress)

    # step 4: running jobs take their placements again
    for run in snap.running:
        placement = _on_fleet(fleet, run.job.job_id, run.placement)
        try:
            state.install_running(run.job, placement, run.started_at_s)
        except ValueError as e:
            raise SnapshotMismatch(
                f"running job {run.job.job_id!r} does not fit the fleet: {e}"
            ) from None
        if run.verdict is not None:
            state.verdicts[run.job.job_id] = run.verdict

    # step 5: pending jobs back in their lanes
    for wait in snap.pending:
        state.install_pending(wait.job, front=wait.lane is Lane.FRONT)
        if wait.verdict is not None:
            state.verdicts[wait.job.job_id] = wait.verdict
            state.verdict_cycle[wait.job.job_id] = wait.verdict_cycle

    # step 6: what the next cycle and pending_info read besides
    state.blocked_by = snap.blocked_by
    fair = state._fair
    if fair is not None:  # a half-life configured today: yesterday's averages still count
        for avg in snap.fair_share:
            fair._avg[avg.team] = (avg.gpu_milli, avg.cpu_milli, avg.memory_mib)
            fair._at_s[avg.team] = avg.at_s
    if snap.shadow is not None and nodes == snap.nodes:
        key = (snap.shadow.head, state.profile_version, fleet.layout_version)
        state.shadow_memo = (key, snap.shadow.time_s)

    # step 7: the books must agree with the placements (gangs whole, GPU models, capacity)
    errors = state.check_invariants()
    if errors:
        raise SnapshotMismatch(f"restored state is inconsistent: {'; '.join(errors[:3])}")
    return state


def _gpu(fleet: Fleet, node: str, gpu: int, what: str) -> int:
    """The index of ``node`` (which is in the fleet), after checking it has GPU ``gpu``."""
    n = fleet.index[node]
    count = int(fleet.gpu_count[n])
    if not 0 <= gpu < count:
        raise SnapshotMismatch(f"{what} names GPU {gpu} of node {node!r}, which has {count} GPUs")
    return n


def _on_fleet(fleet: Fleet, job_id: str, placement: Placement) -> Placement:
    """``placement`` with node indices of ``fleet`` (read by node name), after checking that
    every node and GPU it names exists there."""
    workers = []
    for w in placement.workers:
        n = fleet.index.get(w.node)
        if n is None:
            raise SnapshotMismatch(
                f"running job {job_id!r} has a worker on node {w.node!r}, which is not in the fleet"
            )
        count = int(fleet.gpu_count[n])
        bad = [g for g in w.gpu_indices if not 0 <= g < count]
        if bad:
            raise SnapshotMismatch(
                f"running job {job_id!r} uses GPU {bad[0]} of node {w.node!r}, "
                f"which has {count} GPUs"
            )
        workers.append(w if w.node_index == n else replace(w, node_index=n))
    return replace(placement, workers=tuple(workers))


def _install_progress(state: ClusterState, job_id: str, p: JobProgress) -> None:
    # only what differs from a job that never ran, so the dicts hold what the original's did
    if p.progress_s:
        state.progress_s[job_id] = p.progress_s
    if p.attained_gpu_s:
        state.attained_gpu_s[job_id] = p.attained_gpu_s
    if p.preemptions:
        state.preemptions[job_id] = p.preemptions
    if p.reserved_at_s is not None:
        state.reserved_at_s[job_id] = p.reserved_at_s
    levels = state.levels
    if p.level_base_gpu_s:
        levels.base_gpu_s[job_id] = p.level_base_gpu_s
    if p.waited_s:
        levels.waited_s[job_id] = p.waited_s
    if p.waiting_since_s is not None:
        levels.waiting_since_s[job_id] = p.waiting_since_s
    if p.promotions:
        levels.promotions[job_id] = p.promotions
