"""Ray's Job Submission REST API, served by gpuyard, so that ``ray job ...`` and Ray's
``JobSubmissionClient`` work with gpuyard's address and a team's token.

A team keeps its command line and points ``--address`` (or ``RAY_ADDRESS``) at gpuyard::

    export RAY_JOB_HEADERS='{"Authorization": "Bearer TOKEN"}'   # or --headers '{...}'
    ray job submit --address http://GPUYARD:8080 --working-dir . \\
        --metadata-json '{"gpuyard.workers": "2", "gpuyard.gpus_per_worker": "4"}' \\
        -- python train.py --epochs 10
    ray job status JOB_ID     # PENDING: "waiting in gpuyard's queue: <why> (position 3, ...)"
    ray job logs --follow JOB_ID
    ray job stop JOB_ID

(Ray's client reads ``RAY_API_SERVER_ADDRESS``, then ``RAY_ADDRESS``, before ``--address``:
the environment wins over the flag.) The job becomes a gpuyard *script job*: it waits in
gpuyard's queue like every job, and the service hands it to the cluster's real Ray Jobs API
when the scheduler has placed its gang. The ids Ray's client prints are gpuyard job ids.

Routes (every one but ``/api/version`` needs the bearer token; a team's token sees and acts
on its team's jobs only, another team's job is 403 as on ``/v1``; an admin's token on all):

====== ================================= ===================================================
GET    /api/version                      what Ray's client checks first (no token)
GET    /api/packages/{protocol}/{name}   200 if the package is stored, else 404
PUT    /api/packages/{protocol}/{name}   store a package (a zip of a working_dir or a
                                         py_module, uploaded by Ray's client); 400 for a
                                         name not of Ray's form, 413 above Ray's size limit
POST   /api/jobs/                        submit (JobSubmitRequest) -> {job_id, submission_id}
                                         both the gpuyard job id
GET    /api/jobs/                        the caller's jobs (JobDetails), oldest first
GET    /api/jobs/{id}                    one job (JobDetails); ``id`` a gpuyard job id or,
                                         for a team's token, a submission_id it gave
POST   /api/jobs/{id}/stop               cancel -> {"stopped": true}; ended: false
DELETE /api/jobs/{id}                    400: gpuyard keeps every job's record
GET    /api/jobs/{id}/logs               {"logs": text}: the log from its start (16 MiB)
WS     /api/jobs/{id}/logs/tail          the log as text frames as it grows; closes 1000
                                         once the job has ended; 1008 (with the reason)
                                         for a missing or unknown token or another
                                         team's job, 4404 for no such job
====== ================================= ===================================================

How a ``JobSubmitRequest`` becomes a gpuyard spec:

* ``entrypoint`` -> ``command``; ``runtime_env`` -> ``runtime_env`` as given (Ray's client
  has already uploaded a local ``working_dir``/``py_modules`` through the package routes and
  put their ``gcs://`` URIs in; the service validates it and refuses local paths).
* gpuyard's own fields come from ``metadata``. Ray's client allows only string values
  there, so two string forms are read, and a JSON object from a raw HTTP client:

  - ``"gpuyard"``: a JSON text of an object of fields,
    ``--metadata-json '{"gpuyard": "{\\"workers\\": 2, \\"gpus_per_worker\\": 4}"}'``;
  - ``"gpuyard.<field>"``: one field per key; the value is read as JSON when it parses
    (numbers, booleans, lists), else as the string itself; ``name``, ``team``,
    ``priority_class``, ``topology`` and ``data_region`` are always the string itself, and a
    ``gpu_models`` value that is not JSON is a comma-separated list (``"H100,A100"``):
    ``{"gpuyard.workers": "2", "gpuyard.gpus_per_worker": "4", "gpuyard.team": "vision",
    "gpuyard.gpu_models": "[\\"H100\\"]"}``;
  - ``"gpuyard"`` as a JSON object (not possible through Ray's client).

  Fields (:data:`ALLOWED_FIELDS`): name, team, priority, priority_class, workers,
  gpus_per_worker, gpu_milli, cpus_per_worker, memory_gib_per_worker, gpu_models,
  min_gpu_memory_gib, topology, checkpoint_interval_s, max_runtime_s, estimated_duration_s,
  data_region (where the job's data lives: ``"gpuyard.data_region": "CN"``; checked against
  the service's residency rules as a spec's, and the gang runs only in the regions its rule
  allows). Any other (``command``, ``entrypoint``, ``runtime_env`` and ``config`` included) is a 422
  naming ``metadata.gpuyard.<field>``; so is a field given in both forms. The other
  metadata keys (string values) are kept in the spec's ``metadata`` and shown back.
* ``entrypoint_num_gpus`` is the gang's total GPUs: with ``workers`` and
  ``gpus_per_worker`` (or a ``gpu_milli`` share) it must equal their product; with one of
  them it gives the other (a whole number); alone it is one worker with that many GPUs.
  Without it, ``workers`` is required (a 422 says how to ask for GPUs).
* ``entrypoint_num_cpus``, ``entrypoint_memory``, ``entrypoint_resources`` and
  ``entrypoint_label_selector`` must be zero or empty: the script's driver runs on the
  head without a reservation and gpuyard places the gang (``cpus_per_worker``,
  ``memory_gib_per_worker``, ``gpu_models``, ``topology`` say what it needs).
* ``name``: ``gpuyard.name``, else a DNS label made from ``submission_id``, else
  ``ray-job``. ``submission_id`` is the idempotency key: a retry with it returns its job.
* ``team``: a team's token may leave it out (or name its own team; another is 403); an
  admin's token must name it.

Errors are gpuyard's JSON bodies (``{"detail": ...}``); a 422 names each field at fault in
``loc`` as the Ray request names it (``["body", "metadata", "gpuyard.workers"]``,
``["body", "entrypoint_num_gpus"]``), the service's spec errors included. Ray's client
raises them as ``RuntimeError("Request failed with status code 422: {body}.")``; 401 and
403 it raises as ``ray.exceptions.AuthenticationError`` with the body in its message.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import asyncio
import contextlib
import difflib
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import ray
from fastapi import Depends, FastAPI, HTTPException, Path, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response
from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE
from starlette.websockets import WebSocketDisconnect, WebSocketState

from scheduler.runtime.auth import Principal, TokenAuth
from scheduler.runtime.views import (
    Backend,
    Conflict,
    JobState,
    JobView,
    PackageRejected,
    Rejected,
    SpecRejected,
    Unavailable,
    UnknownJob,
    read_json,
)

Refuse = Callable[..., Awaitable[HTTPException]]
Loc = tuple[str | int, ...]

JOBS_API_VERSION = "4"  # the version of Ray's Jobs REST API served (DELETE included)
SESSION_NAME = "gpuyard"
ALLOWED_FIELDS = (
    "name",
    "team",
    "priority",
    "priority_class",
    "workers",
    "gpus_per_worker",
    "gpu_milli",
    "cpus_per_worker",
    "memory_gib_per_worker",
    "gpu_models",
    "min_gpu_memory_gib",
    "topology",
    "checkpoint_interval_s",
    "max_runtime_s",
    "estimated_duration_s",
    "data_region",
)
STRING_FIELDS = frozenset({"name", "team", "priority_class", "topology", "data_region"})
METADATA_KEY = "gpuyard"
METADATA_PREFIX = "gpuyard."
MAX_SUBMIT_BYTES = 1024 * 1024  # a JobSubmitRequest's JSON body
MAX_PACKAGE_BYTES = GCS_STORAGE_MAX_SIZE  # Ray refuses a package of this size or more
MAX_LOG_BYTES = 16 * 1024 * 1024  # GET .../logs
LOG_CHUNK_BYTES = 1024 * 1024
TAIL_POLL_S = 0.5
WS_POLICY = 1008  # close code: policy violation (no token, unknown token, not yours)
WS_NO_JOB = 4404  # close code: no such job (application range)
WS_UNAVAILABLE = 1011  # close code: the server could not go on
DEFAULT_NAME = "ray-job"
_ANONYMOUS = Principal("anonymous", None, False)

_WHY = {
    400: "nothing was done; the body says why",
    401: "missing or unknown bearer token",
    403: "another team's job or spec; the body says why",
    404: "no such job (a package: not stored)",
    409: "the submission_id was used for another request",
    413: "too large; the body says the limit",
    503: "journal unwritable; nothing was applied",
}
_DETAIL = {"type": "object", "required": ["detail"], "properties": {"detail": {}}}


def _answers(*codes: int, text: tuple[int, ...] = ()) -> dict[int | str, dict[str, Any]]:
    """The error statuses a route answers, for its OpenAPI document: gpuyard's JSON
    ``{"detail": ...}``, or plain text for those in ``text`` (Ray's package routes)."""
    out: dict[int | str, dict[str, Any]] = {
        c: {"description": _WHY[c], "content": {"text/plain": {"schema": {"type": "string"}}}
            if c in text else {"application/json": {"schema": _DETAIL}}}
        for c in codes
    }  # fmt: skip
    return out


_SUBMIT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "title": "Ray's JobSubmitRequest",
                "description": "gpuyard's fields in metadata (see the module's docstring)",
                "required": ["entrypoint"],
                "additionalProperties": False,
                "properties": {
                    "entrypoint": {"type": "string", "minLength": 1},
                    "submission_id": {"type": ["string", "null"], "minLength": 1},
                    "job_id": {"type": ["string", "null"], "minLength": 1},
                    "runtime_env": {"type": ["object", "null"]},
                    "metadata": {"type": ["object", "null"]},
                    "entrypoint_num_cpus": {"type": ["number", "null"]},
                    "entrypoint_num_gpus": {"type": ["number", "null"]},
                    "entrypoint_memory": {"type": ["integer", "null"]},
                    "entrypoint_resources": {"type": ["object", "null"]},
                    "entrypoint_label_selector": {"type": ["object", "null"]},
                },
            }
        }
    },
}

