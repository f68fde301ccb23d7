"""Ray's Job Submission API served by gpuyard, driven by Ray's own client (the SDK's
``JobSubmissionClient`` and the ``ray job`` CLI) against a real uvicorn server over an
in-memory backend. No Ray cluster is started."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import ray
import requests
from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE
from ray.exceptions import AuthenticationError
from ray.job_submission import JobStatus, JobSubmissionClient

from scheduler.runtime import ray_jobs_api
from scheduler.runtime.api import make_app
from scheduler.runtime.api_server import ApiServer
from scheduler.runtime.auth import Principal
from scheduler.runtime.ray_jobs_api import (
    ALLOWED_FIELDS,
    job_details,
    name_for,
    submission_from_request,
)
from scheduler.runtime.views import Conflict, JobState, JobView, SpecRejected, Unavailable
from tests.unit.runtime.fake_backend import (
    ADMIN_TOKEN,
    NLP_TOKEN,
    VISION_TOKEN,
    FakeBackend,
    make_auth,
)

RAY_BIN = Path(sys.executable).with_name("ray")
ETA = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class RayFake(FakeBackend):
    """The API tests' fake, keeping each submitted spec on its job (as the service does) and
    able to fail the next submission with a given exception."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next: Exception | None = None

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        job = await super().submit(who, spec, idempotency_key)
        if not job.spec:
            kind = "script" if "command" in spec else "train"
            job = job.model_copy(update={"spec": spec, "kind": kind})
            self.jobs[job.job_id] = job
        return job

    def update(self, job_id: str, **fields: Any) -> JobView:
        job = self.jobs[job_id].model_copy(update=fields)
        self.jobs[job_id] = job
        return job

    def submits(self) -> list[tuple[dict[str, Any], str | None]]:
        return [args for name, args in self.calls if name == "submit"]

    def refusals(self) -> list[tuple[str, str, str, str]]:
        return [(a.principal, a.action, a.target, a.outcome) for a in self.audit_log]


@dataclass
class Served:
    url: str
    backend: RayFake

    def client(self, token: str | None = VISION_TOKEN) -> JobSubmissionClient:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return JobSubmissionClient(self.url, headers=headers)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    # Ray's client takes RAY_API_SERVER_ADDRESS / RAY_ADDRESS over the address it is given
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setattr(ray_jobs_api, "TAIL_POLL_S", 0.05)
    backend = RayFake()
    server = ApiServer(make_app(backend, make_auth()), "127.0.0.1", _port())
    url = server.start()
    try:
        yield Served(url, backend)
    finally:
        server.stop()


def _gpuyard(**fields: Any) -> dict[str, str]:
    return {"gpuyard": json.dumps(fields)}


# --- version, submit ---------------------------------------------------------------------


