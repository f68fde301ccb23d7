"""Data residency in the core: a job runs only on nodes whose ``gpuyard.io/region`` label is
one of the regions its data may be processed in, whatever else is free."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Launch, Reject
from scheduler.core.events import JobFinished, JobSubmitted
from scheduler.core.invariants import check
from scheduler.core.model import Topology
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.core.verdict import Code
from scheduler.policies.base import PolicyContext
from tests.builders import make_job, make_node


def _fleet() -> list:  # type: ignore[type-arg]
    return [
        make_node("us-0", gpus=8, region="US"),
        make_node("us-1", gpus=8, region="US"),
        make_node("cn-0", gpus=8, region="CN", rack="r1"),
    ]


def test_a_cn_job_waits_for_the_cn_node_while_the_us_nodes_are_empty() -> None:
    core = build_core(SchedulerConfig(packing="best_fit"), _fleet())
    first = core.handle(
        JobSubmitted(0, make_job("cn-a", gpus=8, regions=("CN",), data_region="CN"))
    )
    assert [(type(a).__name__, a.placement.nodes) for a in first if isinstance(a, Launch)] == [
        ("Launch", ("cn-0",))
    ]
    second = core.handle(
        JobSubmitted(1, make_job("cn-b", gpus=8, regions=("CN",), data_region="CN"))
    )
    assert not [a for a in second if isinstance(a, Launch)]  # two empty US nodes do not count
    assert core.verdict_of("cn-b").code is Code.WAIT_CAPACITY
    done = core.handle(JobFinished(2, "cn-a"))
    assert [a.placement.nodes for a in done if isinstance(a, Launch)] == [("cn-0",)]


def test_an_unrestricted_job_may_use_any_region_and_a_us_job_only_the_us() -> None:
    core = build_core(SchedulerConfig(packing="best_fit"), _fleet())
    acts = core.handle(JobSubmitted(0, make_job("any", gpus=8, workers=3)))
    assert sorted(n for a in acts if isinstance(a, Launch) for n in a.placement.nodes) == [
        "cn-0",
        "us-0",
        "us-1",
    ]
    core = build_core(SchedulerConfig(packing="best_fit"), _fleet())
    acts = core.handle(JobSubmitted(0, make_job("us", gpus=8, workers=3, regions=("US",))))
    assert isinstance(acts[0], Reject) and acts[0].code is Code.NEVER
    assert "3 workers do not fit the fleet even when empty (room for 2)" in acts[0].reason


def test_a_region_the_fleet_lacks_is_rejected_naming_the_regions_it_has() -> None:
    core = build_core(SchedulerConfig(), _fleet())
    acts = core.handle(JobSubmitted(0, make_job("eu", gpus=1, regions=("EU",), data_region="EU")))
    assert isinstance(acts[0], Reject)
    assert acts[0].reason == "no node in region EU (data residency): the fleet's regions are CN, US"


def test_cpu_only_workers_keep_to_their_region_too() -> None:
    core = build_core(SchedulerConfig(packing="best_fit"), _fleet())
    acts = core.handle(JobSubmitted(0, make_job("etl", gpus=0, workers=2, regions=("CN",))))
    assert {n for a in acts if isinstance(a, Launch) for n in a.placement.nodes} == {"cn-0"}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([(), ("CN",), ("US",), ("CN", "US")]),
            st.sampled_from([1, 2, 4, 8]),
            st.integers(1, 3),
            st.sampled_from(list(Topology)),
            st.booleans(),
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from(["best_fit", "fgd", "frag_pack", "topology", "random", "gpu_packing"]),
)
def test_no_policy_ever_places_a_worker_outside_its_regions(jobs, policy) -> None:  # type: ignore[no-untyped-def]
    typical = TypicalShapes.from_requests([make_job("t", gpus=g).worker for g in (1, 2, 4, 8)])
    core = build_core(SchedulerConfig(packing=policy), _fleet(), PolicyContext(typical=typical))
    running: list[str] = []
    for i, (regions, gpus, workers, topology, finish) in enumerate(jobs):
        job = make_job(f"j{i}", gpus=gpus, workers=workers, topology=topology, regions=regions)
        acts = core.handle(JobSubmitted(float(i), job))
        if finish and running:
            acts += core.handle(JobFinished(float(i) + 0.5, running.pop(0)))
        for a in acts:
            if isinstance(a, Launch):
                running.append(a.job_id)
                allowed = core.jobs[a.job_id].worker.regions
                for w in a.placement.workers:
                    region = core.fleet.nodes[w.node_index].label("gpuyard.io/region")
                    assert not allowed or region in allowed
        assert check(core.fleet, core.running, core.jobs) == []
