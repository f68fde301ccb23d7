"""Value types of the scheduling core: frozen, slotted dataclasses with units in their names.

A job is a *gang*: ``num_workers`` identical workers, each asking for ``gpus`` GPUs. A worker
with ``gpu_milli == 1000`` takes whole GPUs; a worker with ``gpu_milli < 1000`` shares exactly one
GPU with others (``gpus == 1``), several sharers fitting on one GPU up to 1000 milli-GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MILLI_PER_GPU = 1000
REGION_LABEL = "gpuyard.io/region"  # node label: the data-residency region a node sits in


class Topology(StrEnum):
    """Where the workers of one gang must land relative to each other."""

    ANY = "any"
    SAME_NODE = "same_node"
    SAME_NVLINK = "same_nvlink"  # one node, and all GPUs in one NVLink domain
    SAME_RACK = "same_rack"


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU of a node."""

    model: str
    memory_mib: int
    nvlink_domain: int = 0
    healthy: bool = True


@dataclass(frozen=True, slots=True)
class Node:
    """A schedulable machine. ``labels`` carry rack, zone and region (keys ``rack``, ``zone``,
    ``gpuyard.io/region``)."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: tuple[Gpu, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, key: str, default: str = "") -> str:
        for k, v in self.labels:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True)
class WorkerRequest:
    """What one worker of a gang needs on a single node."""

    cpu_milli: int
    memory_mib: int
    gpus: int = 0
    gpu_milli: int = MILLI_PER_GPU  # per GPU; < 1000 means one shared GPU
    gpu_models: tuple[str, ...] = ()  # allowed models; empty = any
    min_gpu_memory_mib: int = 0
    regions: tuple[str, ...] = ()  # node regions (label gpuyard.io/region) allowed; empty = any

    def __post_init__(self) -> None:
        if self.cpu_milli < 0 or self.memory_mib < 0:
            raise ValueError(
                f"cpu_milli and memory_mib must be >= 0, got {self.cpu_milli}, {self.memory_mib}"
            )
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")
        if not 0 < self.gpu_milli <= MILLI_PER_GPU:
            raise ValueError(f"gpu_milli must be in 1..1000, got {self.gpu_milli}")
        if self.gpu_milli < MILLI_PER_GPU and self.gpus != 1:
            raise ValueError(
                f"a shared GPU (gpu_milli={self.gpu_milli} < 1000) needs gpus == 1, got {self.gpus}"
            )

    @property
    def shares_gpu(self) -> bool:
        return self.gpus == 1 and self.gpu_milli < MILLI_PER_GPU

    @property
    def total_gpu_milli(self) -> int:
        return self.gpus * self.gpu_milli

    def key(self) -> tuple[int, int, int, int, tuple[str, ...], int, tuple[str, ...]]:
        """Identity of the request's shape, used to cache per-node scores."""
        return (
            self.cpu_milli,
            self.memory_mib,
            self.gpus,
            self.gpu_milli,
            self.gpu_models,
            self.min_gpu_memory_mib,
            self.regions,
        )

    def scaled(self, workers: int) -> WorkerRequest:
        """The request of ``workers`` such workers merged into one (for same-node gangs)."""
        if self.shares_gpu:
            raise ValueError("shared-GPU workers cannot be merged into one request")
        return WorkerRequest(
            cpu_milli=self.cpu_milli * workers,
            memory_mib=self.memory_mib * workers,
            gpus=self.gpus * workers,
            gpu_milli=self.gpu_milli,
            gpu_models=self.gpu_models,
            min_gpu_memory_mib=self.min_gpu_memory_mib,
            regions=self.regions,
        )


@dataclass(frozen=True, slots=True)
class Job:
    """A gang of ``num_workers`` identical workers, placed all or nothing."""

    job_id: str
    worker: WorkerRequest
    num_workers: int = 1
    team: str = "default"
    priority: int = 0
    submitted_at_s: float = 0.0
    topology: Topology = Topology.ANY
    estimated_duration_s: float | None = None  # known in simulation; estimated or None live
    checkpoint_interval_s: float | None = None  # None: a preempted job loses all its work
    # where the job's training data lives (reporting); the nodes it may use are
    # ``worker.regions``, the regions its data's residency rule allows
    data_region: str = ""

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"job {self.job_id}: num_workers must be >= 1, got {self.num_workers}")
        if (
            self.worker.shares_gpu
            and self.topology in (Topology.SAME_NODE, Topology.SAME_NVLINK)
            and self.num_workers > 1
        ):
            raise ValueError(
                f"job {self.job_id}: shared-GPU workers cannot ask for {self.topology.value}"
            )

    @property
    def total_gpu_milli(self) -> int:
        return self.num_workers * self.worker.total_gpu_milli

    def shape_key(self) -> tuple[object, ...]:
        """Jobs with equal shape keys fit or fail to fit identically."""
        return (self.worker.key(), self.num_workers, self.topology)

    @property
    def on_one_node(self) -> bool:
        """Placed as one merged request on one node: same-node and same-NVLink gangs, and a
        multi-GPU worker that wants one NVLink domain."""
        if self.topology in (Topology.SAME_NODE, Topology.SAME_NVLINK) and self.num_workers > 1:
            return True
        return self.topology is Topology.SAME_NVLINK and self.worker.gpus > 1

    def node_request(self) -> WorkerRequest:
        """What one node must hold at once: the merged request of an on-one-node gang (its
        workers' sum), else one worker."""
        if self.on_one_node and self.num_workers > 1:
            return self.worker.scaled(self.num_workers)
        return self.worker


@dataclass(frozen=True, slots=True)
class WorkerPlacement:
    """Where one worker landed: a node and the GPUs on it (each with ``gpu_milli`` taken)."""

    node: str
    node_index: int
    gpu_indices: tuple[int, ...]
    gpu_milli: int
    cpu_milli: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class Placement:
    """A committed gang placement: one entry per worker, in worker-rank order."""

    job_id: str
    workers: tuple[WorkerPlacement, ...] = field(default_factory=tuple)

    @property
    def nodes(self) -> tuple[str, ...]:
        seen: list[str] = []
        for w in self.workers:
            if w.node not in seen:
                seen.append(w.node)
        return tuple(seen)
