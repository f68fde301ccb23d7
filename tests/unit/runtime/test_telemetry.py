"""Telemetry: exact simulated readings, XIDs drained once, ECC growth, NotSupported, lost GPUs,
the real pynvml path (monkeypatched), core events that drain a node, API views, the sampler."""

from __future__ import annotations

from collections import deque
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest

from scheduler.core.actions import Launch, Preempt
from scheduler.core.events import GpuTelemetry, JobSubmitted
from scheduler.runtime.telemetry import (
    GpuReading,
    GpuSampler,
    NodeSample,
    NvmlSession,
    NvmlUnavailable,
    RealNvml,
    SimulatedGpu,
    SimulatedNvml,
    gpu_views,
    sample,
    to_events,
    uniform_gpus,
)
from tests.builders import make_job, make_node, make_state

H100 = "NVIDIA H100 80GB HBM3"
ALL_LINKS_UP = (True,) * 18


def open_sim(gpus: int = 2) -> tuple[SimulatedNvml, NvmlSession]:
    sim = SimulatedNvml(uniform_gpus(gpus))
    return sim, NvmlSession(sim)


def idle(index: int, xids: tuple[int, ...] | None = ()) -> GpuReading:
    return GpuReading(index, H100, 81_559, 0, 0.0, 30.0, 70.0, 0, ALL_LINKS_UP, xids)


def test_simulated_readings_follow_the_load_exactly() -> None:
    sim, session = open_sim(2)
    sim.set_load(0, 40.0, 40_000)
    sim.set_foreign_memory(1, 1_500)
    s = sample(session, "a", 100.0)
    assert s == NodeSample(
        "a",
        100.0,
        (
            # 30 °C + 0.45 * 40; 70 W idle + 0.9 * 700 W * 40 %
            GpuReading(0, H100, 81_559, 40_000, 40.0, 48.0, 322.0, 0, ALL_LINKS_UP, ()),
            GpuReading(1, H100, 81_559, 1_500, 0.0, 30.0, 70.0, 0, ALL_LINKS_UP, ()),
        ),
        simulated=True,
    )
    sim.set_temperature(0, 91)
    sim.set_load(1, 0.0, 90_000)  # more than the GPU has: NVML never reports more than total
    s = sample(session, "a", 101.0)
    assert s.gpus[0].temperature_c == 91.0
    assert s.gpus[1].memory_used_mib == 81_559


def test_an_xid_shows_up_once_in_exactly_one_sample() -> None:
    sim, session = open_sim(2)
    assert sample(session, "a", 1.0).gpus == (idle(0), idle(1))
    sim.inject_xid(1, 79)
    first = sample(session, "a", 2.0)
    assert [g.xids for g in first.gpus] == [(), (79,)]
    assert [g.xids for g in sample(session, "a", 3.0).gpus] == [(), ()]  # drained
    sim.inject_xid(0, 48)
    sim.inject_xid(0, 79)
    assert [g.xids for g in sample(session, "a", 4.0).gpus] == [(48, 79), ()]


def test_an_xid_before_the_session_opened_is_not_seen() -> None:
    sim = SimulatedNvml(uniform_gpus(1))
    sim.nvmlInit()
    sim.inject_xid(0, 79)  # no event set registered yet, as with real NVML
    session = NvmlSession(sim)
    assert sample(session, "a", 1.0).gpus[0].xids == ()


def test_ecc_counts_grow_and_clear_faults_resets_them() -> None:
    sim, session = open_sim(1)
    sim.inject_ecc(0, 2)
    assert sample(session, "a", 1.0).gpus[0].ecc_uncorrected == 2
    sim.inject("ecc", 0, 3)
    assert sample(session, "a", 2.0).gpus[0].ecc_uncorrected == 5
    with pytest.raises(ValueError, match="only grows"):
        sim.inject_ecc(0, -1)
    sim.inject_xid(0, 79)
    sim.clear_faults()
    assert sample(session, "a", 3.0).gpus == (idle(0),)