def test_version_is_rays_and_needs_no_token(served: Served) -> None:
    r = requests.get(f"{served.url}/api/version", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["ray_version"] == ray.__version__
    assert body["ray_commit"] == ray.__commit__
    assert int(body["version"]) >= 4 and body["session_name"]
    assert served.client(token=None).get_version() == body["version"]


def test_submit_with_the_json_string_form_and_a_consistent_gpu_total(served: Served) -> None:
    client = served.client()
    fields = {"workers": 2, "gpus_per_worker": 4, "gpu_models": ["H100"], "topology": "same_node"}
    job_id = client.submit_job(
        entrypoint="python train.py --lr 3e-4",
        submission_id="Nightly_Run.42",
        metadata={**_gpuyard(**fields), "owner": "ana"},
        entrypoint_num_gpus=8,
    )
    assert job_id == "job-0001"
    spec, key = served.backend.submits()[-1]
    assert key == "Nightly_Run.42"
    assert spec == {**fields, "name": "nightly-run-42", "team": "vision",
                    "command": "python train.py --lr 3e-4", "metadata": {"owner": "ana"}}  # fmt: skip
    served.backend.update(job_id, queue_position=3, estimated_start_s=ETA)

    info = client.get_job_info(job_id)
    assert info.status == JobStatus.PENDING
    assert info.submission_id == job_id and info.job_id is None
    assert info.message == (
        "waiting in gpuyard's queue: waiting for 8 GPUs "
        "(position 3, estimated start 2023-11-14T22:13:20Z)"
    )
    assert info.entrypoint == "python train.py --lr 3e-4"
    assert info.metadata is not None
    assert info.metadata["owner"] == "ana" and info.metadata["gpuyard.job_id"] == job_id
    assert info.start_time == 1_700_000_000_000 and info.end_time is None
    # the submission id the team gave finds the job too, and a retry returns it
    assert client.get_job_info("Nightly_Run.42").submission_id == job_id
    again = client.submit_job(
        entrypoint="python train.py --lr 3e-4", submission_id="Nightly_Run.42",
        metadata={**_gpuyard(**fields), "owner": "ana"}, entrypoint_num_gpus=8,
    )  # fmt: skip
    assert again == job_id


def test_submit_with_flat_keys(served: Served) -> None:
    client = served.client()
    client.submit_job(
        entrypoint="python x.py",
        metadata={
            "gpuyard.workers": "2",
            "gpuyard.gpus_per_worker": "4",
            "gpuyard.team": "vision",
            "gpuyard.name": "resnet",
            "gpuyard.gpu_models": '["H100"]',
            "gpuyard.cpus_per_worker": "2.5",
            "gpuyard.max_runtime_s": "3600",
        },
    )
    spec, key = served.backend.submits()[-1]
    assert key is None
    assert spec == {"workers": 2, "gpus_per_worker": 4, "team": "vision", "name": "resnet",
                    "gpu_models": ["H100"], "cpus_per_worker": 2.5, "max_runtime_s": 3600,
                    "command": "python x.py"}  # fmt: skip


def test_entrypoint_num_gpus_alone_is_one_worker_with_that_many(served: Served) -> None:
    served.client().submit_job(entrypoint="python x.py", entrypoint_num_gpus=4)
    spec, _ = served.backend.submits()[-1]
    assert (spec["workers"], spec["gpus_per_worker"], spec["name"]) == (1, 4, "ray-job")


def test_422s_name_the_ray_field(served: Served) -> None:
    client = served.client()
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(metadata=_gpuyard(workers=2, gpus_per_worker=4), entrypoint_num_gpus=6),
         r'"loc":\["body","entrypoint_num_gpus"\].*entrypoint_num_gpus is 6 but metadata asks '
         r"for workers=2 x gpus_per_worker=4 = 8 GPUs"),
        (dict(entrypoint_num_gpus=1.5), r"must be a whole number of GPUs \(got 1.5\)"),
        (dict(), r"say how many GPUs the job needs: --entrypoint-num-gpus N"),
        (dict(metadata={"gpuyard.gpus": "4"}, entrypoint_num_gpus=4),
         r"metadata.gpuyard.gpus is not a gpuyard field \(did you mean 'gpus_per_worker'\?\); "
         r"allowed: name, team, priority"),
        (dict(metadata=_gpuyard(command="python y.py"), entrypoint_num_gpus=1),
         r'"loc":\["body","metadata","gpuyard","command"\].*metadata.gpuyard.command is not '
         r"allowed: the command is the job's entrypoint"),
        (dict(entrypoint_num_gpus=1, entrypoint_num_cpus=4),
         r"entrypoint_num_cpus.*must be 0: .*gpuyard.cpus_per_worker"),
        (dict(entrypoint_num_gpus=1, entrypoint_resources={"TPU": 1}),
         r"entrypoint_resources.*must be empty: .*gpuyard.gpu_models.*gpuyard.topology"),
        (dict(metadata={"gpuyard": "{not json"}, entrypoint_num_gpus=1),
         r'"loc":\["body","metadata","gpuyard"\].*must be a JSON object'),
    ]  # fmt: skip
    for kwargs, pattern in cases:
        with pytest.raises(RuntimeError, match=r"status code 422: .*" + pattern):
            client.submit_job(entrypoint="python x.py", **kwargs)
    assert served.backend.submits() == []


