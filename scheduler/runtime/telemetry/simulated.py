"""NVML for machines without NVIDIA GPUs: deterministic readings and fault injection.

Readings follow what the GPU was told it runs (``set_load``), so the service and the tests see
plausible, exactly predictable numbers:

* memory used = the load's MiB + foreign MiB (someone else's process), capped at the total;
* utilization = the load's percent (memory-bandwidth utilization is half of it);
* temperature = 30 °C + 0.45 °C per percent of utilization (75 °C at 100 %), unless set;
* power = 10 % of ``tdp_w`` idle, rising linearly with utilization to ``tdp_w``;
* NVLink: ``nvlink_links`` active links for a GPU in an NVLink domain; a GPU with no domain
  (a PCIe card) answers ``NotSupported``, as real PCIe GPUs do.

Faults behave as NVML shows them: an XID is delivered once to every event set registered for
it (``nvmlEventSetWait``), the volatile uncorrected ECC count only grows, and a lost GPU (fell
off the bus) fails every query with ``NVMLError_GpuIsLost``. ``clear_faults`` is a GPU reset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import pynvml  # type: ignore[import-untyped]

from scheduler.runtime.telemetry.backend import nvml_error

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class SimulatedGpu:
    """One simulated GPU: NVML's model name, its memory in MiB, its NVLink domain (GPUs in the
    same domain are linked; None: a PCIe card with no NVLink), how many NVLink links it has,
    and its board power limit in watts."""

    model: str = "NVIDIA H100 80GB HBM3"
    memory_mib: int = 81_559  # what NVML reports for an H100 SXM 80GB
    nvlink_domain: int | None = 0
    nvlink_links: int = 18
    tdp_w: float = 700.0

    def __post_init__(self) -> None:
        if self.memory_mib <= 0:
            raise ValueError(f"memory_mib must be > 0, got {self.memory_mib}")
        if not 0 <= self.nvlink_links <= pynvml.NVML_NVLINK_MAX_LINKS:
            raise ValueError(
                f"nvlink_links must be 0..{pynvml.NVML_NVLINK_MAX_LINKS}, got {self.nvlink_links}"
            )
        if self.tdp_w <= 0:
            raise ValueError(f"tdp_w must be > 0, got {self.tdp_w}")


def uniform_gpus(count: int, gpu: SimulatedGpu | None = None) -> list[SimulatedGpu]:
    """``count`` copies of one simulated GPU (an H100 SXM 80GB by default), one NVLink domain."""
    return [gpu or SimulatedGpu()] * count


@dataclass(frozen=True, slots=True)
class SimHandle:
    index: int


@dataclass(frozen=True, slots=True)
class SimMemory:
    total: int  # bytes
    used: int  # bytes


@dataclass(frozen=True, slots=True)
class SimUtilization:
    gpu: int  # percent
    memory: int  # percent


@dataclass(frozen=True, slots=True)
class SimEvent:
    eventType: int
    eventData: int  # the XID code for an XID event
    device: SimHandle


@dataclass(slots=True)
class SimEventSet:
    registered: dict[int, int] = field(default_factory=dict)  # GPU index -> event type mask
    pending: deque[SimEvent] = field(default_factory=deque)
    freed: bool = False


@dataclass(slots=True)
class _GpuState:
    spec: SimulatedGpu
    util_pct: float = 0.0
    load_mib: int = 0
    foreign_mib: int = 0
    temperature_c: int | None = None  # None: follows utilization
    ecc_uncorrected: int = 0
    lost: bool = False


class SimulatedNvml:
    """Implements ``NvmlBackend`` for the given GPUs (index = position in the list)."""

    simulated = True

    def __init__(self, gpus: Sequence[SimulatedGpu]) -> None:
        self._gpus = [_GpuState(spec) for spec in gpus]
        self._sets: list[SimEventSet] = []
        self._inits = 0

    # ------------------------------------------------------------ what the GPUs run
    def set_load(self, gpu_index: int, util_pct: float, mem_used_mib: int) -> None:
        """The GPU now runs work using ``util_pct`` percent (0-100) and ``mem_used_mib`` MiB."""
        if not 0.0 <= util_pct <= 100.0:
            raise ValueError(f"util_pct must be 0..100, got {util_pct}")
        if mem_used_mib < 0:
            raise ValueError(f"mem_used_mib must be >= 0, got {mem_used_mib}")
        gpu = self._gpu(gpu_index)
        gpu.util_pct, gpu.load_mib = float(util_pct), int(mem_used_mib)

    # ------------------------------------------------------------ faults
    def inject_xid(self, gpu: int, code: int) -> None:
        """Raise XID ``code`` on the GPU: each event set registered for XIDs on it gets it once."""
        self._gpu(gpu)
        handle = SimHandle(gpu)
        for es in self._sets:
            if es.registered.get(gpu, 0) & pynvml.nvmlEventTypeXidCriticalError:
                es.pending.append(SimEvent(pynvml.nvmlEventTypeXidCriticalError, code, handle))

    def inject_ecc(self, gpu: int, count: int) -> None:
        """Add ``count`` (>= 0) volatile uncorrected ECC errors to the GPU."""
        if count < 0:
            raise ValueError(f"an ECC count only grows; got {count}")
        self._gpu(gpu).ecc_uncorrected += int(count)

    def set_temperature(self, gpu: int, c: float) -> None:
        """Pin the GPU's temperature at ``c`` °C (until ``clear_faults``)."""
        self._gpu(gpu).temperature_c = round(c)

    def set_foreign_memory(self, gpu: int, mib: int) -> None:
        """Someone else's process holds ``mib`` MiB on the GPU."""
        if mib < 0:
            raise ValueError(f"foreign memory must be >= 0 MiB, got {mib}")
        self._gpu(gpu).foreign_mib = int(mib)

    def inject_lost(self, gpu: int) -> None:
        """The GPU fell off the bus: every query on it fails with ``NVMLError_GpuIsLost``."""
        self._gpu(gpu).lost = True

    def clear_faults(self) -> None:
        """Reset every GPU: temperature, ECC counts, foreign memory and lost state cleared,
        pending XID events dropped. The load stays."""
        for gpu in self._gpus:
            gpu.temperature_c, gpu.ecc_uncorrected, gpu.foreign_mib, gpu.lost = None, 0, 0, False
        for es in self._sets:
            es.pending.clear()

    def inject(self, kind: str, gpu: int, value: float = 0.0) -> None:
        """One fault by name, for callers in another process: ``xid`` (value: the code),
        ``ecc`` (value: the count to add), ``temperature`` (°C), ``foreign_memory`` (MiB),
        ``lost``, or ``clear`` (all GPUs; ``gpu`` is ignored)."""
        if kind == "xid":
            self.inject_xid(gpu, int(value))
        elif kind == "ecc":
            self.inject_ecc(gpu, int(value))
        elif kind == "temperature":
            self.set_temperature(gpu, value)
        elif kind == "foreign_memory":
            self.set_foreign_memory(gpu, int(value))
        elif kind == "lost":
            self.inject_lost(gpu)
        elif kind == "clear":
            self.clear_faults()
        else:
            raise ValueError(
                f"unknown fault kind {kind!r}; one of xid, ecc, temperature, foreign_memory, "
                "lost, clear"
            )

    # ------------------------------------------------------------ NvmlBackend
    def nvmlInit(self) -> None:
        self._inits += 1

    def nvmlShutdown(self) -> None:
        self._check()
        self._inits -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        self._check()
        if not 0 <= index < len(self._gpus):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimHandle(index)

    def nvmlDeviceGetName(self, handle: object) -> str:
        return self._live(handle).spec.model

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> SimMemory:
        gpu = self._live(handle)
        total = gpu.spec.memory_mib
        return SimMemory(total * MIB, min(total, gpu.load_mib + gpu.foreign_mib) * MIB)

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> SimUtilization:
        gpu = self._live(handle)
        return SimUtilization(round(gpu.util_pct), round(gpu.util_pct / 2))

    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int:
        gpu = self._live(handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if gpu.temperature_c is not None:
            return gpu.temperature_c
        return round(30 + 0.45 * gpu.util_pct)

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        gpu = self._live(handle)
        tdp = gpu.spec.tdp_w
        return round((0.1 * tdp + 0.9 * tdp * gpu.util_pct / 100) * 1000)

    def nvmlDeviceGetTotalEccErrors(self, handle: object, errorType: int, counterType: int) -> int:
        gpu = self._live(handle)
        if errorType != pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            return 0  # corrected errors are not simulated
        if counterType not in (pynvml.NVML_VOLATILE_ECC, pynvml.NVML_AGGREGATE_ECC):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.ecc_uncorrected

    def nvmlDeviceGetNvLinkState(self, handle: object, link: int) -> int:
        gpu = self._live(handle)
        if gpu.spec.nvlink_domain is None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if not 0 <= link < gpu.spec.nvlink_links:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return pynvml.NVML_FEATURE_ENABLED  # type: ignore[no-any-return]

    def nvmlEventSetCreate(self) -> object:
        self._check()
        es = SimEventSet()
        self._sets.append(es)
        return es

    def nvmlDeviceRegisterEvents(self, handle: object, eventTypes: int, eventSet: object) -> None:
        self._live(handle)
        es = self._set(eventSet)
        assert isinstance(handle, SimHandle)  # _live checked it
        es.registered[handle.index] = es.registered.get(handle.index, 0) | eventTypes

    def nvmlEventSetWait(self, eventSet: object, timeoutms: int) -> SimEvent:
        es = self._set(eventSet)
        if not es.pending:
            raise nvml_error(pynvml.NVML_ERROR_TIMEOUT)  # never blocks: nothing else can come
        return es.pending.popleft()

    def nvmlEventSetFree(self, eventSet: object) -> None:
        es = self._set(eventSet)
        es.freed = True
        self._sets.remove(es)

    # ------------------------------------------------------------ helpers
    def _gpu(self, index: int) -> _GpuState:
        if not 0 <= index < len(self._gpus):
            raise ValueError(f"no GPU {index}: this node has {len(self._gpus)} simulated GPU(s)")
        return self._gpus[index]

    def _check(self) -> None:
        if self._inits <= 0:
            raise nvml_error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _live(self, handle: object) -> _GpuState:
        self._check()
        if not isinstance(handle, SimHandle) or not 0 <= handle.index < len(self._gpus):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self._gpus[handle.index]
        if gpu.lost:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _set(self, event_set: object) -> SimEventSet:
        self._check()
        if not isinstance(event_set, SimEventSet) or event_set.freed:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return event_set
