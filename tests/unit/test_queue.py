"""Queue policies and backfill on small hand-made job lists, with exact outcomes."""

from __future__ import annotations

import math

import pytest

from scheduler.core.actions import Launch
from scheduler.core.events import JobFinished, JobSubmitted
from scheduler.core.queueing.backfill import estimate_starts
from scheduler.core.verdict import Code, Verdict
from scheduler.policies.queue_las import LasOrder
from scheduler.policies.registry import QUEUE, UnknownPolicy, make_queue
from tests.builders import make_job, make_node, make_state


def launched(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.job_id for a in actions if isinstance(a, Launch)]


def test_queue_registry() -> None:
    assert list(QUEUE) == ["fifo", "priority", "sjf", "las", "drf"]
    with pytest.raises(UnknownPolicy, match="unknown queue policy 'lifo'; known: fifo, priority"):
        make_queue("lifo")


def test_strict_fifo_blocks_behind_the_head_and_greedy_does_not() -> None:
    for mode, expect in (("none", []), ("greedy", ["c"])):
        state = make_state([make_node("n", gpus=4)], queue="fifo", backfill=mode)
        state.handle(JobSubmitted(0, make_job("a", gpus=3, submitted_at_s=0)))
        state.handle(JobSubmitted(1, make_job("b", gpus=4, submitted_at_s=1)))
        assert (
            launched(state.handle(JobSubmitted(2, make_job("c", gpus=1, submitted_at_s=2))))
            == expect
        )
    strict = make_state([make_node("n", gpus=4)], queue="fifo", backfill="none")
    strict.handle(
        JobSubmitted(0, make_job("a", gpus=3)),
        JobSubmitted(0, make_job("b", gpus=4, submitted_at_s=1)),
    )
    strict.handle(JobSubmitted(2, make_job("c", gpus=1, submitted_at_s=2)))
    assert strict.verdict_of("b").code is Code.WAIT_CAPACITY
    assert (
        strict.verdict_of("c").code is Code.WAIT_ORDER
        and strict.verdict_of("c").reason == "behind b (strict queue order)"
    )
    assert launched(strict.handle(JobFinished(10, "a"))) == ["b"]


def test_easy_backfill_starts_only_jobs_that_do_not_delay_the_reservation() -> None:
    state = make_state([make_node("n", gpus=4)], queue="fifo", backfill="easy")
    state.handle(JobSubmitted(0, make_job("a", gpus=2, est_s=100)))
    state.handle(JobSubmitted(1, make_job("b", gpus=4, submitted_at_s=1, est_s=50)))
    # b's shadow time is 100 (a ends). c ends at 52: backfills. d (500 s) fits now but would
    # still hold a GPU at 100, when b needs all four: held.
    acts = state.handle(
        JobSubmitted(2, make_job("c", gpus=1, submitted_at_s=2, est_s=50)),
        JobSubmitted(2, make_job("d", gpus=1, submitted_at_s=2.5, est_s=500)),
    )
    assert launched(acts) == ["c"]
    assert state.verdict_of("d") == Verdict(Code.WAIT_ORDER, "held for the reservation of b")
    assert state.check_invariants() == []
    info = {p.job_id: p for p in state.pending_info()}
    assert (info["b"].position, info["d"].position) == (1, 2)
    assert info["b"].estimated_start_s == 100.0  # a ends at 100; c at 52
    assert info["d"].estimated_start_s == 150.0  # after b (100 + 50)
    assert launched(state.handle(JobFinished(52, "c"))) == []  # d still held: b is reserved
    assert launched(state.handle(JobFinished(100, "a"))) == ["b"]


def test_easy_backfill_may_use_the_extra_gpus_for_long_jobs() -> None:
    state = make_state([make_node("n", gpus=8)], queue="fifo", backfill="easy")
    state.handle(JobSubmitted(0, make_job("a", gpus=6, est_s=100)))
    state.handle(JobSubmitted(1, make_job("b", gpus=4, submitted_at_s=1, est_s=50)))
    # shadow: at 100 a frees 6 -> 8 free, b needs 4 -> 4 extra; 2 free now: a long 2-GPU job fits
    acts = state.handle(JobSubmitted(2, make_job("long", gpus=2, submitted_at_s=2, est_s=1000)))
    assert launched(acts) == ["long"]


def test_a_reserved_head_keeps_its_reservation_when_a_shorter_job_arrives() -> None:
    state = make_state([make_node("n", gpus=4)], queue="sjf", backfill="easy")
    state.handle(
        JobSubmitted(0, make_job("r1", gpus=2, est_s=100)),
        JobSubmitted(0, make_job("r2", gpus=2, est_s=50)),
    )
    assert launched(state.handle(JobSubmitted(1, make_job("h", gpus=4, est_s=10)))) == []
    assert state.reserved_at_s == {"h": 100.0}
    # shorter, so sjf would put it first; it may not take the head's place
    state.handle(JobSubmitted(2, make_job("s", gpus=3, est_s=5, submitted_at_s=2)))
    assert state.pending == ("h", "s")
    assert launched(state.handle(JobFinished(50, "r2"))) == []
    assert launched(state.handle(JobFinished(100, "r1"))) == ["h"]
    assert state.verdict_of("s").code is Code.WAIT_CAPACITY
    assert launched(state.handle(JobFinished(110, "h"))) == ["s"]


