"""An in-memory ``Backend`` for the API and CLI tests, plus the tokens they use."""

from __future__ import annotations

from typing import Any

from scheduler.runtime.auth import Principal, TokenAuth, TokenEntry, hash_token
from scheduler.runtime.metrics import ServiceMetrics
from scheduler.runtime.views import (
    AuditView,
    Backend,
    Forbidden,
    GpuView,
    JobPage,
    JobState,
    JobView,
    LogChunk,
    NodeOp,
    NodeView,
    PackageRejected,
    QueueEntry,
    SpecRejected,
    UnknownJob,
    UnknownNode,
)

VISION_TOKEN = "tok-vision"
NLP_TOKEN = "tok-nlp"
ADMIN_TOKEN = "tok-admin"


def make_auth() -> TokenAuth:
    return TokenAuth(
        [
            TokenEntry(Principal("vision", "vision", False), hash_token(VISION_TOKEN)),
            TokenEntry(Principal("nlp", "nlp", False), hash_token(NLP_TOKEN)),
            TokenEntry(Principal("ops", None, True), hash_token(ADMIN_TOKEN)),
        ]
    )


class FakeBackend:
    """Keeps jobs in a dict; a spec needs ``name`` (str), ``team`` (str) and ``workers``
    (int >= 1). Records what the API passed it (``calls``)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobView] = {}
        self.by_key: dict[str, str] = {}
        self.calls: list[tuple[str, Any]] = []
        self.metrics = ServiceMetrics()
        self.audit_log: list[AuditView] = []
        self.log_text = "\n".join(f"line {i}" for i in range(1, 11)) + "\n"
        self.packages: dict[str, bytes] = {}
        self.package_limit = 1024 * 1024

    def add(self, team: str, name: str, state: JobState = JobState.PENDING) -> JobView:
        job_id = f"job-{len(self.jobs) + 1:04d}"
        job = JobView(job_id=job_id, name=name, team=team, priority=0, state=state,
                      reason="waiting for 8 GPUs" if state is JobState.PENDING else "done",
                      code="WAIT_CAPACITY" if state is JobState.PENDING else None,
                      submitted_at_s=1_700_000_000.0 + len(self.jobs))  # fmt: skip
        self.jobs[job_id] = job
        return job

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView:
        self.calls.append(("submit", (spec, idempotency_key)))
        scoped = None if idempotency_key is None else f"{spec.get('team')}/{idempotency_key}"
        if scoped is not None and scoped in self.by_key:
            return self.jobs[self.by_key[scoped]]
        errors = []
        if not isinstance(spec.get("name"), str):
            errors.append({"loc": ["name"], "msg": "Field required", "input": spec.get("name")})
        workers = spec.get("workers")
        if not isinstance(workers, int) or workers < 1:
            errors.append({"loc": ["workers"], "msg": "must be an integer >= 1", "input": workers})
        priority = spec.get("priority", 0)
        if not isinstance(priority, int):
            errors.append({"loc": ["priority"], "msg": "must be an integer", "input": priority})
        if errors:
            raise SpecRejected(errors)
        if priority > 0 and not who.admin:
            raise Forbidden("priority: above the team's grant", "priority")
        job = self.add(spec["team"], spec["name"])
        if scoped is not None:
            self.by_key[scoped] = job.job_id
        return job

    async def list_jobs(
        self, team: str | None, state: JobState | None, limit: int, after: str | None
    ) -> JobPage:
        self.calls.append(("list_jobs", (team, state, limit, after)))
        mine = [j for j in sorted(self.jobs.values(), key=lambda j: j.job_id)
                if (team is None or j.team == team) and (state is None or j.state == state)]  # fmt: skip
        match = [j for j in mine if after is None or j.job_id > after]
        page = match[:limit]
        more = len(match) > limit
        return JobPage(items=page, next_after=page[-1].job_id if more and page else None,
                       total=len(mine))  # fmt: skip

    async def find_job(self, team: str, key: str) -> JobView:
        job_id = self.by_key.get(f"{team}/{key}")
        if job_id is None:
            raise UnknownJob(key)
        return self.jobs[job_id]

    async def get_job(self, job_id: str) -> JobView:
        if job_id not in self.jobs:
            raise UnknownJob(job_id)
        return self.jobs[job_id]

    async def cancel(self, who: Principal, job_id: str) -> JobView:
        job = await self.get_job(job_id)
        done = job.model_copy(update={"state": JobState.CANCELLED, "reason": "cancelled by user"})
        self.jobs[job_id] = done
        return done

    async def logs(self, job_id: str, tail_lines: int) -> str:
        await self.get_job(job_id)
        lines = self.log_text.splitlines(keepends=True)
        return "".join(lines[-tail_lines:])

    async def log_chunk(self, job_id: str, offset: int, limit_bytes: int) -> LogChunk:
        job = await self.get_job(job_id)
        data = self.log_text.encode()
        part = data[offset : offset + limit_bytes]
        return LogChunk(job_id=job_id, offset=offset, next_offset=offset + len(part),
                        text=part.decode(errors="replace"), ended=job.state.terminal)  # fmt: skip

    async def package_exists(self, uri: str) -> bool:
        return uri in self.packages

    async def put_package(self, who: Principal, uri: str, data: bytes) -> None:
        self.calls.append(("put_package", (who.name, uri, len(data))))
        if not uri.startswith("gcs://_ray_pkg_"):
            raise PackageRejected(f"{uri!r} is not a package URI 'gcs://_ray_pkg_<hash>.zip'")
        if len(data) > self.package_limit:
            raise PackageRejected(
                f"package {uri} is {len(data)} bytes; the limit is {self.package_limit}",
                too_large=True,
            )
        self.packages[uri] = data

    async def queue(self, team: str | None) -> list[QueueEntry]:
        pending = [j for j in self.jobs.values() if j.state is JobState.PENDING]
        return [
            QueueEntry(job_id=j.job_id, name=j.name, team=j.team, position=i, code=j.code or "",
                       reason=j.reason, estimated_start_s=None)
            for i, j in enumerate(pending, start=1)
            if team is None or j.team == team
        ]  # fmt: skip

    async def nodes(self) -> list[NodeView]:
        gpus = [GpuView(index=i, model="H100", memory_total_mib=81559, healthy=i != 3,
                        why_unhealthy=[] if i != 3 else ["XID 79"], allocated_milli=500 * i)
                for i in range(4)]  # fmt: skip
        return [
            NodeView(name="sim-0", ray_node_id=None, alive=True, schedulable=True,
                     simulated=True, gpus=gpus),
            NodeView(name="gpu-1", ray_node_id="abc", alive=True, schedulable=False,
                     off_reasons=["cordon"], simulated=False, gpus=[]),
        ]  # fmt: skip

    async def node_op(self, who: Principal, node: str, op: NodeOp) -> NodeView:
        self.calls.append(("node_op", (who.name, node, op.value)))
        for n in await self.nodes():
            if n.name == node:
                off = [] if op is NodeOp.UNCORDON else [op.value]
                return n.model_copy(update={"schedulable": not off, "off_reasons": off})
        raise UnknownNode(node)

    async def audit(self, since_s: float | None, team: str | None, limit: int) -> list[AuditView]:
        rows = [a for a in self.audit_log if (since_s is None or a.at_s >= since_s)
                and (team is None or a.team == team)]  # fmt: skip
        return rows[-limit:]

    async def refused(
        self, who: Principal, action: str, target: str, outcome: str, detail: str
    ) -> None:
        self.audit_log.append(
            AuditView(id=len(self.audit_log) + 1, at_s=1_700_000_000.0 + len(self.audit_log),
                      principal=who.name, team=who.team, action=action, target=target,
                      outcome=outcome, detail=detail)
        )  # fmt: skip

    async def metrics_text(self) -> str:
        self.metrics.set_pending(await self.queue(None))
        return self.metrics.render()


def _conforms(b: FakeBackend) -> Backend:  # mypy checks the fake against the protocol
    return b
