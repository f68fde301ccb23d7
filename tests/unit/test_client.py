"""``scheduler.client.Client`` over real HTTP: uvicorn in a thread serving the API over the
in-memory backend; typed views, paging, following logs, retries with the idempotency key,
and uploads of a runtime_env's local directories as Ray's job client does them."""

from __future__ import annotations

import io
import os
import socket
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException

import scheduler.client as client_module
from scheduler.client import ApiError, Client, Upload, UploadRefused
from scheduler.runtime.api import make_app
from scheduler.runtime.api_server import ApiServer
from scheduler.runtime.auth import Principal
from scheduler.runtime.views import (
    AuditView,
    JobPage,
    JobState,
    JobView,
    LogChunk,
    NodeView,
    QueueEntry,
    Unavailable,
)
from tests.unit.runtime.fake_backend import ADMIN_TOKEN, VISION_TOKEN, FakeBackend, make_auth

SPEC = {"name": "resnet", "workers": 2, "entrypoint": "examples.train:loop"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def backend() -> FakeBackend:
    b = FakeBackend()
    b.add("vision", "v1")
    b.add("nlp", "n1")
    return b


@pytest.fixture
def url(backend: FakeBackend) -> Iterator[str]:
    server = ApiServer(make_app(backend, make_auth()), "127.0.0.1", _port())
    yield server.start(timeout_s=10)
    server.stop()


def fast(url: str, token: str = VISION_TOKEN, **kwargs: Any) -> Client:
    """A client whose retries do not wait long."""
    return Client(url, token, **{"backoff_s": 0.01, **kwargs})


def calls(backend: FakeBackend, name: str) -> list[Any]:
    return [args for what, args in backend.calls if what == name]


# --- typed results ------------------------------------------------------------------------


def test_every_method_returns_the_api_views(url: str, backend: FakeBackend) -> None:
    c = fast(url)
    job = c.submit(SPEC)
    assert isinstance(job, JobView) and job.job_id == "job-0003" and job.team == "vision"
    assert job.state is JobState.PENDING and job.kind == "train"
    assert c.job("job-0001").name == "v1"
    assert [j.job_id for j in c.jobs()] == ["job-0001", "job-0003"]
    assert all(isinstance(q, QueueEntry) for q in c.queue())
    assert c.logs("job-0001", tail=2) == "line 9\nline 10\n"
    chunk = c.log_chunk("job-0001", offset=5, limit_bytes=3)
    assert isinstance(chunk, LogChunk) and (chunk.text, chunk.next_offset) == ("1\nl", 8)
    cancelled = c.cancel("job-0003")
    assert cancelled.state is JobState.CANCELLED
    admin = fast(url, ADMIN_TOKEN)
    nodes = admin.nodes()
    assert all(isinstance(n, NodeView) for n in nodes) and nodes[0].gpus[3].healthy is False
    assert admin.drain("gpu-1").off_reasons == ["drain"]
    assert admin.uncordon("gpu-1").schedulable is True
    with pytest.raises(ApiError) as e:
        c.nodes()
    assert e.value.status == 403
    audit = admin.audit()
    assert [type(a) for a in audit] == [AuditView] and audit[0].outcome == "403"
    assert c.healthz() == {"status": "ok"}


def test_a_spec_model_is_submitted_as_the_fields_it_set(url: str, backend: FakeBackend) -> None:
    from scheduler.runtime.spec import parse_spec

    spec = parse_spec(SPEC, "test")
    fast(url).submit(spec)
    sent, _ = calls(backend, "submit")[-1]
    assert sent == {**SPEC, "team": "vision"}


def test_from_env_names_what_is_missing(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("GPUYARD_URL", "GPUYARD_API", "GPUYARD_TOKEN", "GPUYARD_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(
        ValueError, match=r"GPUYARD_URL .* and GPUYARD_TOKEN .* or GPUYARD_TOKEN_FILE"
    ):
        Client.from_env()
    monkeypatch.setenv("GPUYARD_URL", url)
    monkeypatch.setenv("GPUYARD_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match=r"GPUYARD_TOKEN_FILE=.*nope: cannot read it"):
        Client.from_env()
    (tmp_path / "token").write_text(VISION_TOKEN + "\n")
    monkeypatch.setenv("GPUYARD_TOKEN_FILE", str(tmp_path / "token"))
    assert [j.team for j in Client.from_env().jobs()] == ["vision"]
    monkeypatch.setenv("GPUYARD_TOKEN", ADMIN_TOKEN)  # the token itself wins over the file
    assert len(Client.from_env(timeout_s=5).jobs()) == 2


# --- paging and logs ----------------------------------------------------------------------


def test_pages_of_250_jobs(url: str, backend: FakeBackend) -> None:
    for i in range(248):
        backend.add("vision", f"j{i}")
    c = fast(url, ADMIN_TOKEN)
    pages = list(c.job_pages(page_size=100))
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert all(isinstance(p, JobPage) for p in pages) and pages[-1].next_after is None
    ids = [j.job_id for p in pages for j in p.items]
    assert ids == sorted(backend.jobs) and len(set(ids)) == 250
    afters = [args[3] for args in calls(backend, "list_jobs")]
    assert afters == [None, "job-0100", "job-0200"]
    backend.calls.clear()
    assert [j.job_id for j in c.jobs()] == ids  # every page, 100 at a time
    assert [args[2:] for args in calls(backend, "list_jobs")] == [
        (100, None), (100, "job-0100"), (100, "job-0200")
    ]  # fmt: skip
    assert [j.job_id for j in c.jobs(limit=150)] == ids[:150]
    assert [j.job_id for j in c.jobs(state="pending", limit=3)] == ids[:3]
    assert c.jobs(JobState.RUNNING) == []


def test_follow_logs_of_an_ended_job_yields_all_and_ends(url: str, backend: FakeBackend) -> None:
    backend.add("vision", "done", JobState.SUCCEEDED)  # job-0003
    c = fast(url)
    assert "".join(c.follow_logs("job-0003", poll_s=0.01)) == backend.log_text
    pieces = list(c.follow_logs("job-0003", poll_s=0.01, limit_bytes=16))
    assert len(pieces) > 3 and "".join(pieces) == backend.log_text
    assert "".join(c.follow_logs("job-0003", offset=len(backend.log_text) - 8)) == "line 10\n"


def test_follow_logs_waits_for_more_until_the_job_ends(url: str, backend: FakeBackend) -> None:
    backend.log_text = "starting\n"
    c = fast(url)
    follow = c.follow_logs("job-0001", poll_s=0.01)
    assert next(follow) == "starting\n"
    backend.log_text += "step 1\n"
    assert next(follow) == "step 1\n"
    backend.log_text += "done\n"
    backend.jobs["job-0001"] = backend.jobs["job-0001"].model_copy(
        update={"state": JobState.SUCCEEDED}
    )
    assert list(follow) == ["done\n"]


def test_wait_until_started_or_ended(url: str, backend: FakeBackend) -> None:
    c = fast(url)
    with pytest.raises(TimeoutError, match=r"job-0001 has not started after 0\.05 s: PENDING"):
        c.wait("job-0001", until="started", timeout_s=0.05, poll_s=0.01)
    backend.jobs["job-0001"] = backend.jobs["job-0001"].model_copy(
        update={"state": JobState.RUNNING}
    )
    assert c.wait("job-0001", until="started").state is JobState.RUNNING
    with pytest.raises(TimeoutError):
        c.wait("job-0001", timeout_s=0.05, poll_s=0.01)


# --- retries ------------------------------------------------------------------------------


class FirstSubmitUnavailable(FakeBackend):
    """The first submission is recorded, then fails as a locked journal does (503)."""

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView:
        if not calls(self, "submit"):
            self.calls.append(("submit", (spec, idempotency_key)))
            raise Unavailable("the journal is locked")
        return await super().submit(who, spec, idempotency_key)


class Failing(FakeBackend):
    """Every submission is a 500; every listing a 503."""

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView:
        self.calls.append(("submit", (spec, idempotency_key)))
        raise HTTPException(500, "the scheduler crashed")

    async def list_jobs(self, *args: Any) -> JobPage:
        self.calls.append(("list_jobs", args))
        raise Unavailable("the journal is locked")


def serve(backend: FakeBackend) -> ApiServer:
    server = ApiServer(make_app(backend, make_auth()), "127.0.0.1", _port())
    server.start(timeout_s=10)
    return server


def test_a_503_submission_is_retried_with_the_same_automatic_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "RETRY_AFTER_MAX_S", 1)  # the API says 5 s
    backend = FirstSubmitUnavailable()
    server = serve(backend)
    try:
        start = time.monotonic()
        job = fast(server.url).submit(SPEC)
        waited = time.monotonic() - start
    finally:
        server.stop()
    (spec1, key1), (spec2, key2) = calls(backend, "submit")
    assert key1 == key2 and len(key1 or "") == 36  # one uuid4, kept by the retry
    assert spec1 == spec2 and list(backend.jobs) == [job.job_id]
    assert waited >= 1.0  # Retry-After (capped), not the first backoff (0)


def test_a_given_key_is_sent_and_each_call_gets_its_own(url: str, backend: FakeBackend) -> None:
    c = fast(url)
    a = c.submit(SPEC, idempotency_key="k1")
    assert c.submit(SPEC, idempotency_key="k1").job_id == a.job_id
    c.submit(SPEC)
    c.submit(SPEC)
    keys = [key for _, key in calls(backend, "submit")]
    assert keys[:2] == ["k1", "k1"] and len({*keys[2:]}) == 2 and "k1" not in keys[2:]


def test_500_is_not_retried_and_503_is_until_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "RETRY_AFTER_MAX_S", 0)  # back off 0.01 s, 0.02 s...
    backend = Failing()
    server = serve(backend)
    try:
        c = fast(server.url, retries=2)
        with pytest.raises(ApiError) as e:
            c.submit(SPEC)
        assert (e.value.status, e.value.detail) == (500, "the scheduler crashed")
        assert len(calls(backend, "submit")) == 1
        with pytest.raises(ApiError) as e:
            c.jobs()
        assert e.value.status == 503 and "the journal is locked" in str(e.value)
        assert len(calls(backend, "list_jobs")) == 3
    finally:
        server.stop()


def test_unreachable_after_retries_is_status_0_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ApiError) as e:
        Client(url, VISION_TOKEN, retries=2, backoff_s=0.05).jobs()
    assert e.value.status == 0
    assert f"cannot reach the gpuyard API at {url} (retried up to 2 times)" in str(e.value)
    assert "Connection refused" in str(e.value)
    assert time.monotonic() - start >= 0.1  # backoff 0, then 0.05 x 2


