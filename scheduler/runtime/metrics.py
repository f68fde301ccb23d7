"""Prometheus metrics of the live service, in a registry of its own (not the process-global
one, so that two services or tests in one process do not collide).

The service calls the methods of ``ServiceMetrics``; the HTTP API serves ``render()`` at
``/metrics``. Durations are seconds; a negative duration (the wall clock stepped back) is
counted as 0 rather than dropped or raised inside the scheduling loop.

GPUs (``set_fleet``, from the core's fleet arrays and the nodes' off reasons):

* ``gpuyard_gpus{state}`` is a partition of the fleet's GPU capacity, in GPUs (a shared GPU
  counts its shares: half of a GPU held by a job is 0.5 ``allocated``): the share a running
  job holds is ``allocated``, whatever the GPU or its node is going through (the work is
  there); the rest of each GPU is in the first of ``unhealthy`` (the GPU is marked
  unhealthy), ``lost`` (its node left the cluster), ``drained``, ``cordoned`` (its node takes
  no new work) and ``free`` that applies. The states add up to ``gpuyard_gpu_capacity``
  summed over GPU models, always.
* ``gpuyard_gpu_capacity{gpu_model}``: the GPUs of the fleet file, by model.
* ``gpuyard_gpus_allocated{node,gpu_model}``: GPUs held by running jobs (shares summed).
* ``gpuyard_gpus_unhealthy{node,gpu_model}``: GPUs marked unhealthy, busy or not (a job on
  an unhealthy GPU is ``allocated`` in the partition but counted here too); only the nodes
  that have one.
* ``gpuyard_node_off{node,reason}``: 1 for each reason (cordon, drain, lost) a node takes no
  new work; absent otherwise. ``gpuyard_node_drains_total{node}`` counts drains begun (by an
  operator or by a GPU fault) since the process started.

These per-node figures are kept as arrays and written out only when scraped, so the service
loop's update stays one pass of numpy over the fleet even at 100,000 GPUs.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.core.outcomes import PreemptReason
from scheduler.runtime.views import JobState

CONTENT_TYPE = _CONTENT_TYPE  # the Content-Type of ``render()``'s text
MILLI_PER_GPU = 1000  # the core's unit of a GPU share (scheduler.core.model.MILLI_PER_GPU)

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


class GpuState(StrEnum):
    """The states of ``gpuyard_gpus``: each share of each GPU is in exactly one."""

    ALLOCATED = "allocated"  # held by a running job
    UNHEALTHY = "unhealthy"  # not held; the GPU is marked unhealthy
    LOST = "lost"  # not held; its node left the cluster
    DRAINED = "drained"  # not held; its node is drained
    CORDONED = "cordoned"  # not held; its node is cordoned
    FREE = "free"  # not held, and a job could be placed on it


# a node's off reasons (the core's ``off``), strongest first; any other reason the core
# might add later counts as cordoned (the node takes no new work)
OFF_STATES = (("lost", GpuState.LOST), ("drain", GpuState.DRAINED), ("cordon", GpuState.CORDONED))


class FleetArrays(Protocol):
    """What ``set_fleet`` reads of the core's fleet (``scheduler.core.placement.fleet.Fleet``
    is one): node names, GPU model names and the ``[N, G]`` GPU arrays."""

    @property
    def names(self) -> Sequence[str]: ...

    @property
    def model_names(self) -> Sequence[str]: ...

    @property
    def gpu_exists(self) -> NDArray[np.bool_]: ...

    @property
    def gpu_model(self) -> NDArray[np.int64]: ...

    @property
    def gpu_healthy(self) -> NDArray[np.bool_]: ...

    @property
    def gpu_cap(self) -> NDArray[np.int64]: ...

    @property
    def gpu_free(self) -> NDArray[np.int64]: ...


@dataclass(frozen=True)
class GpuFigures:
    """The GPU figures of one moment. ``states`` and ``allocated`` are in milli-GPUs (exact
    integers; the gauges show GPUs); the others are whole GPUs."""

    states: Mapping[GpuState, int]  # milli-GPUs by state; sums to capacity x 1000
    capacity: Mapping[str, int]  # GPUs by model
    nodes: tuple[str, ...]
    models: tuple[str, ...]
    present: NDArray[np.bool_]  # [N, M]: node n has GPUs of model m
    allocated: NDArray[np.int64]  # [N, M] milli-GPUs held by running jobs
    unhealthy: NDArray[np.int64]  # [N, M] GPUs marked unhealthy
    off: tuple[tuple[str, str], ...]  # (node, reason), sorted


def gpu_figures(fleet: FleetArrays, off: Mapping[str, Collection[str]]) -> GpuFigures:
    """The partition and the per-node figures of ``fleet``; ``off`` is each node's reasons to
    take no new work (the core's ``off``: cordon, drain, lost)."""
    exists = np.asarray(fleet.gpu_exists, dtype=np.bool_)
    cap = np.where(exists, fleet.gpu_cap, 0).astype(np.int64)
    free = np.where(exists, fleet.gpu_free, 0).astype(np.int64)
    if (free < 0).any() or (free > cap).any():
        raise ValueError("gpu_figures(): a GPU's free share is outside 0..its capacity")
    held = cap - free
    nodes = tuple(fleet.names)
    models = tuple(fleet.model_names)
    # the state of each GPU's share that no job holds, weakest reason first, then overwritten
    order = list(GpuState)
    idle_state = np.full(exists.shape, order.index(GpuState.FREE), dtype=np.int64)
    pos = {name: i for i, name in enumerate(nodes)} if off else {}
    known = {why for why, _ in OFF_STATES}
    for why, state in reversed(OFF_STATES):
        rows = sorted(
            pos[name]
            for name, whys in off.items()
            if name in pos
            and (why in whys or (state is GpuState.CORDONED and bool(set(whys) - known)))
        )
        if rows:
            idle_state[rows, :] = order.index(state)
    idle_state[~np.asarray(fleet.gpu_healthy, dtype=np.bool_)] = order.index(GpuState.UNHEALTHY)
    states = {GpuState.ALLOCATED: int(held.sum())}
    for k, state in enumerate(order):
        if state is not GpuState.ALLOCATED:
            states[state] = int(free[exists & (idle_state == k)].sum())
    model = np.asarray(fleet.gpu_model, dtype=np.int64)
    unhealthy = exists & ~np.asarray(fleet.gpu_healthy, dtype=np.bool_)
    n, m = len(nodes), len(models)
    present = np.zeros((n, m), dtype=np.bool_)
    allocated = np.zeros((n, m), dtype=np.int64)
    bad = np.zeros((n, m), dtype=np.int64)
    capacity: dict[str, int] = {}
    for j, name in enumerate(models):
        of_model = exists & (model == j)
        present[:, j] = of_model.any(axis=1)
        allocated[:, j] = np.where(of_model, held, 0).sum(axis=1)
        bad[:, j] = (unhealthy & of_model).sum(axis=1)
        capacity[name] = int(of_model.sum())
    held_off = tuple(sorted((node, why) for node, whys in off.items() for why in whys))
    return GpuFigures(states, capacity, nodes, models, present, allocated, bad, held_off)


class _FleetCollector(Collector):
    """Writes the latest ``GpuFigures`` out at scrape time."""

    def __init__(self) -> None:
        empty = np.zeros((0, 0), dtype=np.int64)
        self.figures = GpuFigures(
            {s: 0 for s in GpuState}, {}, (), (), empty.astype(np.bool_), empty, empty, ()
        )

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self.figures)

    def _families(self, f: GpuFigures | None) -> Iterator[Metric]:
        gpus = GaugeMetricFamily(
            "gpuyard_gpus",
            "GPUs by state, a partition of the capacity: allocated (held by running jobs, "
            "shares counted: 0.5 for half a GPU), else unhealthy, lost, drained, cordoned, free",
            labels=["state"],
        )
        capacity = GaugeMetricFamily(
            "gpuyard_gpu_capacity", "GPUs of the fleet by model", labels=["gpu_model"]
        )
        allocated = GaugeMetricFamily(
            "gpuyard_gpus_allocated",
            "GPUs held by running jobs, by node and model (shares counted)",
            labels=["node", "gpu_model"],
        )
        unhealthy = GaugeMetricFamily(
            "gpuyard_gpus_unhealthy",
            "GPUs marked unhealthy (busy or not), by node and model",
            labels=["node", "gpu_model"],
        )
        off = GaugeMetricFamily(
            "gpuyard_node_off",
            "1 for each reason a node takes no new work (cordon, drain, lost)",
            labels=["node", "reason"],
        )
        if f is not None:
            for state in GpuState:
                gpus.add_metric([state.value], f.states.get(state, 0) / MILLI_PER_GPU)
            for model, n in sorted(f.capacity.items()):
                capacity.add_metric([model], n)
            for i, j in zip(*np.nonzero(f.present), strict=True):
                labels = [f.nodes[i], f.models[j]]
                allocated.add_metric(labels, int(f.allocated[i, j]) / MILLI_PER_GPU)
            for i, j in zip(*np.nonzero(f.unhealthy), strict=True):  # only where there are
                unhealthy.add_metric([f.nodes[i], f.models[j]], int(f.unhealthy[i, j]))
            for node, why in f.off:
                off.add_metric([node, why], 1)
        yield from (gpus, capacity, allocated, unhealthy, off)


