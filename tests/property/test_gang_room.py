"""``GangRoom`` answers exactly what the placer would: on random fleets with random running
gangs, counting some of them free (and placing others live) gives the same fit verdict as
releasing them from the fleet and asking :meth:`Placer.place`."""

from __future__ import annotations

import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

from scheduler.core.events import JobFinished, JobSubmitted
from scheduler.core.model import Job, Placement, WorkerRequest
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.core.placement.gang_room import GangRoom
from scheduler.core.placement.reservation import reacquire, release
from scheduler.core.queueing.easy import EasyWindow
from scheduler.policies.registry import PACKING
from tests.builders import make_node, make_state
from tests.property.test_invariants import job_st, nodes_st


def placer_fits(state, head, freed=()) -> bool:  # type: ignore[no-untyped-def]
    """Would the placer fit ``head`` with the ``freed`` placements released? (Undone after.)"""
    for p in freed:
        release(state.fleet, p)
    p = state.placer.place(head)
    if p is not None:
        release(state.fleet, p)
    for f in reversed(freed):
        reacquire(state.fleet, f)
    return p is not None


@settings(max_examples=150, deadline=None)
@given(
    nodes=nodes_st,
    policy=st.sampled_from(list(PACKING)),
    data=st.data(),
)
def test_gang_room_matches_placer(nodes, policy, data) -> None:  # type: ignore[no-untyped-def]
    fleet_nodes = [
        make_node(f"n{i}", gpus=g, model=m, domains=d, rack=r)
        for i, (g, m, d, r) in enumerate(nodes)
    ]
    typical = TypicalShapes.from_requests([WorkerRequest(1000, 1024, 1)])
    state = make_state(fleet_nodes, policy, typical=typical)
    if data.draw(st.booleans()):
        state.fleet.set_gpu_health(0, 0, False)
    if data.draw(st.booleans()) and len(fleet_nodes) > 1:
        state.fleet.set_schedulable(1, False)
    running: list[Placement] = []
    for i in range(data.draw(st.integers(0, 12))):
        p = state.placer.place(data.draw(job_st(i)))
        if p is not None:
            running.append(p)
    head = data.draw(job_st(99))
    room = GangRoom(state.fleet, head)
    assert room.fits() == placer_fits(state, head)

    freed = [p for p in running if data.draw(st.booleans())]
    for p in freed:
        room.count(p, refresh=data.draw(st.booleans()))
    room.refresh_stale()
    assert room.fits() == placer_fits(state, head, freed)

    # the fleet changes live (a gang starts); the room follows once told which nodes changed
    extra = state.placer.place(data.draw(job_st(100)))
    if extra is not None:
        room.refresh(sorted({w.node_index for w in extra.workers}))
        assert room.fits() == placer_fits(state, head, freed)
    assert np.all(state.fleet.gpu_free >= 0)


@settings(max_examples=300, deadline=None)
@given(nodes=nodes_st, data=st.data())
def test_reused_shadow_time_equals_a_fresh_one(nodes, data) -> None:  # type: ignore[no-untyped-def]
    """The core reuses a head's shadow time while only EASY-checked starts and on-time or late
    finishes happened; recomputing it from scratch must give the same time."""
    fleet_nodes = [
        make_node(f"n{i}", gpus=g, model=m, domains=d, rack=r)
        for i, (g, m, d, r) in enumerate(nodes)
    ]
    state = make_state(fleet_nodes, "best_fit", backfill="easy")
    t = 0.0
    for i in range(data.draw(st.integers(10, 40))):
        op = data.draw(st.sampled_from(["submit", "submit", "on_time", "early", "late"]))
        ends = sorted(state._end_list)
        if op == "submit" or not ends:
            job = data.draw(job_st(i))
            est = data.draw(st.floats(1, 50))
            job = Job(
                job.job_id,
                job.worker,
                job.num_workers,
                job.team,
                job.priority,
                t,
                job.topology,
                est,
            )
            acts = state.handle(JobSubmitted(t, job))
            note(f"submit {job} at {t}: {acts}; memo {state.shadow_memo}")
            continue
        end_s, job_id = ends[data.draw(st.integers(0, len(ends) - 1))]
        if op == "on_time":
            end_s, job_id = ends[0]
            t = max(t, end_s)
        elif op == "late":
            t = max(t, end_s) + data.draw(st.floats(0, 10))
        else:
            t = max(t, min(end_s, t + data.draw(st.floats(0, 10))))
        acts = state.handle(JobFinished(t, job_id))
        note(f"{op} {job_id} at {t}: {acts}; memo {state.shadow_memo}, ends {state._end_list}")
        (head_id, version, layout), time_s = state.shadow_memo
        if head_id in state.queues and version == state.profile_version:
            assert layout == state.fleet.layout_version
            fresh = EasyWindow(state.jobs[head_id], state.fleet, state.running, state.ends, t)
            assert fresh.time_s == max(time_s, t)