_REQUEST_FIELDS = frozenset(
    {
        "entrypoint",
        "submission_id",
        "job_id",
        "runtime_env",
        "metadata",
        "entrypoint_num_cpus",
        "entrypoint_num_gpus",
        "entrypoint_memory",
        "entrypoint_resources",
        "entrypoint_label_selector",
    }
)
_NOT_METADATA = {
    "command": "the command is the job's entrypoint (what follows `--` on `ray job submit`)",
    "entrypoint": "the command is the job's entrypoint (what follows `--` on `ray job submit`)",
    "runtime_env": "give it as Ray's runtime_env (--runtime-env-json, --working-dir)",
    "config": "a script job has no loop config; pass settings on its command line or in "
    "runtime_env env_vars",
}
_NO_RESERVATION = {
    "entrypoint_num_cpus": "gpuyard reserves no CPUs for the script's driver (it runs on the "
    "head node); set each worker's CPUs with metadata gpuyard.cpus_per_worker",
    "entrypoint_memory": "gpuyard reserves no memory for the script's driver (it runs on the "
    "head node); set each worker's memory with metadata gpuyard.memory_gib_per_worker (GiB)",
    "entrypoint_resources": "gpuyard places the gang itself; ask for GPU models with metadata "
    "gpuyard.gpu_models and for placement with gpuyard.topology",
    "entrypoint_label_selector": "gpuyard places the gang itself; ask for GPU models with "
    "metadata gpuyard.gpu_models, for placement with gpuyard.topology, and for the region "
    "of the job's data with gpuyard.data_region",
}
_RAY_STATUS = {
    JobState.PENDING: "PENDING",
    JobState.RUNNING: "RUNNING",
    JobState.SUCCEEDED: "SUCCEEDED",
    JobState.FAILED: "FAILED",
    JobState.REJECTED: "FAILED",
    JobState.CANCELLED: "STOPPED",
}
_HOW_TO_ASK_FOR_GPUS = (
    "say how many GPUs the job needs: --entrypoint-num-gpus N (one worker with N GPUs), "
    "or metadata gpuyard.workers and gpuyard.gpus_per_worker (a gang of workers, each "
    "with that many GPUs; entrypoint_num_gpus, if given, is their product)"
)


