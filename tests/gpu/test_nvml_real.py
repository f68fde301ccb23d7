"""Real NVML through gpuyard's telemetry (``GpuSampler`` with no simulated GPUs, i.e.
``NvmlSession(RealNvml())``), compared with direct pynvml calls for the same index.

Needs NVML and at least one GPU, not CUDA torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.gpu.gpu_env import MIB, gpu_skip_reason


def skip_reason() -> str | None:
    """Why this module cannot run here (None: it can)."""
    return gpu_skip_reason(1, cuda_torch=False)


SKIP = skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

USED_SLACK_MIB = 1024  # memory in use may move between our read and the direct one
TEMP_SLACK_C = 5.0


@pytest.fixture(scope="module")
def nvml() -> Iterator[Any]:
    import pynvml

    pynvml.nvmlInit()  # NVML counts inits: the sampler's own init/shutdown nest inside
    yield pynvml
    pynvml.nvmlShutdown()


@pytest.fixture(scope="module")
def sampled(nvml: Any) -> Iterator[tuple[Any, Any]]:
    """The real sampler (the class the per-node actor runs) and one sample of it."""
    from scheduler.runtime.telemetry import GpuSampler

    sampler = GpuSampler("local-gpu-node", None)
    try:
        yield sampler, sampler.read()
    finally:
        sampler.close()


def _direct(call: Any, *args: Any) -> tuple[Any, Exception | None]:
    """A pynvml call's value, or the NVML error it raised."""
    import pynvml

    try:
        return call(*args), None
    except pynvml.NVMLError as exc:
        return None, exc


def test_every_gpu_reads_sane_values(nvml: Any, sampled: tuple[Any, Any]) -> None:
    sampler, s = sampled
    count = nvml.nvmlDeviceGetCount()
    assert s.simulated is False and s.node == "local-gpu-node"
    assert sampler.gpu_count() == count == len(s.gpus)
    assert [g.index for g in s.gpus] == list(range(count))
    for g in s.gpus:
        where = f"GPU {g.index} ({g.model})"
        assert not g.lost, where
        assert g.model.startswith("NVIDIA"), where
        assert g.memory_total_mib > 0, where
        assert g.memory_used_mib is not None and 0 <= g.memory_used_mib <= g.memory_total_mib
        if g.utilization_pct is None:  # only where NVML says so (e.g. a MIG-enabled GPU)
            _, err = _direct(
                nvml.nvmlDeviceGetUtilizationRates, nvml.nvmlDeviceGetHandleByIndex(g.index)
            )
            assert isinstance(err, nvml.NVMLError_NotSupported), f"{where}: utilization None, {err}"
            print(f"{where}: utilization not supported (MIG?)")
        else:
            assert 0.0 <= g.utilization_pct <= 100.0, where
        assert g.temperature_c is not None and 0.0 < g.temperature_c < 120.0, where
        assert g.power_w is None or g.power_w > 0.0, where
        if g.ecc_uncorrected is None:
            print(f"{where}: uncorrected ECC count not supported (ECC off, or no ECC)")
        else:
            assert isinstance(g.ecc_uncorrected, int) and g.ecc_uncorrected >= 0, where
        print(
            f"{where}: {g.memory_used_mib}/{g.memory_total_mib} MiB, util {g.utilization_pct}%,"
            f" {g.temperature_c} C, {g.power_w} W, ECC {g.ecc_uncorrected}, NVLink "
            f"{g.nvlink_active}, XIDs {g.xids}"
        )
    stats = sampler.stats()
    assert stats.samples == 1 and stats.mean_s > 0.0
    print(f"one sample of {count} GPUs: {stats.mean_s * 1000:.1f} ms")


