"""Snapshots of the core: what a restored core holds, restoring under today's quotas and
fleet, mismatches named, and the JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from scheduler.core.actions import Launch
from scheduler.core.events import (
    GpuTelemetry,
    JobFinished,
    JobInterrupted,
    JobSubmitted,
    NodeCordoned,
    Tick,
)
from scheduler.core.queueing.quota import Quota, QuotaConfig
from scheduler.core.snapshot import (
    FORMAT,
    CoreSnapshot,
    Lane,
    Shadow,
    SnapshotMismatch,
    restore,
    take,
)
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.core.verdict import Code, Verdict
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import make_packing, make_queue
from scheduler.runtime.codec import decode_snapshot, encode_snapshot
from tests.builders import make_job, make_node, make_state


def kinds(actions: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(type(a).__name__, a.job_id) for a in actions]


def again(state: ClusterState, **kw: object) -> ClusterState:
    """``state`` restored from its snapshot with a fresh policy (and ``kw`` for restore)."""
    packing = make_packing(state.placer.packing.name, PolicyContext())
    kw.setdefault("config", state.config)
    kw.setdefault("queue", make_queue(state.queue.name))
    return restore(take(state), packing, **kw)  # type: ignore[arg-type]


def reading(t: float, node: str, gpu: int, **kw: object) -> GpuTelemetry:
    fields: dict[str, object] = dict(
        memory_used_mib=0, memory_total_mib=81_920, utilization_pct=0.0, temperature_c=40.0
    )
    fields.update(kw)
    return GpuTelemetry(t, node, gpu, **fields)  # type: ignore[arg-type]


def quota_state(quotas: QuotaConfig, gpus: int = 8) -> ClusterState:
    return ClusterState(
        [make_node("a", gpus=gpus)],
        make_packing("best_fit", PolicyContext()),
        CoreConfig(),
        quotas=quotas,
    )


def test_a_pending_job_keeps_its_lane_and_position() -> None:
    state = make_state([make_node("n", gpus=4)], backfill="easy")
    state.handle(JobSubmitted(0, make_job("run", gpus=4, est_s=100)))
    state.handle(JobSubmitted(1, make_job("head", gpus=4, est_s=50, submitted_at_s=1)))
    # higher priority, so the queue order alone would put it first: the reserved head is in
    # the front lane and keeps its place
    state.handle(JobSubmitted(2, make_job("late", gpus=2, priority=5, submitted_at_s=2)))
    snap = take(state)
    assert [(p.job.job_id, p.lane) for p in snap.pending] == [
        ("head", Lane.FRONT),
        ("late", Lane.NORMAL),
    ]
    copy = again(state)
    assert copy.pending == state.pending == ("head", "late")
    assert copy.pending_info() == state.pending_info()
    assert copy.verdict_of("late") == Verdict(Code.WAIT_CAPACITY, state.verdict_of("late").reason)
    assert kinds(copy.handle(JobFinished(100, "run"))) == [("Release", "run"), ("Launch", "head")]
    assert take(copy) != snap  # it moved on


def test_a_running_job_keeps_its_placement_start_and_progress() -> None:
    state = make_state([make_node("n", gpus=2)])
    job = dataclasses.replace(make_job("j", est_s=100), checkpoint_interval_s=10.0)
    state.handle(JobSubmitted(0, job))
    assert kinds(state.handle(JobInterrupted(25, "j"))) == [("Preempt", "j"), ("Launch", "j")]
    state.handle(JobSubmitted(30, make_job("k", gpus=2, submitted_at_s=30)))
    copy = again(state)
    assert copy.running == state.running
    assert copy.started_at_s == {"j": 25}
    assert (copy.progress_s, copy.preemptions, copy.attained_gpu_s) == (
        {"j": 20.0},
        {"j": 1},
        {"j": 25.0},
    )
    # k starts when j ends: 25 + the 80 s left after its checkpoint at 20
    (info,) = copy.pending_info()
    assert (info.job_id, info.estimated_start_s) == ("k", 105.0)
    assert copy.check_invariants() == []


def test_finished_cancelled_and_rejected_jobs_are_history_and_not_kept() -> None:
    state = make_state([make_node("n", gpus=1)])
    state.handle(JobSubmitted(0, make_job("done")), JobSubmitted(0, make_job("wait")))
    state.handle(JobSubmitted(1, make_job("huge", gpus=4)), JobFinished(2, "done"))
    snap = take(state)
    assert [r.job.job_id for r in snap.running] == ["wait"] and snap.pending == ()
    assert sorted(again(state).jobs) == ["wait"]


def test_quota_charges_are_recomputed_from_the_running_placements() -> None:
    quotas = QuotaConfig((Quota("a", "*", 4), Quota("b", "*", 4)), (("a", "c"), ("b", "c")))
    state = quota_state(quotas, gpus=12)
    state.handle(JobSubmitted(0, make_job("big", gpus=6, team="a")))  # borrows 2 of b's
    state.handle(JobSubmitted(1, make_job("b3", gpus=3, team="b", submitted_at_s=1)))
    copy = again(state, quotas=quotas)
    assert copy.quota is not None
    assert {k: v for k, v in copy.quota.used.items() if v} == {
        ("a", "*"): 6000,
        ("a", "H100"): 6000,
    }
    assert copy.charged == {"big": {"H100": 6000}}
    assert copy.verdict_of("b3") == Verdict(
        Code.WAIT_QUOTA, "team 'b' quota: needs 3 GPUs, 2 available now (borrowing included)"
    )
    assert copy.pending_info() == state.pending_info()


def test_restore_under_a_smaller_quota_charges_what_runs_and_admits_nothing_more() -> None:
    state = quota_state(QuotaConfig((Quota("a", "*", 4),)))
    state.handle(JobSubmitted(0, make_job("run", gpus=4, team="a")))
    smaller = QuotaConfig((Quota("a", "*", 2),))
    copy = again(state, quotas=smaller)
    assert copy.quota is not None and copy.quota.borrowed("a", "*") == 2000  # over, kept
    assert sorted(copy.running) == ["run"]
    assert copy.handle(JobSubmitted(1, make_job("more", team="a", submitted_at_s=1))) == []
    assert copy.verdict_of("more") == Verdict(
        Code.WAIT_QUOTA, "team 'a' quota: needs 1 GPUs, 0 available now (borrowing included)"
    )
    acts = copy.handle(JobFinished(2, "run"))
    assert kinds(acts) == [("Release", "run"), ("Launch", "more")]


def test_restore_onto_a_fleet_with_an_extra_node_starts_waiting_work_there() -> None:
    state = make_state([make_node("a", gpus=2)])
    state.handle(
        JobSubmitted(0, make_job("run", gpus=2)), JobSubmitted(0, make_job("wait", gpus=2))
    )
    # the new node comes first: indices of the running placement are re-read by name
    copy = again(state, nodes=[make_node("b", gpus=2), make_node("a", gpus=2)])
    assert [(w.node, w.node_index) for w in copy.running["run"].workers] == [("a", 1)]
    acts = copy.handle(Tick(1))
    assert kinds(acts) == [("Launch", "wait")]
    assert isinstance(acts[0], Launch) and acts[0].placement.nodes == ("b",)
    assert copy.check_invariants() == []


def test_a_running_job_on_a_missing_node_is_a_mismatch_that_names_both() -> None:
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)])
    state.handle(JobSubmitted(0, make_job("r", gpus=2)))
    (home,) = state.running["r"].nodes
    other = "b" if home == "a" else "a"
    with pytest.raises(
        SnapshotMismatch,
        match=f"running job 'r' has a worker on node '{home}', which is not in the fleet",
    ):
        again(state, nodes=[make_node(other, gpus=2)])


def test_a_placement_the_node_no_longer_has_room_or_gpus_for_is_a_mismatch() -> None:
    state = make_state([make_node("a", gpus=4)])
    state.handle(JobSubmitted(0, make_job("r", gpus=4, cpu_milli=8000)))
    with pytest.raises(
        SnapshotMismatch, match="running job 'r' uses GPU 2 of node 'a', which has 2"
    ):
        again(state, nodes=[make_node("a", gpus=2)])
    with pytest.raises(
        SnapshotMismatch,
        match="running job 'r' does not fit the fleet: node a: CPU or memory over-allocated",
    ):
        again(state, nodes=[make_node("a", gpus=4, cpu_milli=4000)])


def test_a_job_both_running_and_pending_in_a_snapshot_is_a_mismatch() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(JobSubmitted(0, make_job("r")), JobSubmitted(0, make_job("w")))
    snap = take(state)
    twice = dataclasses.replace(snap.pending[0], job=snap.running[0].job)
    with pytest.raises(SnapshotMismatch, match="job 'r' is in the snapshot twice"):
        restore(
            dataclasses.replace(snap, pending=(twice,)), make_packing("best_fit", PolicyContext())
        )


def test_facts_of_a_gone_idle_node_are_dropped_and_a_missing_gpu_is_a_mismatch() -> None:
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)])
    state.handle(NodeCordoned(0, "b"), reading(0, "b", 1, xids=(79,), memory_used_mib=500))
    assert state.off == {"b": {"cordon", "drain"}}
    copy = again(state, nodes=[make_node("a", gpus=2)])
    assert copy.off == {} and take(copy).gpu_health == () and take(copy).foreign_memory == ()
    with pytest.raises(
        SnapshotMismatch, match="a health record names GPU 1 of node 'b', which has 1 GPUs"
    ):
        again(state, nodes=[make_node("a", gpus=2), make_node("b", gpus=1)])


def test_health_marks_and_off_reasons_come_back_with_the_fleet_following() -> None:
    state = make_state([make_node("a", gpus=2)])
    state.handle(reading(0, "a", 1, ecc_uncorrected=3), reading(0, "a", 0, temperature_c=95.0))
    copy = again(state)
    assert copy.off == {"a": {"drain"}}
    assert copy.off_since == {"a": {"drain": (0, "drain a: 3 uncorrected ECC error(s) on GPU 1")}}
    assert (copy.health.why("a", 0), copy.health.why("a", 1)) == (("hot",), ("ecc",))
    assert copy.fleet.gpu_healthy[0].tolist() == [False, False]
    assert copy.health.ecc_seen == {("a", 0): 0, ("a", 1): 3}


def test_the_reserved_heads_exact_shadow_time_is_kept_on_the_same_nodes_only() -> None:
    state = make_state([make_node("n1", gpus=2), make_node("n2", gpus=2)], backfill="easy")
    state.handle(  # their CPU keeps them apart
        JobSubmitted(0, make_job("x", est_s=50, cpu_milli=40_000)),
        JobSubmitted(0, make_job("y", est_s=100, cpu_milli=40_000)),
    )
    assert sorted(n for j in "xy" for n in state.running[j].nodes) == ["n1", "n2"]
    state.handle(JobSubmitted(1, make_job("h", gpus=2, est_s=10, submitted_at_s=1)))
    # two GPUs are free now, one per node: the 2-GPU worker fits when x ends, at 50
    assert take(state).shadow == Shadow("h", 50.0)
    assert [p.estimated_start_s for p in again(state).pending_info()] == [50.0]
    # on another fleet it is no fact any more: the next cycle works it out again
    bigger = [make_node("n1", gpus=2), make_node("n2", gpus=2), make_node("n3", gpus=1)]
    assert take(again(state, nodes=bigger)).shadow is None


def test_the_random_policys_stream_continues_where_it_was() -> None:
    nodes = [make_node(f"n{i}", gpus=2) for i in range(6)]
    state = make_state(nodes, "random", seed=5)
    state.handle(*(JobSubmitted(0, make_job(f"a{i}")) for i in range(3)))
    copy = again(state)
    later = [JobSubmitted(1, make_job(f"b{i}", submitted_at_s=1)) for i in range(4)]
    assert copy.handle(*later) == state.handle(*later)


def test_fair_share_averages_are_kept_and_dropped_without_a_half_life() -> None:
    config = CoreConfig(fair_share_half_life_s=60.0)
    state = ClusterState(
        [make_node("n", gpus=4)],
        make_packing("best_fit", PolicyContext()),
        config,
        make_queue("drf"),
    )
    state.handle(JobSubmitted(0, make_job("a1", gpus=2, team="a")))
    state.handle(JobFinished(30, "a1"))
    (avg,) = take(state).fair_share
    assert (avg.team, avg.gpu_milli, avg.at_s) == ("a", 2000 * (1 - 2 ** (-0.5)), 30)
    assert take(again(state)).fair_share == (avg,)
    assert take(again(state, config=CoreConfig())).fair_share == ()


def test_a_snapshot_round_trips_exactly_through_the_codec_and_json() -> None:
    state = make_state([make_node("n1", gpus=2), make_node("n2", gpus=2)], backfill="easy")
    job = dataclasses.replace(make_job("x", est_s=50, cpu_milli=40_000), checkpoint_interval_s=10)
    state.handle(JobSubmitted(0, job), JobSubmitted(0, make_job("y", est_s=100, cpu_milli=40_000)))
    state.handle(JobInterrupted(15, "x"), reading(15, "n2", 1, memory_used_mib=123))
    state.handle(reading(16, "n1", 1, temperature_c=90.0), NodeCordoned(16, "n2"))
    state.handle(JobSubmitted(17, make_job("h", gpus=2, est_s=10, submitted_at_s=17)))
    snap = take(state)
    assert snap.format == FORMAT and snap.pending and snap.running and snap.gpu_health
    assert snap.foreign_memory and snap.off and snap.rng.state > 2**64  # a big int
    assert snap.shadow == Shadow("h", math.inf)  # n1's second GPU is hot, n2 cordoned
    d = encode_snapshot(snap)
    back = decode_snapshot(json.loads(json.dumps(d, allow_nan=False)))
    assert back == snap and isinstance(back, CoreSnapshot)
    assert back.nodes[0].labels == (("rack", "r0"), ("zone", "z0"))  # pairs stay tuples
    with pytest.raises(ValueError, match="CoreSnapshot: unexpected field 'extra'"):
        decode_snapshot({**d, "extra": 1})
    with pytest.raises(ValueError, match="this build reads format 1, got 2"):
        decode_snapshot({**d, "format": 2})
    with pytest.raises(ValueError, match=r"Node.labels\[0\]: expected a list of 2"):
        bad = json.loads(json.dumps(d))
        bad["nodes"][0]["labels"][0] = ["rack"]
        decode_snapshot(bad)
