"""Events: what happened, in the past tense. Time enters the core only as ``now_s`` here."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.model import Job
from scheduler.core.outcomes import RunOutcome


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    now_s: float
    job: Job
    cause: str = "submit"


@dataclass(frozen=True, slots=True)
class JobFinished:
    """The job's run ended for good: it succeeded or failed (``cause`` says how, in words)."""

    now_s: float
    job_id: str
    cause: str = "finished"
    outcome: RunOutcome = RunOutcome.SUCCEEDED


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
class NodeDrained:
    """An operator drains the node: it takes no new work and its running jobs are preempted
    (checkpoint, requeue) to move elsewhere; ``NodeUncordoned`` clears it."""

    now_s: float
    node: str
    cause: str = "drain"


@dataclass(frozen=True, slots=True)
class GpuHealthChanged:
    """A GPU became unhealthy (XID, ECC) or healthy again; unhealthy GPUs get no new work."""

    now_s: float
    node: str
    gpu_index: int
    healthy: bool
    cause: str = "health"


@dataclass(frozen=True, slots=True)
class GpuTelemetry:
    """One NVML reading of one GPU (``scheduler.core.health`` turns it into health and
    memory facts). ``xids`` are the XID event codes seen since the previous reading;
    ``ecc_uncorrected`` is NVML's volatile uncorrected ECC count (it only grows until reset)."""

    now_s: float
    node: str
    gpu_index: int
    memory_used_mib: int
    memory_total_mib: int
    utilization_pct: float
    temperature_c: float
    power_w: float = 0.0
    ecc_uncorrected: int = 0
    xids: tuple[int, ...] = ()
    cause: str = "telemetry"


@dataclass(frozen=True, slots=True)
class NodeLost:
    """The node is gone (crash, network, removed): its running jobs stop and are requeued to
    resume from their last checkpoint; it takes no work until it joins again."""

    now_s: float
    node: str
    cause: str = "node lost"


@dataclass(frozen=True, slots=True)
class NodeJoined:
    """A known node (one of the fleet's) is back and takes work again."""

    now_s: float
    node: str
    cause: str = "node joined"


@dataclass(frozen=True, slots=True)
class JobInterrupted:
    """The job's run stopped without finishing (its runner died, or it failed in a way its
    team marked retryable): the job is requeued and resumes from its last checkpoint."""

    now_s: float
    job_id: str
    cause: str = "interrupted"


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
    | NodeDrained
    | GpuHealthChanged
    | GpuTelemetry
    | NodeLost
    | NodeJoined
    | JobInterrupted
    | Tick
)
