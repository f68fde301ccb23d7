"""The HTTP API of the live scheduler service (FastAPI): thin routes over a ``Backend``.

Authentication: ``Authorization: Bearer TOKEN``, tokens from the token file (``auth.py``).
A team's token acts for its team only; an admin token acts for every team and is the only one
that may use the operator routes. Every route passes the caller (a ``Principal``) to the
backend, which checks what it may ask for (priority, classes: ``authz.py``) and writes the
audit log; refusals here (401, 403) are recorded there too.

Routes (JSON unless said otherwise; every error body is ``{"detail": ...}`` saying why):

====== ================================ ==================================================
POST   /v1/jobs                         submit a spec; 201 + JobView. ``Idempotency-Key``
                                        is the caller's team's: a retry by the same team
                                        with the same body returns its job, with another
                                        body 409; another team's same key is its own.
                                        A team token may omit ``team``; naming another
                                        team is 403; a priority or class above the team's
                                        grant is 403. An admin token must name ``team``.
GET    /v1/jobs?state=S&limit=N&after=C the caller's jobs (admin: all), oldest first, one
                                        page (``JobPage``: ``items``, ``next_after``,
                                        ``total``)
GET    /v1/jobs/{id}                    one job
POST   /v1/jobs/{id}/cancel             cancel; 409 if the job has already ended
GET    /v1/jobs/{id}/logs?tail=N        the last N lines of the job's log (1..100000)
GET    /v1/jobs/{id}/logs/chunk?offset=K the log from byte K on (``LogChunk``; follow it)
GET    /v1/queue                        pending jobs in queue order, with why they wait
                                        (team tokens: their team's entries, global positions)
GET    /v1/nodes                        nodes and GPUs, why a node is off and since when
                                        (admin)
POST   /v1/nodes/{name}/cordon          no new work on the node (admin)
POST   /v1/nodes/{name}/drain           cordon, then checkpoint and move its jobs (admin)
POST   /v1/nodes/{name}/uncordon        schedulable again: clears cordon, drain and the GPU
                                        health marks the core set (admin)
GET    /v1/audit?since=T&team=X&limit=N the audit log, oldest first (admin)
GET    /metrics                         Prometheus text; no token unless ``make_app(...,
                                        metrics_require_token=True)``
GET    /healthz                         ``{"status": "ok"}``; no token (liveness probes)
GET    /v1/whoami                       the caller: token name, team, admin (``ui``)
GET    /ui                              the status page in the browser: static, it reads
                                        this API with the user's token (``ui``)
GET    /openapi.json, /docs             FastAPI's schema (bearer scheme declared) and UI
====== ================================ ==================================================

Ray's Job Submission API (``/api/version``, ``/api/jobs/...``, ``/api/packages/...``) is
served too, by ``ray_jobs_api.py``, so that ``ray job submit --address http://GPUYARD``
and ``JobSubmissionClient`` work against gpuyard with the same tokens.

Status codes: 401 missing or unknown token (with ``WWW-Authenticate: Bearer``); 403 the
caller may not do this (another team's job or spec, a priority above its grant, an operator
route with a team token), with the reason; 404 no such job or node; 409 cancel of an ended
job, an idempotency key reused with another body; 422 an invalid request or spec:
``{"detail": [{"loc": [...], "msg": ..., "input": ...}]}`` with ``loc`` starting at
``"body"`` (a JSON body is read strictly, ``views.read_json``: ``NaN``, ``Infinity``,
``1e400``, a key given twice, a lone surrogate, nesting past 64 levels are 422s naming the
place); 503 the journal cannot be written (disk full, locked): nothing was applied.

Another team's job is 403, not 404: job ids are not secrets (they appear in logs, Ray and
dashboards), cancel must say 403, and one answer for every per-job route does not leak
through the others. The 403 body does not name the owning team.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and the dependency aliases (Caller, OwnedJob) are local to make_app.

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from scheduler.runtime.auth import Principal, TokenAuth
from scheduler.runtime.metrics import CONTENT_TYPE
from scheduler.runtime.ray_jobs_api import install as install_ray_jobs_api
from scheduler.runtime.ui import install as install_ui
from scheduler.runtime.views import (
    AuditView,
    Backend,
    Conflict,
    Forbidden,
    JobPage,
    JobState,
    JobView,
    LogChunk,
    NodeOp,
    NodeView,
    QueueEntry,
    Rejected,
    SpecRejected,
    Unavailable,
    UnknownJob,
    UnknownNode,
    read_json,
)

API_VERSION = "v1"
MAX_LOG_TAIL = 100_000
MAX_AUDIT = 10_000
MAX_PAGE = 1000
MAX_CHUNK_BYTES = 4 * 1024 * 1024
ANONYMOUS = Principal("anonymous", None, False)  # who a refused token is recorded as


class LogsView(BaseModel):
    job_id: str
    tail_lines: int
    text: str


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    detail: str


class _StrictJsonRequest(Request):
    """A request whose JSON body is read by ``views.read_json``: no NaN, no duplicate keys,
    no lone surrogates; a 422 naming the place otherwise (FastAPI would answer 400, or 500)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = read_json(await self.body())
            except SpecRejected as e:
                raise HTTPException(422, _rooted(e.errors)) from None
        return self._json