# --- uploads ------------------------------------------------------------------------------


def project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("def loop(config):\n    pass\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "secret.txt").write_text("do not ship")
    (root / ".gitignore").write_text("secret.txt\n")
    return root


def names(data: bytes) -> set[str]:
    return set(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_upload_working_dir_honours_gitignore_and_is_sent_once(
    url: str, backend: FakeBackend, tmp_path: Path
) -> None:
    d = project(tmp_path / "proj")
    seen: list[Upload] = []
    c = fast(url)
    uri = c.upload_working_dir(d, on_upload=seen.append)
    assert uri.startswith("gcs://_ray_pkg_") and uri.endswith(".zip")
    assert names(backend.packages[uri]) == {"train.py", "pkg/__init__.py", ".gitignore"}
    assert seen == [Upload(d, uri, len(backend.packages[uri]), True)]
    assert [args[1] for args in calls(backend, "put_package")] == [uri]
    assert c.upload_working_dir(d, on_upload=seen.append) == uri  # the API has it
    assert len(calls(backend, "put_package")) == 1
    assert seen[-1] == Upload(d, uri, None, False)
    other = c.upload_working_dir(d, excludes=["pkg"])
    assert other != uri and names(backend.packages[other]) == {"train.py", ".gitignore"}


def test_a_package_at_ray_s_limit_is_refused_before_any_upload(
    url: str, backend: FakeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray._private.runtime_env import packaging

    small = project(tmp_path / "small")
    big = tmp_path / "big"
    big.mkdir()
    (big / "weights.bin").write_bytes(os.urandom(200 * 1024))  # does not compress
    monkeypatch.setattr(packaging, "GCS_STORAGE_MAX_SIZE", 64 * 1024)
    c = fast(url)
    with pytest.raises(UploadRefused) as e:  # the working_dir fits; the module does not
        c.submit({**SPEC, "runtime_env": {"py_modules": ["big"]}}, working_dir=small,
                 base_dir=tmp_path)  # fmt: skip
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and e.value.path == big
    assert str(big) in msg and "0.06 MiB" in msg  # the limit, in MiB
    assert e.value.size_bytes > 200 * 1024 and f"{e.value.size_bytes / 1024**2:.2f} MiB" in msg
    assert ".gitignore" in msg and ".rayignore" in msg and "excludes" in msg
    assert calls(backend, "put_package") == [] and calls(backend, "submit") == []
    with pytest.raises(UploadRefused):
        c.upload_working_dir(big)
    assert calls(backend, "put_package") == []


def test_submit_uploads_what_is_local_and_passes_uris_through(
    url: str, backend: FakeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = project(tmp_path / "proj")
    (d / "requirements.txt").write_text("# pinned\nnumpy==1.26.4\n\n  requests>=2  \n")
    remote = "https://example.com/lib.zip"
    env = {
        "working_dir": ".",
        "py_modules": ["pkg", remote],
        "pip": "requirements.txt",
        "env_vars": {"A": "1"},
    }
    seen: list[Upload] = []
    c = fast(url)
    job = c.submit({**SPEC, "runtime_env": env}, base_dir=d, on_upload=seen.append)
    sent, _ = calls(backend, "submit")[-1]
    out = sent["runtime_env"]
    assert job.job_id == "job-0003" and env["working_dir"] == "."  # the caller's dict unchanged
    assert out["pip"] == ["numpy==1.26.4", "requests>=2"]
    uv = c.prepare_runtime_env({"uv": {"packages": "requirements.txt", "uv_check": True}}, d)
    assert uv == {"uv": {"packages": ["numpy==1.26.4", "requests>=2"], "uv_check": True}}
    assert out["env_vars"] == {"A": "1"} and out["py_modules"][1] == remote
    wd, mod = out["working_dir"], out["py_modules"][0]
    assert {u.uri for u in seen} == {wd, mod} and all(u.uploaded for u in seen)
    assert "secret.txt" not in names(backend.packages[wd])
    assert names(backend.packages[mod]) == {"pkg/__init__.py"}  # py_modules keep their dir
    # working_dir= (relative to the current directory) overrides the spec's
    (project(tmp_path / "other") / "extra.py").write_text("")
    monkeypatch.chdir(tmp_path)
    c.submit({**SPEC, "runtime_env": env}, working_dir="other", base_dir=d)
    sent, _ = calls(backend, "submit")[-1]
    assert "extra.py" in names(backend.packages[sent["runtime_env"]["working_dir"]])
    c.submit({**SPEC, "runtime_env": {"working_dir": remote}})
    assert calls(backend, "submit")[-1][0]["runtime_env"] == {"working_dir": remote}


def test_local_paths_that_are_not_there_say_so(url: str, tmp_path: Path) -> None:
    c = fast(url)
    with pytest.raises(ValueError, match="must be an existing directory"):
        c.submit(SPEC, working_dir=tmp_path / "missing")
    with pytest.raises(ValueError, match=r"runtime_env.pip: the requirements file .*req.txt"):
        c.submit({**SPEC, "runtime_env": {"pip": "req.txt"}}, base_dir=tmp_path)


def test_a_package_over_the_api_s_limit_is_its_413(
    url: str, backend: FakeBackend, tmp_path: Path
) -> None:
    backend.package_limit = 100
    d = project(tmp_path / "proj")
    with pytest.raises(ApiError) as e:
        fast(url).upload_working_dir(d)
    assert e.value.status == 413 and "the limit is 100" in str(e.value)
