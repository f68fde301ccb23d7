"""Quotas, cohorts (borrowing and lending), reclaim and priority preemption, aging."""

from __future__ import annotations

import pytest

from scheduler.core.actions import Launch, Preempt, Reject
from scheduler.core.events import JobFinished, JobSubmitted, Tick
from scheduler.core.queueing.quota import Quota, QuotaBook, QuotaConfig
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.core.verdict import Code
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import make_packing, make_queue
from tests.builders import make_job, make_node


def state_with(
    quotas: QuotaConfig | None,
    gpus: int = 8,
    preemption: bool = True,
    aging_s: float | None = None,
    backfill: str = "greedy",
) -> ClusterState:
    return ClusterState(
        [make_node("n", gpus=gpus)],
        make_packing("best_fit", PolicyContext()),
        CoreConfig(preemption=preemption, aging_s=aging_s, backfill=backfill),  # type: ignore[arg-type]
        make_queue("fifo"),
        quotas,
    )


def names(actions: list, kind: type) -> list[str]:  # type: ignore[type-arg]
    return [a.job_id for a in actions if isinstance(a, kind)]


COHORT = QuotaConfig(
    (Quota("a", "*", 4, borrowing_limit_gpus=4), Quota("b", "*", 4, lending_limit_gpus=2)),
    (("a", "c1"), ("b", "c1")),
)


def test_headroom_follows_borrowing_and_lending_limits() -> None:
    book = QuotaBook(COHORT)
    assert book.headroom("a", "*") == 6000  # own 4 + b lends at most 2
    book.charge("a", {"H100": 6000})
    assert book.headroom("a", "*") == 0 and book.borrowed("a", "*") == 2000
    # b's nominal is its own, but the cohort (8) has 2 left: the rest b must reclaim by preemption
    assert book.headroom("b", "*") == 2000
    assert book.ceiling("a", "*") == 6000


def test_quota_never_exceeded_except_by_permitted_borrowing() -> None:
    state = state_with(COHORT, preemption=False)
    acts = state.handle(
        *(JobSubmitted(0, make_job(f"a{i}", gpus=2, team="a", submitted_at_s=i)) for i in range(4))
    )
    assert names(acts, Launch) == ["a0", "a1", "a2"]  # 4 own + 2 borrowed
    assert state.verdict_of("a3").code is Code.WAIT_QUOTA
    assert "needs 2 GPUs, 0 available now" in state.verdict_of("a3").reason


def test_unknown_team_and_impossible_jobs_are_rejected_as_never() -> None:
    state = state_with(COHORT)
    acts = state.handle(JobSubmitted(0, make_job("z", team="zz")))
    assert isinstance(acts[0], Reject) and acts[0].code is Code.NEVER
    assert acts[0].reason == "team 'zz' has no quota (teams with quota: a, b)"
    acts = state.handle(JobSubmitted(1, make_job("big", gpus=8, team="a")))
    assert isinstance(acts[0], Reject) and "can hold at most 6 even borrowing" in acts[0].reason


def test_reclaim_takes_the_borrower_first_cheapest_lost_work_first() -> None:
    quotas = QuotaConfig((Quota("a", "*", 4), Quota("b", "*", 4)), (("a", "c"), ("b", "c")))
    state = state_with(quotas)
    # a borrows all of b's idle quota: 8 GPUs in four 2-GPU jobs, checkpointing at different times
    for i, ckpt in enumerate((100.0, 10.0, 100.0, 100.0)):
        job = make_job(f"a{i}", gpus=2, team="a", submitted_at_s=i)
        state.handle(
            JobSubmitted(0, job.__class__(**{**_fields(job), "checkpoint_interval_s": ckpt}))
        )
    assert len(state.running) == 4
    acts = state.handle(JobSubmitted(95, make_job("b0", gpus=2, team="b", submitted_at_s=95)))
    # a1 checkpointed at 90 (loses 5 s x 2 GPUs); the others at 0 (lose 95 s): a1 goes
    assert names(acts, Preempt) == ["a1"] and names(acts, Launch) == ["b0"]
    pre = next(a for a in acts if isinstance(a, Preempt))
    assert (pre.resume_from_s, pre.lost_gpu_s) == (90.0, 10.0)
    assert state.pending == ("a1",)
    assert state.check_invariants() == []