def test_fault_kinds_by_name_and_their_errors() -> None:
    sim, session = open_sim(2)
    sim.inject("temperature", 1, 88.4)
    sim.inject("foreign_memory", 0, 512)
    sim.inject("xid", 0, 94)
    g0, g1 = sample(session, "a", 1.0).gpus
    assert (g0.memory_used_mib, g0.xids, g1.temperature_c) == (512, (94,), 88.0)
    with pytest.raises(ValueError, match="unknown fault kind 'melt'"):
        sim.inject("melt", 0)
    with pytest.raises(ValueError, match="no GPU 7: this node has 2 simulated GPU"):
        sim.inject_xid(7, 79)
    with pytest.raises(ValueError, match=r"util_pct must be 0\.\.100"):
        sim.set_load(0, 120.0, 0)


class NothingOptional(SimulatedNvml):
    """A GPU that supports none of the optional queries (an old or consumer board)."""

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        raise pynvml.NVMLError_NotSupported()

    def nvmlDeviceGetTotalEccErrors(self, handle: object, errorType: int, counterType: int) -> int:
        raise pynvml.NVMLError_NotSupported()

    def nvmlDeviceGetNvLinkState(self, handle: object, link: int) -> int:
        raise pynvml.NVMLError_NotSupported()

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Any:  # as under MIG
        raise pynvml.NVMLError_NotSupported()

    def nvmlDeviceRegisterEvents(self, handle: object, eventTypes: int, eventSet: object) -> None:
        raise pynvml.NVMLError_NotSupported()


def test_not_supported_queries_read_as_none_and_never_fail() -> None:
    sim = NothingOptional(uniform_gpus(1))
    session = NvmlSession(sim)
    s = sample(session, "a", 5.0)
    assert s.gpus == (GpuReading(0, H100, 81_559, 0, None, 30.0, None, None, None, None),)
    assert to_events(s) == [
        GpuTelemetry(5.0, "a", 0, 0, 81_559, 0.0, 30.0, 0.0, 0, (), "simulated nvml")
    ]
    assert sim._sets == []  # the event set it could not register was freed


class WaitUnsupported(SimulatedNvml):
    def nvmlEventSetWait(self, eventSet: object, timeoutms: int) -> Any:
        raise pynvml.NVMLError_NotSupported()


def test_event_wait_not_supported_reads_as_no_xid_reporting() -> None:
    session = NvmlSession(WaitUnsupported(uniform_gpus(1)))
    assert sample(session, "a", 1.0).gpus[0].xids is None


def test_a_pcie_gpu_has_no_nvlink_reading() -> None:
    pcie = SimulatedGpu("NVIDIA L4", 23_034, nvlink_domain=None, tdp_w=72.0)
    session = NvmlSession(SimulatedNvml([pcie]))
    g = sample(session, "a", 1.0).gpus[0]
    assert (g.model, g.memory_total_mib, g.nvlink_active, g.power_w) == (
        "NVIDIA L4",
        23_034,
        None,
        7.2,
    )


def test_a_lost_gpu_reads_as_lost_and_becomes_xid_79_while_the_others_read_on() -> None:
    sim, session = open_sim(2)
    sim.inject_lost(1)
    s = sample(session, "a", 1.0)
    assert s.gpus == (
        idle(0),
        GpuReading(1, H100, 81_559, None, None, None, None, None, None, (), lost=True),
    )
    assert [e.xids for e in to_events(s)] == [(), (79,)]
    views = gpu_views(s, {}, {})
    assert [(v.healthy, v.why_unhealthy) for v in views] == [
        (True, []),
        (False, ["lost (NVML: GPU is lost)"]),
    ]


def test_closing_the_session_frees_event_sets_and_shuts_nvml_down() -> None:
    sim, session = open_sim(2)
    assert len(sim._sets) == 2  # one XID event set per GPU
    with session:
        pass
    assert sim._sets == []
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        sim.nvmlDeviceGetCount()


