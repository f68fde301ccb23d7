"""``gpuyard submit|jobs|job|cancel|logs|queue|nodes`` over real HTTP: a uvicorn server in a
thread on a free port, serving the API over the in-memory backend."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from scheduler.cli import main
from scheduler.client import ApiError, Client
from scheduler.runtime.api import make_app
from scheduler.runtime.views import JobState
from tests.unit.runtime.fake_backend import (
    ADMIN_TOKEN,
    NLP_TOKEN,
    VISION_TOKEN,
    FakeBackend,
    make_auth,
)


@pytest.fixture
def backend() -> FakeBackend:
    b = FakeBackend()
    b.add("vision", "v1")
    b.add("nlp", "n1")
    return b


@pytest.fixture
def url(backend: FakeBackend) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(make_app(backend, make_auth()), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def gpuyard(
    capsys: pytest.CaptureFixture[str], url: str, token: str, *argv: str
) -> tuple[int, str, str]:
    code = main([*argv, "--api", url, "--token", token])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_prints_id_state_and_reason(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: FakeBackend
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: resnet\nworkers: 2\nentrypoint: examples.train:loop\n")
    code, out, _ = gpuyard(capsys, url, VISION_TOKEN, "submit", str(spec))
    assert code == 0
    assert out.strip() == "submitted job-0003 PENDING: waiting for 8 GPUs"
    assert backend.jobs["job-0003"].team == "vision"
    code, out, _ = gpuyard(capsys, url, VISION_TOKEN, "submit", str(spec), "--output", "json",
                           "--idempotency-key", "k1")  # fmt: skip
    assert code == 0 and json.loads(out)["job_id"] == "job-0004"
    assert backend.calls[-1][1][1] == "k1"


def test_submit_refusals_say_why(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: resnet\nworkers: 0\nteam: nlp\n")
    code, _, err = gpuyard(capsys, url, VISION_TOKEN, "submit", str(spec))
    assert code == 1 and err.startswith("error: 403: the token of 'vision' submits for team")
    spec.write_text("name: resnet\nworkers: 0\n")
    code, _, err = gpuyard(capsys, url, VISION_TOKEN, "submit", str(spec))
    assert (code, err.strip()) == (1, "error: 422: workers: must be an integer >= 1 (got 0)")
    spec.write_text("- not a mapping\n")
    code, _, err = gpuyard(capsys, url, VISION_TOKEN, "submit", str(spec))
    assert (code, err.strip()) == (2, f"error: {spec}: a job spec is a YAML mapping, got list")
    code, _, err = gpuyard(capsys, url, "wrong", "jobs")
    assert (code, err.strip()) == (1, "error: 401: unknown token")


def test_jobs_table_and_json(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = gpuyard(capsys, url, VISION_TOKEN, "jobs")
    assert code == 0 and "job-0001" in out and "job-0002" not in out and "v1" in out
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "jobs", "--output", "json")
    assert [j["job_id"] for j in json.loads(out)["items"]] == ["job-0001", "job-0002"]
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "jobs", "--state", "running", "--output",
                           "json")  # fmt: skip
    assert (code, json.loads(out)) == (0, {"items": [], "page": 1, "pages": 1, "limit": 50,
                                           "total": 0, "next_page": None})  # fmt: skip


def test_job_cancel_logs(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "job", "job-0002")
    assert code == 0 and "WAIT_CAPACITY" in out and "waiting for 8 GPUs" in out
    code, _, err = gpuyard(capsys, url, NLP_TOKEN, "cancel", "job-0001")
    assert code == 1 and err.startswith("error: 403: job 'job-0001' belongs to another team")
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "cancel", "job-0002")
    assert (code, out.strip()) == (0, "job-0002 CANCELLED: cancelled by user")
    code, _, err = gpuyard(capsys, url, NLP_TOKEN, "cancel", "job-0002")
    assert code == 1 and "409: job 'job-0002' has already ended" in err
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "logs", "job-0002", "--tail", "3")
    assert (code, out) == (0, "line 8\nline 9\nline 10\n")
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "logs", "job-0002", "--output", "json")
    assert json.loads(out)["tail_lines"] == 200
    code, _, err = gpuyard(capsys, url, NLP_TOKEN, "job", "job-9")
    assert (code, err.strip()) == (1, "error: 404: no job 'job-9'")


def test_queue_and_nodes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = gpuyard(capsys, url, VISION_TOKEN, "queue")
    assert code == 0 and "job-0001" in out and "job-0002" not in out
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "queue", "--output", "json")
    assert [(q["job_id"], q["position"]) for q in json.loads(out)] == [("job-0002", 2)]
    code, _, err = gpuyard(capsys, url, NLP_TOKEN, "nodes")
    assert code == 1 and err.startswith("error: 403: /v1/nodes is for operators")
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "nodes")
    lines = out.splitlines()
    sim = next(line for line in lines if "sim-0" in line)
    real = next(line for line in lines if "gpu-1" in line)
    assert "simulated" in sim and "3/4" in sim and "ready" in sim
    assert "simulated" not in real and "NVML" in real and "off: cordon" in real
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "nodes", "--output", "json")
    assert [n["simulated"] for n in json.loads(out)] == [True, False]


def test_cordon_drain_uncordon_and_audit(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gpuyard(capsys, url, NLP_TOKEN, "drain", "gpu-1")
    assert code == 1 and err.startswith("error: 403: /v1/nodes/gpu-1/drain is for operators")
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "drain", "gpu-1")
    assert (code, out.strip()) == (0, "gpu-1: off: drain")
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "uncordon", "gpu-1", "--output", "json")
    assert code == 0 and json.loads(out)["schedulable"] is True
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "audit", "--output", "json")
    assert [(a["principal"], a["action"], a["outcome"]) for a in json.loads(out)] == [
        ("nlp", "POST /v1/nodes/gpu-1/drain", "403")
    ]
    code, _, err = gpuyard(capsys, url, ADMIN_TOKEN, "audit", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday': not a time" in err


def test_token_and_api_from_the_environment(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GPUYARD_TOKEN", raising=False)
    assert main(["jobs", "--api", url]) == 2
    assert "no token" in capsys.readouterr().err
    monkeypatch.setenv("GPUYARD_TOKEN", VISION_TOKEN)
    monkeypatch.setenv("GPUYARD_API", url)
    assert main(["jobs", "--output", "json"]) == 0
    assert [j["team"] for j in json.loads(capsys.readouterr().out)["items"]] == ["vision"]


def test_client_raises_api_error_with_the_servers_reason(url: str) -> None:
    c = Client(url, NLP_TOKEN)
    with pytest.raises(ApiError) as e:
        c.cancel("job-0001")
    assert e.value.status == 403 and "another team" in e.value.detail
    assert c.healthz() == {"status": "ok"}
    with pytest.raises(ApiError) as e:
        Client("http://127.0.0.1:9", NLP_TOKEN, timeout_s=2, retries=1, backoff_s=0.01).jobs()
    assert e.value.status == 0 and "cannot reach the gpuyard API" in str(e.value)


def test_submit_uploads_the_working_dir(
    url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "train.py").write_text("def loop(config):\n    pass\n")
    spec = tmp_path / "job.yaml"
    spec.write_text("name: resnet\nworkers: 2\nentrypoint: train:loop\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = gpuyard(capsys, url, VISION_TOKEN, "submit", "job.yaml", "--working-dir", "proj")
    [uri] = backend.packages
    size = len(backend.packages[uri])
    assert code == 0 and out.splitlines() == [
        f"uploaded {tmp_path / 'proj'}: {uri} ({size} B)",
        "submitted job-0003 PENDING: waiting for 8 GPUs",
    ]
    assert backend.calls[-1][1][0]["runtime_env"] == {"working_dir": uri}
    # a working_dir in the spec is relative to the spec file's folder; the package is there
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "job.yaml").write_text(
        "name: resnet\nworkers: 2\nentrypoint: train:loop\nruntime_env:\n  working_dir: ../proj\n"
    )
    monkeypatch.chdir(specs.parent.parent)
    code, out, err = gpuyard(capsys, url, VISION_TOKEN, "submit", str(specs / "job.yaml"),
                             "--output", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["job_id"] == "job-0004"
    assert err.strip() == f"{tmp_path / 'proj'}: {uri} (already uploaded)"
    assert backend.calls[-1][1][0]["runtime_env"] == {"working_dir": uri}
    code, _, err = gpuyard(capsys, url, VISION_TOKEN, "submit", str(spec), "--working-dir", "nope")
    assert code == 2 and "nope must be an existing directory" in err


def test_logs_follow_an_ended_job(
    url: str, capsys: pytest.CaptureFixture[str], backend: FakeBackend
) -> None:
    backend.add("nlp", "done", JobState.SUCCEEDED)  # job-0003
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "logs", "job-0003", "-f")
    assert (code, out) == (0, backend.log_text)
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "logs", "job-0003", "--follow", "--tail", "2")
    assert (code, out) == (0, "line 9\nline 10\n")
    code, out, _ = gpuyard(capsys, url, NLP_TOKEN, "logs", "job-0003", "-f", "--output", "json")
    assert "".join(json.loads(line)["text"] for line in out.splitlines()) == backend.log_text


def test_logs_follow_ends_quietly_on_ctrl_c(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Client, job_id: str, **kwargs: object) -> Iterator[str]:
        yield "line 1\n"
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "follow_logs", interrupted)
    code, out, err = gpuyard(capsys, url, NLP_TOKEN, "logs", "job-0002", "-f")
    assert (code, out, err) == (130, "line 1\n", "")


def test_jobs_reads_every_page(
    url: str, capsys: pytest.CaptureFixture[str], backend: FakeBackend
) -> None:
    for i in range(248):
        backend.add("vision", f"j{i}")
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "jobs", "--all", "--output", "json")
    assert code == 0 and [j["job_id"] for j in json.loads(out)["items"]] == sorted(backend.jobs)
    assert [c[1][3] for c in backend.calls if c[0] == "list_jobs"] == [None, "job-0100", "job-0200"]
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "jobs", "--all")
    assert code == 0 and "250 jobs" in out
    code, out, _ = gpuyard(capsys, url, ADMIN_TOKEN, "jobs", "--limit", "5", "--output", "json")
    assert [j["job_id"] for j in json.loads(out)["items"]] == sorted(backend.jobs)[:5]
    code, _, err = gpuyard(capsys, url, ADMIN_TOKEN, "jobs", "--limit", "0")
    assert code == 2 and "--limit 0: must be 1..1000" in err


def test_the_demo_defaults_name_the_repositorys_examples() -> None:
    """``gpuyard demo`` with no options reads the examples and their service config."""
    from scheduler.cli.main import build_parser

    args = build_parser().parse_args(["demo"])
    assert Path(args.examples).is_dir() and Path(args.examples).name == "examples"
    assert Path(args.config).is_file()
    assert sorted(Path(args.examples).glob("*.yaml"))
