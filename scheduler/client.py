"""The Python SDK of the scheduler's HTTP API (``scheduler/runtime/api.py``).

Usage::

    from scheduler.client import Client
    client = Client.from_env()  # GPUYARD_URL, and GPUYARD_TOKEN or GPUYARD_TOKEN_FILE
    job = client.submit({"name": "resnet", "workers": 2, "entrypoint": "train:loop"}, working_dir=".")
    client.wait(job.job_id, until="started")
    for text in client.follow_logs(job.job_id): print(text, end="")

Every method returns the API's pydantic views (``JobView``, ``JobPage``, ``LogChunk``,
``QueueEntry``, ``NodeView``, ``AuditView`` of ``scheduler.runtime.views``). A refusal
raises ``ApiError`` with the HTTP status and the server's ``detail`` (a string, or for 422 a
list of field errors); a server that cannot be reached raises ``ApiError`` with status 0.

Connection errors and the answers 429, 502, 503 and 504 are retried (``retries`` times, with
exponential backoff from ``backoff_s``, honouring ``Retry-After``), for every method: a
submission is safe to retry because ``submit`` always sends an ``Idempotency-Key`` (its own
uuid4 unless the caller gives one), so a retried submission returns the job of the first.

A local ``working_dir`` or ``py_modules`` entry of a spec's ``runtime_env`` is packaged and
uploaded as ``ray job submit`` does it (Ray's own packaging: ``.gitignore``, ``.rayignore``
and ``excludes`` apply) and replaced by its ``gcs://`` URI; a requirements file named by
``pip`` or ``uv`` is read into the list of requirements. Ray is imported only then.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlparse

import requests
from pydantic import BaseModel, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from scheduler.runtime.views import (
    AuditView,
    JobPage,
    JobState,
    JobView,
    LogChunk,
    NodeView,
    QueueEntry,
)

__all__ = [
    "ApiError",
    "Client",
    "Upload",
    "UploadRefused",
    "describe_detail",
]

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000  # the API's limit on GET /v1/jobs?limit=
RETRY_STATUSES = (429, 502, 503, 504)
RETRY_AFTER_MAX_S = 120  # a longer Retry-After is waited this long
_WINDOWS_DRIVE = re.compile(r"^[a-zA-Z]:[\\/]")

M = TypeVar("M", bound=BaseModel)
_log = logging.getLogger(__name__)  # Ray's packaging logs here: its warnings, not its info


class ApiError(Exception):
    """The API refused a call (``status`` >= 400) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {describe_detail(detail)}" if status else str(detail))


class UploadRefused(ValueError):
    """A local directory's package is at or over Ray's size limit for an uploaded package
    (``GCS_STORAGE_MAX_SIZE``); refused before anything was uploaded."""

    def __init__(self, path: Path, size_bytes: int, limit_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"the package of {path} is {_mib(size_bytes)}, at or over Ray's limit of "
            f"{_mib(limit_bytes)} for an uploaded package: leave large files out with a "
            f".gitignore or .rayignore file in {path}, or the runtime_env's 'excludes' list "
            "(or give a remote URI of a zip file instead)"
        )


@dataclass(frozen=True)
class Upload:
    """A local directory or file of a runtime_env, packaged: its ``uri`` (``gcs://...``);
    ``size_bytes`` and ``uploaded`` True when this call sent it, ``size_bytes`` None and
    ``uploaded`` False when the API already had the package (same content)."""

    path: Path
    uri: str
    size_bytes: int | None
    uploaded: bool


OnUpload = Callable[[Upload], None]


def describe_detail(detail: Any) -> str:
    """One line from an error body's ``detail``: a string as it is; field errors (422) as
    ``field.path: message (got VALUE)`` joined by ``; ``."""
    if isinstance(detail, list):
        parts = []
        for e in detail:
            if not isinstance(e, dict):
                parts.append(str(e))
                continue
            loc = [str(x) for x in e.get("loc", [])]
            if loc and loc[0] == "body":
                loc = loc[1:]
            where = ".".join(loc) or "body"
            got = f" (got {e['input']!r})" if e.get("input") is not None else ""
            parts.append(f"{where}: {e.get('msg', 'invalid')}{got}")
        return "; ".join(parts)
    return str(detail)