def test_to_events_maps_every_reading_exactly() -> None:
    sim, session = open_sim(2)
    sim.set_load(0, 100.0, 70_000)
    sim.inject_ecc(1, 1)
    sim.inject_xid(1, 79)
    assert to_events(sample(session, "n1", 42.0)) == [
        GpuTelemetry(42.0, "n1", 0, 70_000, 81_559, 100.0, 75.0, 700.0, 0, (), "simulated nvml"),
        GpuTelemetry(42.0, "n1", 1, 0, 81_559, 0.0, 30.0, 70.0, 1, (79,), "simulated nvml"),
    ]


def test_xid_79_from_telemetry_drains_the_node_and_the_job_moves() -> None:
    state = make_state([make_node("a", gpus=4), make_node("b", gpus=4)])
    (launch,) = state.handle(JobSubmitted(0.0, make_job("train", gpus=4)))
    assert isinstance(launch, Launch)
    (home,) = launch.placement.nodes
    other = "b" if home == "a" else "a"
    sim, session = open_sim(4)
    for g in range(4):
        sim.set_load(g, 90.0, 60_000)
    assert state.handle(*to_events(sample(session, home, 10.0))) == []  # healthy: nothing
    sim.inject_xid(2, 79)
    acts = state.handle(*to_events(sample(session, home, 20.0)))
    assert [type(a).__name__ for a in acts] == ["Preempt", "Launch"]
    preempt, relaunch = acts
    assert isinstance(preempt, Preempt) and preempt.job_id == "train"
    assert preempt.cause == f"drain {home}: XID 79 on GPU 2"
    assert isinstance(relaunch, Launch) and relaunch.placement.nodes == (other,)
    assert state.off[home] == {"drain"}
    assert state.health.why(home, 2) == ("xid 79",)
    # the next sample has no new XID: nothing more happens, the node stays drained
    assert state.handle(*to_events(sample(session, home, 30.0))) == []
    assert state.off[home] == {"drain"}


def test_gpu_views_join_readings_health_and_allocation() -> None:
    sim, session = open_sim(2)
    sim.set_load(0, 40.0, 40_000)
    views = gpu_views(sample(session, "a", 1.0), {1: ["hot"]}, {0: 500})
    assert [v.model_dump() for v in views] == [
        {
            "index": 0,
            "model": H100,
            "memory_total_mib": 81_559,
            "memory_used_mib": 40_000,
            "utilization_pct": 40.0,
            "temperature_c": 48.0,
            "power_w": 322.0,
            "ecc_uncorrected": 0,
            "healthy": True,
            "why_unhealthy": [],
            "allocated_milli": 500,
        },
        {
            "index": 1,
            "model": H100,
            "memory_total_mib": 81_559,
            "memory_used_mib": 0,
            "utilization_pct": 0.0,
            "temperature_c": 30.0,
            "power_w": 70.0,
            "ecc_uncorrected": 0,
            "healthy": False,
            "why_unhealthy": ["hot"],
            "allocated_milli": 0,
        },
    ]