# ---------------------------------------------------------------------------------------
# metadata -> spec fields


@dataclass
class GpuyardMetadata:
    """What a request's ``metadata`` says: gpuyard's spec ``fields``, where each came from
    (``locs``, under ``"body"``), and the ``other`` metadata (kept and shown back)."""

    fields: dict[str, Any] = field(default_factory=dict)
    locs: dict[str, Loc] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)


def parse_metadata(metadata: Mapping[str, Any] | None) -> GpuyardMetadata:
    """gpuyard's fields from Ray's job ``metadata`` (the forms in the module docstring);
    ``SpecRejected`` with one error per problem, each naming ``metadata.gpuyard...``."""
    out = GpuyardMetadata()
    errors: list[dict[str, Any]] = []
    if not metadata:
        return out
    if METADATA_KEY in metadata:
        _parse_object(metadata[METADATA_KEY], out, errors)
    for key in sorted(k for k in metadata if k != METADATA_KEY):
        value = metadata[key]
        if not key.startswith(METADATA_PREFIX):
            if isinstance(value, str):
                out.other[key] = value
            else:
                errors.append(_err(("body", "metadata", key), "must be a string", value))
            continue
        name = key[len(METADATA_PREFIX) :]
        loc: Loc = ("body", "metadata", key)
        if not _field_ok(name, loc, value, errors):
            continue
        if name in out.fields:
            errors.append(
                _err(
                    loc,
                    f"metadata.{key} is given twice (also in metadata 'gpuyard'); give it once",
                    value,
                )
            )
            continue
        out.fields[name] = _flat_value(name, value)
        out.locs[name] = loc
    if errors:
        raise SpecRejected(errors)
    return out