class _StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown bearer token"},
    403: {"model": ErrorBody, "description": "the caller may not do this (says why)"},
    503: {"model": ErrorBody, "description": "journal unwritable; nothing was applied"},
}
_JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "no such job"},
}
_NODE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "no such node in the fleet"},
}

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="a team's or an admin's token from the service's token file",
)


def make_app(backend: Backend, auth: TokenAuth, *, metrics_require_token: bool = False) -> FastAPI:
    """The API over ``backend``; ``auth`` resolves bearer tokens to principals."""
    app = FastAPI(
        title="gpuyard",
        version=API_VERSION,
        description="GPU cluster scheduler: submit and follow training jobs, see the queue "
        "and why jobs wait; operators: nodes, cordon, drain, uncordon, the audit log.",
    )
    app.router.route_class = _StrictJsonRoute  # JSON bodies through views.read_json

    async def refuse(
        who: Principal, action: str, target: str, code: int, why: str, **headers: str
    ) -> HTTPException:
        """Record the refusal in the audit log, then the exception to raise."""
        await backend.refused(who, action, target, str(code), why)
        return HTTPException(code, why, headers=headers or None)

    async def principal(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        action = f"{request.method} {request.url.path}"
        if creds is None:
            raise await refuse(
                ANONYMOUS, action, "", 401,
                "no bearer token: send 'Authorization: Bearer TOKEN'",
                **{"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        who = auth.authenticate(creds.credentials)
        if who is None:
            raise await refuse(
                ANONYMOUS, action, "", 401, "unknown token", **{"WWW-Authenticate": "Bearer"}
            )
        return who

    Caller = Annotated[Principal, Depends(principal)]
    JobId = Annotated[str, Path(min_length=1, max_length=200, description="the job's id")]
    NodeName = Annotated[str, Path(min_length=1, max_length=253, description="a fleet node")]

    async def admin(request: Request, who: Caller) -> Principal:
        if not who.admin:
            raise await refuse(
                who, f"{request.method} {request.url.path}", "", 403,
                f"{request.url.path} is for operators: the token of {who.name!r} acts for team "
                f"{who.team!r} only; use an admin token",
            )  # fmt: skip
        return who

    Admin = Annotated[Principal, Depends(admin)]

    async def owned_job(request: Request, job_id: JobId, who: Caller) -> JobView:
        job = await _get(backend, job_id)
        if not who.admin and job.team != who.team:
            raise await refuse(
                who, f"{request.method} {request.url.path}", job_id, 403,
                f"job {job_id!r} belongs to another team; "
                f"the token of {who.name!r} acts for team {who.team!r} only",
            )  # fmt: skip
        return job

    OwnedJob = Annotated[JobView, Depends(owned_job)]

    @app.post(
        "/v1/jobs",
        status_code=201,
        response_model=JobView,
        responses={
            **_ERRORS,
            409: {"model": ErrorBody, "description": "idempotency key reused, other body"},
            422: {"model": Rejected, "description": "invalid spec: each error names its field"},
        },
    )
    async def submit(
        who: Caller,
        spec: Annotated[dict[str, Any], Body(description="the job spec (JSON object)")],
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
        ] = None,
    ) -> JobView:
        team = spec.get("team")
        if not who.admin and isinstance(team, str) and team != who.team:
            raise await refuse(
                who, "submit", "", 403,
                f"the token of {who.name!r} submits for team {who.team!r} "
                f"only, not {team!r}; leave 'team' out or set it to {who.team!r}",
            )  # fmt: skip
        return await backend.submit(who, _spec_for(who, spec), idempotency_key)

    @app.get("/v1/jobs", response_model=JobPage, responses=_ERRORS)
    async def list_jobs(
        who: Caller,
        state: JobState | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        after: Annotated[
            str | None,
            Query(min_length=1, max_length=200, description="next_after of the page before"),
        ] = None,
    ) -> JobPage:
        return await backend.list_jobs(who.team, state, limit, after)

    @app.get("/v1/jobs/{job_id}", response_model=JobView, responses=_JOB_ERRORS)
    async def get_job(job: OwnedJob) -> JobView:
        return job

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        response_model=JobView,
        responses={
            **_JOB_ERRORS,
            409: {"model": ErrorBody, "description": "the job has already ended"},
        },
    )
    async def cancel(who: Caller, job: OwnedJob) -> JobView:
        if job.state.terminal:
            why = (
                f"job {job.job_id!r} has already ended ({job.state.value}: "
                f"{job.reason}); nothing to cancel"
            )
            raise HTTPException(409, why)
        try:
            return await backend.cancel(who, job.job_id)
        except UnknownJob:
            raise _no_job(job.job_id) from None

    @app.get("/v1/jobs/{job_id}/logs", response_model=LogsView, responses=_JOB_ERRORS)
    async def logs(
        job: OwnedJob, tail: Annotated[int, Query(ge=1, le=MAX_LOG_TAIL)] = 200
    ) -> LogsView:
        try:
            text = await backend.logs(job.job_id, tail)
        except UnknownJob:
            raise _no_job(job.job_id) from None
        return LogsView(job_id=job.job_id, tail_lines=tail, text=text)

    @app.get("/v1/jobs/{job_id}/logs/chunk", response_model=LogChunk, responses=_JOB_ERRORS)
    async def log_chunk(
        job: OwnedJob,
        offset: Annotated[int, Query(ge=0, description="byte offset: next_offset of the last")] = 0,
        limit_bytes: Annotated[int, Query(ge=1, le=MAX_CHUNK_BYTES)] = 1024 * 1024,
    ) -> LogChunk:
        try:
            return await backend.log_chunk(job.job_id, offset, limit_bytes)
        except UnknownJob:
            raise _no_job(job.job_id) from None

    @app.get("/v1/queue", response_model=list[QueueEntry], responses=_ERRORS)
    async def queue(who: Caller) -> list[QueueEntry]:
        return await backend.queue(who.team)

    @app.get("/v1/nodes", response_model=list[NodeView], responses=_ERRORS)
    async def nodes(who: Admin) -> list[NodeView]:
        return await backend.nodes()

    async def node_op(who: Principal, name: str, op: NodeOp) -> NodeView:
        try:
            return await backend.node_op(who, name, op)
        except UnknownNode:
            raise HTTPException(404, f"no node {name!r} in the fleet") from None

    @app.post("/v1/nodes/{name}/cordon", response_model=NodeView, responses=_NODE_ERRORS)
    async def cordon(who: Admin, name: NodeName) -> NodeView:
        return await node_op(who, name, NodeOp.CORDON)

    @app.post("/v1/nodes/{name}/drain", response_model=NodeView, responses=_NODE_ERRORS)
    async def drain(who: Admin, name: NodeName) -> NodeView:
        return await node_op(who, name, NodeOp.DRAIN)

    @app.post("/v1/nodes/{name}/uncordon", response_model=NodeView, responses=_NODE_ERRORS)
    async def uncordon(who: Admin, name: NodeName) -> NodeView:
        return await node_op(who, name, NodeOp.UNCORDON)

    @app.get("/v1/audit", response_model=list[AuditView], responses=_ERRORS)
    async def audit(
        who: Admin,
        since: Annotated[
            float | None, Query(allow_inf_nan=False, description="seconds since the epoch")
        ] = None,
        team: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_AUDIT)] = 1000,
    ) -> list[AuditView]:
        return await backend.audit(since, team, limit)

    metrics_deps = [Depends(principal)] if metrics_require_token else []

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=metrics_deps)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(await backend.metrics_text(), media_type=CONTENT_TYPE)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    install_ray_jobs_api(app, backend, auth, principal, refuse)
    install_ui(app, principal)  # the status page at /ui, and /v1/whoami

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422, with every value made JSON (a body of bytes that are not UTF-8
        # made its default handler fail with a 500)
        errors = [{k: _plain(v) for k, v in e.items()} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(SpecRejected)
    async def spec_rejected(request: Request, exc: SpecRejected) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _rooted(exc.errors)})

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content={"detail": exc.message})

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": f"nothing was applied: {exc.reason}; retry later"},
            headers={"Retry-After": "5"},
        )

    return app