# ---------------------------------------------------------------- the real pynvml code path
class FakeDriver:
    """Two GPUs behind pynvml's own ctypes structures: GPU 0 an SXM board with 18 NVLink links
    and ECC on, GPU 1 a PCIe board (no NVLink, no ECC, no power reading)."""

    def __init__(self) -> None:
        self.inits = 0
        self.pending: dict[int, deque[int]] = {0: deque([79]), 1: deque()}
        self.freed: list[int] = []

    def install(self, mp: pytest.MonkeyPatch) -> None:
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetTemperature",
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetTotalEccErrors",
            "nvmlDeviceGetNvLinkState",
            "nvmlEventSetCreate",
            "nvmlDeviceRegisterEvents",
            "nvmlEventSetWait",
            "nvmlEventSetFree",
        ):
            mp.setattr(pynvml, name, getattr(self, name))

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.inits -= 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return 100 + index

    def nvmlDeviceGetName(self, handle: int) -> Any:
        return b"NVIDIA A100-SXM4-80GB" if handle == 100 else "NVIDIA L4"  # old and new pynvml

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        total = (81_920 if handle == 100 else 23_034) << 20
        used = 1_024 << 20
        return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return pynvml.c_nvmlUtilization_t(gpu=37, memory=12)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return 55

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 101:
            raise pynvml.NVMLError_NotSupported()
        return 251_500  # mW

    def nvmlDeviceGetTotalEccErrors(self, handle: int, error_type: int, counter: int) -> int:
        assert (error_type, counter) == (
            pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            pynvml.NVML_VOLATILE_ECC,
        )
        if handle == 101:
            raise pynvml.NVMLError_NotSupported()
        return 3

    def nvmlDeviceGetNvLinkState(self, handle: int, link: int) -> int:
        if handle == 101:
            raise pynvml.NVMLError_NotSupported()
        if link >= 18:
            raise pynvml.NVMLError_InvalidArgument()
        return int(link != 5)  # link 5 is down

    def nvmlEventSetCreate(self) -> list[int]:
        return []

    def nvmlDeviceRegisterEvents(self, handle: int, types: int, event_set: list[int]) -> None:
        assert types == pynvml.nvmlEventTypeXidCriticalError
        event_set.append(handle - 100)

    def nvmlEventSetWait(self, event_set: list[int], timeout_ms: int) -> Any:
        assert timeout_ms == 0
        queue = self.pending[event_set[0]]
        if not queue:
            raise pynvml.NVMLError_Timeout()
        return pynvml.c_nvmlEventData_t(
            eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=queue.popleft()
        )

    def nvmlEventSetFree(self, event_set: list[int]) -> None:
        self.freed.append(event_set[0])


def test_real_nvml_reads_through_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver()
    driver.install(monkeypatch)
    session = NvmlSession(RealNvml())
    s = sample(session, "gpu-7", 3.0)
    links = tuple(k != 5 for k in range(18))
    assert s == NodeSample(
        "gpu-7",
        3.0,
        (
            GpuReading(
                0, "NVIDIA A100-SXM4-80GB", 81_920, 1_024, 37.0, 55.0, 251.5, 3, links, (79,)
            ),
            GpuReading(1, "NVIDIA L4", 23_034, 1_024, 37.0, 55.0, None, None, None, ()),
        ),
        simulated=False,
    )
    assert [g.xids for g in sample(session, "gpu-7", 4.0).gpus] == [(), ()]
    session.close()
    assert (driver.inits, driver.freed) == (0, [0, 1])


def test_sampler_on_real_gpus_refuses_fault_injection(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDriver().install(monkeypatch)
    sampler = GpuSampler("gpu-7", None)
    assert sampler.read().simulated is False and sampler.gpu_count() == 2
    with pytest.raises(ValueError, match="'gpu-7' samples real GPUs"):
        sampler.inject("xid", 0, 79)


def test_sampler_says_clearly_when_nvml_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    with pytest.raises(NvmlUnavailable, match=r"node 'gpu-7' was declared with NVIDIA GPUs") as e:
        GpuSampler("gpu-7", None)
    assert "NVML Shared Library Not Found" in str(e.value) and "simulated" in str(e.value)


def test_sampler_counts_samples_and_forwards_faults() -> None:
    sampler = GpuSampler("sim-1", uniform_gpus(4))
    assert sampler.stats().samples == 0 and sampler.stats().p95_s == 0.0
    sampler.set_load(3, 10.0, 2_048)
    sampler.inject("xid", 2, 79)
    s = sampler.read()
    assert [g.xids for g in s.gpus] == [(), (), (79,), ()]
    assert s.gpus[3].memory_used_mib == 2_048 and s.simulated
    for _ in range(19):
        sampler.read()
    stats = sampler.stats()
    assert stats.samples == 20
    # one slow outlier can put the mean above the p95, so each is bounded on its own
    assert 0.0 < stats.mean_s < 0.1 and 0.0 < stats.p95_s < 0.1
    sampler.close()