class Client:
    """``Client("http://127.0.0.1:8000", token)``; ``token`` is the plain bearer token.

    ``retries``: how many times a call is retried after a connection error or a 429, 502,
    503 or 504 (0: never); the waits grow from ``backoff_s`` (0, then ``backoff_s`` x 2,
    x 4, ...), or are what the server's ``Retry-After`` says. ``session``: a
    ``requests.Session`` to use; the client mounts its retrying adapter on it for
    ``base_url``."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = 5,
        backoff_s: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self._own_session = session is None
        self._session = session or requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            allowed_methods=None,  # every method, POST included (submit sends a key)
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_s,
            respect_retry_after_header=True,
            retry_after_max=RETRY_AFTER_MAX_S,
            raise_on_status=False,  # the last answer comes back: ApiError with its detail
            raise_on_redirect=False,
        )
        self._session.mount(self.base_url + "/", HTTPAdapter(max_retries=retry))
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """A client for ``$GPUYARD_URL`` (or ``$GPUYARD_API``, as the CLI) with the token
        ``$GPUYARD_TOKEN``, or read from the file ``$GPUYARD_TOKEN_FILE``. ``kwargs`` go to
        the constructor. ``ValueError`` naming what is missing."""
        url = os.environ.get("GPUYARD_URL") or os.environ.get("GPUYARD_API")
        token = os.environ.get("GPUYARD_TOKEN")
        token_file = os.environ.get("GPUYARD_TOKEN_FILE")
        missing = []
        if not url:
            missing.append("GPUYARD_URL (the API's URL, e.g. http://127.0.0.1:8000)")
        if not token and not token_file:
            missing.append(
                "GPUYARD_TOKEN (a bearer token) or GPUYARD_TOKEN_FILE (a file holding one)"
            )
        if missing:
            raise ValueError("Client.from_env: set " + " and ".join(missing))
        if not token:
            assert token_file
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ValueError(
                    f"Client.from_env: GPUYARD_TOKEN_FILE={token_file}: cannot read it: "
                    f"{e.strerror or e}"
                ) from None
            if not token:
                raise ValueError(f"Client.from_env: GPUYARD_TOKEN_FILE={token_file} is empty")
        assert url
        return cls(url, token, **kwargs)

    def close(self) -> None:
        """Close the HTTP session (if the client made it)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        spec: Mapping[str, Any] | BaseModel,
        *,
        idempotency_key: str | None = None,
        working_dir: str | Path | None = None,
        base_dir: str | Path | None = None,
        on_upload: OnUpload | None = None,
    ) -> JobView:
        """Submit ``spec`` (a mapping, or a ``JobSpec``: its fields that were set).

        ``working_dir``: a local directory (relative to the current directory, as
        ``ray job submit --working-dir``) or a URI; it becomes the spec's
        ``runtime_env.working_dir``. What the runtime_env names locally is uploaded first
        (:meth:`prepare_runtime_env`; its relative paths resolve against ``base_dir``,
        default the current directory); ``on_upload`` is told of each package.

        The ``Idempotency-Key`` is ``idempotency_key``, else a new uuid4 for this call, kept
        by its retries: a retried submission returns the job the first created."""
        body: dict[str, Any] = (
            spec.model_dump(mode="json", exclude_unset=True)
            if isinstance(spec, BaseModel)
            else copy.deepcopy(dict(spec))
        )
        env = body.get("runtime_env")
        if working_dir is not None:
            if env is None:
                env = {}
            if not isinstance(env, dict):
                raise ValueError(
                    f"the spec's runtime_env must be a mapping, got {type(env).__name__}"
                )
            wd = str(working_dir)
            env = {**env, "working_dir": str(Path(wd).resolve()) if _is_path(wd) else wd}
        if isinstance(env, dict):
            base = Path.cwd() if base_dir is None else Path(base_dir)
            body["runtime_env"] = self.prepare_runtime_env(env, base, on_upload=on_upload)
        key = idempotency_key or str(uuid.uuid4())
        return self._model(JobView, "POST", "/v1/jobs", json=body, headers={"Idempotency-Key": key})

    def job_pages(
        self, state: JobState | str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[JobPage]:
        """The caller's jobs (admin: all), oldest first, one page of at most ``page_size``
        (1..1000) per request, fetched as the iteration goes."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        params: dict[str, Any] = {"limit": page_size}
        if state is not None:
            params["state"] = JobState(str(state).upper()).value
        after: str | None = None
        while True:
            page = self._model(JobPage, "GET", "/v1/jobs", params={**params, "after": after})
            yield page
            if page.next_after is None or page.next_after == after:
                return
            after = page.next_after

    def job_page(
        self, page: int = 1, limit: int = DEFAULT_PAGE_SIZE, state: JobState | str | None = None
    ) -> JobPage:
        """Page ``page`` (1-based, oldest first) of the caller's jobs, ``limit`` (1..1000) a
        page: the server's cursor walked from the first page (``page`` requests). Past the
        last page: no items, the ``total`` still counted."""
        if page < 1:
            raise ValueError(f"page must be >= 1, got {page}")
        got: JobPage | None = None
        for i, got in enumerate(self.job_pages(state, page_size=limit), start=1):
            if i == page:
                return got
        assert got is not None  # job_pages yields at least one page
        return JobPage(items=[], next_after=None, total=got.total)

    def jobs(self, state: JobState | str | None = None, limit: int | None = None) -> list[JobView]:
        """All the caller's jobs (admin: every team's), oldest first, or the first ``limit``;
        every page is fetched (:meth:`job_pages`)."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        size = DEFAULT_PAGE_SIZE if limit is None else min(limit, MAX_PAGE_SIZE)
        out: list[JobView] = []
        for page in self.job_pages(state, page_size=size):
            out.extend(page.items)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def job(self, job_id: str) -> JobView:
        return self._model(JobView, "GET", f"/v1/jobs/{_seg(job_id)}")

    def wait(
        self,
        job_id: str,
        *,
        until: Literal["started", "ended"] = "ended",
        timeout_s: float | None = None,
        poll_s: float = 2.0,
    ) -> JobView:
        """Poll the job until it has ``started`` (no longer pending: running, or already
        ended) or ``ended``; its view then. ``TimeoutError`` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job.state.terminal or (until == "started" and job.state is not JobState.PENDING):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} has not {until} after {timeout_s:g} s: {job.state.value}, "
                    f"{job.reason}"
                )
            time.sleep(
                poll_s if deadline is None else min(poll_s, max(0.0, deadline - time.monotonic()))
            )

    def cancel(self, job_id: str) -> JobView:
        return self._model(JobView, "POST", f"/v1/jobs/{_seg(job_id)}/cancel")

    def logs(self, job_id: str, tail: int = 200) -> str:
        """The last ``tail`` lines of the job's log."""
        out = self._call("GET", f"/v1/jobs/{_seg(job_id)}/logs", params={"tail": tail})
        if not isinstance(out, dict) or not isinstance(out.get("text"), str):
            raise ApiError(
                200, f"GET /v1/jobs/{job_id}/logs: no 'text' in the answer: {out!r:.200}"
            )
        return str(out["text"])

    def log_chunk(self, job_id: str, offset: int = 0, limit_bytes: int | None = None) -> LogChunk:
        """The job's log from byte ``offset`` on (at most ``limit_bytes``, default the API's)."""
        params: dict[str, Any] = {"offset": offset}
        if limit_bytes is not None:
            params["limit_bytes"] = limit_bytes
        return self._model(LogChunk, "GET", f"/v1/jobs/{_seg(job_id)}/logs/chunk", params=params)

    def follow_logs(
        self, job_id: str, poll_s: float = 1.0, offset: int = 0, *, limit_bytes: int | None = None
    ) -> Iterator[str]:
        """The job's log from byte ``offset`` on, text as it comes: chunks are read back to
        back while there is text, every ``poll_s`` seconds when there is none; the iteration
        ends once the job has ended and its log is read to the end."""
        while True:
            chunk = self.log_chunk(job_id, offset, limit_bytes)
            offset = chunk.next_offset
            if chunk.text:
                yield chunk.text
            elif chunk.ended:
                return
            else:
                time.sleep(poll_s)

    # --- uploads ----------------------------------------------------------------------------

    def upload_working_dir(
        self,
        path: str | Path,
        excludes: list[str] | None = None,
        *,
        on_upload: OnUpload | None = None,
    ) -> str:
        """Package the local directory ``path`` as Ray packages a job's working_dir (its
        ``.gitignore`` and ``.rayignore``, Ray's default excludes, ``excludes``), upload it
        unless the API has it already, and return its ``gcs://`` URI."""
        env: dict[str, Any] = {"working_dir": str(path)}
        if excludes is not None:
            env["excludes"] = list(excludes)
        out: str = self.prepare_runtime_env(env, Path.cwd(), on_upload=on_upload)["working_dir"]
        return out

    def prepare_runtime_env(
        self,
        runtime_env: Mapping[str, Any],
        base_dir: str | Path,
        *,
        on_upload: OnUpload | None = None,
    ) -> dict[str, Any]:
        """``runtime_env`` (not changed) as the API takes it: a local ``working_dir`` or
        ``py_modules`` entry (relative paths against ``base_dir``) packaged with Ray's own
        functions, as ``ray job submit`` does, uploaded unless the API has it, and replaced by
        its ``gcs://`` URI; a requirements file named by ``pip`` or ``uv`` (a string, or the
        ``packages`` of a mapping) replaced by its requirements. Remote URIs pass through.

        Every package is built and checked against Ray's size limit before any is sent:
        ``UploadRefused`` names the directory, its size and the limit. A missing path is a
        ``ValueError`` (Ray's message)."""
        env = copy.deepcopy(dict(runtime_env))
        if not _needs_ray(env):  # nothing local: no need to import Ray
            return env
        from ray._private.ray_constants import RAY_RUNTIME_ENV_IGNORE_GITIGNORE
        from ray._private.runtime_env.py_modules import upload_py_modules_if_needed
        from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

        base = Path(base_dir)
        wd = env.get("working_dir")
        if isinstance(wd, str | Path) and _is_path(str(wd)):
            env["working_dir"] = str((base / wd).resolve())
        modules = env.get("py_modules")
        if isinstance(modules, list):
            env["py_modules"] = [
                str((base / m).resolve()) if isinstance(m, str | Path) and _is_path(str(m)) else m
                for m in modules
            ]
        for field in ("pip", "uv"):
            value = env.get(field)
            if isinstance(value, str | Path):
                env[field] = _read_requirements(field, base / value)
            elif isinstance(value, dict) and isinstance(value.get("packages"), str):
                env[field] = {
                    **value,
                    "packages": _read_requirements(field, base / value["packages"]),
                }

        # Ray's own rule (as its job client): .gitignore applies unless this is "1"
        include_gitignore = os.environ.get(RAY_RUNTIME_ENV_IGNORE_GITIGNORE, "0") != "1"
        with tempfile.TemporaryDirectory(prefix="gpuyard-pkg-") as tmp:
            staged: dict[str, tuple[Path, Path]] = {}  # uri -> (local path, package file)

            def stage(include_parent_dir: bool) -> Callable[..., None]:
                def upload_fn(
                    path: str, excludes: list[str] | None = None, is_file: bool = False
                ) -> None:
                    self._stage_package(
                        Path(path), excludes, is_file, include_gitignore, include_parent_dir,
                        Path(tmp), staged, on_upload,
                    )  # fmt: skip

                return upload_fn

            # These set each local entry to the URI Ray computes, calling the stage function
            # for each (as dashboard_sdk's _upload_working_dir_if_needed does).
            upload_working_dir_if_needed(
                env, include_gitignore=include_gitignore, upload_fn=stage(False)
            )
            upload_py_modules_if_needed(
                env, include_gitignore=include_gitignore, upload_fn=stage(True)
            )
            for uri, (path, package) in staged.items():
                data = package.read_bytes()
                self.put_package(uri, data)
                if on_upload is not None:
                    on_upload(Upload(path, uri, len(data), True))
        return env

    def _stage_package(
        self,
        path: Path,
        excludes: list[str] | None,
        is_file: bool,
        include_gitignore: bool,
        include_parent_dir: bool,
        tmp: Path,
        staged: dict[str, tuple[Path, Path]],
        on_upload: OnUpload | None,
    ) -> None:
        """Build the package of ``path`` (a directory, a .py file, or with ``is_file`` an
        archive sent as it is) into ``tmp`` unless the API has it; check Ray's size limit."""
        from ray._private.runtime_env import packaging

        if is_file:
            uri = packaging.get_uri_for_package(path)
        elif path.is_dir():
            uri = packaging.get_uri_for_directory(str(path), include_gitignore, excludes=excludes)
        else:  # a single-module py_modules entry (module.py)
            uri = packaging.get_uri_for_file(str(path))
        if uri in staged:
            return
        if self.package_exists(uri):
            if on_upload is not None:
                on_upload(Upload(path, uri, None, False))
            return
        if is_file:
            package = path
        else:
            package = tmp / f"{len(staged)}-{uri.rsplit('/', 1)[-1]}"
            packaging.create_package(
                str(path),
                package,
                include_gitignore=include_gitignore,
                include_parent_dir=include_parent_dir,
                excludes=excludes,
                logger=_log,
            )
        size = package.stat().st_size
        limit = int(packaging.GCS_STORAGE_MAX_SIZE)  # read now: tests lower it
        if size >= limit:
            raise UploadRefused(path, size, limit)
        staged[uri] = (path, package)

    def package_exists(self, uri: str) -> bool:
        """Whether the API holds the package ``uri`` (``gcs://_ray_pkg_<hash>.zip``)."""
        r = self._request("GET", _package_path(uri), ok=(200, 404))
        return r.status_code == 200

    def put_package(self, uri: str, data: bytes) -> None:
        """Store the package ``uri`` (413 when over the API's limit, 400 for a bad name)."""
        self._request(
            "PUT",
            _package_path(uri),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    # --- queue, nodes, audit ----------------------------------------------------------------

    def queue(self) -> list[QueueEntry]:
        return self._models(QueueEntry, "GET", "/v1/queue")

    def nodes(self) -> list[NodeView]:
        return self._models(NodeView, "GET", "/v1/nodes")

    def cordon(self, node: str) -> NodeView:
        """No new work on ``node`` (admin token); returns the node's view."""
        return self._node_op(node, "cordon")

    def drain(self, node: str) -> NodeView:
        """Cordon ``node``, then checkpoint and move its jobs (admin token)."""
        return self._node_op(node, "drain")

    def uncordon(self, node: str) -> NodeView:
        """``node`` takes work again: clears cordon, drain and the GPU health marks the
        scheduler set, and the ECC baseline becomes the current count (admin token)."""
        return self._node_op(node, "uncordon")

    def _node_op(self, node: str, op: str) -> NodeView:
        return self._model(NodeView, "POST", f"/v1/nodes/{_seg(node)}/{op}")

    def audit(
        self, since_s: float | None = None, team: str | None = None, limit: int = 1000
    ) -> list[AuditView]:
        """The audit log, oldest first (admin token)."""
        params: dict[str, Any] = {"limit": limit}
        if since_s is not None:
            params["since"] = since_s
        if team is not None:
            params["team"] = team
        return self._models(AuditView, "GET", "/v1/audit", params=params)

    def healthz(self) -> dict[str, Any]:
        """``{"status": "ok"}`` (no token needed)."""
        out = self._call("GET", "/healthz")
        if not isinstance(out, dict):
            raise ApiError(200, f"GET /healthz: not an object: {out!r:.200}")
        return out

    # --- HTTP -------------------------------------------------------------------------------

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        data = self._call(method, path, **kwargs)
        try:
            return model.model_validate(data)
        except ValidationError as e:
            raise _unexpected(method, path, model.__name__, e) from None

    def _models(self, model: type[M], method: str, path: str, **kwargs: Any) -> list[M]:
        data = self._call(method, path, **kwargs)
        if not isinstance(data, list):
            raise ApiError(
                200, f"{method} {path}: expected a list of {model.__name__}, got {data!r:.200}"
            )
        try:
            return [model.model_validate(x) for x in data]
        except ValidationError as e:
            raise _unexpected(method, path, model.__name__, e) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self._request(method, path, **kwargs)
        try:
            return r.json()
        except ValueError:
            raise ApiError(
                r.status_code, f"{method} {r.url}: the answer is not JSON: {r.text[:200]!r}"
            ) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] | None = None,
    ) -> requests.Response:
        """One call, retried by the session's adapter (urllib3 ``Retry``); the answer, or
        ``ApiError`` for a status >= 400 not in ``ok`` (after the last retry: the last
        answer's) or for a server that could not be reached."""
        url = self.base_url + path
        try:
            r = self._session.request(
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers={**self._headers, **(headers or {})},
                timeout=self.timeout_s,
            )
        except requests.RequestException as e:
            reason: object = e
            inner = e.args[0] if e.args else None
            if isinstance(inner, MaxRetryError) and inner.reason is not None:
                reason = inner.reason
            tries = f" (retried up to {self.retries} times)" if self.retries else ""
            raise ApiError(
                0, f"cannot reach the gpuyard API at {self.base_url}{tries}: {reason}"
            ) from None
        if r.status_code >= 400 and (ok is None or r.status_code not in ok):
            raise ApiError(r.status_code, _detail(r))
        return r


