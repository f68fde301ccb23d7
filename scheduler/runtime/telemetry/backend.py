"""The NVML calls the sampler makes, as a protocol, and its real implementation.

The protocol's methods carry nvidia-ml-py's names and arguments (``pynvml.nvmlDeviceGet...``)
so that ``RealNvml`` is a line per call and a reader can look each one up in NVML's reference.
Every backend signals failure the way pynvml does: it raises ``pynvml.NVMLError`` (whose
constructor returns the subclass for the code, e.g. ``NVMLError_NotSupported``), so the sampler
has one error vocabulary for real and simulated GPUs.

Units are NVML's own: memory in bytes, power in milliwatts, temperature in degrees Celsius,
utilization in percent (0-100) of the last sample period.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import pynvml  # type: ignore[import-untyped]


class MemoryInfo(Protocol):
    """``nvmlDeviceGetMemoryInfo``: ``total`` and ``used`` in bytes."""

    @property
    def total(self) -> int: ...

    @property
    def used(self) -> int: ...


class Utilization(Protocol):
    """``nvmlDeviceGetUtilizationRates``: percent of the last sample period that a kernel
    ran (``gpu``) or device memory was read or written (``memory``)."""

    @property
    def gpu(self) -> int: ...

    @property
    def memory(self) -> int: ...


class EventData(Protocol):
    """``nvmlEventSetWait``: ``eventType`` is one ``nvmlEventType*`` bit; for an XID event
    ``eventData`` is the XID code."""

    @property
    def eventType(self) -> int: ...

    @property
    def eventData(self) -> int: ...


class NvmlBackend(Protocol):
    """The subset of pynvml the sampler calls. Handles and event sets are opaque.

    The queries that some GPUs do not support (power, ECC, NVLink, events, and utilization
    under MIG) raise ``pynvml.NVMLError_NotSupported`` there; ``nvmlEventSetWait`` raises
    ``pynvml.NVMLError_Timeout`` when no event is pending; every query on a GPU that fell off
    the bus raises ``pynvml.NVMLError_GpuIsLost``.
    """

    @property
    def simulated(self) -> bool: ...

    def nvmlInit(self) -> None: ...

    def nvmlShutdown(self) -> None: ...

    def nvmlDeviceGetCount(self) -> int: ...

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...

    def nvmlDeviceGetName(self, handle: object) -> str: ...

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> MemoryInfo: ...

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Utilization: ...

    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int: ...

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int: ...  # milliwatts

    def nvmlDeviceGetTotalEccErrors(
        self, handle: object, errorType: int, counterType: int
    ) -> int: ...

    def nvmlDeviceGetNvLinkState(self, handle: object, link: int) -> int: ...  # 1 = active

    def nvmlEventSetCreate(self) -> object: ...

    def nvmlDeviceRegisterEvents(
        self, handle: object, eventTypes: int, eventSet: object
    ) -> None: ...

    def nvmlEventSetWait(self, eventSet: object, timeoutms: int) -> EventData: ...

    def nvmlEventSetFree(self, eventSet: object) -> None: ...


def nvml_error(code: int) -> Exception:
    """The pynvml exception for an ``NVML_ERROR_*`` code (its specific subclass)."""
    return cast(Exception, pynvml.NVMLError(code))


def error_code(exc: BaseException) -> int | None:
    """The ``NVML_ERROR_*`` code of a pynvml exception, or None for any other exception."""
    if isinstance(exc, pynvml.NVMLError):
        return int(exc.value)
    return None


class RealNvml:
    """NVML through nvidia-ml-py. ``nvmlInit`` raises ``NVMLError_LibraryNotFound`` on a
    machine without the NVIDIA driver."""

    simulated = False

    def nvmlInit(self) -> None:
        pynvml.nvmlInit()

    def nvmlShutdown(self) -> None:
        pynvml.nvmlShutdown()

    def nvmlDeviceGetCount(self) -> int:
        return int(pynvml.nvmlDeviceGetCount())

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        return cast(object, pynvml.nvmlDeviceGetHandleByIndex(index))

    def nvmlDeviceGetName(self, handle: object) -> str:
        name: Any = pynvml.nvmlDeviceGetName(handle)
        # nvidia-ml-py >= 11.515 decodes to str; older releases return bytes
        return name.decode() if isinstance(name, bytes) else str(name)

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> MemoryInfo:
        return cast(MemoryInfo, pynvml.nvmlDeviceGetMemoryInfo(handle))

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Utilization:
        return cast(Utilization, pynvml.nvmlDeviceGetUtilizationRates(handle))

    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int:
        return int(pynvml.nvmlDeviceGetTemperature(handle, sensor))

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        return int(pynvml.nvmlDeviceGetPowerUsage(handle))

    def nvmlDeviceGetTotalEccErrors(self, handle: object, errorType: int, counterType: int) -> int:
        return int(pynvml.nvmlDeviceGetTotalEccErrors(handle, errorType, counterType))

    def nvmlDeviceGetNvLinkState(self, handle: object, link: int) -> int:
        return int(pynvml.nvmlDeviceGetNvLinkState(handle, link))

    def nvmlEventSetCreate(self) -> object:
        return cast(object, pynvml.nvmlEventSetCreate())

    def nvmlDeviceRegisterEvents(self, handle: object, eventTypes: int, eventSet: object) -> None:
        pynvml.nvmlDeviceRegisterEvents(handle, eventTypes, eventSet)

    def nvmlEventSetWait(self, eventSet: object, timeoutms: int) -> EventData:
        return cast(EventData, pynvml.nvmlEventSetWait(eventSet, timeoutms))

    def nvmlEventSetFree(self, eventSet: object) -> None:
        pynvml.nvmlEventSetFree(eventSet)
