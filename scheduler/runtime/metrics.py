"""Prometheus metrics of the live service, in a registry of its own (not the process-global
one, so that two services or tests in one process do not collide).

The service calls the methods of ``ServiceMetrics``; the HTTP API serves ``render()`` at
``/metrics``. Durations are seconds; a negative duration (the wall clock stepped back) is
counted as 0 rather than dropped or raised inside the scheduling loop.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from scheduler.core.outcomes import PreemptReason
from scheduler.runtime.views import JobState

CONTENT_TYPE = _CONTENT_TYPE  # the Content-Type of ``render()``'s text

# Submit -> launch: from seconds (an idle fleet) to days (a job behind a long queue).
ADMISSION_BUCKETS_S = (
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    14400,
    43200,
    86400,
    172800,
    604800,
)
# One core handle() call: the core must stay well under a second at 100,000 GPUs.
CYCLE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PendingRow(Protocol):
    """One pending job as the metrics need it (``views.QueueEntry`` is one)."""

    @property
    def team(self) -> str: ...

    @property
    def code(self) -> str: ...


class TelemetryRefusal(StrEnum):
    """Why a telemetry sample was refused at the edge (bounded label values)."""

    UNKNOWN_NODE = "unknown_node"
    EXTRA_GPU = "extra_gpu"  # a GPU index the fleet file does not declare
    NOT_FINITE = "not_finite"  # NaN or infinite reading
    NEGATIVE = "negative"  # a count or reading below zero


class ServiceMetrics:
    """The service's metrics. Thread-safe: ``set_pending`` and ``render`` hold one lock so a
    scrape never sees the pending gauge half rewritten."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self._pending = Gauge(
            "gpuyard_pending_jobs",
            "Pending jobs by team and the core's verdict code (why they wait)",
            ["team", "reason"],
            registry=r,
        )
        self._gpus = Gauge(
            "gpuyard_gpus",
            "GPUs by state (allocated counts GPU shares, e.g. 0.5 for half a GPU)",
            ["state"],
            registry=r,
        )
        self._admission = Histogram(
            "gpuyard_admission_latency_seconds",
            "Seconds from a job's submission to its launch",
            ["team"],
            buckets=ADMISSION_BUCKETS_S,
            registry=r,
        )
        self._cycle = Histogram(
            "gpuyard_cycle_seconds",
            "Seconds one scheduling-core handle() call took",
            buckets=CYCLE_BUCKETS_S,
            registry=r,
        )
        self._preemptions = Counter(
            "gpuyard_preemptions",
            "Preempted jobs by team and reason (one of the core's PreemptReason values)",
            ["team", "reason"],
            registry=r,
        )
        self._refused = Counter(
            "gpuyard_telemetry_refused",
            "Telemetry samples refused before the journal, by why (they contradict the fleet)",
            ["reason"],
            registry=r,
        )
        self._journal_failures = Counter(
            "gpuyard_journal_write_failures",
            "Batches not applied because the journal could not be written",
            registry=r,
        )
        self._batch = Histogram(
            "gpuyard_batch_inputs",
            "Inputs (submissions, cancels, observations) committed together in one batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self._jobs = Counter(
            "gpuyard_jobs",
            "Jobs that ended, by team and terminal state",
            ["team", "state"],
            registry=r,
        )
        for state in ("allocated", "free", "unhealthy"):
            self._gpus.labels(state=state).set(0)

    def observe_cycle(self, seconds: float) -> None:
        self._cycle.observe(max(0.0, seconds))

    def observe_admission(self, team: str, seconds: float) -> None:
        self._admission.labels(team=team).observe(max(0.0, seconds))

    def preempted(self, team: str, reason: PreemptReason) -> None:
        self._preemptions.labels(team=team, reason=PreemptReason(reason).value).inc()

    def telemetry_refused(self, reason: TelemetryRefusal) -> None:
        self._refused.labels(reason=TelemetryRefusal(reason).value).inc()

    def journal_failed(self) -> None:
        self._journal_failures.inc()

    def observe_batch(self, inputs: int) -> None:
        self._batch.observe(inputs)

    def finished(self, team: str, state: JobState | str) -> None:
        """Count a job that ended; ``state`` must be terminal (SUCCEEDED, FAILED, CANCELLED,
        REJECTED)."""
        try:
            s = JobState(state)
        except ValueError:
            s = None
        if s is None or not s.terminal:
            allowed = ", ".join(x.value for x in JobState if x.terminal)
            raise ValueError(f"finished(): state {state!r} is not allowed (one of {allowed})")
        self._jobs.labels(team=team, state=s.value).inc()

    def set_pending(self, rows: Mapping[tuple[str, str], int] | Iterable[PendingRow]) -> None:
        """Replace the pending gauge: ``rows`` is either counts by (team, verdict code) or the
        pending rows themselves (``QueueEntry``s), counted here. A (team, code) with no
        pending job left disappears."""
        if isinstance(rows, Mapping):
            counts: Mapping[tuple[str, str], int] = rows
        else:
            counts = Tally((row.team, row.code) for row in rows)
        with self._lock:
            self._pending.clear()
            for (team, code), n in sorted(counts.items()):
                self._pending.labels(team=team, reason=code).set(n)

    def set_gpus(self, allocated: float, free: float, unhealthy: float) -> None:
        for state, value in (("allocated", allocated), ("free", free), ("unhealthy", unhealthy)):
            if value < 0:
                raise ValueError(f"set_gpus(): {state}={value} is not allowed (a count >= 0)")
        self._gpus.labels(state="allocated").set(allocated)
        self._gpus.labels(state="free").set(free)
        self._gpus.labels(state="unhealthy").set(unhealthy)

    def render(self) -> str:
        """The Prometheus text exposition format (``CONTENT_TYPE``)."""
        with self._lock:
            return generate_latest(self.registry).decode("utf-8")