def _parse_object(raw: object, out: GpuyardMetadata, errors: list[dict[str, Any]]) -> None:
    base: Loc = ("body", "metadata", METADATA_KEY)
    obj = raw
    if isinstance(raw, str):
        try:
            obj = read_json(raw, base)
        except SpecRejected as e:
            errors.extend(
                {**x, "msg": f"must be a JSON object of gpuyard fields: {x['msg']}"}
                for x in e.errors
            )
            return
    if not isinstance(obj, dict):
        errors.append(
            _err(
                base,
                'must be a JSON object of gpuyard fields, e.g. "{\\"workers\\": 2, '
                '\\"gpus_per_worker\\": 4}"',
                raw,
            )
        )
        return
    for name, value in obj.items():
        loc = (*base, name)
        if _field_ok(name, loc, value, errors):
            out.fields[name] = value
            out.locs[name] = loc


def _field_ok(name: str, loc: Loc, value: object, errors: list[dict[str, Any]]) -> bool:
    if name in ALLOWED_FIELDS:
        return True
    where = f"metadata.gpuyard.{name}"
    if name in _NOT_METADATA:
        why = f"{where} is not allowed: {_NOT_METADATA[name]}"
    else:
        close = difflib.get_close_matches(name, ALLOWED_FIELDS, n=1) or [
            f for f in ALLOWED_FIELDS if len(name) >= 3 and name in f
        ]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        why = f"{where} is not a gpuyard field{hint}"
    errors.append(_err(loc, f"{why}; allowed: {', '.join(ALLOWED_FIELDS)}", value))
    return False


def _flat_value(name: str, value: object) -> Any:
    """The value of a ``gpuyard.<name>`` key: a string is JSON when it parses (a string
    field's is the string itself), else the string; other values (a raw client's) as is."""
    if not isinstance(value, str) or name in STRING_FIELDS:
        return value
    try:
        return read_json(value)  # NaN, 1e400 and the like stay strings (then refused)
    except SpecRejected:
        if name == "gpu_models":
            return [m.strip() for m in value.split(",") if m.strip()]
        return value


# ---------------------------------------------------------------------------------------
# JobSubmitRequest -> spec