def _unexpected(method: str, path: str, what: str, e: ValidationError) -> ApiError:
    first = e.errors(include_url=False)[:3]
    why = "; ".join(f"{'.'.join(map(str, x['loc'])) or what}: {x['msg']}" for x in first)
    return ApiError(200, f"{method} {path}: the answer is not a {what} this client knows ({why})")


def _detail(r: requests.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip() or r.reason
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


def _seg(job_id: str) -> str:
    return quote(job_id, safe="")


def _package_path(uri: str) -> str:
    """``gcs://_ray_pkg_<hash>.zip`` -> ``/api/packages/gcs/_ray_pkg_<hash>.zip`` (Ray's
    dashboard routes)."""
    protocol, sep, name = uri.partition("://")
    if not sep or not protocol or not name:
        raise ValueError(f"{uri!r} is not a package URI like 'gcs://_ray_pkg_<hash>.zip'")
    return f"/api/packages/{_seg(protocol)}/{_seg(name)}"


def _is_path(value: str) -> bool:
    """A local path, not a URI (Ray's rule: no URL scheme, a Windows drive is a path)."""
    return not urlparse(value).scheme or bool(_WINDOWS_DRIVE.match(value))


def _needs_ray(env: Mapping[str, Any]) -> bool:
    """Whether ``env`` names a working_dir, py_modules or a requirements file."""
    if env.get("working_dir") is not None or env.get("py_modules") is not None:
        return True
    for field in ("pip", "uv"):
        value = env.get(field)
        if isinstance(value, str | Path) or (
            isinstance(value, dict) and isinstance(value.get("packages"), str)
        ):
            return True
    return False


def _read_requirements(field: str, path: Path) -> list[str]:
    """The requirements of a requirements file named by runtime_env ``pip`` or ``uv``: read
    as Ray reads it (``RuntimeEnv(pip=PATH)``), without blank and comment lines."""
    from ray.runtime_env import RuntimeEnv

    if not path.is_file():
        raise ValueError(f"runtime_env.{field}: the requirements file {path} does not exist")
    env = RuntimeEnv(pip=str(path)) if field == "pip" else RuntimeEnv(uv=str(path))  # type: ignore[arg-type]
    parsed: dict[str, Any] = env.get(field) or {}  # type: ignore[no-untyped-call]
    lines = [str(x).strip() for x in parsed.get("packages", [])]
    return [x for x in lines if x and not x.startswith("#")]


def _mib(n: int) -> str:
    return f"{n / 1024**2:.2f} MiB"
