"""What the service shows: the data of the HTTP API, the CLI and the metrics.

These are pydantic models so that the API validates and documents them (OpenAPI) from one
definition. Times are seconds since the Unix epoch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from scheduler.runtime.auth import Principal


class JobState(StrEnum):
    PENDING = "PENDING"  # queued (also after a preemption or node loss, until relaunched)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"  # the core said it can never run (reason says why)

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED)


class WorkerPlacementView(BaseModel):
    rank: int
    node: str
    gpu_indices: list[int]
    gpu_milli: int


class JobView(BaseModel):
    job_id: str
    name: str
    team: str
    priority: int
    state: JobState
    reason: str = Field(description="why the job is in its state (why it waits, how it ended)")
    code: str | None = Field(default=None, description="the core's verdict code while pending")
    queue_position: int | None = None
    estimated_start_s: float | None = None
    submitted_at_s: float
    started_at_s: float | None = None
    finished_at_s: float | None = None
    placement: list[WorkerPlacementView] = []
    attempts: int = Field(default=0, description="Ray Train runs launched for this job so far")
    preemptions: int = 0
    metrics: dict[str, float] = Field(
        default={}, description="last metrics the training run reported"
    )
    spec: dict[str, Any] = Field(default={}, description="the submitted job spec")
    data_region: str | None = Field(
        default=None,
        description="where the job's data lives (the spec's data_region): it runs only in "
        "the node regions the service's residency rule allows for it",
    )
    kind: str = Field(
        default="train",
        description="'train' (a Ray Train loop, the spec's entrypoint) or 'script' (the "
        "spec's command, run as a Ray job)",
    )
    ray_job_id: str | None = Field(
        default=None,
        description="a script job's current attempt in Ray's Jobs API (its submission id)",
    )


class JobPage(BaseModel):
    """One page of a job list, oldest first; ``next_after`` is the cursor of the next page
    (pass it as ``after``), None on the last page; ``total``: the jobs of every page (the
    caller's team, the ``state`` asked), None from a server that does not count them."""

    items: list[JobView]
    next_after: str | None = None
    total: int | None = None


class LogChunk(BaseModel):
    """The job's log from byte ``offset`` on (its log only grows): ``text``, where the next
    read starts (``next_offset``) and whether the job has ended (nothing more will come
    once ``ended`` and ``text`` is empty)."""

    job_id: str
    offset: int
    next_offset: int
    text: str
    ended: bool


class QueueEntry(BaseModel):
    job_id: str
    name: str
    team: str
    position: int
    code: str
    reason: str
    estimated_start_s: float | None


class GpuView(BaseModel):
    index: int
    model: str
    memory_total_mib: int
    memory_used_mib: int | None = None
    utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    ecc_uncorrected: int | None = None
    healthy: bool
    why_unhealthy: list[str] = []
    allocated_milli: int = 0


class OffReason(BaseModel):
    reason: str = Field(description="cordon, drain or lost")
    since_s: float | None = Field(description="when it began (seconds since the epoch)")
    cause: str = Field(default="", description="what set it: an operator, a fault, Ray")


class NodeView(BaseModel):
    name: str
    ray_node_id: str | None
    alive: bool
    schedulable: bool
    off_reasons: list[str] = Field(
        default=[], description="why it takes no work: cordon, drain, lost"
    )
    off: list[OffReason] = Field(default=[], description="each reason, since when, and why")
    labels: dict[str, str] = {}
    simulated: bool = Field(description="GPUs and telemetry are simulated (no NVIDIA GPU)")
    sampled_at_s: float | None = None
    gpus: list[GpuView] = []


class NodeOp(StrEnum):
    """What an operator does to a node (kubectl's verbs)."""

    CORDON = "cordon"  # no new work; running work stays
    DRAIN = "drain"  # cordon, then checkpoint and move its jobs
    UNCORDON = "uncordon"  # schedulable again; clears drain and the GPU health marks


class AuditView(BaseModel):
    """One line of the audit log: who did what to which job or node, and how it went."""

    id: int
    at_s: float
    principal: str = Field(description="the token's name ('anonymous' for a refused token)")
    team: str | None = Field(description="the caller's team; None for an admin or the service")
    action: str
    target: str = Field(description="job id, node name, or empty")
    outcome: str = Field(description="'ok', or the HTTP status of a refusal (401, 403, ...)")
    detail: str = ""


class FieldError(BaseModel, extra="allow"):
    """One error of a 422: the field at fault, the rule broken, the value refused."""

    loc: list[str | int] = Field(
        description="where: 'body', 'query', 'path' or 'header', then the field's path"
    )
    msg: str = Field(description="the rule broken and what is allowed")
    input: Any = Field(None, description="the value refused")


class Rejected(BaseModel):
    """The body of a 422: every error names its field."""

    detail: list[FieldError]


class SpecRejected(Exception):
    """A submitted spec is invalid; ``errors`` name each field (``loc``), value and rule."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    def __reduce__(self) -> tuple[type[SpecRejected], tuple[list[dict[str, Any]]]]:
        # crosses process boundaries (Ray actor -> API replica) with its errors intact
        return (SpecRejected, (self.errors,))


MAX_JSON_DEPTH = 64  # arrays and objects inside each other; a job spec needs about 6
MAX_JSON_INT_DIGITS = 4300  # Python's own limit for int(str)
_JSON_ERRORS_SHOWN = 20


class _NotJson:
    """What the reader puts where a request's JSON holds what JSON does not allow."""

    def __init__(self, text: str, why: str) -> None:
        self.text, self.why = text, why


class _KeysTwice(dict[str, Any]):
    """An object in which some key is given more than once (``json.loads`` keeps the last)."""

    def __init__(self, pairs: list[tuple[str, Any]], twice: list[str]) -> None:
        super().__init__(pairs)
        self.twice = twice


def _json_float(text: str) -> float | _NotJson:
    value = float(text)
    if math.isfinite(value):
        return value
    return _NotJson(text, f"the number {text} is out of range (a finite number is allowed)")


def _json_int(text: str) -> int | _NotJson:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        return _NotJson(
            text[:20] + "...",
            f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_JSON_INT_DIGITS})",
        )
    return int(text)


