"""ClusterState: gangs all or nothing, verdicts, release, health, cordon, determinism."""

from __future__ import annotations

import pytest

from scheduler.core.actions import Launch, Reject, Release
from scheduler.core.events import (
    GpuHealthChanged,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeCordoned,
    Tick,
)
from scheduler.core.model import Job, Topology, WorkerRequest
from scheduler.core.verdict import Code
from simulations.packing import submit_or_fail
from tests.builders import make_job, make_node, make_state


def kinds(actions: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(type(a).__name__, a.job_id) for a in actions]


def test_a_gang_that_does_not_fit_whole_takes_nothing_and_waits() -> None:
    state = make_state([make_node("a", gpus=4), make_node("b", gpus=4)])
    assert kinds(state.handle(JobSubmitted(0, make_job("small")))) == [("Launch", "small")]
    assert kinds(state.handle(JobSubmitted(0, make_job("big", gpus=4, workers=2)))) == []
    assert state.pending == ("big",)
    assert state.verdicts["big"].code is Code.WAIT_CAPACITY
    assert int(state.fleet.gpu_free.sum()) == 7000  # nothing half-placed
    assert state.check_invariants() == []


def test_a_gang_larger_than_the_fleet_is_rejected_as_never_with_the_reason() -> None:
    state = make_state([make_node("a", gpus=4)])
    acts = state.handle(JobSubmitted(0, make_job("huge", gpus=8)))
    assert len(acts) == 1 and isinstance(acts[0], Reject) and acts[0].code is Code.NEVER
    assert acts[0].reason == "no node has 1000 CPU milli, 1024 MiB and 8 GPU(s)"
    acts = state.handle(JobSubmitted(1, make_job("many", gpus=2, workers=3)))
    assert (
        isinstance(acts[0], Reject)
        and acts[0].reason == "3 workers do not fit the fleet even when empty (room for 2)"
    )


def test_finish_releases_and_the_waiting_gang_then_starts() -> None:
    state = make_state([make_node("a", gpus=4)])
    assert kinds(state.handle(JobSubmitted(0, make_job("first", gpus=3)))) == [("Launch", "first")]
    assert kinds(state.handle(JobSubmitted(1, make_job("second", gpus=2)))) == []
    acts = state.handle(JobFinished(2, "first"))
    assert kinds(acts) == [("Release", "first"), ("Launch", "second")]
    assert acts[1].cause == "JobFinished(first)"  # the launch traces back to the finish
    assert state.check_invariants() == []


def test_cancel_of_a_pending_job_removes_it() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(JobSubmitted(0, make_job("run")), JobSubmitted(0, make_job("wait")))
    assert state.pending == ("wait",)
    assert kinds(state.handle(JobCancelled(1, "wait"))) == [("Release", "wait")]
    assert state.pending == ()


def test_priority_then_submit_time_then_id_orders_the_queue() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(JobSubmitted(0, make_job("hold")))
    state.handle(JobSubmitted(1, make_job("low-b")), JobSubmitted(1, make_job("low-a")))
    state.handle(JobSubmitted(2, make_job("high", priority=5)))
    assert state.pending == ("high", "low-a", "low-b")  # all submitted_at_s = 0: id breaks the tie
    acts = state.handle(JobFinished(3, "hold"))
    assert kinds(acts) == [("Release", "hold"), ("Launch", "high")]


def test_fail_fast_of_the_packing_replay_withdraws_what_does_not_fit_now() -> None:
    state = make_state([make_node("a", gpus=1)])
    assert submit_or_fail(state, make_job("one"), 0.0)
    assert not submit_or_fail(state, make_job("two"), 1.0)
    assert state.pending == ()
    assert kinds(state.handle(JobFinished(2, "one"))) == [("Release", "one")]  # two is gone


def test_gpu_spec_is_honoured() -> None:
    state = make_state([make_node("h", model="H100"), make_node("t", model="T4")])
    acts = state.handle(JobSubmitted(0, make_job("t4", models=("T4",))))
    assert isinstance(acts[0], Launch) and acts[0].placement.nodes == ("t",)
    acts = state.handle(JobSubmitted(1, make_job("a100", models=("A100",))))
    assert isinstance(acts[0], Reject) and acts[0].code is Code.NEVER


def test_sharing_pods_share_one_gpu_up_to_1000_milli() -> None:
    state = make_state([make_node("a", gpus=1)])
    for i, milli in enumerate((400, 350, 250)):
        acts = state.handle(JobSubmitted(i, make_job(f"s{i}", gpu_milli=milli)))
        assert isinstance(acts[0], Launch) and acts[0].placement.workers[0].gpu_indices == (0,)
    assert int(state.fleet.gpu_free[0, 0]) == 0
    assert kinds(state.handle(JobSubmitted(3, make_job("s3", gpu_milli=10)))) == []


def test_unhealthy_gpus_and_cordoned_nodes_get_no_new_work() -> None:
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)])
    state.handle(GpuHealthChanged(0, "a", 0, healthy=False), NodeCordoned(0, "b"))
    acts = state.handle(JobSubmitted(1, make_job("j")))
    assert isinstance(acts[0], Launch) and acts[0].placement.workers[0].gpu_indices == (1,)
    assert kinds(state.handle(JobSubmitted(2, make_job("k")))) == []
    with pytest.raises(ValueError, match="unknown node 'zz'"):
        state.handle(NodeCordoned(3, "zz"))


def test_same_node_and_same_rack_gangs() -> None:
    nodes = [
        make_node("a", gpus=4, rack="r1"),
        make_node("b", gpus=4, rack="r1"),
        make_node("c", gpus=8, rack="r2"),
    ]
    state = make_state(nodes)
    acts = state.handle(
        JobSubmitted(0, make_job("sn", gpus=2, workers=3, topology=Topology.SAME_NODE))
    )
    assert isinstance(acts[0], Launch) and acts[0].placement.nodes == ("c",)
    acts = state.handle(
        JobSubmitted(1, make_job("sr", gpus=4, workers=2, topology=Topology.SAME_RACK))
    )
    assert isinstance(acts[0], Launch) and sorted(acts[0].placement.nodes) == ["a", "b"]
    assert state.check_invariants() == []


def test_events_from_the_past_and_duplicate_ids_are_refused() -> None:
    state = make_state([make_node("a")])
    state.handle(Tick(10))
    with pytest.raises(ValueError, match="before the core's clock"):
        state.handle(Tick(5))
    state.handle(JobSubmitted(10, make_job("x")))
    acts = state.handle(JobSubmitted(11, make_job("x")))
    assert isinstance(acts[0], Reject) and "already used" in acts[0].reason


def test_bad_requests_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"gpu_milli must be in 1\.\.1000, got 0"):
        WorkerRequest(1000, 1024, 1, 0)
    with pytest.raises(ValueError, match="needs gpus == 1, got 2"):
        WorkerRequest(1000, 1024, 2, 500)
    with pytest.raises(ValueError, match="num_workers must be >= 1, got 0"):
        Job("j", WorkerRequest(1000, 1024, 1), num_workers=0)


def test_release_action_type_is_exported() -> None:
    assert Release.__name__ == "Release"
