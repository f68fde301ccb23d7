"""What the service shows: the data of the HTTP API, the CLI and the metrics.

These are pydantic models so that the API validates and documents them (OpenAPI) from one
definition. Times are seconds since the Unix epoch.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field


class JobState(StrEnum):
    PENDING = "PENDING"  # queued (also after a preemption or node loss, until relaunched)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"  # the core said it can never run (reason says why)

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED)


class WorkerPlacementView(BaseModel):
    rank: int
    node: str
    gpu_indices: list[int]
    gpu_milli: int


class JobView(BaseModel):
    job_id: str
    name: str
    team: str
    priority: int
    state: JobState
    reason: str = Field(description="why the job is in its state (why it waits, how it ended)")
    code: str | None = Field(default=None, description="the core's verdict code while pending")
    queue_position: int | None = None
    estimated_start_s: float | None = None
    submitted_at_s: float
    started_at_s: float | None = None
    finished_at_s: float | None = None
    placement: list[WorkerPlacementView] = []
    attempts: int = Field(default=0, description="Ray Train runs launched for this job so far")
    preemptions: int = 0
    metrics: dict[str, float] = Field(
        default={}, description="last metrics the training run reported"
    )
    spec: dict[str, Any] = Field(default={}, description="the submitted job spec")


class QueueEntry(BaseModel):
    job_id: str
    name: str
    team: str
    position: int
    code: str
    reason: str
    estimated_start_s: float | None


class GpuView(BaseModel):
    index: int
    model: str
    memory_total_mib: int
    memory_used_mib: int | None = None
    utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    ecc_uncorrected: int | None = None
    healthy: bool
    why_unhealthy: list[str] = []
    allocated_milli: int = 0


class NodeView(BaseModel):
    name: str
    ray_node_id: str | None
    alive: bool
    schedulable: bool
    off_reasons: list[str] = Field(
        default=[], description="why it takes no work: cordon, drain, lost"
    )
    labels: dict[str, str] = {}
    simulated: bool = Field(description="GPUs and telemetry are simulated (no NVIDIA GPU)")
    sampled_at_s: float | None = None
    gpus: list[GpuView] = []


class SpecRejected(Exception):
    """A submitted spec is invalid; ``errors`` name each field (``loc``), value and rule."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    def __reduce__(self) -> tuple[type[SpecRejected], tuple[list[dict[str, Any]]]]:
        # crosses process boundaries (Ray actor -> API replica) with its errors intact
        return (SpecRejected, (self.errors,))


class UnknownJob(KeyError):
    pass


class Backend(Protocol):
    """What the HTTP API needs from the scheduler service (implemented by the Ray actor's
    handle in ``service.py`` and by an in-memory fake in the API tests). ``team`` is None for
    an admin (sees everything)."""

    async def submit(self, spec: dict[str, Any], idempotency_key: str | None) -> JobView: ...

    async def list_jobs(self, team: str | None, state: JobState | None) -> list[JobView]: ...

    async def get_job(self, job_id: str) -> JobView: ...  # raises UnknownJob

    async def cancel(self, job_id: str) -> JobView: ...  # raises UnknownJob

    async def logs(self, job_id: str, tail_lines: int) -> str: ...  # raises UnknownJob

    async def queue(self, team: str | None) -> list[QueueEntry]: ...

    async def nodes(self) -> list[NodeView]: ...

    async def metrics_text(self) -> str: ...  # Prometheus text exposition format