def _json_constant(text: str) -> _NotJson:
    return _NotJson(text, f"{text} is not JSON: numbers must be finite")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    twice: list[str] = []
    for key, _ in pairs:
        if key in seen:
            twice.append(key)
        seen.add(key)
    return _KeysTwice(pairs, twice) if twice else dict(pairs)


def _printable(text: str) -> str:
    """``text`` with a lone surrogate written as its escape (it cannot be encoded)."""
    return text.encode("utf-8", "backslashreplace").decode()


def read_json(raw: bytes | str, root: tuple[str | int, ...] = ("body",)) -> Any:
    """A request's JSON text as data, refusing what ``json.loads`` lets through: ``NaN``
    and ``Infinity`` (not JSON), numbers out of a float's range (``1e400``), a key given
    twice in one object (the last would win silently), a lone surrogate (``"\\ud800"``, not
    Unicode), nesting deeper than :data:`MAX_JSON_DEPTH`, bytes that are not UTF-8. Raises
    :class:`SpecRejected` naming each place (``loc`` under ``root``) and what is allowed."""

    def fail(loc: tuple[str | int, ...], msg: str, value: Any = None) -> SpecRejected:
        return SpecRejected([{"loc": loc, "msg": msg, "input": value}])

    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise fail(root, f"not valid JSON: not UTF-8 (byte {e.start}: {e.reason})") from None
    try:
        data = json.loads(
            raw,
            parse_float=_json_float,
            parse_int=_json_int,
            parse_constant=_json_constant,
            object_pairs_hook=_json_object,
        )
    except RecursionError:
        raise fail(root, f"not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:
        raise fail(root, f"not valid JSON: {e}") from None
    errors: list[dict[str, Any]] = []

    def check(node: Any, loc: tuple[str | int, ...], depth: int) -> None:
        if len(errors) >= _JSON_ERRORS_SHOWN:
            return
        if isinstance(node, _NotJson):
            errors.append({"loc": loc, "msg": node.why, "input": node.text})
        elif isinstance(node, str):
            if _printable(node) != node:
                errors.append(
                    {"loc": loc, "msg": "not valid Unicode: a lone surrogate (\\ud800 to "
                     "\\udfff without its pair)", "input": _printable(node)}
                )  # fmt: skip
        elif isinstance(node, dict | list):
            if depth >= MAX_JSON_DEPTH:
                errors.append(
                    {
                        "loc": loc,
                        "msg": f"nested deeper than {MAX_JSON_DEPTH} levels",
                        "input": None,
                    }
                )
                return
            for twice in node.twice if isinstance(node, _KeysTwice) else ():
                errors.append(
                    {"loc": (*loc, _printable(twice)), "msg": f"key {twice!r} is given more "
                     "than once in this object; give it once", "input": _printable(twice)}
                )  # fmt: skip
            items: Iterable[tuple[str | int, Any]]
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                if isinstance(key, str) and _printable(key) != key:
                    check(key, loc, depth + 1)  # the key itself is not Unicode
                    continue
                check(value, (*loc, key), depth + 1)

    check(data, root, 0)
    if errors:
        raise SpecRejected(errors)
    return data


class Forbidden(Exception):
    """The caller may not do this (HTTP 403). ``field`` names the spec field at fault, if
    any; the message says what the caller may do instead."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[type[Forbidden], tuple[str, str | None]]:
        return (Forbidden, (self.message, self.field))


class Unavailable(Exception):
    """The service cannot take the request now (HTTP 503): its journal could not be written
    (disk full, database locked). Nothing of the request was applied; retry later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self) -> tuple[type[Unavailable], tuple[str]]:
        return (Unavailable, (self.reason,))


