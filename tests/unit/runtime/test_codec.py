"""codec: every core event, action and placement round-trips exactly through JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import typing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
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
from scheduler.core.model import Job, Placement, Topology, WorkerPlacement, WorkerRequest
from scheduler.core.outcomes import PreemptReason, ReleaseOutcome, RunOutcome
from scheduler.core.verdict import Code
from scheduler.runtime import codec
from scheduler.runtime.codec import (
    ACTION_KINDS,
    EVENT_KINDS,
    decode_action,
    decode_event,
    decode_job,
    decode_placement,
    encode_action,
    encode_event,
    encode_job,
    encode_placement,
    event_job_id,
)

# -------------------------------------------------------------- strategies
times = st.one_of(
    st.floats(allow_nan=False),  # includes inf, -inf, -0.0, subnormals
    st.integers(-(2**53), 2**53),  # an int clock stays an int
)
opt_times = st.none() | times
names = st.text(max_size=12)  # any unicode, lone surrogates included
small = st.integers(0, 2**31)
ints = st.integers(-(2**63), 2**63 - 1)


@st.composite
def worker_requests(draw: st.DrawFn) -> WorkerRequest:
    share = draw(st.booleans())
    return WorkerRequest(
        cpu_milli=draw(small),
        memory_mib=draw(small),
        gpus=1 if share else draw(st.integers(0, 16)),
        gpu_milli=draw(st.integers(1, 999)) if share else 1000,
        gpu_models=tuple(draw(st.lists(names, max_size=3))),
        min_gpu_memory_mib=draw(small),
    )


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    worker = draw(worker_requests())
    topo = draw(st.sampled_from(list(Topology)))
    workers = draw(st.integers(1, 64))
    if worker.shares_gpu and topo in (Topology.SAME_NODE, Topology.SAME_NVLINK):
        workers = 1
    return Job(
        job_id=draw(names),
        worker=worker,
        num_workers=workers,
        team=draw(names),
        priority=draw(ints),
        submitted_at_s=draw(times),
        topology=topo,
        estimated_duration_s=draw(opt_times),
        checkpoint_interval_s=draw(opt_times),
    )


worker_placements = st.builds(
    WorkerPlacement,
    node=names,
    node_index=small,
    gpu_indices=st.lists(st.integers(0, 63), max_size=8).map(tuple),
    gpu_milli=st.integers(1, 1000),
    cpu_milli=small,
    memory_mib=small,
)
placements = st.builds(
    Placement, job_id=names, workers=st.lists(worker_placements, max_size=5).map(tuple)
)

events: st.SearchStrategy[Event] = st.one_of(
    st.builds(JobSubmitted, now_s=times, job=jobs(), cause=names),
    st.builds(JobFinished, now_s=times, job_id=names, cause=names),
    st.builds(JobCancelled, now_s=times, job_id=names, cause=names),
    st.builds(JobInterrupted, now_s=times, job_id=names, cause=names),
    st.builds(NodeCordoned, now_s=times, node=names, cause=names),
    st.builds(NodeUncordoned, now_s=times, node=names, cause=names),
    st.builds(NodeLost, now_s=times, node=names, cause=names),
    st.builds(NodeJoined, now_s=times, node=names, cause=names),
    st.builds(
        GpuHealthChanged,
        now_s=times,
        node=names,
        gpu_index=small,
        healthy=st.booleans(),
        cause=names,
    ),
    st.builds(
        GpuTelemetry,
        now_s=times,
        node=names,
        gpu_index=small,
        memory_used_mib=small,
        memory_total_mib=small,
        utilization_pct=times,
        temperature_c=times,
        power_w=times,
        ecc_uncorrected=ints,
        xids=st.lists(small, max_size=4).map(tuple),
        cause=names,
    ),
    st.builds(Tick, now_s=times, cause=names),
)

actions: st.SearchStrategy[Action] = st.one_of(
    st.builds(Launch, job_id=names, placement=placements, now_s=times, cause=names),
    st.builds(
        Reject,
        job_id=names,
        code=st.sampled_from(list(Code)),
        reason=names,
        now_s=times,
        cause=names,
    ),
    st.builds(Release, job_id=names, now_s=times, cause=names),
    st.builds(
        Preempt, job_id=names, now_s=times, cause=names, resume_from_s=times, lost_gpu_s=times
    ),
)


def _through_json(d: dict[str, typing.Any]) -> tuple[str, dict[str, typing.Any]]:
    text = json.dumps(d, allow_nan=False)
    return text, json.loads(text)


# --------------------------------------------------------------- properties
@settings(max_examples=400)
@given(events)
def test_every_event_round_trips_exactly_through_json(ev: Event) -> None:
    text, back = _through_json(encode_event(ev))
    again = decode_event(back)
    assert again == ev
    assert type(again) is type(ev)
    # byte-identical re-encoding: int stays int, float stays the same float, -0.0 stays -0.0
    assert json.dumps(encode_event(again), allow_nan=False) == text


@settings(max_examples=400)
@given(actions)
def test_every_action_round_trips_exactly_through_json(a: Action) -> None:
    text, back = _through_json(encode_action(a))
    again = decode_action(back)
    assert again == a
    assert json.dumps(encode_action(again), allow_nan=False) == text


@given(placements)
def test_a_placement_round_trips_alone(p: Placement) -> None:
    assert decode_placement(_through_json(encode_placement(p))[1]) == p


# ------------------------------------------------------------------ examples
def test_every_class_of_the_unions_is_covered_with_all_its_fields() -> None:
    samples: dict[type, Event | Action] = {
        JobSubmitted: JobSubmitted(1.5, Job("j", WorkerRequest(1, 2, 3))),
        JobFinished: JobFinished(1, "j"),
        JobCancelled: JobCancelled(1, "j"),
        JobInterrupted: JobInterrupted(1, "j"),
        NodeCordoned: NodeCordoned(1, "n"),
        NodeUncordoned: NodeUncordoned(1, "n"),
        NodeDrained: NodeDrained(1, "n"),
        NodeLost: NodeLost(1, "n"),
        NodeJoined: NodeJoined(1, "n"),
        GpuHealthChanged: GpuHealthChanged(1, "n", 0, False),
        GpuTelemetry: GpuTelemetry(1, "n", 0, 10, 80, 50.0, 40.0, 300.0, 1, (79,)),
        Tick: Tick(1),
        Launch: Launch("j", Placement("j"), 1, "c"),
        Reject: Reject("j", Code.NEVER, "r", 1, "c"),
        Release: Release("j", 1, "c"),
        Preempt: Preempt("j", 1, "c", 0.0, 2.0),
    }
    assert set(typing.get_args(Event)) | set(typing.get_args(Action)) == set(samples)
    for cls, value in samples.items():
        d = encode_event(value) if cls in typing.get_args(Event) else encode_action(value)  # type: ignore[arg-type]
        assert d["kind"] == cls.__name__
        assert set(d) == {"kind"} | {f.name for f in dataclasses.fields(cls)}


def test_a_field_added_with_a_default_may_be_missing_from_old_records() -> None:
    old = {"kind": "Release", "job_id": "j", "now_s": 1, "cause": "succeeded"}
    assert decode_action(old) == Release("j", 1, "succeeded", ReleaseOutcome.SUCCEEDED)
    old = {"kind": "Preempt", "job_id": "j", "now_s": 1, "cause": "c", "resume_from_s": 0,
           "lost_gpu_s": 2}  # fmt: skip
    assert decode_action(old).reason is PreemptReason.PRIORITY  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="Release: missing field 'cause'"):
        decode_action({"kind": "Release", "job_id": "j", "now_s": 1})
    done = JobFinished(1, "j", "failed: boom", RunOutcome.FAILED)
    assert decode_event(_through_json(encode_event(done))[1]) == done


def test_the_job_inside_a_submission_keeps_request_topology_and_optionals() -> None:
    job = Job(
        "job-000007",
        WorkerRequest(4000, 65536, 1, 250, ("H100", "A100"), 40_000),
        num_workers=3,
        team="vision",
        priority=-2,
        submitted_at_s=1_764_000_000.123456,
        topology=Topology.SAME_RACK,
        estimated_duration_s=math.inf,
        checkpoint_interval_s=600.0,
    )
    d = encode_event(JobSubmitted(1_764_000_000.5, job, "api"))
    assert d["now_s"] == 1_764_000_000.5
    assert d["job"]["topology"] == "same_rack"
    assert d["job"]["worker"]["gpu_models"] == ["H100", "A100"]
    assert d["job"]["estimated_duration_s"] == "inf"
    back = decode_event(json.loads(json.dumps(d, allow_nan=False)))
    assert isinstance(back, JobSubmitted) and back.job == job
    assert back.job.worker.gpu_models == ("H100", "A100")  # a tuple again, not a list


def test_non_finite_floats_are_strings_in_json() -> None:
    d = encode_action(Preempt("j", math.inf, "c", -math.inf, math.nan))
    assert (d["now_s"], d["resume_from_s"], d["lost_gpu_s"]) == ("inf", "-inf", "nan")
    back = decode_action(d)
    assert isinstance(back, Preempt) and math.isnan(back.lost_gpu_s)
    assert back.now_s == math.inf and back.resume_from_s == -math.inf


def test_numpy_scalars_from_the_core_encode_as_plain_numbers() -> None:
    wp = WorkerPlacement("a", np.int64(3), (np.int64(0), np.int64(1)), 1000, 1, 2)  # type: ignore[arg-type]
    a = Launch("j", Placement("j", (wp,)), np.float64(2.5), "c")
    text = json.dumps(encode_action(a), allow_nan=False)
    assert decode_action(json.loads(text)) == a


def test_unknown_kinds_name_the_kind() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'JobExploded'"):
        decode_event({"kind": "JobExploded", "now_s": 1})
    with pytest.raises(ValueError, match="unknown action kind 'Reboot'"):
        decode_action({"kind": "Reboot"})
    with pytest.raises(ValueError, match="expected kind 'Placement', got 'Launch'"):
        decode_placement({"kind": "Launch"})


def test_malformed_fields_name_kind_and_field() -> None:
    good = encode_event(GpuHealthChanged(1, "n", 0, True))
    with pytest.raises(ValueError, match=r"GpuHealthChanged\.healthy: expected true or false"):
        decode_event({**good, "healthy": 1})
    with pytest.raises(ValueError, match="GpuHealthChanged: missing field 'node'"):
        decode_event({k: v for k, v in good.items() if k != "node"})
    with pytest.raises(ValueError, match=r"GpuHealthChanged\.now_s: expected a number"):
        decode_event({**good, "now_s": "soon"})
    reject = encode_action(Reject("j", Code.NEVER, "r", 1, "c"))
    with pytest.raises(ValueError, match=r"Reject\.code: expected one of FIT, "):
        decode_action({**reject, "code": "MAYBE"})
    with pytest.raises(ValueError, match="no string 'kind'"):
        decode_event({"now_s": 1})


def test_extra_fields_and_nested_values_are_checked_and_named() -> None:
    good = encode_event(GpuHealthChanged(1, "n", 0, True))
    with pytest.raises(ValueError, match="GpuHealthChanged: unexpected field 'extra'"):
        decode_event({**good, "extra": 1})
    launch = encode_action(
        Launch("j", Placement("j", (WorkerPlacement("a", 0, (1,), 1, 2, 3),)), 1, "c")
    )
    bad_gpu = {**launch["placement"]["workers"][0], "gpu_indices": [1, "x"]}
    with pytest.raises(ValueError, match=r"WorkerPlacement\.gpu_indices\[1\]: expected an int"):
        decode_action({**launch, "placement": {**launch["placement"], "workers": [bad_gpu]}})
    with pytest.raises(ValueError, match=r"Launch\.placement: expected an object"):
        decode_action({**launch, "placement": [1]})
    with pytest.raises(ValueError, match="expected kind 'Placement', got 'Job'"):
        decode_action({**launch, "placement": {**launch["placement"], "kind": "Job"}})
    job = encode_job(Job("j", WorkerRequest(1, 2, 1, 500)))
    with pytest.raises(ValueError, match=r"Job\.topology: expected one of any, same_node"):
        decode_job({**job, "topology": "nowhere"})
    with pytest.raises(ValueError, match=r"WorkerRequest: gpu_milli must be in 1\.\.1000"):
        decode_job({**job, "worker": {**job["worker"], "gpu_milli": 0}})  # the class's own check
    with pytest.raises(ValueError, match=r"Job\.estimated_duration_s: expected a number"):
        decode_job({**job, "estimated_duration_s": True})
    with pytest.raises(ValueError, match=r"WorkerRequest\.gpu_models: expected a list"):
        decode_job({**job, "worker": {**job["worker"], "gpu_models": "H100"}})


def test_encoding_a_value_of_the_wrong_type_names_kind_and_field() -> None:
    with pytest.raises(TypeError, match=r"Tick\.now_s"):
        encode_event(Tick("soon"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"GpuHealthChanged\.gpu_index"):
        encode_event(GpuHealthChanged(1, "n", True, True))
    with pytest.raises(TypeError, match=r"Reject\.code"):
        encode_action(Reject("j", "NEVER", "r", 1, "c"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot encode unknown event kind 'Placement'"):
        encode_event(Placement("j"))  # type: ignore[arg-type]


def test_the_format_is_pinned_so_old_journals_stay_readable() -> None:
    job = Job(
        "j", WorkerRequest(1, 2, 1, 500, ("A100",)), 2, "t", 3, 4, Topology.SAME_RACK, None, 5.5
    )
    text = (
        '{"kind": "JobSubmitted", "now_s": 1.5, "job": {"kind": "Job", "job_id": "j", "worker": '
        '{"kind": "WorkerRequest", "cpu_milli": 1, "memory_mib": 2, "gpus": 1, "gpu_milli": 500, '
        '"gpu_models": ["A100"], "min_gpu_memory_mib": 0}, "num_workers": 2, "team": "t", '
        '"priority": 3, "submitted_at_s": 4, "topology": "same_rack", "estimated_duration_s": null, '
        '"checkpoint_interval_s": 5.5}, "cause": "api"}'
    )
    # what gpuyard wrote before data residency (no regions, no data_region) still reads
    assert decode_event(json.loads(text)) == JobSubmitted(1.5, job, "api")
    now = text.replace(
        '"min_gpu_memory_mib": 0}', '"min_gpu_memory_mib": 0, "regions": []}'
    ).replace('"checkpoint_interval_s": 5.5}', '"checkpoint_interval_s": 5.5, "data_region": ""}')
    assert json.dumps(encode_event(JobSubmitted(1.5, job, "api"))) == now
    assert decode_event(json.loads(now)) == JobSubmitted(1.5, job, "api")
    tel = GpuTelemetry(np.int64(2), "n", 0, 1, 2, np.float64(3.5), math.inf, 0.0, 7, (79, 48))  # type: ignore[arg-type]
    assert json.dumps(encode_event(tel)) == (
        '{"kind": "GpuTelemetry", "now_s": 2, "node": "n", "gpu_index": 0, "memory_used_mib": 1, '
        '"memory_total_mib": 2, "utilization_pct": 3.5, "temperature_c": "inf", "power_w": 0.0, '
        '"ecc_uncorrected": 7, "xids": [79, 48], "cause": "telemetry"}'
    )


@dataclasses.dataclass(frozen=True, slots=True)
class DiskFull:
    """A stand-in for an event class added to the core later."""

    now_s: float
    node: str
    free_mib: int | None
    paths: tuple[str, ...]
    topology: Topology
    job: Job
    cause: str = "disk full"


@dataclasses.dataclass(frozen=True, slots=True)
class WithADict:
    labels: dict[str, str]


def test_the_registries_are_built_from_the_unions_so_a_new_event_needs_no_codec_change() -> None:
    assert set(EVENT_KINDS) == {cls.__name__ for cls in typing.get_args(Event)}
    assert set(ACTION_KINDS) == {cls.__name__ for cls in typing.get_args(Action)}
    grown = codec._registry(Event | DiskFull)
    ev = DiskFull(1, "n", None, ("/a", "/b"), Topology.ANY, Job("j", WorkerRequest(1, 2)))
    d = codec._encode_in(grown, "event", ev)
    assert set(d) == {"kind"} | {f.name for f in dataclasses.fields(DiskFull)}
    back = codec._decode_in(grown, "event", json.loads(json.dumps(d)))
    assert back == ev and back.paths == ("/a", "/b")
    with pytest.raises(ValueError, match=r"DiskFull\.free_mib: expected an int"):
        codec._decode_in(grown, "event", {**d, "free_mib": 1.5})
    with pytest.raises(TypeError, match="unsupported field type"):
        codec._registry(Event | WithADict)


def test_event_job_id_names_the_job_of_job_events_only() -> None:
    assert event_job_id(JobSubmitted(1, Job("a", WorkerRequest(1, 2)))) == "a"
    assert event_job_id(JobInterrupted(1, "b")) == "b"
    assert event_job_id(NodeLost(1, "n")) is None
    assert event_job_id(Tick(1)) is None