@dataclass
class RaySubmission:
    """A validated ``JobSubmitRequest`` as a gpuyard spec (team not yet filled in)."""

    spec: dict[str, Any]
    submission_id: str | None
    locs: dict[str, Loc]  # spec field -> where in the request it came from


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def submission_from_request(body: object) -> RaySubmission:
    """The spec for Ray's ``JobSubmitRequest`` JSON ``body``; ``SpecRejected`` naming each
    field at fault (``loc`` under ``"body"``)."""
    if not isinstance(body, dict):
        raise SpecRejected(
            [_err(("body",), "must be a JSON object (Ray's JobSubmitRequest)", body)]
        )
    errors: list[dict[str, Any]] = []
    for key in sorted(set(body) - _REQUEST_FIELDS):
        errors.append(
            _err(
                ("body", key),
                f"not a field of Ray's JobSubmitRequest; allowed: {', '.join(sorted(_REQUEST_FIELDS))}",
                body[key],
            )
        )
    entrypoint = body.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        errors.append(
            _err(("body", "entrypoint"), "must be a non-empty string (the command)", entrypoint)
        )
    ids = {}
    for key in ("submission_id", "job_id"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            errors.append(_err(("body", key), "must be a non-empty string if given", value))
        elif value is not None:
            ids[key] = value
    submission_id = ids.get("submission_id") or ids.get("job_id")
    runtime_env = body.get("runtime_env")
    if runtime_env is not None and not isinstance(runtime_env, dict):
        errors.append(_err(("body", "runtime_env"), "must be an object if given", runtime_env))
    metadata = body.get("metadata")
    parsed = GpuyardMetadata()
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(_err(("body", "metadata"), "must be an object of strings", metadata))
    else:
        try:
            parsed = parse_metadata(metadata)
        except SpecRejected as e:
            errors.extend(e.errors)
    for key, why in _NO_RESERVATION.items():
        value = body.get(key)
        if value is None:
            continue
        if key in ("entrypoint_resources", "entrypoint_label_selector"):
            if not isinstance(value, dict):
                errors.append(_err(("body", key), "must be an object if given", value))
            elif value:
                errors.append(_err(("body", key), f"must be empty: {why}", value))
        elif not _is_number(value) or (key == "entrypoint_memory" and not _is_int(value)):
            kind = "an integer" if key == "entrypoint_memory" else "a number"
            errors.append(_err(("body", key), f"must be {kind} if given", value))
        elif value != 0:
            errors.append(_err(("body", key), f"must be 0: {why}", value))
    fields, locs = dict(parsed.fields), dict(parsed.locs)
    try:
        _gang_gpus(body.get("entrypoint_num_gpus"), fields, locs, errors)
    except OverflowError:  # an integer past a float's range, in the total or in metadata
        errors.append(
            _err(
                ("body", "entrypoint_num_gpus"),
                "a number of GPUs or workers out of range (this or metadata gpuyard.workers, "
                "gpuyard.gpus_per_worker, gpuyard.gpu_milli)",
                body.get("entrypoint_num_gpus"),
            )
        )
    if errors:
        raise SpecRejected(errors)
    spec: dict[str, Any] = dict(fields)
    if "name" not in spec:
        spec["name"] = name_for(submission_id)
        locs["name"] = ("body", "submission_id") if submission_id else ("body", "metadata")
    spec["command"] = entrypoint
    locs["command"] = ("body", "entrypoint")
    if runtime_env:  # Ray's client sends {} for none
        spec["runtime_env"] = runtime_env
        locs["runtime_env"] = ("body", "runtime_env")
    if parsed.other:
        spec["metadata"] = parsed.other
        locs["metadata"] = ("body", "metadata")
    return RaySubmission(spec, submission_id, locs)


def _gang_gpus(
    num_gpus: object, fields: dict[str, Any], locs: dict[str, Loc], errors: list[dict[str, Any]]
) -> None:
    """Reconcile ``entrypoint_num_gpus`` (the gang's total GPUs) with ``workers`` and
    ``gpus_per_worker``/``gpu_milli``, filling in what it determines."""
    loc: Loc = ("body", "entrypoint_num_gpus")
    workers, gpus, milli = (
        fields.get("workers"),
        fields.get("gpus_per_worker"),
        fields.get("gpu_milli"),
    )
    if num_gpus is None:
        if "workers" not in fields:
            errors.append(_err(loc, _HOW_TO_ASK_FOR_GPUS, None))
        return
    if (
        isinstance(num_gpus, bool)
        or not isinstance(num_gpus, int | float)
        or num_gpus < 0
        or not math.isfinite(num_gpus)
    ):
        errors.append(_err(loc, "must be a number >= 0 (the gang's total GPUs)", num_gpus))
        return
    typed = [v for v in (workers, gpus, milli) if v is not None]
    if not all(_is_int(v) for v in typed):
        return  # the service names the field of the wrong type
    sharing = milli is not None and 0 < milli < 1000
    per: float | None = milli / 1000 if milli is not None and sharing else gpus
    if workers is not None and per is not None:
        total = workers * per
        if not math.isclose(total, num_gpus, abs_tol=1e-9):
            what = (
                f"workers={workers} x gpu_milli={milli}/1000"
                if sharing
                else f"workers={workers} x gpus_per_worker={gpus}"
            )
            errors.append(
                _err(
                    loc,
                    f"entrypoint_num_gpus is {_num(num_gpus)} but metadata asks for {what} = "
                    f"{_num(total)} GPUs; give the gang's total, or leave "
                    "entrypoint_num_gpus out",
                    num_gpus,
                )
            )
        return
    if workers is not None:  # gpus_per_worker from the total
        if workers < 1 or not _whole(num_gpus / workers):
            errors.append(
                _err(
                    loc,
                    f"entrypoint_num_gpus {_num(num_gpus)} is not a whole number of GPUs for "
                    f"each of workers={workers}; give the gang's total "
                    f"(workers x gpus_per_worker)",
                    num_gpus,
                )
            )
            return
        fields["gpus_per_worker"] = round(num_gpus / workers)
        locs["gpus_per_worker"] = loc
        return
    if per is not None:  # workers from the total
        if per == 0 or not _whole(num_gpus / per) or round(num_gpus / per) < 1:
            errors.append(
                _err(
                    loc,
                    f"entrypoint_num_gpus {_num(num_gpus)} is not a whole number >= 1 of "
                    f"workers of {_num(per)} GPUs each; set metadata gpuyard.workers",
                    num_gpus,
                )
            )
            return
        fields["workers"] = round(num_gpus / per)
        locs["workers"] = loc
        return
    if not _whole(num_gpus):
        errors.append(
            _err(
                loc,
                f"must be a whole number of GPUs (got {_num(num_gpus)}); for a share of one "
                "GPU set metadata gpuyard.gpu_milli (e.g. 500) and gpuyard.workers",
                num_gpus,
            )
        )
        return
    fields["workers"], fields["gpus_per_worker"] = 1, round(num_gpus)
    locs["workers"] = locs["gpus_per_worker"] = loc


def _whole(x: float) -> bool:
    return math.isclose(x, round(x), abs_tol=1e-9)


def _num(x: float) -> str:
    return str(round(x)) if _whole(x) else f"{x:g}"


def name_for(submission_id: str | None) -> str:
    """A DNS-label job name from a Ray submission id (``ray-job`` without one)."""
    if not submission_id:
        return DEFAULT_NAME
    label = re.sub(r"[^a-z0-9-]", "-", submission_id.lower()).strip("-")[:63].strip("-")
    return label or DEFAULT_NAME


def _err(loc: Loc, msg: str, value: object) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "input": value}


