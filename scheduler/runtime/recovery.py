"""Recovery: the core back from its durable state, then reconciled with today's world.

State, not replay (Kueue rebuilds its cache from objects; Slurm saves state and reconciles
with the nodes that report in). The journal holds a *snapshot* of the core (pure data, with
the ``SchedulerConfig`` it was taken under) and the batches after it. On start:

 1. **restore**: the newest snapshot is restored under *its own* nodes and configuration,
    and the batches after it are applied, so the core is exactly what it was when the
    service stopped (``restore_core``; also the rollback of a batch whose commit failed);
 2. **reconcile the fleet**: nodes of the snapshot that today's fleet file no longer has,
    or has with other hardware, are lost (their jobs are requeued to resume from their
    checkpoints) as ordinary ``NodeLost`` events, journaled like any other batch;
 3. **adopt today's configuration**: the core is restored once more from its own snapshot
    onto today's nodes (new ones join) under today's ``SchedulerConfig`` (changed quotas,
    classes and policies apply from now on), and that is saved as the new snapshot;
 4. **reconcile the runs** (``SchedulerService``): open runs are re-attached by their
    runner's name; a run whose runner is gone or idle is ended and its job requeued; a job
    the core runs without a run is launched (a new attempt).

A journal with no snapshot (new, or written before snapshots existed) is replayed from its
first batch under today's configuration (events naming nodes the fleet no longer has are
skipped). The exact-replay check (same events, same actions) is ``verify``, an offline tool
(``gpuyard journal verify``), not a start-up gate: an upgrade may schedule differently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Launch
from scheduler.core.events import Event
from scheduler.core.model import Node, Placement
from scheduler.core.snapshot import CoreSnapshot, restore, take
from scheduler.core.state import ClusterState
from scheduler.policies.registry import make_packing, make_queue
from scheduler.runtime.codec import decode_snapshot, encode_snapshot
from scheduler.runtime.journal import Journal, JournalError

log = logging.getLogger("gpuyard.recovery")

STORED_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Stored:
    """What a journal snapshot holds: the core's state and the configuration it ran under."""

    sched: SchedulerConfig
    core: CoreSnapshot


def encode_stored(core: CoreSnapshot, sched: SchedulerConfig) -> str:
    doc = {
        "format": STORED_FORMAT,
        "scheduler": sched.model_dump(mode="json"),
        "core": encode_snapshot(core),
    }
    return json.dumps(doc, allow_nan=False, separators=(",", ":"))


def decode_stored(body: str, where: str = "snapshot") -> Stored:
    try:
        doc = json.loads(body)
        if doc.get("format") != STORED_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, this gpuyard reads {STORED_FORMAT}")
        return Stored(
            SchedulerConfig.model_validate(doc["scheduler"]), decode_snapshot(doc["core"])
        )
    except (ValueError, KeyError, TypeError) as e:
        raise JournalError(f"{where}: cannot read the core's snapshot: {e}") from e


def core_from(
    stored: Stored, nodes: Sequence[Node] | None = None, sched: SchedulerConfig | None = None
) -> ClusterState:
    """The core of ``stored``, on ``nodes`` (default: its own) under ``sched`` (default: its
    own configuration)."""
    s = sched or stored.sched
    return restore(
        stored.core,
        make_packing(s.packing, s.context()),
        s.core_config(),
        make_queue(s.queue),
        s.quotas,
        nodes=None if nodes is None else tuple(nodes),
    )


def save_snapshot(
    journal: Journal, core: ClusterState, sched: SchedulerConfig, now_s: float
) -> None:
    """Snapshot the core as of the journal's last batch (the journal compacts behind it)."""
    journal.save_snapshot(journal.last_seq(), encode_stored(take(core), sched), now_s)


def restore_core(journal: Journal) -> ClusterState:
    """Step 1: the core exactly as the journal has it (newest snapshot + the batches after)."""
    snap = journal.latest_snapshot()
    if snap is None:
        raise JournalError(f"{journal.path}: no snapshot of the core to restore from")
    core = core_from(decode_stored(snap.body, f"{journal.path} snapshot {snap.seq}"))
    for batch in journal.replay(after_seq=snap.seq):
        core.handle(*batch.events)
    return core