def _spec_for(who: Principal, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec to submit: a team token's own team filled in; another team refused."""
    team = spec.get("team")
    if team is not None and not isinstance(team, str):
        raise SpecRejected(
            [{"loc": ["team"], "msg": "must be a string (a team name)", "input": team}]
        )
    if who.admin:
        if not team:
            raise SpecRejected(
                [
                    {
                        "loc": ["team"],
                        "input": team,
                        "msg": "an admin token must name the team the job runs for",
                    }
                ]
            )
        return spec
    return {**spec, "team": who.team}


async def _get(backend: Backend, job_id: str) -> JobView:
    try:
        return await backend.get_job(job_id)
    except UnknownJob:
        raise _no_job(job_id) from None


def _no_job(job_id: str) -> HTTPException:
    return HTTPException(404, f"no job {job_id!r}")


def _rooted(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backend's errors with ``loc`` under ``body`` (as FastAPI's own) and the keys
    ``loc``, ``msg``, ``input`` always present (``input`` None when not given)."""
    out = []
    for e in errors:
        loc = list(e.get("loc", []))
        if not loc or loc[0] != "body":
            loc = ["body", *loc]
        out.append(
            {**e, "loc": loc, "msg": str(e.get("msg", "invalid")), "input": _plain(e.get("input"))}
        )
    return [{k: _plain(v) for k, v in e.items()} for e in out]


def _plain(value: object) -> Any:
    """``value`` as JSON data; what JSON cannot hold (NaN, bytes that are not UTF-8, a lone
    surrogate) becomes its ``ascii()`` (an error body must never fail to render)."""
    try:
        out = jsonable_encoder(value)
        json.dumps(out, allow_nan=False).encode()
    except (TypeError, ValueError):
        return ascii(value)
    return out