def test_the_sampler_reads_what_pynvml_reads_for_the_same_index(
    nvml: Any, sampled: tuple[Any, Any]
) -> None:
    _, s = sampled
    for g in s.gpus:
        where = f"GPU {g.index}"
        h = nvml.nvmlDeviceGetHandleByIndex(g.index)
        name = nvml.nvmlDeviceGetName(h)
        assert g.model == (name.decode() if isinstance(name, bytes) else name), where
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
        assert g.memory_total_mib == int(mem.total) // MIB, where
        assert g.memory_used_mib is not None
        assert abs(g.memory_used_mib - int(mem.used) // MIB) <= USED_SLACK_MIB, where
        temp = nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
        assert g.temperature_c is not None and abs(g.temperature_c - temp) <= TEMP_SLACK_C, where
        power, err = _direct(nvml.nvmlDeviceGetPowerUsage, h)
        if g.power_w is None:
            assert isinstance(err, nvml.NVMLError_NotSupported), f"{where}: power None, {err}"
        else:
            assert power is not None and power > 0, where
        ecc, err = _direct(
            nvml.nvmlDeviceGetTotalEccErrors,
            h,
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_VOLATILE_ECC,
        )
        if g.ecc_uncorrected is None:
            assert isinstance(err, nvml.NVMLError_NotSupported), f"{where}: ECC None, {err}"
        else:
            assert err is None and g.ecc_uncorrected == int(ecc), where
        links = []
        for link in range(nvml.NVML_NVLINK_MAX_LINKS):
            state, err = _direct(nvml.nvmlDeviceGetNvLinkState, h, link)
            if err is None:
                links.append(int(state) == nvml.NVML_FEATURE_ENABLED)
        assert g.nvlink_active == (tuple(links) or None), where


def test_xid_event_sets_wait_with_a_timeout_or_read_as_unsupported(nvml: Any) -> None:
    """nvmlEventSetWait_v2 with 10 ms on a freshly registered XID set raises Timeout (no XID
    since it was registered); where registration is NotSupported, gpuyard's session has no
    event set for that GPU and reads its XIDs as None, not as an error."""
    from scheduler.runtime.telemetry import NvmlSession, RealNvml, sample

    supported: dict[int, bool] = {}
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        events = nvml.nvmlEventSetCreate()
        try:
            try:
                nvml.nvmlDeviceRegisterEvents(h, nvml.nvmlEventTypeXidCriticalError, events)
            except nvml.NVMLError_NotSupported:
                supported[i] = False
                continue
            supported[i] = True
            with pytest.raises(nvml.NVMLError_Timeout):
                data = nvml.nvmlEventSetWait_v2(events, 10)
                print(f"GPU {i}: an event arrived: type {data.eventType}, data {data.eventData}")
        finally:
            nvml.nvmlEventSetFree(events)
    print(f"XID events supported per GPU: {supported}")

    with NvmlSession(RealNvml()) as session:
        for gpu in session.gpus:
            assert (gpu.events is not None) == supported[gpu.index], f"GPU {gpu.index}"
        s = sample(session, "local-gpu-node", 0.0)
        for g in s.gpus:
            if supported[g.index]:
                assert g.xids == (), f"GPU {g.index}: XIDs {g.xids} raised during the test"
            else:
                assert g.xids is None, f"GPU {g.index}"


def test_uuids_are_nvidia_gpu_uuids_and_distinct(nvml: Any) -> None:
    uuids = []
    for i in range(nvml.nvmlDeviceGetCount()):
        u = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))
        u = u.decode() if isinstance(u, bytes) else u
        assert u.startswith(("GPU-", "MIG-")), u
        uuids.append(u)
    assert len(set(uuids)) == len(uuids)


def test_a_real_sample_becomes_core_events(sampled: tuple[Any, Any]) -> None:
    from scheduler.runtime.telemetry import to_events

    _, s = sampled
    events = to_events(s)
    assert [e.gpu_index for e in events] == [g.index for g in s.gpus]
    for e, g in zip(events, s.gpus, strict=True):
        assert e.cause == "nvml" and e.memory_total_mib == g.memory_total_mib
        assert e.xids == (g.xids or ())
