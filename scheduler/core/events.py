"""Events: what happened, in the past tense. Time enters the core only as ``now_s`` here."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.model import Job


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    now_s: float
    job: Job
    cause: str = "submit"


@dataclass(frozen=True, slots=True)
class JobFinished:
    now_s: float
    job_id: str
    cause: str = "finished"


@dataclass(frozen=True, slots=True)
class JobCancelled:
    now_s: float
    job_id: str
    cause: str = "cancel"


@dataclass(frozen=True, slots=True)
class NodeCordoned:
    """The node takes no new work (drain, maintenance); running work stays."""

    now_s: float
    node: str
    cause: str = "cordon"


@dataclass(frozen=True, slots=True)
class NodeUncordoned:
    now_s: float
    node: str
    cause: str = "uncordon"


@dataclass(frozen=True, slots=True)
class GpuHealthChanged:
    """A GPU became unhealthy (XID, ECC) or healthy again; unhealthy GPUs get no new work."""

    now_s: float
    node: str
    gpu_index: int
    healthy: bool
    cause: str = "health"


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; lets the core run a scheduling cycle with nothing else new."""

    now_s: float
    cause: str = "tick"


Event = (
    JobSubmitted
    | JobFinished
    | JobCancelled
    | NodeCordoned
    | NodeUncordoned
    | GpuHealthChanged
    | Tick
)
