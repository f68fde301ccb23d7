"""Hypothesis properties of quotas, cohorts, preemption and aging."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.actions import Launch, Preempt
from scheduler.core.events import JobFinished, JobSubmitted, Tick
from scheduler.core.model import Job, WorkerRequest
from scheduler.core.queueing.quota import Quota, QuotaConfig
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import QUEUE, make_packing, make_queue
from tests.builders import make_node

TEAMS = ("a", "b", "c")

ops_st = st.lists(
    st.tuples(
        st.sampled_from(["submit", "submit", "submit", "finish", "tick"]),
        st.sampled_from(TEAMS),
        st.integers(1, 4),  # GPUs
        st.integers(0, 2),  # priority
        st.one_of(st.none(), st.sampled_from([5.0, 20.0])),  # checkpoint interval
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(
    ops=ops_st,
    borrow=st.one_of(st.none(), st.integers(0, 4)),
    lend=st.one_of(st.none(), st.integers(0, 3)),
    queue=st.sampled_from(list(QUEUE)),
    backfill=st.sampled_from(["none", "greedy", "easy"]),
)
def test_quotas_borrowing_reclaim_and_aging(ops, borrow, lend, queue, backfill) -> None:  # type: ignore[no-untyped-def]
    quotas = QuotaConfig(
        (
            Quota("a", "*", 2, borrowing_limit_gpus=borrow),
            Quota("b", "*", 3, lending_limit_gpus=lend),
            Quota("c", "*", 3),
        ),
        tuple((t, "cohort") for t in TEAMS),
    )
    aging = 30.0
    state = ClusterState(
        [make_node("n0", gpus=4), make_node("n1", gpus=4)],
        make_packing("best_fit", PolicyContext()),
        CoreConfig(backfill=backfill, preemption=True, aging_s=aging),
        make_queue(queue),
        quotas,
    )
    book = state.quota
    assert book is not None
    nominal = {"a": 2000, "b": 3000, "c": 3000}
    t = 0.0
    for i, (op, team, gpus, prio, ckpt, k) in enumerate(ops):
        t += 7
        borrowing_before = {x for x in TEAMS if book.borrowed(x, "*") > 0}
        if op == "submit":
            job = Job(f"j{i:02d}", WorkerRequest(0, 0, gpus), team=team, priority=prio, submitted_at_s=t,
                      estimated_duration_s=float(k % 50 + 1), checkpoint_interval_s=ckpt)  # fmt: skip
            actions = state.handle(JobSubmitted(t, job))
        elif op == "finish" and state.running:
            actions = state.handle(JobFinished(t, sorted(state.running)[k % len(state.running)]))
        else:
            actions = state.handle(Tick(t))
        # no GPU double-booked across preemption and resume
        assert state.check_invariants() == []
        assert not set(state.running) & set(state.pending)
        # quotas never exceeded except by permitted borrowing
        if borrow is not None:
            assert book.borrowed("a", "*") <= borrow * 1000
        assert sum(book.used.get((x, "*"), 0) for x in TEAMS) <= sum(nominal.values())
        # reclaim takes borrowers only: a victim of another team was borrowing (before this
        # cycle, or after a launch of its team earlier in the cycle)
        grew = set(borrowing_before)
        for a in actions:
            if isinstance(a, Launch):
                grew.add(state.jobs[a.job_id].team)
            if isinstance(a, Preempt):
                beneficiary = a.cause.removeprefix("preempted for ")
                victim_team = state.jobs[a.job_id].team
                if state.jobs[beneficiary].team != victim_team:
                    assert victim_team in grew
                else:
                    assert state.jobs[a.job_id].priority < state.jobs[beneficiary].priority
        # a job past the aging bound is in the front lane, and the front lane (overdue jobs
        # and EASY's reserved heads, which are moved there and need not be overdue yet) is
        # ahead of every other job
        order = state.pending
        overdue = [state.now_s - state.jobs[j].submitted_at_s > aging for j in order]
        front = [state.queues.where[j][1][0] == 0 for j in order]
        assert all(f for f, o in zip(front, overdue, strict=True) if o)
        assert front == sorted(front, reverse=True)
