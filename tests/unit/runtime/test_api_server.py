"""The API as the scheduler actor serves it: uvicorn in a thread, routes calling an
in-process service (fake launcher and cluster, no Ray), over real HTTP."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import requests

from scheduler.runtime.api import make_app
from scheduler.runtime.api_server import ApiServer, ServiceBackend
from scheduler.runtime.config import ServiceConfig
from scheduler.runtime.service import SchedulerService
from tests.unit.runtime.fake_backend import ADMIN_TOKEN, VISION_TOKEN, make_auth
from tests.unit.runtime.test_service import FLEET, Clock, FakeCluster, FakeLauncher, spec


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_concurrent_http_submissions_are_group_committed_and_each_answered(
    tmp_path: Path,
) -> None:
    cfg = ServiceConfig(state_dir=str(tmp_path), loop_period_s=0.05)
    svc = SchedulerService(cfg, FLEET, FakeLauncher(), FakeCluster(), True, Clock())
    svc.start()
    backend = ServiceBackend(svc)
    server = ApiServer(make_app(backend, make_auth()), "127.0.0.1", _port())
    url = server.start()
    answered: list[tuple[str, str]] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with requests.Session() as s:
            for i in range(10):
                body = {**spec(f"c{k}-{i}"), "team": "vision"}
                r = s.post(f"{url}/v1/jobs", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {VISION_TOKEN}",
                                    "Idempotency-Key": f"c{k}-{i}"})  # fmt: skip
                assert r.status_code == 201, r.text
                with lock:
                    answered.append((r.json()["job_id"], r.json()["name"]))

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(j for j, _ in answered) == [f"job-{i:06d}" for i in range(1, 161)]
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        listed = requests.get(
            f"{url}/v1/jobs", headers=admin, params={"limit": 1000}, timeout=30
        ).json()["items"]
        assert {(j["job_id"], j["name"]) for j in listed} == set(answered)
        audit = requests.get(f"{url}/v1/audit", headers=admin, params={"limit": 1000}).json()
        assert sum(a["action"] == "submit" and a["outcome"] == "ok" for a in audit) == 160
        assert requests.get(f"{url}/v1/nodes", timeout=30).status_code == 401
        assert svc.errors == []
    finally:
        server.stop()
        backend.close()
        svc.close()


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    import pytest

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(make_app(object(), make_auth()), "127.0.0.1", port)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match=f"could not listen on http://127.0.0.1:{port}"):
            server.start(timeout_s=10)
