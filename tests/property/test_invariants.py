"""Hypothesis properties of the core under random fleets, jobs, finishes and health changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.actions import Launch
from scheduler.core.events import GpuHealthChanged, JobFinished, JobSubmitted
from scheduler.core.model import Job, Topology, WorkerRequest
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.policies.registry import PACKING, QUEUE
from tests.builders import make_node, make_state

MODELS = ("H100", "T4")

nodes_st = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 4, 8]),
        st.sampled_from(MODELS),
        st.sampled_from([1, 2]),
        st.sampled_from(["r0", "r1"]),
    ),
    min_size=1,
    max_size=6,
)


@st.composite
def job_st(draw: st.DrawFn, i: int) -> Job:
    share = draw(st.booleans())
    gpus = 1 if share else draw(st.sampled_from([0, 1, 2, 4, 8]))
    milli = draw(st.integers(50, 999)) if share else 1000
    models = draw(st.sampled_from([(), ("H100",), ("T4",), ("H100", "T4")]))
    workers = draw(st.integers(1, 3))
    topo = Topology.ANY if share else draw(st.sampled_from(list(Topology)))
    req = WorkerRequest(
        draw(st.integers(0, 40_000)),
        draw(st.integers(0, 200_000)),
        gpus,
        milli,
        models if gpus else (),
    )
    return Job(
        f"j{i:03d}",
        req,
        num_workers=workers,
        topology=topo,
        priority=draw(st.integers(0, 2)),
        team=draw(st.sampled_from(["a", "b"])),
        submitted_at_s=float(i),
        estimated_duration_s=draw(st.one_of(st.none(), st.floats(1, 100))),
    )


ops_st = st.lists(
    st.tuples(st.sampled_from(["submit", "submit", "finish", "sick"]), st.integers(0, 10_000)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    nodes=nodes_st,
    ops=ops_st,
    policy=st.sampled_from(list(PACKING)),
    queue=st.sampled_from(list(QUEUE)),
    backfill=st.sampled_from(["none", "greedy", "easy"]),
    data=st.data(),
)
def test_nothing_over_allocated_gangs_whole_and_gpu_spec_respected(
    nodes, ops, policy, queue, backfill, data
) -> None:  # type: ignore[no-untyped-def]
    fleet = [
        make_node(f"n{i}", gpus=g, model=m, domains=d if g >= d else 1, rack=r)
        for i, (g, m, d, r) in enumerate(nodes)
    ]
    typical = TypicalShapes.from_requests(
        [WorkerRequest(1000, 0, 1, 500), WorkerRequest(1000, 0, 1)]
    )
    state = make_state(fleet, policy, seed=7, typical=typical, queue=queue, backfill=backfill)
    t = 0.0
    for i, (op, k) in enumerate(ops):
        t += 1
        if op == "submit":
            job = data.draw(job_st(i))
            actions = state.handle(JobSubmitted(t, job))
        elif op == "finish" and state.running:
            victim = sorted(state.running)[k % len(state.running)]
            actions = state.handle(JobFinished(t, victim))
        elif op == "sick":
            node = fleet[k % len(fleet)]
            actions = state.handle(
                GpuHealthChanged(t, node.name, k % len(node.gpus), healthy=False)
            )
        else:
            continue
        for a in actions:
            if isinstance(a, Launch):
                job = state.jobs[a.job_id]
                assert len(a.placement.workers) == job.num_workers
                if job.topology in (Topology.SAME_NODE, Topology.SAME_NVLINK):
                    assert len(set(a.placement.nodes)) == 1
                for w in a.placement.workers:
                    assert state.fleet.gpu_healthy[w.node_index, list(w.gpu_indices)].all()
                    if job.topology is Topology.SAME_NVLINK and w.gpu_indices:
                        assert (
                            len(
                                {
                                    int(state.fleet.gpu_domain[w.node_index, g])
                                    for g in w.gpu_indices
                                }
                            )
                            == 1
                        )
        assert state.check_invariants() == []
        assert (
            (state.fleet.gpu_free >= 0).all()
            and (state.fleet.cpu_free >= 0).all()
            and (state.fleet.mem_free >= 0).all()
        )


@settings(max_examples=20, deadline=None)
@given(
    nodes=nodes_st,
    seed=st.integers(0, 2**16),
    policy=st.sampled_from(list(PACKING)),
    data=st.data(),
)
def test_same_events_give_the_same_actions(nodes, seed, policy, data) -> None:  # type: ignore[no-untyped-def]
    fleet = [make_node(f"n{i}", gpus=g, model=m, rack=r) for i, (g, m, _, r) in enumerate(nodes)]
    jobs = [data.draw(job_st(i)) for i in range(15)]
    typical = TypicalShapes.from_requests(j.worker for j in jobs)

    def run() -> list[object]:
        state = make_state(fleet, policy, seed=seed, typical=typical)
        out: list[object] = []
        for i, j in enumerate(jobs):
            out += state.handle(JobSubmitted(float(i), j))
        return out

    assert run() == run()
