"""The service's Prometheus metrics: ``gpuyard_gpus{state}`` is a partition of the capacity
(exact figures for a fleet with busy GPUs on unhealthy, drained and lost hardware, and a
hypothesis property over random fleets against a per-GPU reference), the per-node and
per-model gauges, drains counted once each, and, through a service with its shell faked
(no Ray), admission latency observed on a job's first start only and queue waits measured
from submission or from the last requeue (also after a restart)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from prometheus_client.parser import text_string_to_metric_families

from scheduler.runtime.config import ServiceConfig, parse_fleet
from scheduler.runtime.metrics import GpuState, ServiceMetrics, gpu_figures
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.views import JobState
from tests.unit.runtime.test_service import FakeCluster, FakeLauncher, spec

H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"


@dataclass
class Arrays:
    """A fleet's arrays as ``set_fleet`` reads them (``FleetArrays``)."""

    names: tuple[str, ...]
    model_names: tuple[str, ...]
    gpu_exists: NDArray[np.bool_]
    gpu_model: NDArray[np.int64]
    gpu_healthy: NDArray[np.bool_]
    gpu_cap: NDArray[np.int64]
    gpu_free: NDArray[np.int64]


def arrays(nodes: list[tuple[str, str, list[int], list[bool]]], g: int) -> Arrays:
    """``(name, model, free milli per GPU, healthy per GPU)`` per node, ``g`` slots each."""
    models = tuple(sorted({m for _, m, _, _ in nodes}))
    n = len(nodes)
    exists = np.zeros((n, g), dtype=np.bool_)
    model = np.full((n, g), -1, dtype=np.int64)
    healthy = np.zeros((n, g), dtype=np.bool_)
    free = np.zeros((n, g), dtype=np.int64)
    for i, (_, m, frees, ok) in enumerate(nodes):
        k = len(frees)
        exists[i, :k], model[i, :k] = True, models.index(m)
        free[i, :k], healthy[i, :k] = frees, ok
    cap = np.where(exists, 1000, 0).astype(np.int64)
    return Arrays(tuple(x[0] for x in nodes), models, exists, model, healthy, cap, free)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples(text).items() if n == name}


