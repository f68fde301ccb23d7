"""One NVML reading of a node's GPUs, and what it becomes: core events and API views.

``NvmlSession`` opens NVML once (device handles, static facts, one XID event set per GPU) and
``sample`` reads it; the session must outlive single samples because NVML delivers an XID
only to event sets registered before it happened. Each sample drains the pending events
(``nvmlEventSetWait`` with a 0 ms timeout until ``NVMLError_Timeout``), so an XID appears in
exactly one sample.

A query the GPU does not support (``NVMLError_NotSupported``: power on some boards, ECC with
ECC off, NVLink on PCIe cards, utilization under MIG, events) reads as None, never an error.
A GPU that fell off the bus (``NVMLError_GpuIsLost``) reads as ``lost``: its node's other
GPUs are still sampled, and ``to_events`` reports it as XID 79 (NVIDIA's code for exactly
that), which drains the node. Any other NVML error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pynvml  # type: ignore[import-untyped]

from scheduler.core.events import GpuTelemetry
from scheduler.runtime.telemetry.backend import NvmlBackend, error_code
from scheduler.runtime.views import GpuView

MIB = 1 << 20
XID_FELL_OFF_BUS = 79
LINK_ACTIVE: int = int(pynvml.NVML_FEATURE_ENABLED)  # nvmlDeviceGetNvLinkState's "up"
MAX_EVENTS_PER_SAMPLE = 1024  # an event storm must not stall the sampler

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one instant. None: NVML does not support that query on this GPU (or the
    GPU is ``lost``). ``nvlink_active`` holds one flag per NVLink link the GPU has;
    ``xids`` are the XID codes raised since the previous sample (None: the GPU cannot
    report XID events)."""

    index: int
    model: str  # NVML's name, e.g. "NVIDIA H100 80GB HBM3"
    memory_total_mib: int
    memory_used_mib: int | None
    utilization_pct: float | None
    temperature_c: float | None
    power_w: float | None
    ecc_uncorrected: int | None  # volatile (since the last driver load or reset)
    nvlink_active: tuple[bool, ...] | None
    xids: tuple[int, ...] | None
    lost: bool = False


@dataclass(frozen=True, slots=True)
class NodeSample:
    """Every GPU of one node, read at ``now_s`` (seconds since the Unix epoch)."""

    node: str
    now_s: float
    gpus: tuple[GpuReading, ...]
    simulated: bool


@dataclass(slots=True)
class _OpenGpu:
    index: int
    handle: object
    model: str
    memory_total_mib: int
    links: tuple[int, ...] | None  # NVLink link numbers the GPU answers for
    events: object | None  # its XID event set