class _QueueCollector(Collector):
    """Writes the latest queue figures out at scrape time: (team, verdict code, pending
    jobs, longest wait in seconds or None), replaced whole by ``set_pending``."""

    def __init__(self) -> None:
        self.rows: tuple[tuple[str, str, int, float | None], ...] = ()

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        return self._families(self.rows)

    def _families(self, rows: tuple[tuple[str, str, int, float | None], ...]) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "gpuyard_pending_jobs",
            "Pending jobs by team and the core's verdict code (why they wait)",
            labels=["team", "reason"],
        )
        oldest = GaugeMetricFamily(
            "gpuyard_queue_oldest_wait_seconds",
            "The longest wait of the pending jobs of a team and verdict code: seconds since "
            "submission, or since the last requeue (a preemption, a node lost or drained)",
            labels=["team", "reason"],
        )
        for team, code, n, wait in rows:
            pending.add_metric([team, code], n)
            if wait is not None:
                oldest.add_metric([team, code], wait)
        yield from (pending, oldest)


class ServiceMetrics:
    """The service's metrics. Thread-safe, and a scrape never waits for the service nor sees
    a gauge half rewritten: the queue and fleet figures are replaced whole (immutable
    snapshots written out at scrape time); the lock only orders the setters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self._queue = _QueueCollector()
        r.register(self._queue)
        self._fleet = _FleetCollector()
        r.register(self._fleet)
        self._drains = Counter(
            "gpuyard_node_drains",
            "Drains begun, by node (an operator's drain or a GPU fault's)",
            ["node"],
            registry=r,
        )
        self._admission = Histogram(
            "gpuyard_admission_latency_seconds",
            "Seconds from a job's submission to its first start (relaunches after a "
            "preemption or a lost node are not observed)",
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
        self._drain_seen: dict[str, object] | None = None  # node -> when its drain began

    def observe_cycle(self, seconds: float) -> None:
        self._cycle.observe(max(0.0, seconds))

    def observe_admission(self, team: str, seconds: float) -> None:
        """A job's first start, ``seconds`` after its submission (the caller observes the
        first start only)."""
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

    def set_pending(
        self,
        rows: Mapping[tuple[str, str], int] | Iterable[PendingRow],
        oldest_wait_s: Mapping[tuple[str, str], float] | None = None,
    ) -> None:
        """Replace the pending gauges: ``rows`` is either counts by (team, verdict code) or
        the pending rows themselves (``QueueEntry``s), counted here; ``oldest_wait_s`` the
        longest wait by (team, verdict code), if known. A (team, code) with no pending job
        left disappears."""
        if isinstance(rows, Mapping):
            counts: Mapping[tuple[str, str], int] = rows
        else:
            counts = Tally((row.team, row.code) for row in rows)
        waits = {} if oldest_wait_s is None else oldest_wait_s
        snapshot = tuple(
            (team, code, n, None if (team, code) not in waits else max(0.0, waits[team, code]))
            for (team, code), n in sorted(counts.items())
            if n > 0
        )
        self._queue.rows = snapshot  # one reference swapped: a scrape sees the old or the new

    def set_fleet(
        self,
        fleet: FleetArrays,
        off: Mapping[str, Collection[str]],
        off_since: Mapping[str, Mapping[str, object]] | None = None,
    ) -> GpuFigures:
        """The GPU gauges from the core's fleet and each node's off reasons (``off``); a drain
        is counted when a node is seen drained that was not, or whose drain began anew
        (``off_since[node]["drain"]``, the core's ``off_since``) since the last call. The
        first call only learns which nodes are drained already. Returns the figures."""
        figures = gpu_figures(fleet, off)
        since = {} if off_since is None else off_since
        drained = {
            node: since.get(node, {}).get("drain") for node, whys in off.items() if "drain" in whys
        }
        with self._lock:
            self._fleet.figures = figures
            if self._drain_seen is not None:
                for node, began in sorted(drained.items(), key=lambda kv: kv[0]):
                    if node not in self._drain_seen or self._drain_seen[node] != began:
                        self._drains.labels(node=node).inc()
            self._drain_seen = drained
        return figures

    def set_gpus(
        self,
        *,
        allocated: float = 0,
        free: float = 0,
        unhealthy: float = 0,
        lost: float = 0,
        drained: float = 0,
        cordoned: float = 0,
    ) -> None:
        """Set the ``gpuyard_gpus`` partition directly, in GPUs (a stand-in service with no
        fleet arrays; the service uses ``set_fleet``); unnamed states are 0."""
        given = {
            GpuState.ALLOCATED: allocated,
            GpuState.FREE: free,
            GpuState.UNHEALTHY: unhealthy,
            GpuState.LOST: lost,
            GpuState.DRAINED: drained,
            GpuState.CORDONED: cordoned,
        }
        for state, value in given.items():
            if not value >= 0 or value == float("inf"):
                raise ValueError(
                    f"set_gpus(): {state.value}={value} is not allowed (a finite count >= 0)"
                )
        milli = {s: round(v * MILLI_PER_GPU) for s, v in given.items()}
        with self._lock:
            f = self._fleet.figures
            self._fleet.figures = GpuFigures(
                milli, f.capacity, f.nodes, f.models, f.present, f.allocated, f.unhealthy, f.off
            )

    def render(self) -> str:
        """The Prometheus text exposition format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry).decode("utf-8")