def lab(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


# ------------------------------------------------------------- the partition
# a: busy, half-busy, unhealthy idle, unhealthy busy; b: drained (and cordoned) with a job
# still on GPU 0 (its stop under way); c: lost, 2 GPUs of 4 slots, one unhealthy
FLEET = arrays(
    [
        ("a", H100, [0, 500, 1000, 0], [True, True, False, False]),
        ("b", H100, [0, 1000, 1000, 1000], [True] * 4),
        ("c", A100, [1000, 1000], [False, True]),
    ],
    g=4,
)
OFF = {"b": {"cordon", "drain"}, "c": {"lost"}}


def test_gpus_by_state_is_a_partition_of_the_capacity_exact_figures() -> None:
    m = ServiceMetrics()
    m.set_fleet(FLEET, OFF)
    text = m.render()
    assert series(text, "gpuyard_gpus") == {
        lab(state="allocated"): 3.5,  # a: 1 + 0.5 + 1 (the unhealthy busy GPU), b: 1
        lab(state="unhealthy"): 2.0,  # a's idle unhealthy GPU, c's unhealthy GPU
        lab(state="lost"): 1.0,
        lab(state="drained"): 3.0,  # drain before cordon
        lab(state="cordoned"): 0.0,
        lab(state="free"): 0.5,
    }
    assert sum(series(text, "gpuyard_gpus").values()) == 10.0
    assert series(text, "gpuyard_gpu_capacity") == {
        lab(gpu_model=H100): 8.0,
        lab(gpu_model=A100): 2.0,
    }
    assert series(text, "gpuyard_gpus_allocated") == {
        lab(node="a", gpu_model=H100): 2.5,
        lab(node="b", gpu_model=H100): 1.0,
        lab(node="c", gpu_model=A100): 0.0,
    }
    assert series(text, "gpuyard_gpus_unhealthy") == {  # only the nodes that have one
        lab(node="a", gpu_model=H100): 2.0,
        lab(node="c", gpu_model=A100): 1.0,
    }
    assert series(text, "gpuyard_node_off") == {
        lab(node="b", reason="cordon"): 1.0,
        lab(node="b", reason="drain"): 1.0,
        lab(node="c", reason="lost"): 1.0,
    }


def test_an_off_reason_the_metrics_do_not_know_counts_as_cordoned() -> None:
    f = gpu_figures(FLEET, {"b": {"maintenance"}})
    assert (f.states[GpuState.CORDONED], f.states[GpuState.FREE]) == (3000, 1500)  # c is on


def reference(fleet: Arrays, off: dict[str, set[str]]) -> dict[GpuState, int]:
    """The documented rule, one GPU at a time (milli-GPUs)."""
    out = dict.fromkeys(GpuState, 0)
    for i, node in enumerate(fleet.names):
        whys = off.get(node, set())
        for g in range(fleet.gpu_exists.shape[1]):
            if not fleet.gpu_exists[i, g]:
                continue
            free = int(fleet.gpu_free[i, g])
            out[GpuState.ALLOCATED] += 1000 - free
            if not fleet.gpu_healthy[i, g]:
                state = GpuState.UNHEALTHY
            elif "lost" in whys:
                state = GpuState.LOST
            elif "drain" in whys:
                state = GpuState.DRAINED
            elif whys:
                state = GpuState.CORDONED
            else:
                state = GpuState.FREE
            out[state] += free
    return out


@st.composite
def fleets(draw: Any) -> tuple[Arrays, dict[str, set[str]]]:
    g = draw(st.integers(1, 4))
    nodes = []
    off: dict[str, set[str]] = {}
    for i in range(draw(st.integers(1, 6))):
        k = draw(st.integers(0, g))
        frees = draw(st.lists(st.sampled_from([0, 250, 500, 1000]), min_size=k, max_size=k))
        ok = draw(st.lists(st.booleans(), min_size=k, max_size=k))
        nodes.append((f"n{i}", draw(st.sampled_from([H100, A100])), frees, ok))
        whys = draw(st.sets(st.sampled_from(["cordon", "drain", "lost", "other"])))
        if whys:
            off[f"n{i}"] = whys
    return arrays(nodes, g), off


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_the_partition_sums_to_the_capacity_for_any_fleet(case: Any) -> None:
    fleet, off = case
    m = ServiceMetrics()
    f = m.set_fleet(fleet, off)
    cap = int(fleet.gpu_exists.sum())
    assert dict(f.states) == reference(fleet, off)
    assert sum(f.states.values()) == 1000 * cap  # exact, in milli-GPUs
    text = m.render()
    shown = series(text, "gpuyard_gpus")
    assert shown == {lab(state=s.value): f.states[s] / 1000 for s in GpuState}
    assert sum(series(text, "gpuyard_gpu_capacity").values()) == cap
    assert (
        round(1000 * sum(series(text, "gpuyard_gpus_allocated").values()))
        == (f.states[GpuState.ALLOCATED])
    )
    assert sum(series(text, "gpuyard_gpus_unhealthy").values()) == int(
        (fleet.gpu_exists & ~fleet.gpu_healthy).sum()
    )
    assert len(series(text, "gpuyard_node_off")) == sum(len(w) for w in off.values())


def test_set_gpus_sets_the_partition_and_refuses_a_bad_count() -> None:
    m = ServiceMetrics()
    m.set_gpus(allocated=3.5, free=4.5, unhealthy=1)
    assert series(m.render(), "gpuyard_gpus") == {
        lab(state="allocated"): 3.5, lab(state="free"): 4.5, lab(state="unhealthy"): 1.0,
        lab(state="lost"): 0.0, lab(state="drained"): 0.0, lab(state="cordoned"): 0.0,
    }  # fmt: skip
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"set_gpus\(\): free=.* is not allowed"):
            m.set_gpus(free=bad)


def test_a_drain_is_counted_once_when_it_begins() -> None:
    m = ServiceMetrics()

    def drains() -> dict[tuple[tuple[str, str], ...], float]:
        return series(m.render(), "gpuyard_node_drains_total")

    b = {"drain": (5.0, "ops")}
    m.set_fleet(FLEET, {"b": {"drain"}}, {"b": b})
    assert drains() == {}  # drained before the first look: not a drain begun here
    both = {"b": {"drain"}, "a": {"drain"}}
    m.set_fleet(FLEET, both, {"b": b, "a": {"drain": (7.0, "ecc")}})
    m.set_fleet(FLEET, both, {"b": b, "a": {"drain": (7.0, "ecc")}})
    assert drains() == {lab(node="a"): 1.0}
    m.set_fleet(FLEET, {"b": {"drain"}}, {"b": b})  # a uncordoned
    m.set_fleet(FLEET, both, {"b": b, "a": {"drain": (9.0, "ops")}})
    m.set_fleet(FLEET, both, {"b": b, "a": {"drain": (11.0, "ecc")}})
    assert drains() == {lab(node="a"): 3.0}  # again, and anew between two looks