def _relocated(errors: list[dict[str, Any]], locs: dict[str, Loc]) -> list[dict[str, Any]]:
    """The service's spec errors located where the Ray request said the field."""
    out = []
    for e in errors:
        loc = list(e.get("loc", []))
        if loc and loc[0] == "body":
            loc = loc[1:]
        if loc and isinstance(loc[0], str) and loc[0] in locs:
            loc = [*locs[loc[0]], *loc[1:]]
        elif not loc or loc[0] != "body":
            loc = ["body", *loc]
        out.append({**e, "loc": loc})
    return out


# ---------------------------------------------------------------------------------------
# JobView -> Ray's JobDetails


def _iso(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # an estimate from a huge estimated_duration_s
        return "after the year 9999"


def _ms(ts: float | None) -> int | None:
    return None if ts is None else round(ts * 1000)


def job_details(job: JobView) -> dict[str, Any]:
    """The job as Ray's ``JobDetails`` JSON (only fields Ray's model knows)."""
    spec = job.spec or {}
    if job.state is JobState.PENDING:
        position = "unknown" if job.queue_position is None else str(job.queue_position)
        message = (
            f"waiting in gpuyard's queue: {job.reason} "
            f"(position {position}, estimated start {_iso(job.estimated_start_s)})"
        )
    else:
        message = job.reason
    if job.kind == "script" or "command" in spec:
        entrypoint = str(spec.get("command", ""))
    else:
        entrypoint = f"gpuyard train loop {spec.get('entrypoint', '?')}"
    shown = spec.get("metadata")
    metadata = {str(k): str(v) for k, v in shown.items()} if isinstance(shown, dict) else {}
    metadata.update(
        {
            "gpuyard.job_id": job.job_id,
            "gpuyard.name": job.name,
            "gpuyard.team": job.team,
            "gpuyard.state": job.state.value,
        }
    )
    runtime_env = spec.get("runtime_env")
    return {
        "type": "SUBMISSION",
        "job_id": job.ray_job_id,
        "submission_id": job.job_id,
        "driver_info": None,
        "status": _RAY_STATUS[job.state],
        "entrypoint": entrypoint,
        "message": message,
        "error_type": None,
        "start_time": _ms(job.submitted_at_s),
        "end_time": _ms(job.finished_at_s),
        "metadata": metadata,
        "runtime_env": runtime_env if isinstance(runtime_env, dict) else None,
        "driver_agent_http_address": None,
        "driver_node_id": None,
        "driver_exit_code": None,
    }


# ---------------------------------------------------------------------------------------
# routes


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _close_reason(text: str) -> str:
    """``text`` cut to a WebSocket close frame's 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


def install(
    app: FastAPI, backend: Backend, auth: TokenAuth, principal: Callable[..., Any], refuse: Refuse
) -> None:
    """Add Ray's Job Submission routes to ``app`` (see the module docstring)."""
    Caller = Annotated[Principal, Depends(principal)]
    JobRef = Annotated[
        str, Path(min_length=1, max_length=200, description="gpuyard job id or submission id")
    ]

    def _foreign(who: Principal, job_ref: str) -> str:
        return (
            f"job {job_ref!r} belongs to another team; "
            f"the token of {who.name!r} acts for team {who.team!r} only"
        )

    async def lookup(who: Principal, job_ref: str) -> tuple[JobView | None, bool]:
        """The job ``job_ref`` names for ``who``, and whether it is another team's."""
        job: JobView | None = None
        with contextlib.suppress(UnknownJob):
            job = await backend.get_job(job_ref)
        if job is not None and (who.admin or job.team == who.team):
            return job, False
        if not who.admin and who.team is not None:
            with contextlib.suppress(UnknownJob):
                return await backend.find_job(who.team, job_ref), False
        return job, job is not None

    async def owned(request: Request, who: Principal, job_ref: str) -> JobView:
        job, foreign = await lookup(who, job_ref)
        if job is None:
            raise HTTPException(404, _no_job(who, job_ref))
        if foreign:
            action = f"{request.method} {request.url.path}"
            raise await refuse(who, action, job_ref, 403, _foreign(who, job_ref))
        return job

    @app.get("/api/version", tags=["ray-jobs"])
    async def ray_version() -> dict[str, str]:
        return {
            "version": JOBS_API_VERSION,
            "ray_version": ray.__version__,
            "ray_commit": ray.__commit__,
            "session_name": SESSION_NAME,
        }

    @app.get(
        "/api/packages/{protocol}/{package_name}",
        tags=["ray-jobs"],
        response_class=PlainTextResponse,
        responses=_answers(401, 404, text=(404,)),
    )
    async def package_exists(who: Caller, protocol: str, package_name: str) -> Response:
        uri = f"{protocol}://{package_name}"
        if await backend.package_exists(uri):
            return PlainTextResponse("")
        return PlainTextResponse(f"Package {uri} does not exist", status_code=404)

    @app.put(
        "/api/packages/{protocol}/{package_name}",
        tags=["ray-jobs"],
        response_class=PlainTextResponse,
        responses=_answers(400, 401, 413, 503, text=(400, 413)),
    )
    async def put_package(
        request: Request, who: Caller, protocol: str, package_name: str
    ) -> Response:
        uri = f"{protocol}://{package_name}"
        action = f"PUT {request.url.path}"

        def too_large(size: str) -> str:
            return (
                f"package {uri} is {size} bytes; Ray's limit is {MAX_PACKAGE_BYTES} bytes "
                f"({MAX_PACKAGE_BYTES / 2**20:.4g} MiB, less is allowed): exclude large files "
                "with the runtime_env's 'excludes', or keep data in storage the job reads"
            )

        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) >= MAX_PACKAGE_BYTES:
            exc = await refuse(who, action, uri, 413, too_large(declared))
            return PlainTextResponse(str(exc.detail), status_code=413)
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) >= MAX_PACKAGE_BYTES:
                exc = await refuse(who, action, uri, 413, too_large(f"at least {len(data)}"))
                return PlainTextResponse(str(exc.detail), status_code=413)
        try:
            await backend.put_package(who, uri, bytes(data))
        except PackageRejected as e:
            return PlainTextResponse(e.message, status_code=413 if e.too_large else 400)
        return PlainTextResponse("")

    @app.post(
        "/api/jobs/",
        tags=["ray-jobs"],
        openapi_extra={"requestBody": _SUBMIT_BODY},
        responses={
            **_answers(401, 403, 409, 413, 503),
            422: {"model": Rejected, "description": "invalid request: each error names its field"},
        },
    )
    async def submit_job(request: Request, who: Caller) -> dict[str, str]:
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_SUBMIT_BYTES:
                raise HTTPException(
                    413, f"a job submission is at most {MAX_SUBMIT_BYTES} bytes of JSON"
                )
        body = read_json(bytes(raw))  # SpecRejected (422) naming the place if not JSON
        sub = submission_from_request(body)
        spec, locs = sub.spec, sub.locs
        team = spec.get("team")
        team_loc = locs.get("team", ("body", "metadata", "gpuyard.team"))
        if team is not None and not isinstance(team, str):
            raise SpecRejected([_err(team_loc, "must be a string (a team name)", team)])
        if who.admin:
            if not team:
                raise SpecRejected(
                    [
                        _err(
                            team_loc,
                            "an admin token must name the team the job runs for: metadata "
                            "gpuyard.team",
                            team,
                        )
                    ]
                )
        elif team is not None and team != who.team:
            raise await refuse(
                who, "submit", "", 403,
                f"the token of {who.name!r} submits for team {who.team!r} only, not "
                f"{team!r}; leave metadata gpuyard.team out or set it to {who.team!r}",
            )  # fmt: skip
        else:
            spec = {**spec, "team": who.team}
        try:
            job = await backend.submit(who, spec, sub.submission_id)
        except SpecRejected as e:
            raise SpecRejected(_relocated(e.errors, locs)) from None
        return {"job_id": job.job_id, "submission_id": job.job_id}

    @app.get("/api/jobs/", tags=["ray-jobs"], responses=_answers(401))
    async def list_jobs(who: Caller) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = await backend.list_jobs(who.team, None, 1000, after)
            out.extend(job_details(j) for j in page.items)
            if page.next_after is None or page.next_after == after or not page.items:
                return out
            after = page.next_after

    @app.get("/api/jobs/{job_ref}", tags=["ray-jobs"], responses=_answers(401, 403, 404))
    async def get_job(request: Request, who: Caller, job_ref: JobRef) -> dict[str, Any]:
        return job_details(await owned(request, who, job_ref))

    @app.post("/api/jobs/{job_ref}/stop", tags=["ray-jobs"], responses=_answers(401, 403, 404, 503))
    async def stop_job(request: Request, who: Caller, job_ref: JobRef) -> dict[str, bool]:
        job = await owned(request, who, job_ref)
        if job.state.terminal:
            return {"stopped": False}
        try:
            await backend.cancel(who, job.job_id)
        except Conflict:  # it ended meanwhile
            return {"stopped": False}
        except UnknownJob:
            raise HTTPException(404, _no_job(who, job_ref)) from None
        return {"stopped": True}

    @app.delete("/api/jobs/{job_ref}", tags=["ray-jobs"], responses=_answers(400, 401, 403, 404))
    async def delete_job(request: Request, who: Caller, job_ref: JobRef) -> dict[str, bool]:
        job = await owned(request, who, job_ref)
        raise HTTPException(
            400,
            f"gpuyard keeps every job's record (its journal is the audit trail): nothing "
            f"was deleted; job {job.job_id!r} is {job.state.value}"
            + ("" if job.state.terminal else f"; to end it: ray job stop {job.job_id}"),
        )

    @app.get("/api/jobs/{job_ref}/logs", tags=["ray-jobs"], responses=_answers(401, 403, 404))
    async def job_logs(request: Request, who: Caller, job_ref: JobRef) -> dict[str, str]:
        job = await owned(request, who, job_ref)
        parts: list[str] = []
        offset = size = 0
        try:
            while size < MAX_LOG_BYTES:
                chunk = await backend.log_chunk(
                    job.job_id, offset, min(LOG_CHUNK_BYTES, MAX_LOG_BYTES - size)
                )
                if not chunk.text or chunk.next_offset <= offset:
                    break
                parts.append(chunk.text)
                size += chunk.next_offset - offset
                offset = chunk.next_offset
            else:
                more = await backend.log_chunk(job.job_id, offset, 1)
                if more.text:
                    parts.append(
                        f"\n[gpuyard: the log goes on past {MAX_LOG_BYTES} bytes; follow it "
                        f"with `ray job logs --follow {job.job_id}`, or read on with GET "
                        f"/v1/jobs/{job.job_id}/logs/chunk?offset={offset}]\n"
                    )
        except UnknownJob:
            raise HTTPException(404, _no_job(who, job_ref)) from None
        return {"logs": "".join(parts)}

    @app.websocket("/api/jobs/{job_ref}/logs/tail")
    async def tail_job_logs(websocket: WebSocket, job_ref: str) -> None:
        action = f"GET {websocket.url.path}"
        token = _bearer(websocket.headers.get("authorization"))
        who = auth.authenticate(token) if token else None
        await websocket.accept()
        if who is None:
            why = (
                "unknown token" if token else "no bearer token: send 'Authorization: Bearer TOKEN'"
            )
            await backend.refused(_ANONYMOUS, action, job_ref, "401", why)
            await websocket.close(WS_POLICY, _close_reason(why))
            return
        job, foreign = await lookup(who, job_ref)
        if job is None:
            await websocket.close(WS_NO_JOB, _close_reason(_no_job(who, job_ref)))
            return
        if foreign:
            why = _foreign(who, job_ref)
            await backend.refused(who, action, job_ref, "403", why)
            await websocket.close(WS_POLICY, _close_reason(why))
            return
        await _stream_log(websocket, backend, job.job_id)


