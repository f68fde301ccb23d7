"""Actions: what the driver must do, in the imperative. Each carries the ``cause`` behind it."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.model import Placement
from scheduler.core.outcomes import PreemptReason, ReleaseOutcome
from scheduler.core.verdict import Code


@dataclass(frozen=True, slots=True)
class Launch:
    """Start the gang on exactly these nodes and GPUs."""

    job_id: str
    placement: Placement
    now_s: float
    cause: str


@dataclass(frozen=True, slots=True)
class Reject:
    """The job will not run: it can never fit, or (fail-fast mode) does not fit now."""

    job_id: str
    code: Code
    reason: str
    now_s: float
    cause: str


@dataclass(frozen=True, slots=True)
class Release:
    """The job's resources were returned to the fleet for good (``outcome``: it succeeded,
    failed or was cancelled; ``cause`` says it in words)."""

    job_id: str
    now_s: float
    cause: str
    outcome: ReleaseOutcome = ReleaseOutcome.SUCCEEDED


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop the job (checkpoint first if it can) and requeue it; it resumes from
    ``resume_from_s`` seconds of progress (its last checkpoint)."""

    job_id: str
    now_s: float
    cause: str
    resume_from_s: float
    lost_gpu_s: float
    reason: PreemptReason = PreemptReason.PRIORITY


Action = Launch | Reject | Release | Preempt
