"""Hypothesis: a core restored from a snapshot (through the codec and JSON) cannot be told from
the core it was taken of: the same further events give the same actions, the same
``pending_info()`` and clean invariants, under random fleets, events and configs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given, note, settings
from hypothesis import strategies as st

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
from scheduler.core.model import Job, Node, Topology, WorkerRequest
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.core.placement.packing import PackingBase
from scheduler.core.queueing.queues import QueueOrderBase
from scheduler.core.queueing.quota import Quota, QuotaConfig
from scheduler.core.snapshot import restore, take
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.queue_las import LasOrder
from scheduler.policies.registry import make_packing, make_queue
from scheduler.runtime.codec import decode_snapshot, encode_snapshot
from tests.builders import make_node

TEAMS = ("a", "b", "c")
TYPICAL = TypicalShapes.from_requests(
    [WorkerRequest(1000, 0, 1, 500), WorkerRequest(1000, 0, 1), WorkerRequest(1000, 0, 2)]
)


@dataclass(frozen=True)
class Setup:
    """What a core is built from; building twice gives two independent, equal cores."""

    nodes: tuple[Node, ...]
    packing: str
    queue: str
    config: CoreConfig
    quotas: QuotaConfig | None

    def fresh_packing(self) -> PackingBase:
        return make_packing(self.packing, PolicyContext(seed=3, typical=TYPICAL))

    def fresh_queue(self) -> QueueOrderBase:
        # "las-short": levels this test's jobs reach, with starvation promotion (levels.py)
        if self.queue == "las-short":
            return LasOrder((10.0, 60.0), promote_knob=0.5)
        return make_queue(self.queue)

    def build(self) -> ClusterState:
        return ClusterState(
            self.nodes, self.fresh_packing(), self.config, self.fresh_queue(), self.quotas
        )

    def restore(self, state: ClusterState) -> ClusterState:
        """``state`` through a snapshot, the codec and JSON, restored with fresh policies."""
        snap = take(state)
        text = json.dumps(encode_snapshot(snap), allow_nan=False)
        back = decode_snapshot(json.loads(text))
        assert back == snap
        return restore(back, self.fresh_packing(), self.config, self.fresh_queue(), self.quotas)


@st.composite
def setups(draw: st.DrawFn) -> Setup:
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from([2, 4, 8]),
                st.sampled_from(["H100", "T4"]),
                st.sampled_from([1, 2]),
                st.sampled_from(["r0", "r1"]),
            ),
            min_size=1,
            max_size=4,
        )
    )
    nodes = tuple(
        make_node(f"n{i}", gpus=g, model=m, domains=d, rack=r, cpu_milli=32_000)
        for i, (g, m, d, r) in enumerate(specs)
    )
    quotas = draw(
        st.sampled_from(
            [
                None,
                QuotaConfig(tuple(Quota(t, "*", 4) for t in TEAMS)),
                QuotaConfig(
                    (
                        Quota("a", "*", 4, borrowing_limit_gpus=4),
                        Quota("b", "*", 2, lending_limit_gpus=2),
                        Quota("c", "H100", 3),
                    ),
                    (("a", "k"), ("b", "k"), ("c", "k")),
                ),
            ]
        )
    )
    config = CoreConfig(
        seed=draw(st.integers(0, 3)),
        backfill=draw(st.sampled_from(["none", "greedy", "easy"])),
        preemption=draw(st.booleans()),
        aging_s=draw(st.sampled_from([None, 15.0])),
        fair_share_half_life_s=draw(st.sampled_from([None, 40.0])),
        health=HealthRules(max_temperature_c=87.0),
    )
    return Setup(
        nodes,
        draw(st.sampled_from(["best_fit", "random", "fgd", "topology"])),
        draw(st.sampled_from(["priority", "drf", "las", "las-short", "sjf"])),
        config,
        quotas,
    )


@st.composite
def jobs(draw: st.DrawFn, i: int, now_s: float) -> Job:
    share = draw(st.booleans())
    gpus = 1 if share else draw(st.sampled_from([0, 1, 2, 4]))
    req = WorkerRequest(
        draw(st.sampled_from([500, 4000, 16_000])),
        draw(st.sampled_from([0, 100_000])),
        gpus,
        draw(st.sampled_from([250, 500])) if share else 1000,
        draw(st.sampled_from([(), ("H100",), ("T4",)])) if gpus else (),
        draw(st.sampled_from([0, 0, 40_000])) if gpus else 0,  # foreign memory counts
    )
    return Job(
        f"j{i:03d}",
        req,
        num_workers=draw(st.integers(1, 3)),
        team=draw(st.sampled_from(TEAMS)),
        priority=draw(st.integers(0, 2)),
        submitted_at_s=now_s,
        topology=Topology.ANY if share else draw(st.sampled_from(list(Topology))),
        estimated_duration_s=draw(st.sampled_from([None, 10.0, 30.0, 200.0])),
        checkpoint_interval_s=draw(st.sampled_from([None, 5.0])),
    )


OPS = (
    *("submit",) * 4,
    *("finish",) * 2,
    "cancel",
    "interrupt",
    "lost",
    "joined",
    "cordon",
    "drain",
    "uncordon",
    *("telemetry",) * 2,
    "sick",
    "tick",
)


def event_for(
    draw: st.DrawFn, op: str, i: int, t: float, state: ClusterState, nodes: tuple[Node, ...]
) -> Event:
    """One event of kind ``op`` at ``t``, about what ``state`` holds (a running job, a node)."""
    node = nodes[draw(st.integers(0, len(nodes) - 1))]
    gpu = draw(st.integers(0, len(node.gpus) - 1))
    running, pending = sorted(state.running), list(state.pending)
    if op == "submit":
        return JobSubmitted(t, draw(jobs(i, t)))
    if op in ("finish", "interrupt") and running:
        job_id = draw(st.sampled_from(running))
        return JobFinished(t, job_id) if op == "finish" else JobInterrupted(t, job_id)
    if op == "cancel" and running + pending:
        return JobCancelled(t, draw(st.sampled_from(running + pending)))
    if op == "lost":
        return NodeLost(t, node.name)
    if op == "joined":
        return NodeJoined(t, node.name)
    if op == "cordon":
        return NodeCordoned(t, node.name)
    if op == "drain":
        return NodeDrained(t, node.name)
    if op == "uncordon":
        return NodeUncordoned(t, node.name)
    if op == "telemetry":
        return GpuTelemetry(
            t,
            node.name,
            gpu,
            memory_used_mib=draw(st.sampled_from([0, 50_000])),
            memory_total_mib=81_920,
            utilization_pct=50.0,
            temperature_c=draw(st.sampled_from([40.0, 85.0, 90.0])),
            ecc_uncorrected=draw(st.sampled_from([0, 0, 1, 3])),
            xids=draw(st.sampled_from([(), (), (13,), (79,)])),
        )
    if op == "sick":
        return GpuHealthChanged(t, node.name, gpu, healthy=draw(st.booleans()))
    return Tick(t)


@settings(max_examples=80, deadline=None)
@given(setup=setups(), n_events=st.integers(1, 30), data=st.data())
def test_a_restored_core_answers_every_further_event_as_the_original(
    setup: Setup, n_events: int, data: st.DataObject
) -> None:
    draw = data.draw
    cut = draw(st.integers(0, n_events), label="snapshot after event")
    state = setup.build()
    copy: ClusterState | None = None
    t = 0.0
    for i in range(n_events + 1):
        if i == cut:
            copy = setup.restore(state)
            assert take(copy) == take(state)  # (a): the snapshot of the copy is the snapshot
            assert copy.pending_info() == state.pending_info()
            assert copy.next_wake_s() == state.next_wake_s()
        if i == n_events:
            break
        t += draw(st.sampled_from([0.0, 1.0, 7.0, 30.0]))  # 0: more in the same instant
        wake = state.next_wake_s()
        if wake < t + 30.0 and draw(st.booleans()):  # the wake-up a driver sends (levels.py)
            t, ev = wake, Tick(wake, "wake-up")
        else:
            ev = event_for(draw, draw(st.sampled_from(OPS)), i, t, state, setup.nodes)
        note(f"{i}: {ev}")
        acts = state.handle(ev)
        if copy is not None:
            assert copy.handle(ev) == acts
            assert copy.pending_info() == state.pending_info()
            assert copy.next_wake_s() == state.next_wake_s()
            assert copy.check_invariants() == []
        assert state.check_invariants() == []
    assert copy is not None
    assert take(copy) == take(state)