def test_raw_http_errors_name_the_field(served: Served) -> None:
    url, auth = f"{served.url}/api/jobs/", {"Authorization": f"Bearer {VISION_TOKEN}"}
    r = requests.post(url, json={"entrypoint": ["python"], "metadata": {"gpuyard": {"workers": 1}}},
                      headers=auth, timeout=10)  # fmt: skip
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "entrypoint"]
    r = requests.post(url, data=b"{", headers=auth, timeout=10)
    assert r.status_code == 422 and "not valid JSON" in r.text
    # a raw client may give "gpuyard" as an object
    r = requests.post(url, json={"entrypoint": "python x.py",
                                 "metadata": {"gpuyard": {"workers": 3}}},
                      headers=auth, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    assert served.backend.submits()[-1][0]["workers"] == 3


def test_the_services_refusals_reach_rays_client_with_the_reason(served: Served) -> None:
    client = served.client()
    # the service's spec errors are located at the Ray field the value came from
    with pytest.raises(RuntimeError, match=r'422: .*"loc":\["body","metadata","gpuyard.workers"\]'
                       r'.*"msg":"must be an integer >= 1"'):  # fmt: skip
        client.submit_job(entrypoint="python x.py", metadata={"gpuyard.workers": "0"})
    served.backend.fail_next = Conflict("submission id 'a' was used with another body")
    with pytest.raises(RuntimeError, match=r"409: .*was used with another body"):
        client.submit_job(entrypoint="python x.py", entrypoint_num_gpus=1, submission_id="a")
    served.backend.fail_next = Unavailable("the journal's disk is full")
    with pytest.raises(RuntimeError, match=r"503: .*the journal's disk is full; retry later"):
        client.submit_job(entrypoint="python x.py", entrypoint_num_gpus=1)
    # Ray's client raises every 403 as AuthenticationError (its message has the body)
    with pytest.raises(AuthenticationError, match="above the team's grant"):
        client.submit_job(entrypoint="python x.py", entrypoint_num_gpus=1,
                          metadata={"gpuyard.priority": "5"})  # fmt: skip
    with pytest.raises(AuthenticationError, match="submits for team 'vision' only, not 'nlp'"):
        client.submit_job(entrypoint="python x.py", entrypoint_num_gpus=1,
                          metadata={"gpuyard.team": "nlp"})  # fmt: skip
    assert ("vision", "submit", "", "403") in served.backend.refusals()


def test_admin_must_name_the_team(served: Served) -> None:
    admin = served.client(ADMIN_TOKEN)
    with pytest.raises(RuntimeError, match=r'422: .*"loc":\["body","metadata","gpuyard.team"\]'):
        admin.submit_job(entrypoint="python x.py", entrypoint_num_gpus=1)
    job_id = admin.submit_job(
        entrypoint="python x.py", entrypoint_num_gpus=1, metadata={"gpuyard.team": "nlp"}
    )
    assert served.backend.jobs[job_id].team == "nlp"


# --- packages ----------------------------------------------------------------------------


def test_a_local_working_dir_is_uploaded_through_the_package_routes(
    served: Served, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text("print('hello')\n")
    client = served.client()
    job_id = client.submit_job(
        entrypoint="python train.py",
        runtime_env={"working_dir": str(tmp_path), "env_vars": {"LR": "3e-4"}},
        entrypoint_num_gpus=1,
    )
    [(uri, data)] = served.backend.packages.items()
    assert re.fullmatch(r"gcs://_ray_pkg_[0-9a-f]+\.zip", uri)
    assert data[:2] == b"PK"  # a zip
    spec, _ = served.backend.submits()[-1]
    assert spec["runtime_env"] == {"working_dir": uri, "env_vars": {"LR": "3e-4"}}
    assert client.get_job_info(job_id).runtime_env == spec["runtime_env"]
    client.submit_job(
        entrypoint="python train.py", runtime_env={"working_dir": str(tmp_path)},
        entrypoint_num_gpus=1,
    )  # fmt: skip
    puts = [c for c in served.backend.calls if c[0] == "put_package"]
    assert puts == [("put_package", ("vision", uri, len(data)))]  # stored once, found after


def test_a_package_over_the_limit_is_refused_with_its_size(served: Served, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(4096))
    served.backend.package_limit = 100
    with pytest.raises(RuntimeError, match=r"status code 413: package gcs://_ray_pkg_\w+\.zip "
                       r"is \d+ bytes; the limit is 100"):  # fmt: skip
        served.client().submit_job(
            entrypoint="python x.py", runtime_env={"working_dir": str(tmp_path)},
            entrypoint_num_gpus=1,
        )  # fmt: skip
    assert served.backend.submits() == []


def test_a_body_above_rays_limit_is_not_read(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("PUT", "/api/packages/gcs/_ray_pkg_abc.zip")
    conn.putheader("Authorization", f"Bearer {VISION_TOKEN}")
    conn.putheader("Content-Length", str(GCS_STORAGE_MAX_SIZE + 1))
    conn.endheaders()  # and no body: the answer must not wait for it
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    assert r.status == 413
    assert f"is {GCS_STORAGE_MAX_SIZE + 1} bytes; Ray's limit is {GCS_STORAGE_MAX_SIZE}" in text
    assert ("vision", "PUT /api/packages/gcs/_ray_pkg_abc.zip", "gcs://_ray_pkg_abc.zip",
            "413") in served.backend.refusals()  # fmt: skip
    # a body without a length (chunked) is cut off at the limit
    monkeypatch.setattr(ray_jobs_api, "MAX_PACKAGE_BYTES", 1000)
    r2 = requests.put(f"{served.url}/api/packages/gcs/_ray_pkg_abc.zip",
                      data=iter([b"x" * 600] * 4), timeout=10,
                      headers={"Authorization": f"Bearer {VISION_TOKEN}"})  # fmt: skip
    assert r2.status_code == 413
    assert re.search(r"is at least \d+ bytes; Ray's limit is 1000 bytes", r2.text)
    assert served.backend.packages == {}


def test_package_routes_need_a_token_and_say_400_for_a_bad_name(served: Served) -> None:
    url = f"{served.url}/api/packages/gcs/_ray_pkg_abc.zip"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.put(url, data=b"PK", timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {VISION_TOKEN}"}
    assert requests.get(url, headers=auth, timeout=10).status_code == 404
    assert requests.put(url, data=b"PK", headers=auth, timeout=10).status_code == 200
    assert requests.get(url, headers=auth, timeout=10).status_code == 200
    bad = requests.put(f"{served.url}/api/packages/s3/x.zip", data=b"PK", headers=auth, timeout=10)
    assert bad.status_code == 400 and "is not a package URI" in bad.text


# --- list, stop, delete, logs --------------------------------------------------------------


def test_list_stop_delete_and_logs(served: Served) -> None:
    b = served.backend
    mine = b.add("vision", "v1").job_id
    b.add("nlp", "n1")
    done = b.add("vision", "v2", JobState.SUCCEEDED).job_id
    b.update(done, finished_at_s=1_700_000_100.5, ray_job_id="gpuyard-job-0003-1",
             spec={"entrypoint": "examples.mnist:loop"})  # fmt: skip
    client = served.client()
    listed = {j.submission_id: j for j in client.list_jobs()}
    assert set(listed) == {mine, done}
    assert listed[done].status == JobStatus.SUCCEEDED
    assert listed[done].entrypoint == "gpuyard train loop examples.mnist:loop"
    assert listed[done].job_id == "gpuyard-job-0003-1"
    assert listed[done].end_time == 1_700_000_100_500
    assert len(served.client(ADMIN_TOKEN).list_jobs()) == 3

    assert client.get_job_logs(mine) == b.log_text
    assert client.stop_job(mine) is True
    assert client.get_job_status(mine) == JobStatus.STOPPED
    assert client.stop_job(mine) is False
    assert client.stop_job(done) is False
    with pytest.raises(RuntimeError, match=r"400: .*gpuyard keeps every job's record.*nothing "
                       r"was deleted"):  # fmt: skip
        client.delete_job(done)
    assert done in b.jobs
    with pytest.raises(RuntimeError, match=r"404: .*Job job-9999 does not exist"):
        client.get_job_info("job-9999")


def test_logs_are_bounded(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_jobs_api, "MAX_LOG_BYTES", 25)
    monkeypatch.setattr(ray_jobs_api, "LOG_CHUNK_BYTES", 10)
    job_id = served.backend.add("vision", "v1").job_id
    logs = served.client().get_job_logs(job_id)
    assert logs.startswith(served.backend.log_text[:25])
    assert "the log goes on past 25 bytes" in logs and "logs/chunk?offset=25" in logs


def test_tail_follows_the_log_until_the_job_ends(served: Served) -> None:
    b = served.backend
    job_id = b.add("vision", "v1", JobState.RUNNING).job_id
    b.log_text = "first\n"

    def grow() -> None:
        time.sleep(0.3)
        b.log_text += "second\n"
        time.sleep(0.3)
        b.log_text += "third\n"
        b.update(job_id, state=JobState.SUCCEEDED)

    async def follow() -> list[str]:
        return [part async for part in served.client().tail_job_logs(job_id)]

    t = threading.Thread(target=grow)
    t.start()
    parts = asyncio.run(asyncio.wait_for(follow(), 20))
    t.join()
    assert "".join(parts) == "first\nsecond\nthird\n"
    assert len(parts) >= 2  # sent as it grew


async def _ws_close(url: str, headers: dict[str, str]) -> tuple[int | None, str]:
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers) as ws:
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        return ws.close_code, str(msg.extra)


def test_tail_refusals_close_1008_with_the_reason_and_are_audited(served: Served) -> None:
    b = served.backend
    theirs = b.add("nlp", "n1", JobState.SUCCEEDED).job_id
    url = f"{served.url.replace('http', 'ws')}/api/jobs/{theirs}/logs/tail"
    assert asyncio.run(_ws_close(url, {})) == (
        1008, "no bearer token: send 'Authorization: Bearer TOKEN'"
    )  # fmt: skip
    assert asyncio.run(_ws_close(url, {"Authorization": "Bearer nope"})) == (1008, "unknown token")
    code, why = asyncio.run(_ws_close(url, {"Authorization": f"Bearer {VISION_TOKEN}"}))
    assert code == 1008 and why.startswith(f"job '{theirs}' belongs to another team")
    missing = url.replace(theirs, "job-9999")
    code, why = asyncio.run(_ws_close(missing, {"Authorization": f"Bearer {VISION_TOKEN}"}))
    assert code == 4404 and "does not exist" in why
    action = f"GET /api/jobs/{theirs}/logs/tail"
    assert b.refusals() == [
        ("anonymous", action, theirs, "401"),
        ("anonymous", action, theirs, "401"),
        ("vision", action, theirs, "403"),
    ]

    # Ray's SDK treats any close but 1006 as the end of the log: it yields nothing, no error
    async def follow() -> list[str]:
        return [p async for p in served.client(NLP_TOKEN + "x").tail_job_logs(theirs)]

    assert asyncio.run(follow()) == []

    # with the team's own token the same job's log comes through
    async def own() -> str:
        return "".join([p async for p in served.client(NLP_TOKEN).tail_job_logs(theirs)])

    assert asyncio.run(own()) == b.log_text


# --- auth --------------------------------------------------------------------------------


def test_no_token_is_401_and_audited(served: Served) -> None:
    client = served.client(token=None)  # the version check needs none
    with pytest.raises(AuthenticationError, match="no bearer token"):
        client.submit_job(entrypoint="python x.py", entrypoint_num_gpus=1)
    with pytest.raises(AuthenticationError, match="unknown token"):
        served.client("wrong").list_jobs()
    assert served.backend.refusals() == [
        ("anonymous", "POST /api/jobs/", "", "401"),
        ("anonymous", "GET /api/jobs/", "", "401"),
    ]
    assert served.backend.submits() == []


def test_another_teams_job_is_403_and_audited(served: Served) -> None:
    theirs = served.backend.add("nlp", "n1").job_id
    client = served.client()
    for call in (client.get_job_info, client.stop_job, client.get_job_logs, client.delete_job):
        with pytest.raises(AuthenticationError, match=f"job '{theirs}' belongs to another team"):
            call(theirs)
    assert served.backend.jobs[theirs].state is JobState.PENDING
    assert [(p, o) for p, _, t, o in served.backend.refusals() if t == theirs] == [
        ("vision", "403")
    ] * 4
    assert served.client(ADMIN_TOKEN).get_job_info(theirs).submission_id == theirs


# --- the ray CLI -------------------------------------------------------------------------


def _ray(served: Served, *args: str, address_env: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}  # fmt: skip
    env.update(RAY_JOB_HEADERS=json.dumps({"Authorization": f"Bearer {VISION_TOKEN}"}),
               RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", NO_COLOR="1")  # fmt: skip
    cmd = [str(RAY_BIN), "job", args[0]]
    if address_env:
        env["RAY_ADDRESS"] = served.url
    else:
        cmd += ["--address", served.url]
    return subprocess.run([*cmd, *args[1:]], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_the_ray_job_cli(served: Served) -> None:
    meta = {"gpuyard": json.dumps({"workers": 2, "gpus_per_worker": 4}), "owner": "ana"}
    r = _ray(served, "submit", "--no-wait", "--metadata-json", json.dumps(meta),
             "--entrypoint-num-gpus", "8", "--", "python", "x.py", "--lr", "3e-4")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    m = re.search(r"Job '(job-\d+)' submitted successfully", out)
    assert m, out
    job_id = m.group(1)
    spec, _ = served.backend.submits()[-1]
    assert spec["command"] == "python x.py --lr 3e-4"
    assert (spec["workers"], spec["gpus_per_worker"]) == (2, 4)
    served.backend.update(job_id, queue_position=1, estimated_start_s=None)

    r = _ray(served, "status", job_id, address_env=True)  # RAY_ADDRESS instead of --address
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Status for job '{job_id}': PENDING" in r.stdout
    assert (
        "Status message: waiting in gpuyard's queue: waiting for 8 GPUs "
        "(position 1, estimated start unknown)"
    ) in r.stdout

    r = _ray(served, "logs", job_id)
    assert r.returncode == 0 and "line 1\n" in r.stdout and "line 10\n" in r.stdout

    r = _ray(served, "stop", "--no-wait", job_id)
    assert r.returncode == 0 and f"Attempting to stop job '{job_id}'" in r.stdout
    assert served.backend.jobs[job_id].state is JobState.CANCELLED

    r = _ray(served, "list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"submission_id='{job_id}'" in r.stdout and "status=<JobStatus.STOPPED" in r.stdout


# --- the mapping, without a server --------------------------------------------------------


def test_the_spec_is_a_valid_script_job_for_gpuyards_parser() -> None:
    from scheduler.runtime.spec import parse_spec

    sub = submission_from_request(
        {"entrypoint": "python train.py", "submission_id": "raysubmit_4LamXRuQpYdSMg7J",
         "runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"},
         "metadata": {"gpuyard.gpus_per_worker": "4"}, "entrypoint_num_gpus": 8}
    )  # fmt: skip
    parsed = parse_spec({**sub.spec, "team": "vision"}, "api")
    assert (parsed.name, parsed.workers, parsed.gpus_per_worker) == (
        "raysubmit-4lamxruqpydsmg7j",
        2,
        4,
    )
    assert parsed.kind == "script"


@pytest.mark.parametrize(
    ("submission_id", "name"),
    [(None, "ray-job"), ("raysubmit_4LamXRuQpYdSMg7J", "raysubmit-4lamxruqpydsmg7j"),
     ("__", "ray-job"), ("a" * 80, "a" * 63), ("Nightly Run/7", "nightly-run-7")],
)  # fmt: skip
def test_names_from_submission_ids(submission_id: str | None, name: str) -> None:
    assert name_for(submission_id) == name


def test_job_details_has_only_rays_fields() -> None:
    from ray.dashboard.modules.job.pydantic_models import JobDetails

    job = JobView(job_id="job-1", name="n", team="t", priority=0, state=JobState.REJECTED,
                  reason="no node has 16 GPUs", submitted_at_s=1.0, finished_at_s=2.0)  # fmt: skip
    details = job_details(job)
    assert set(details) <= set(JobDetails.model_fields)
    ray_view = JobDetails(**details)
    assert (ray_view.status, ray_view.message) == (JobStatus.FAILED, "no node has 16 GPUs")
    assert ray_view.metadata is not None and ray_view.metadata["gpuyard.state"] == "REJECTED"
    assert "gpu_models" in ALLOWED_FIELDS
    with pytest.raises(SpecRejected):
        submission_from_request([])
