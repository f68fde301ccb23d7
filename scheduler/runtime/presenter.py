"""What the service shows: ``JobView``, ``QueueEntry`` and ``NodeView`` built from the core
and the records (callers hold the service lock). The queue's estimates (``pending_info``)
are computed once per core cycle, however many views ask for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scheduler.core.state import ClusterState, PendingInfo
from scheduler.runtime.config import NodeSpec
from scheduler.runtime.records import Record, Records
from scheduler.runtime.views import (
    GpuView,
    JobPage,
    JobState,
    JobView,
    NodeView,
    OffReason,
    QueueEntry,
    UnknownJob,
    UnknownNode,
    WorkerPlacementView,
)


class Presenter:
    def __init__(
        self,
        core: Callable[[], ClusterState],
        records: Records,
        fleet: dict[str, NodeSpec],
        extras: Callable[[], tuple[dict[str, str], set[str], dict[str, Any]]],
        simulated: bool,
        run_name: Callable[[str], str] = str,
    ) -> None:
        self._core = core  # the driver's current core (a rollback replaces it)
        self._run_name = run_name  # job id -> run name (its checkpoints, its Ray jobs)
        self.records = records
        self.fleet = fleet
        self._extras = extras  # (Ray node ids, lost nodes, samples)
        self.simulated = simulated
        self._info_key: tuple[int, int] = (0, -1)
        self._info: dict[str, PendingInfo] = {}

    def pending(self) -> dict[str, PendingInfo]:
        core = self._core()
        key = (id(core), core.cycles)
        if key != self._info_key:
            self._info = {p.job_id: p for p in core.pending_info()}
            self._info_key = key
        return self._info

    def record(self, job_id: str) -> Record:
        rec = self.records.get(job_id)
        if rec is None:
            raise UnknownJob(job_id)
        return rec

    def job(self, rec: Record) -> JobView:
        p = self.pending().get(rec.job_id) if rec.state is JobState.PENDING else None
        placement = rec.placement if rec.state is JobState.RUNNING else None
        kind = "script" if "command" in rec.spec else "train"
        return JobView(
            job_id=rec.job_id, name=rec.name, team=rec.team, priority=rec.priority,
            state=rec.state, reason=p.reason if p is not None else rec.reason,
            code=p.code.value if p is not None else None,
            queue_position=p.position if p is not None else None,
            estimated_start_s=_finite(p.estimated_start_s) if p is not None else None,
            submitted_at_s=rec.submitted_at_s, started_at_s=rec.started_at_s,
            finished_at_s=rec.finished_at_s,
            placement=[
                WorkerPlacementView(rank=i, node=w.node, gpu_indices=list(w.gpu_indices),
                                    gpu_milli=w.gpu_milli)
                for i, w in enumerate(placement.workers)
            ] if placement is not None else [],
            attempts=rec.attempts, preemptions=rec.preemptions, metrics=rec.metrics,
            spec=rec.spec, data_region=rec.spec.get("data_region"), kind=kind,
            ray_job_id=f"gpuyard-{self._run_name(rec.job_id)}-a{rec.attempts}"
            if kind == "script" and rec.attempts > 0 else None,
        )  # fmt: skip

    def jobs(self, team: str | None, state: JobState | None) -> list[JobView]:
        return [
            self.job(r)
            for r in sorted(self.records.values(), key=lambda r: r.job_id)
            if (team is None or r.team == team) and (state is None or r.state is state)
        ]

    def page(
        self, team: str | None, state: JobState | None, limit: int, after: str | None
    ) -> JobPage:
        """At most ``limit`` jobs whose id sorts after ``after``, oldest first, and how many
        match on every page (``total``: ``after`` aside)."""
        total = 0
        match = []
        for r in self.records.values():
            if (team is None or r.team == team) and (state is None or r.state is state):
                total += 1
                if after is None or r.job_id > after:
                    match.append(r)
        match.sort(key=lambda r: r.job_id)
        items = [self.job(r) for r in match[:limit]]
        more = len(match) > limit
        return JobPage(
            items=items, next_after=items[-1].job_id if more and items else None, total=total
        )

    def queue(self, team: str | None) -> list[QueueEntry]:
        out = []
        for p in sorted(self.pending().values(), key=lambda p: p.position):
            rec = self.records.get(p.job_id)
            if rec is None or (team is not None and rec.team != team):
                continue
            out.append(
                QueueEntry(
                    job_id=p.job_id, name=rec.name, team=rec.team, position=p.position,
                    code=p.code.value, reason=p.reason, estimated_start_s=_finite(p.estimated_start_s),
                )
            )  # fmt: skip
        return out

    def node(self, name: str) -> NodeView:
        from scheduler.runtime.telemetry import gpu_views

        spec = self.fleet.get(name)
        if spec is None:
            raise UnknownNode(name)
        core = self._core()
        ids, lost, samples = self._extras()
        fleet = core.fleet
        i = fleet.index[name]
        sample = samples.get(name)
        allocated = {g: int(fleet.gpu_cap[i, g] - fleet.gpu_free[i, g]) for g in range(spec.gpus)}
        reasons = {g: list(core.health.why(name, g)) for g in range(spec.gpus)}
        if sample is not None:
            gpus = gpu_views(sample, reasons, allocated)
        else:
            gpus = [
                GpuView(index=g, model=spec.gpu_model, memory_total_mib=spec.gpu_memory_mib,
                        healthy=bool(fleet.gpu_healthy[i, g]), why_unhealthy=reasons[g],
                        allocated_milli=allocated[g])
                for g in range(spec.gpus)
            ]  # fmt: skip
        off = core.off_since.get(name, {})
        return NodeView(
            name=name, ray_node_id=ids.get(name), alive=name not in lost,
            schedulable=bool(fleet.schedulable[i]),
            off_reasons=sorted(core.off.get(name, set())),
            off=[OffReason(reason=r, since_s=off[r][0] if r in off else None,
                           cause=off[r][1] if r in off else "")
                 for r in sorted(core.off.get(name, set()))],
            labels=dict(spec.labels), simulated=self.simulated,
            sampled_at_s=None if sample is None else sample.now_s, gpus=gpus,
        )  # fmt: skip

    def nodes(self) -> list[NodeView]:
        return [self.node(name) for name in self.fleet]


def _finite(x: float) -> float | None:
    return None if x != x or x in (float("inf"), float("-inf")) else x