class Conflict(Exception):
    """The request contradicts what the service holds (HTTP 409): an idempotency key reused
    with another body, a cancel of an ended job."""

    def __reduce__(self) -> tuple[type[Conflict], tuple[str]]:
        return (Conflict, (str(self),))


class UnknownJob(KeyError):
    pass


class PackageRejected(Exception):
    """An uploaded package is refused (HTTP 400, or 413 when ``too_large``): its name is not
    a package URI of Ray's form, or it exceeds Ray's size limit. The message says which and
    what is allowed."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large

    def __reduce__(self) -> tuple[type[PackageRejected], tuple[str, bool]]:
        return (PackageRejected, (self.message, self.too_large))


class UnknownNode(KeyError):
    pass


class Backend(Protocol):
    """What the HTTP API needs from the scheduler service (implemented by the Ray actor's
    handle in ``ray_service.py`` and by an in-memory fake in the API tests). ``team`` is None
    for an admin (sees everything). Calls that change something take the caller, whom the
    backend authorises (``authz.py``) and records in the audit log."""

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView: ...  # raises SpecRejected, Forbidden, Conflict, Unavailable

    async def list_jobs(
        self, team: str | None, state: JobState | None, limit: int, after: str | None
    ) -> JobPage: ...  # oldest first, at most ``limit`` jobs whose id sorts after ``after``

    async def get_job(self, job_id: str) -> JobView: ...  # raises UnknownJob

    async def find_job(self, team: str, key: str) -> JobView: ...  # by the team's

    # idempotency key (a Ray submission id); raises UnknownJob

    async def cancel(self, who: Principal, job_id: str) -> JobView: ...  # raises UnknownJob

    async def logs(self, job_id: str, tail_lines: int) -> str: ...  # raises UnknownJob

    async def log_chunk(
        self, job_id: str, offset: int, limit_bytes: int
    ) -> LogChunk: ...  # raises UnknownJob

    async def package_exists(self, uri: str) -> bool: ...  # "gcs://_ray_pkg_<hash>.zip"

    async def put_package(
        self, who: Principal, uri: str, data: bytes
    ) -> None: ...  # raises PackageRejected, Unavailable

    async def queue(self, team: str | None) -> list[QueueEntry]: ...

    async def nodes(self) -> list[NodeView]: ...

    async def node_op(self, who: Principal, node: str, op: NodeOp) -> NodeView: ...

    async def audit(
        self, since_s: float | None, team: str | None, limit: int
    ) -> list[AuditView]: ...

    async def refused(
        self, who: Principal, action: str, target: str, outcome: str, detail: str
    ) -> None: ...  # a call refused before it reached the service (401, 403)

    async def metrics_text(self) -> str: ...  # Prometheus text exposition format