# --------------------------------------------------- through the service
SERVICE_FLEET = parse_fleet(
    {"nodes": [{"name": "a", "gpus": 2, "cpus": 8}, {"name": "b", "gpus": 2, "cpus": 8}]},
    Path("test"),
)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, launcher: FakeLauncher, cluster: FakeCluster, clock: Clock) -> Any:
    cfg = ServiceConfig(state_dir=str(tmp_path), stop_grace_s=30.0, preemption=False)
    svc = SchedulerService(cfg, SERVICE_FLEET, launcher, cluster, simulated=True, clock=clock)
    svc.step()
    return svc


def test_admission_latency_is_observed_on_the_first_start_only(tmp_path: Path) -> None:
    launcher, cluster, clock = FakeLauncher(), FakeCluster(), Clock()
    svc = make(tmp_path, launcher, cluster, clock)
    moved = svc.submit({**spec("moved", gpus=2), "team": "planning"})  # starts at once
    clock.t += 20
    other = svc.submit(spec("other", gpus=2))  # starts at once
    clock.t += 40
    queued = svc.submit(spec("queued", gpus=2))  # waits
    clock.t += 100
    text = svc.metrics_text()
    code = svc.get_job(queued.job_id).code
    assert series(text, "gpuyard_queue_oldest_wait_seconds") == {
        lab(team="perception", reason=code): 100.0
    }
    node = moved.placement[0].node
    cluster.alive.discard(node)  # lost: "moved" is preempted and requeued
    svc.step()
    svc.step()
    assert svc.get_job(moved.job_id).state is JobState.PENDING  # nowhere to go
    clock.t += 30
    text = svc.metrics_text()
    waits = series(text, "gpuyard_queue_oldest_wait_seconds")
    # "moved" waits since its requeue, not since its submission 190 s ago
    assert waits == {
        lab(team="planning", reason=svc.get_job(moved.job_id).code): 30.0,
        lab(team="perception", reason=code): 130.0,
    }
    (run,) = launcher.of(other.job_id)
    run.end("succeeded")
    clock.t += 1
    svc.step()
    svc.step()
    again = svc.get_job(moved.job_id)
    assert (again.state, again.attempts, again.preemptions) == (JobState.RUNNING, 2, 1)
    text = svc.metrics_text()
    got = samples(text)
    assert got[("gpuyard_admission_latency_seconds_count", lab(team="planning"))] == 1.0
    assert got[("gpuyard_admission_latency_seconds_sum", lab(team="planning"))] == 0.0
    assert got[("gpuyard_admission_latency_seconds_count", lab(team="perception"))] == 1.0
    assert got[("gpuyard_preemptions_total", lab(team="planning", reason="node_lost"))] == 1.0
    # the partition with a lost node: b runs "moved", a (lost) is idle
    assert series(text, "gpuyard_gpus") == {
        lab(state="allocated"): 2.0, lab(state="lost"): 2.0, lab(state="free"): 0.0,
        lab(state="unhealthy"): 0.0, lab(state="drained"): 0.0, lab(state="cordoned"): 0.0,
    }  # fmt: skip
    assert series(text, "gpuyard_node_off") == {lab(node=node, reason="lost"): 1.0}
    assert series(text, "gpuyard_queue_oldest_wait_seconds") == {
        lab(team="perception", reason=code): 131.0
    }


def test_a_requeued_job_s_wait_survives_a_restart(tmp_path: Path) -> None:
    launcher, cluster, clock = FakeLauncher(), FakeCluster(), Clock()
    svc = make(tmp_path, launcher, cluster, clock)
    job = svc.submit(spec("j", gpus=2))
    svc.submit(spec("k", gpus=2))
    clock.t += 50
    cluster.alive.discard(job.placement[0].node)
    svc.step()
    svc.step()
    assert svc.get_job(job.job_id).state is JobState.PENDING
    svc.close()
    clock.t += 25
    again = make(tmp_path, launcher, cluster, clock)
    code = again.get_job(job.job_id).code
    assert series(again.metrics_text(), "gpuyard_queue_oldest_wait_seconds") == {
        lab(team="perception", reason=code): 25.0
    }
    again.close()
