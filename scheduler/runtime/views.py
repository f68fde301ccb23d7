"""What the service shows: the data of the HTTP API, the CLI and the metrics.

These are pydantic models so that the API validates and documents them (OpenAPI) from one
definition. Times are seconds since the Unix epoch.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from scheduler.runtime.auth import Principal


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
    data_region: str | None = Field(
        default=None,
        description="where the job's data lives (the spec's data_region): it runs only in "
        "the node regions the service's residency rule allows for it",
    )
    kind: str = Field(
        default="train",
        description="'train' (a Ray Train loop, the spec's entrypoint) or 'script' (the "
        "spec's command, run as a Ray job)",
    )
    ray_job_id: str | None = Field(
        default=None,
        description="a script job's current attempt in Ray's Jobs API (its submission id)",
    )


class JobPage(BaseModel):
    """One page of a job list, oldest first; ``next_after`` is the cursor of the next page
    (pass it as ``after``), None on the last page."""

    items: list[JobView]
    next_after: str | None = None


class LogChunk(BaseModel):
    """The job's log from byte ``offset`` on (its log only grows): ``text``, where the next
    read starts (``next_offset``) and whether the job has ended (nothing more will come
    once ``ended`` and ``text`` is empty)."""

    job_id: str
    offset: int
    next_offset: int
    text: str
    ended: bool


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


class OffReason(BaseModel):
    reason: str = Field(description="cordon, drain or lost")
    since_s: float | None = Field(description="when it began (seconds since the epoch)")
    cause: str = Field(default="", description="what set it: an operator, a fault, Ray")


class NodeView(BaseModel):
    name: str
    ray_node_id: str | None
    alive: bool
    schedulable: bool
    off_reasons: list[str] = Field(
        default=[], description="why it takes no work: cordon, drain, lost"
    )
    off: list[OffReason] = Field(default=[], description="each reason, since when, and why")
    labels: dict[str, str] = {}
    simulated: bool = Field(description="GPUs and telemetry are simulated (no NVIDIA GPU)")
    sampled_at_s: float | None = None
    gpus: list[GpuView] = []


class NodeOp(StrEnum):
    """What an operator does to a node (kubectl's verbs)."""

    CORDON = "cordon"  # no new work; running work stays
    DRAIN = "drain"  # cordon, then checkpoint and move its jobs
    UNCORDON = "uncordon"  # schedulable again; clears drain and the GPU health marks


class AuditView(BaseModel):
    """One line of the audit log: who did what to which job or node, and how it went."""

    id: int
    at_s: float
    principal: str = Field(description="the token's name ('anonymous' for a refused token)")
    team: str | None = Field(description="the caller's team; None for an admin or the service")
    action: str
    target: str = Field(description="job id, node name, or empty")
    outcome: str = Field(description="'ok', or the HTTP status of a refusal (401, 403, ...)")
    detail: str = ""


class SpecRejected(Exception):
    """A submitted spec is invalid; ``errors`` name each field (``loc``), value and rule."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    def __reduce__(self) -> tuple[type[SpecRejected], tuple[list[dict[str, Any]]]]:
        # crosses process boundaries (Ray actor -> API replica) with its errors intact
        return (SpecRejected, (self.errors,))


class Forbidden(Exception):
    """The caller may not do this (HTTP 403). ``field`` names the spec field at fault, if
    any; the message says what the caller may do instead."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[type[Forbidden], tuple[str, str | None]]:
        return (Forbidden, (self.message, self.field))


class Unavailable(Exception):
    """The service cannot take the request now (HTTP 503): its journal could not be written
    (disk full, database locked). Nothing of the request was applied; retry later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self) -> tuple[type[Unavailable], tuple[str]]:
        return (Unavailable, (self.reason,))


class Conflict(Exception):
    """The request contradicts what the service holds (HTTP 409): an idempotency key reused
    with another body, a cancel of an ended job."""

    def __reduce__(self) -> tuple[type[Conflict], tuple[str]]:
        return (Conflict, (str(self),))


class UnknownJob(KeyError):
    pass


class PackageRejected(Exception):
    """An uploaded package is refused (HTTP 400, or 413 when ``too_large``): its name is not
    a package URI of Ray's form, or it exceeds Ray's size limit. The message says which and
    what is allowed."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large

    def __reduce__(self) -> tuple[type[PackageRejected], tuple[str, bool]]:
        return (PackageRejected, (self.message, self.too_large))


class UnknownNode(KeyError):
    pass


class Backend(Protocol):
    """What the HTTP API needs from the scheduler service (implemented by the Ray actor's
    handle in ``ray_service.py`` and by an in-memory fake in the API tests). ``team`` is None
    for an admin (sees everything). Calls that change something take the caller, whom the
    backend authorises (``authz.py``) and records in the audit log."""

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView: ...  # raises SpecRejected, Forbidden, Conflict, Unavailable

    async def list_jobs(
        self, team: str | None, state: JobState | None, limit: int, after: str | None
    ) -> JobPage: ...  # oldest first, at most ``limit`` jobs whose id sorts after ``after``

    async def get_job(self, job_id: str) -> JobView: ...  # raises UnknownJob

    async def find_job(self, team: str, key: str) -> JobView: ...  # by the team's

    # idempotency key (a Ray submission id); raises UnknownJob

    async def cancel(self, who: Principal, job_id: str) -> JobView: ...  # raises UnknownJob

    async def logs(self, job_id: str, tail_lines: int) -> str: ...  # raises UnknownJob

    async def log_chunk(
        self, job_id: str, offset: int, limit_bytes: int
    ) -> LogChunk: ...  # raises UnknownJob

    async def package_exists(self, uri: str) -> bool: ...  # "gcs://_ray_pkg_<hash>.zip"

    async def put_package(
        self, who: Principal, uri: str, data: bytes
    ) -> None: ...  # raises PackageRejected, Unavailable

    async def queue(self, team: str | None) -> list[QueueEntry]: ...

    async def nodes(self) -> list[NodeView]: ...

    async def node_op(self, who: Principal, node: str, op: NodeOp) -> NodeView: ...

    async def audit(
        self, since_s: float | None, team: str | None, limit: int
    ) -> list[AuditView]: ...

    async def refused(
        self, who: Principal, action: str, target: str, outcome: str, detail: str
    ) -> None: ...  # a call refused before it reached the service (401, 403)

    async def metrics_text(self) -> str: ...  # Prometheus text exposition format
