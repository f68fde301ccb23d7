"""The per-node sampler: a Ray actor pinned to its node, read by the service (pull).

The service calls ``read.remote()`` on every node's sampler each telemetry period and feeds
``to_events`` of the result to the core, so the sampler keeps no schedule and pushes nothing.
Faults for simulated GPUs are injected through the actor (``inject``) from any process.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import ray
from ray.actor import ActorHandle

from scheduler.runtime.telemetry.backend import NvmlBackend, RealNvml, error_code
from scheduler.runtime.telemetry.sample import NodeSample, NvmlSession, sample
from scheduler.runtime.telemetry.simulated import SimulatedGpu, SimulatedNvml

NAMESPACE = "gpuyard"
STATS_WINDOW = 1024  # samples kept for the mean and p95


class NvmlUnavailable(RuntimeError):
    """A node declared with real GPUs cannot start NVML."""


@dataclass(frozen=True, slots=True)
class SamplerStats:
    """Telemetry sampling overhead on one node: ``samples`` taken since start, and the mean
    and 95th percentile (nearest rank) of seconds per sample over the last ``STATS_WINDOW``."""

    samples: int
    mean_s: float
    p95_s: float


def sampler_name(node_name: str) -> str:
    """The Ray actor name of ``node_name``'s sampler (in namespace ``gpuyard``)."""
    return f"gpuyard-sampler-{node_name}"


class GpuSampler:
    """Samples one node's GPUs: real NVML when ``simulated_gpus`` is None, else simulated.

    Raises ``NvmlUnavailable`` when the node should have real GPUs but NVML does not start
    (no NVIDIA driver or library on it)."""

    def __init__(self, node_name: str, simulated_gpus: Sequence[SimulatedGpu] | None) -> None:
        self.node_name = node_name
        self._simulated = None if simulated_gpus is None else SimulatedNvml(simulated_gpus)
        backend: NvmlBackend = self._simulated if self._simulated is not None else RealNvml()
        try:
            self._session = NvmlSession(backend)
        except Exception as exc:
            code = error_code(exc)
            if code is None or self._simulated is not None:
                raise
            raise NvmlUnavailable(
                f"node {node_name!r} was declared with NVIDIA GPUs but NVML does not start there "
                f"({type(exc).__name__}: {exc}, NVML error {code}); install the NVIDIA driver "
                "on it, or declare its GPUs as simulated"
            ) from exc
        self._samples = 0
        self._durations: deque[float] = deque(maxlen=STATS_WINDOW)

    def read(self) -> NodeSample:
        """One sample of every GPU now (time: seconds since the Unix epoch)."""
        start = time.perf_counter()
        out = sample(self._session, self.node_name, time.time())
        self._durations.append(time.perf_counter() - start)
        self._samples += 1
        return out

    def inject(self, kind: str, gpu: int, value: float = 0.0) -> None:
        """Inject a fault into the simulated GPUs (see ``SimulatedNvml.inject`` for kinds)."""
        self._simulation().inject(kind, gpu, value)

    def set_load(self, gpu_index: int, util_pct: float, mem_used_mib: int) -> None:
        """Tell a simulated GPU what it runs (percent utilization, MiB of memory)."""
        self._simulation().set_load(gpu_index, util_pct, mem_used_mib)

    def stats(self) -> SamplerStats:
        durations = sorted(self._durations)
        if not durations:
            return SamplerStats(self._samples, 0.0, 0.0)
        p95 = durations[max(0, math.ceil(0.95 * len(durations)) - 1)]
        return SamplerStats(self._samples, sum(durations) / len(durations), p95)

    def node_id(self) -> str:
        """The hex id of the Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def gpu_count(self) -> int:
        return len(self._session.gpus)

    def close(self) -> None:
        """Release NVML (the actor can be killed after this)."""
        self._session.close()

    def _simulation(self) -> SimulatedNvml:
        if self._simulated is None:
            raise ValueError(
                f"node {self.node_name!r} samples real GPUs; faults can only be injected "
                "into simulated ones"
            )
        return self._simulated


def start_sampler(
    node_name: str, ray_node_id: str, simulated_gpus: Sequence[SimulatedGpu] | None
) -> ActorHandle[GpuSampler]:
    """Start ``node_name``'s sampler on the Ray node ``ray_node_id`` (hex), named
    ``sampler_name(node_name)`` in namespace ``gpuyard``. It takes no CPU from the node's
    budget for jobs and is restarted whenever it dies (a simulated one restarts with its
    faults cleared, like a GPU reset). The service polls ``read``; there is no period here.
    """
    actor_class = ray.remote(GpuSampler)
    handle = actor_class.options(
        name=sampler_name(node_name),
        namespace=NAMESPACE,
        num_cpus=0,
        max_restarts=-1,
        # Ray 2.60 actor options accept label_selector; every node carries ray.io/node-id
        label_selector={"ray.io/node-id": ray_node_id},
    ).remote(node_name, None if simulated_gpus is None else list(simulated_gpus))
    return cast(ActorHandle[GpuSampler], handle)  # ray's overloads also admit the class