def test_priority_preemption_within_a_team_and_never_for_equals() -> None:
    state = state_with(None, gpus=4)
    state.handle(JobSubmitted(0, make_job("low", gpus=4, priority=0)))
    assert (
        names(
            state.handle(JobSubmitted(1, make_job("same", gpus=4, priority=0, submitted_at_s=1))),
            Preempt,
        )
        == []
    )
    acts = state.handle(JobSubmitted(2, make_job("high", gpus=2, priority=5, submitted_at_s=2)))
    assert names(acts, Preempt) == ["low"] and names(acts, Launch) == ["high"]
    assert state.preemptions == {"low": 1} and state.lost_gpu_s == 8.0
    acts = state.handle(JobFinished(10, "high"))
    assert names(acts, Launch) == ["low"]  # low (submitted 0) is ahead of same (1) again


def test_a_job_past_the_aging_bound_is_not_overtaken() -> None:
    state = state_with(None, gpus=4, preemption=False, aging_s=100.0)
    state.handle(JobSubmitted(0, make_job("run", gpus=3, est_s=1000)))
    state.handle(JobSubmitted(1, make_job("big", gpus=4, submitted_at_s=1, est_s=10)))
    # greedy backfill lets small jobs pass big while it is young...
    assert names(
        state.handle(JobSubmitted(50, make_job("s1", gpus=1, submitted_at_s=50, est_s=10_000))),
        Launch,
    ) == ["s1"]
    state.handle(JobFinished(60, "s1"))
    # ...but once big has waited past 100 s it is reserved: a long small job may not delay it
    acts = state.handle(
        Tick(200), JobSubmitted(200, make_job("s2", gpus=1, submitted_at_s=200, est_s=10_000))
    )
    assert names(acts, Launch) == []
    assert state.verdict_of("s2").reason == "held for the reservation of big"


def _fields(job):  # type: ignore[no-untyped-def]
    return {f: getattr(job, f) for f in job.__dataclass_fields__}


def test_bad_quota_values_are_refused() -> None:
    with pytest.raises(ValueError, match="nominal_gpus must be >= 0, got -1"):
        Quota("a", "*", -1)
    with pytest.raises(ValueError, match="two quotas for GPU model"):
        QuotaBook(QuotaConfig((Quota("a", "*", 1), Quota("a", "*", 2))))


def test_las_with_preemption_lets_a_new_job_displace_a_long_runner() -> None:
    from scheduler.policies.queue_las import LasOrder

    state = ClusterState(
        [make_node("n", gpus=1)],
        make_packing("best_fit", PolicyContext()),
        CoreConfig(preemption=True),
        LasOrder((50.0,)),
    )
    state.handle(JobSubmitted(0, make_job("old")))
    assert (
        names(state.handle(JobSubmitted(30, make_job("young1", submitted_at_s=30))), Preempt) == []
    )  # old: 30 GPU-s, level 0
    acts = state.handle(JobSubmitted(100, make_job("young2", submitted_at_s=100)))
    # old has 100 GPU-s (level 1); young1 waits at level 0 and is first in line: it preempts old
    assert names(acts, Preempt) == ["old"] and names(acts, Launch) == ["young1"]
    assert state.pending == ("young2", "old")  # level 0 before level 1


def test_only_the_first_pending_jobs_of_a_team_look_for_victims_in_a_cycle() -> None:
    from scheduler.core.model import Job, WorkerRequest

    def job(job_id: str, gpus: int, priority: int, t: float, workers: int = 1) -> Job:
        return Job(job_id, WorkerRequest(1000, 1024, gpus), workers, priority=priority,
                   submitted_at_s=t)  # fmt: skip

    for depth, preempted in ((1, []), (2, ["low"])):
        s = ClusterState(
            [make_node("n1", gpus=2), make_node("n2", gpus=2)],
            make_packing("best_fit", PolicyContext()),
            CoreConfig(preemption=True, preemption_depth=depth),
        )
        s.handle(JobSubmitted(0, job("low", 2, 0, 0)), JobSubmitted(0, job("high", 2, 9, 0)))
        # "wide" (2 x 2 GPUs) is first in line but cannot be helped: "high" outranks it
        s.handle(JobSubmitted(1, job("wide", 2, 5, 1, workers=2)))
        acts = s.handle(JobSubmitted(2, job("small", 1, 5, 2)))
        assert names(acts, Preempt) == preempted