def test_the_reserved_head_is_estimated_at_its_exact_shadow_time() -> None:
    state = make_state([make_node("n1", gpus=4), make_node("n2", gpus=4)], backfill="easy")
    for job_id, est in (("x", 100), ("y", 300), ("z", 100), ("w", 300)):
        state.handle(JobSubmitted(0, make_job(job_id, gpus=2, est_s=est)))
    assert sorted(len(state.placements[j].nodes) for j in "xyzw") == [1, 1, 1, 1]
    state.handle(JobSubmitted(1, make_job("h", gpus=4, est_s=10, submitted_at_s=1)))
    # at 100 four GPUs are free in all, but two per node: the 4-GPU worker fits at 300
    assert state.reserved_at_s == {"h": 300.0}
    (info,) = state.pending_info()
    assert (info.job_id, info.estimated_start_s, info.code) == ("h", 300.0, Code.WAIT_CAPACITY)


def test_jobs_past_their_estimate_count_as_ending_by_a_shadow_time_of_now() -> None:
    state = make_state([make_node("n", gpus=8)], queue="fifo", backfill="easy")
    state.handle(
        JobSubmitted(0, make_job("a", gpus=2, est_s=10)),
        JobSubmitted(0, make_job("b", gpus=2, est_s=25)),
        JobSubmitted(0, make_job("c", gpus=2, est_s=100)),
    )
    # at 30, a and b are overdue: the head (4 GPUs) is due now, with both of them gone, so a
    # long job may take the 2 free GPUs beside it
    acts = state.handle(
        JobSubmitted(30, make_job("h", gpus=4, est_s=10, submitted_at_s=30)),
        JobSubmitted(30, make_job("long", gpus=2, est_s=1000, submitted_at_s=31)),
    )
    assert launched(acts) == ["long"] and state.reserved_at_s == {"h": 30.0}


def test_sjf_orders_by_estimated_gpu_time_and_puts_unknown_last() -> None:
    state = make_state([make_node("n", gpus=1)], queue="sjf")
    state.handle(JobSubmitted(0, make_job("run", est_s=1)))
    state.handle(
        JobSubmitted(1, make_job("long", est_s=100, submitted_at_s=1)),
        JobSubmitted(1, make_job("unknown", submitted_at_s=1)),
        JobSubmitted(1, make_job("short", est_s=10, submitted_at_s=2)),
    )
    assert state.pending == ("short", "long", "unknown")


def test_drf_lets_the_team_with_the_lower_dominant_share_go_first() -> None:
    state = make_state([make_node("n", gpus=4)], queue="drf")
    state.handle(JobSubmitted(0, make_job("x1", gpus=3, team="x")))
    state.handle(
        JobSubmitted(1, make_job("x2", gpus=1, team="x", submitted_at_s=1)),
        JobSubmitted(1, make_job("y1", gpus=1, team="y", submitted_at_s=2)),
    )
    # only one GPU is free: y (share 0) goes before x (share 0.75) though x2 came first
    assert state.running.keys() == {"x1", "y1"}
    assert state.pending == ("x2",)


def test_las_levels_follow_attained_service() -> None:
    las = LasOrder((100.0, 1000.0))
    assert [las.level(s) for s in (0, 99.9, 100, 999, 1000, 5000)] == [0, 0, 1, 1, 2, 2]
    assert las.job_key(make_job("a", submitted_at_s=5), 0.0) < las.job_key(make_job("b"), 150.0)
    with pytest.raises(ValueError, match="positive and increasing"):
        LasOrder((10.0, 5.0))


def test_estimates_on_an_aggregate_profile() -> None:
    starts = estimate_starts(
        0.0, 4000, [(100.0, 3000)], [(4000, 50.0), (1000, 10.0), (2000, None), (8000, 1.0)]
    )
    assert starts == [100.0, 0.0, 150.0, math.inf]


def test_decayed_usage_halves_every_half_life() -> None:
    from scheduler.core.queueing.fairshare import DecayedUsage
    from scheduler.core.queueing.queues import TeamUsage

    d = DecayedUsage(100.0)
    d.advance("a", 0.0, TeamUsage())
    assert (
        d.value("a", 100.0, TeamUsage(1000, 0, 0)).gpu_milli == 500.0
    )  # ran 1000 for one half-life
    d.advance("a", 100.0, TeamUsage(1000, 0, 0))
    assert d.value("a", 200.0, TeamUsage()).gpu_milli == 250.0  # idle for one more
    with pytest.raises(ValueError, match="half-life must be > 0"):
        DecayedUsage(0.0)


def test_drf_with_a_half_life_remembers_who_ran_recently() -> None:
    from scheduler.core.state import ClusterState, CoreConfig
    from scheduler.policies.base import PolicyContext
    from scheduler.policies.registry import make_packing

    def run(half_life: float | None) -> list[str]:
        state = ClusterState(
            [make_node("n", gpus=1)],
            make_packing("best_fit", PolicyContext()),
            CoreConfig(fair_share_half_life_s=half_life),
            make_queue("drf"),
        )
        state.handle(JobSubmitted(0, make_job("a-old", team="a")))
        state.handle(
            JobFinished(100, "a-old"),
            JobSubmitted(100, make_job("hold", team="c", submitted_at_s=100)),
        )
        state.handle(
            JobSubmitted(150, make_job("a-new", team="a", submitted_at_s=150)),
            JobSubmitted(150, make_job("b-new", team="b", submitted_at_s=151)),
        )
        return [*state.pending]

    assert run(None) == ["a-new", "b-new"]  # nobody runs now: equal shares, FIFO
    assert run(3600.0) == ["b-new", "a-new"]  # a ran for 100 s recently: b goes first