class NvmlSession:
    """NVML opened on one node: call ``sample`` on it, ``close`` it when done.

    Raises the backend's ``NVMLError`` when NVML cannot start (no driver:
    ``NVMLError_LibraryNotFound``)."""

    def __init__(self, backend: NvmlBackend) -> None:
        backend.nvmlInit()
        self.backend = backend
        self.gpus: list[_OpenGpu] = []
        try:
            for index in range(backend.nvmlDeviceGetCount()):
                self.gpus.append(_open_gpu(backend, index))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Free the event sets and shut NVML down (NVML counts inits, so this undoes ours)."""
        for gpu in self.gpus:
            if gpu.events is not None:
                _optional(self.backend.nvmlEventSetFree, gpu.events)
                gpu.events = None
        self.gpus = []
        self.backend.nvmlShutdown()

    def __enter__(self) -> NvmlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_gpu(backend: NvmlBackend, index: int) -> _OpenGpu:
    handle = backend.nvmlDeviceGetHandleByIndex(index)
    model = backend.nvmlDeviceGetName(handle)
    total_mib = int(backend.nvmlDeviceGetMemoryInfo(handle).total) // MIB
    links: list[int] = []
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        # links past the GPU's last answer InvalidArgument; a PCIe card answers NotSupported
        try:
            backend.nvmlDeviceGetNvLinkState(handle, link)
        except Exception as exc:
            if error_code(exc) not in (
                pynvml.NVML_ERROR_NOT_SUPPORTED,
                pynvml.NVML_ERROR_INVALID_ARGUMENT,
            ):
                raise
            continue
        links.append(link)
    events = _optional(backend.nvmlEventSetCreate)
    if events is not None:
        try:
            backend.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, events)
        except Exception as exc:
            backend.nvmlEventSetFree(events)
            if error_code(exc) != pynvml.NVML_ERROR_NOT_SUPPORTED:
                raise
            events = None
    return _OpenGpu(index, handle, model, total_mib, tuple(links) or None, events)


def _optional(call: Callable[..., T], *args: object) -> T | None:
    """``call(*args)``, or None when NVML says the GPU does not support it."""
    try:
        return call(*args)
    except Exception as exc:
        if error_code(exc) == pynvml.NVML_ERROR_NOT_SUPPORTED:
            return None
        raise


def sample(session: NvmlSession, node: str, now_s: float) -> NodeSample:
    """Read every GPU of ``node`` now (``now_s``: seconds since the Unix epoch)."""
    backend = session.backend
    readings = tuple(_read(backend, gpu) for gpu in session.gpus)
    return NodeSample(node, now_s, readings, bool(backend.simulated))


def _read(b: NvmlBackend, g: _OpenGpu) -> GpuReading:
    xids = None if g.events is None else _drain_xids(b, g.events)
    h = g.handle
    try:
        mem = _optional(b.nvmlDeviceGetMemoryInfo, h)
        util = _optional(b.nvmlDeviceGetUtilizationRates, h)
        temp = _optional(b.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU)
        power_mw = _optional(b.nvmlDeviceGetPowerUsage, h)
        ecc = _optional(
            b.nvmlDeviceGetTotalEccErrors,
            h,
            pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            pynvml.NVML_VOLATILE_ECC,
        )
        nvlink = None if g.links is None else tuple(_link_up(b, h, k) for k in g.links)
    except Exception as exc:
        if error_code(exc) != pynvml.NVML_ERROR_GPU_IS_LOST:
            raise
        return GpuReading(
            g.index, g.model, g.memory_total_mib, None, None, None, None, None, None, xids, True
        )
    return GpuReading(
        index=g.index,
        model=g.model,
        memory_total_mib=g.memory_total_mib,
        memory_used_mib=None if mem is None else int(mem.used) // MIB,
        utilization_pct=None if util is None else float(util.gpu),
        temperature_c=None if temp is None else float(temp),
        power_w=None if power_mw is None else power_mw / 1000.0,
        ecc_uncorrected=None if ecc is None else int(ecc),
        nvlink_active=nvlink,
        xids=xids,
    )


def _link_up(b: NvmlBackend, handle: object, link: int) -> bool:
    state = _optional(b.nvmlDeviceGetNvLinkState, handle, link)
    return state == LINK_ACTIVE


def _drain_xids(b: NvmlBackend, events: object) -> tuple[int, ...] | None:
    """Every XID code pending in the event set, oldest first; None if waiting is unsupported."""
    codes: list[int] = []
    for _ in range(MAX_EVENTS_PER_SAMPLE):
        try:
            data = b.nvmlEventSetWait(events, 0)
        except Exception as exc:
            code = error_code(exc)
            if code in (pynvml.NVML_ERROR_TIMEOUT, pynvml.NVML_ERROR_GPU_IS_LOST):
                break  # drained (or the GPU is gone; its queries will say so)
            if code == pynvml.NVML_ERROR_NOT_SUPPORTED:
                return None
            raise
        if int(data.eventType) & pynvml.nvmlEventTypeXidCriticalError:
            codes.append(int(data.eventData))
    return tuple(codes)


def to_events(s: NodeSample) -> list[GpuTelemetry]:
    """The core's view of a sample, one event per GPU in index order. What NVML could not read
    becomes the neutral value (0); a lost GPU carries XID 79."""
    cause = "simulated nvml" if s.simulated else "nvml"
    out: list[GpuTelemetry] = []
    for r in s.gpus:
        xids = r.xids or ()
        if r.lost and XID_FELL_OFF_BUS not in xids:
            xids = (*xids, XID_FELL_OFF_BUS)
        out.append(
            GpuTelemetry(
                now_s=s.now_s,
                node=s.node,
                gpu_index=r.index,
                memory_used_mib=r.memory_used_mib or 0,
                memory_total_mib=r.memory_total_mib,
                utilization_pct=r.utilization_pct or 0.0,
                temperature_c=r.temperature_c or 0.0,
                power_w=r.power_w or 0.0,
                ecc_uncorrected=r.ecc_uncorrected or 0,
                xids=xids,
                cause=cause,
            )
        )
    return out


def gpu_views(
    s: NodeSample,
    health_reasons: Mapping[int, Sequence[str]],
    allocated_milli: Mapping[int, int],
) -> list[GpuView]:
    """The API's view of each GPU: the sample's readings, the core's reasons held against it
    (``HealthBook.why``, by GPU index) and the milli-GPU gpuyard placed on it."""
    views: list[GpuView] = []
    for r in s.gpus:
        why = list(health_reasons.get(r.index, ()))
        if r.lost:
            why.append("lost (NVML: GPU is lost)")
        views.append(
            GpuView(
                index=r.index,
                model=r.model,
                memory_total_mib=r.memory_total_mib,
                memory_used_mib=r.memory_used_mib,
                utilization_pct=r.utilization_pct,
                temperature_c=r.temperature_c,
                power_w=r.power_w,
                ecc_uncorrected=r.ecc_uncorrected,
                healthy=not why,
                why_unhealthy=why,
                allocated_milli=allocated_milli.get(r.index, 0),
            )
        )
    return views
