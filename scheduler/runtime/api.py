"""The HTTP API of the live scheduler service (FastAPI): thin routes over a ``Backend``.

Authentication: ``Authorization: Bearer TOKEN``, tokens from the token file (``auth.py``).
A team's token acts for its team only; an admin token acts for every team.

Routes (JSON unless said otherwise; every error body is ``{"detail": ...}`` saying why):

====== ============================ ======================================================
POST   /v1/jobs                     submit a spec; 201 + JobView. ``Idempotency-Key``
                                    header is passed to the backend (a retry returns the
                                    job the first call made). A team token may omit
                                    ``team`` (its own is filled in); naming another team
                                    is 403. An admin token must name ``team`` (422).
GET    /v1/jobs?state=S             the caller's jobs (admin: all), optionally one state
GET    /v1/jobs/{id}                one job
POST   /v1/jobs/{id}/cancel         cancel; 409 if the job has already ended
GET    /v1/jobs/{id}/logs?tail=N    the last N lines of the job's log (1..100000, def. 200)
GET    /v1/queue                    pending jobs in queue order, with why they wait
                                    (team tokens: their team's entries, global positions)
GET    /v1/nodes                    nodes and GPUs (any valid token)
GET    /metrics                     Prometheus text; no token unless ``make_app(...,
                                    metrics_require_token=True)`` (scrapers rarely carry
                                    one, and the metrics name teams, not jobs)
GET    /healthz                     ``{"status": "ok"}``; no token (liveness probes)
GET    /openapi.json, /docs         FastAPI's schema (bearer scheme declared) and UI
====== ============================ ======================================================

Status codes: 401 missing or unknown token (with ``WWW-Authenticate: Bearer``); 403 a team
token acting on another team's job or spec; 404 no such job; 409 cancel of an ended job;
422 an invalid request or spec: ``{"detail": [{"loc": [...], "msg": ..., "input": ...}]}``
with ``loc`` starting at ``"body"`` for spec fields (the backend's ``SpecRejected`` errors are
re-rooted there, as FastAPI roots its own).

Another team's job is 403, not 404: job ids are not secrets (they appear in logs, Ray and
dashboards), cancel must say 403, and one answer for every per-job route does not leak
through the others. The 403 body does not name the owning team.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and the dependency aliases (Caller, OwnedJob) are local to make_app.

from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from scheduler.runtime.auth import Principal, TokenAuth
from scheduler.runtime.metrics import CONTENT_TYPE
from scheduler.runtime.views import (
    Backend,
    JobState,
    JobView,
    NodeView,
    QueueEntry,
    SpecRejected,
    UnknownJob,
)

API_VERSION = "v1"
MAX_LOG_TAIL = 100_000


class LogsView(BaseModel):
    job_id: str
    tail_lines: int
    text: str


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown bearer token"},
    403: {"model": ErrorBody, "description": "the token's team may not do this"},
}
_JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "no such job"},
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
        "and why jobs wait, see nodes and GPUs.",
    )

    async def principal(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if creds is None:
            raise _unauthorized("no bearer token: send 'Authorization: Bearer TOKEN'")
        who = auth.authenticate(creds.credentials)
        if who is None:
            raise _unauthorized("unknown token")
        return who

    Caller = Annotated[Principal, Depends(principal)]
    JobId = Annotated[str, Path(min_length=1, max_length=200, description="the job's id")]

    async def owned_job(job_id: JobId, who: Caller) -> JobView:
        job = await _get(backend, job_id)
        if not who.admin and job.team != who.team:
            raise HTTPException(
                403,
                f"job {job_id!r} belongs to another team; "
                f"the token of {who.name!r} acts for team {who.team!r} only",
            )
        return job

    OwnedJob = Annotated[JobView, Depends(owned_job)]

    @app.post(
        "/v1/jobs",
        status_code=201,
        response_model=JobView,
        responses={**_ERRORS, 422: {"description": "invalid spec: each error names its field"}},
    )
    async def submit(
        who: Caller,
        spec: Annotated[dict[str, Any], Body(description="the job spec (JSON object)")],
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
        ] = None,
    ) -> JobView:
        return await backend.submit(_spec_for(who, spec), idempotency_key)

    @app.get("/v1/jobs", response_model=list[JobView], responses=_ERRORS)
    async def list_jobs(who: Caller, state: JobState | None = None) -> list[JobView]:
        return await backend.list_jobs(who.team, state)

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
    async def cancel(job: OwnedJob) -> JobView:
        if job.state.terminal:
            raise HTTPException(
                409,
                f"job {job.job_id!r} has already ended ({job.state.value}: "
                f"{job.reason}); nothing to cancel",
            )
        try:
            return await backend.cancel(job.job_id)
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

    @app.get("/v1/queue", response_model=list[QueueEntry], responses=_ERRORS)
    async def queue(who: Caller) -> list[QueueEntry]:
        return await backend.queue(who.team)

    @app.get("/v1/nodes", response_model=list[NodeView], responses=_ERRORS)
    async def nodes(who: Caller) -> list[NodeView]:
        return await backend.nodes()

    metrics_deps = [Depends(principal)] if metrics_require_token else []

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=metrics_deps)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(await backend.metrics_text(), media_type=CONTENT_TYPE)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.exception_handler(SpecRejected)
    async def spec_rejected(request: Request, exc: SpecRejected) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _rooted(exc.errors)})

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
    if team is not None and team != who.team:
        raise HTTPException(
            403,
            f"the token of {who.name!r} submits for team {who.team!r} "
            f"only, not {team!r}; leave 'team' out or set it to {who.team!r}",
        )
    return {**spec, "team": who.team}


async def _get(backend: Backend, job_id: str) -> JobView:
    try:
        return await backend.get_job(job_id)
    except UnknownJob:
        raise _no_job(job_id) from None


def _no_job(job_id: str) -> HTTPException:
    return HTTPException(404, f"no job {job_id!r}")


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})


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
    """``value`` as JSON data; what JSON cannot hold becomes its repr (an error body must
    never fail to render)."""
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)
