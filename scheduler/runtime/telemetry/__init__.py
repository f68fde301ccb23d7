"""GPU telemetry of the live service: NVML (real or simulated) read on every node.

* ``backend``: the NVML calls used (``NvmlBackend``) and ``RealNvml`` over nvidia-ml-py;
* ``simulated``: ``SimulatedNvml`` for GPU-less machines and tests, with fault injection;
* ``sample``: ``NvmlSession``, ``sample`` -> ``NodeSample``, ``to_events`` (core events) and
  ``gpu_views`` (API views);
* ``actor``: ``GpuSampler``, the per-node Ray actor, and ``start_sampler``.
"""

from scheduler.runtime.telemetry.actor import (
    GpuSampler,
    NvmlUnavailable,
    SamplerStats,
    sampler_name,
    start_sampler,
)
from scheduler.runtime.telemetry.backend import NvmlBackend, RealNvml
from scheduler.runtime.telemetry.sample import (
    GpuReading,
    NodeSample,
    NvmlSession,
    gpu_views,
    sample,
    to_events,
)
from scheduler.runtime.telemetry.simulated import SimulatedGpu, SimulatedNvml, uniform_gpus

__all__ = [
    "GpuReading",
    "GpuSampler",
    "NodeSample",
    "NvmlBackend",
    "NvmlSession",
    "NvmlUnavailable",
    "RealNvml",
    "SamplerStats",
    "SimulatedGpu",
    "SimulatedNvml",
    "gpu_views",
    "sample",
    "sampler_name",
    "start_sampler",
    "to_events",
    "uniform_gpus",
]