async def _stream_log(websocket: WebSocket, backend: Backend, job_id: str) -> None:
    """Send the job's log as text frames as it grows; close 1000 once it has ended."""
    offset = 0
    receiving = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            chunk = await backend.log_chunk(job_id, offset, LOG_CHUNK_BYTES)
            if chunk.text and chunk.next_offset > offset:
                await websocket.send_text(chunk.text)
                offset = chunk.next_offset
                continue
            if chunk.ended:
                await websocket.close(1000)
                return
            done, _ = await asyncio.wait({receiving}, timeout=TAIL_POLL_S)
            if receiving in done:
                if receiving.result()["type"] == "websocket.disconnect":
                    return
                receiving = asyncio.ensure_future(websocket.receive())  # ignore its messages
    except WebSocketDisconnect:
        return
    except (UnknownJob, Unavailable) as e:
        if websocket.application_state is WebSocketState.CONNECTED:
            await websocket.close(WS_UNAVAILABLE, _close_reason(f"cannot read the log: {e}"))
    finally:
        receiving.cancel()


def _no_job(who: Principal, job_ref: str) -> str:
    if who.admin:
        return f"Job {job_ref} does not exist: no gpuyard job has the id {job_ref!r}"
    return (
        f"Job {job_ref} does not exist: neither a gpuyard job id nor a submission id "
        f"of team {who.team!r}"
    )
