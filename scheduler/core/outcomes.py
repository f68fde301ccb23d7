"""Typed outcomes carried by the core's events and actions (free text stays in ``cause``).

A driver tells the core how a run ended with ``RunOutcome`` (``JobFinished.outcome``); the
core says how a job let go of its resources with ``ReleaseOutcome`` (``Release.outcome``) and
why it stopped a running job with ``PreemptReason`` (``Preempt.reason``). Each is a small
closed set, so a metric label or a state machine can take it as it is.
"""

from __future__ import annotations

from enum import StrEnum


class RunOutcome(StrEnum):
    """How a job's run ended, for ``JobFinished`` (a run that was lost or stopped without
    finishing is a ``JobInterrupted`` instead: the job is requeued)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ReleaseOutcome(StrEnum):
    """Why a job let go of its resources for good."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PreemptReason(StrEnum):
    """Why the core stopped a running job (it is requeued and resumes from its checkpoint)."""

    PRIORITY = "priority"  # a higher-priority job needed the room
    ATTAINED_SERVICE = "attained_service"  # least-attained-service order (las) ranked it lower
    QUOTA_RECLAIM = "quota_reclaim"  # its team borrowed; the lender took its quota back
    NODE_LOST = "node_lost"  # its node left the cluster
    DRAIN = "drain"  # its node is drained (a GPU fault, or an operator)
    INTERRUPTED = "interrupted"  # its run stopped without finishing (runner died)