@dataclass(slots=True)
class Recovered:
    core: ClusterState
    last_launch: dict[str, Placement] = field(default_factory=dict)  # job -> latest placement
    gone: list[str] = field(default_factory=list)  # nodes to lose (step 2)
    differed: int = 0  # tail batches whose replayed actions differ from the recorded ones
    tail: int = 0


def recover(journal: Journal, sched_now: SchedulerConfig, nodes_now: Sequence[Node]) -> Recovered:
    """Steps 1 and the finding of step 2 (the service journals the ``NodeLost`` events)."""
    snap = journal.latest_snapshot()
    if snap is not None:
        core = core_from(decode_stored(snap.body, f"{journal.path} snapshot {snap.seq}"))
        after = snap.seq
    else:
        core = build_core(sched_now, list(nodes_now))
        after = 0
    out = Recovered(core)
    known = set(core.fleet.index)
    for batch in journal.replay(after_seq=after):
        events: Sequence[Event] = batch.events
        if snap is None:
            events = [e for e in events if getattr(e, "node", None) in (None, *known)]
        actions = core.handle(*events)
        out.tail += 1
        if batch.actions is not None and list(batch.actions) != actions:
            out.differed += 1
        for a in batch.actions if batch.actions is not None else actions:
            if isinstance(a, Launch):
                out.last_launch[a.job_id] = a.placement
    if out.differed:
        log.warning(
            "%s: %d of %d batch(es) after the snapshot gave other actions when replayed "
            "(gpuyard changed?); the journal's runs are reconciled with the core",
            journal.path, out.differed, out.tail,
        )  # fmt: skip
    then = {n.name: n for n in core.fleet.nodes}  # the nodes a snapshot of it would hold
    now = {n.name: n for n in nodes_now}
    out.gone = sorted(name for name, node in then.items() if now.get(name) != node)
    return out


def adopt(
    core: ClusterState, sched_now: SchedulerConfig, nodes_now: Sequence[Node]
) -> ClusterState:
    """Step 3: the core on today's nodes under today's configuration."""
    return core_from(Stored(sched_now, take(core)), nodes_now, sched_now)


@dataclass(frozen=True, slots=True)
class Verdict:
    batches: int
    mismatches: tuple[str, ...]
    from_seq: int


def verify(journal: Journal, most: int = 10) -> Verdict:
    """Replay the journal from its oldest snapshot through the code as it is now and compare
    every batch's actions with the recorded ones: a determinism check (``gpuyard journal
    verify``). A newer snapshot taken under the same nodes and configuration must equal the
    state the replay reached at its seq; one taken under others (a restart adopted a new
    fleet or config) is where the replay continues from."""
    snaps = sorted(journal.snapshots(), key=lambda s: s.seq)
    if not snaps:
        raise JournalError(f"{journal.path}: no snapshot; nothing to verify from")
    stored = decode_stored(snaps[0].body)
    core, sched, start = core_from(stored), stored.sched, snaps[0].seq
    later = {s.seq: s for s in snaps[1:]}
    bad: list[str] = []
    n = 0
    for batch in journal.replay(after_seq=start):
        actions = core.handle(*batch.events)
        n += 1
        if batch.actions is not None and list(batch.actions) != actions:
            bad.append(
                f"seq {batch.seq}: recorded {len(batch.actions)} action(s), "
                f"the replay gave {len(actions)}"
            )
        s = later.get(batch.seq)
        if s is not None:
            newer = decode_stored(s.body)
            here = take(core)
            if newer.sched == sched and newer.core.nodes == here.nodes:
                if newer.core != here:
                    bad.append(f"seq {s.seq}: the snapshot differs from the replayed state")
            else:
                core, sched = core_from(newer), newer.sched
    return Verdict(n, tuple(bad[:most]), start)
