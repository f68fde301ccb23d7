"""Crash the whole live service during a burst of submissions, bring it up again, and check
that nothing answered 201 was lost or doubled, and that no run was launched twice.

A real ``gpuyard up`` (its own process) starts a local Ray cluster with simulated GPU nodes,
the scheduler actor and the Serve API, then exits (locally it starts the cluster and returns;
the service lives in the cluster). 16 client threads submit over real HTTP, each with an
``Idempotency-Key`` it retries until it gets an answer (what a client of a flaky service
does). Mid-burst, every service process is killed with SIGKILL: the scheduler actor (which
also serves the HTTP API), then every process of the Ray cluster, head and GCS included (as
``ray stop --force`` would, but only this cluster's). Then ``gpuyard up`` runs again on the same state
directory and the clients finish.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("ray")

pytestmark = pytest.mark.ray

GPUYARD = str(Path(sys.executable).with_name("gpuyard"))
TEAMS = ("perception", "planning", "mapping")
THREADS = 16
PER_THREAD = 63  # 1,008 submissions in all


def _up(state: Path, port: int, ray_tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "GPUYARD_RAY_TMP": str(ray_tmp)}
    return subprocess.Popen(
        [GPUYARD, "up", "--state-dir", str(state), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def _wait_api(url: str, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the API at {url} did not come up in {timeout_s} s")


def _kill_cluster(ray_tmp: Path) -> int:
    """SIGKILL every process of this test's Ray cluster (head, GCS, raylets, workers): those
    whose command line names its temp dir. Unlike ``ray stop --force`` it leaves any other
    Ray cluster on the machine alone. Returns how many were killed."""
    mine = str(ray_tmp).encode()
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mine in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def _actor_pids(title: str) -> list[int]:
    """PIDs of Ray actor processes by their process title (Ray names an actor's process
    ``ray::<Class>...``), e.g. ``ray::SchedulerActor`` or ``ray::ServeReplica``."""
    want = title.encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "cmdline").read_bytes().startswith(want):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _job(
    name: str, team: str, epochs: int = 1, sleep: float = 0.0, gpus: int = 1
) -> dict[str, Any]:
    return {"name": name, "team": team, "workers": 1, "gpus_per_worker": gpus,
            "cpus_per_worker": 0.5, "memory_gib_per_worker": 1,
            "entrypoint": "examples.driving_policy:train_loop",
            "config": {"epochs": epochs, "batch_size": 8, "samples": 16, "image_size": 16,
                       "step_sleep_s": sleep}}  # fmt: skip


def test_kill_minus_9_of_every_service_process_during_a_burst(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ray_tmp = Path(tempfile.mkdtemp(prefix="gy", dir="/tmp"))  # AF_UNIX paths: 107 bytes
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    up = _up(state, port, ray_tmp)
    try:
        assert up.wait(240) == 0, up.stdout.read() if up.stdout else ""
        _wait_api(url, 60)
        tokens = {t: (state / "tokens" / t).read_text().strip() for t in (*TEAMS, "admin")}

        def post(token: str, body: dict[str, Any], key: str, deadline_s: float) -> Any:
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
            while time.time() < deadline_s:
                try:
                    r = requests.post(url + "/v1/jobs", json=body, headers=headers, timeout=30)
                except requests.RequestException:
                    time.sleep(0.5)
                    continue
                if r.status_code == 201:
                    return r.json()
                restarting = r.status_code in (500, 502, 503, 504) or (
                    r.status_code == 404 and r.text.startswith("Path ")  # Serve: app not up yet
                )
                if restarting:
                    time.sleep(0.5)
                    continue
                raise AssertionError(f"{key}: {r.status_code} {r.text}")
            raise AssertionError(f"{key}: no 201 before the deadline")

        # a long job that checkpoints every epoch: it must resume after the crash
        long = post(tokens["perception"], {**_job("long", "perception", epochs=40, sleep=0.05),
                    "checkpoint_interval_s": 1}, "long", time.time() + 60)  # fmt: skip
        from tests.integration.test_service_ray import registered_checkpoints, run_dir

        runs = run_dir(state, "perception", long["job_id"])
        deadline = time.time() + 120
        while registered_checkpoints(runs) < 1 and time.time() < deadline:
            time.sleep(0.5)
        assert registered_checkpoints(runs) >= 1, "no checkpoint before the crash"

        answered: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        end = time.time() + 420

        def client(k: int) -> None:
            team = TEAMS[k % len(TEAMS)]
            for i in range(PER_THREAD):
                key = f"c{k}-{i}"
                # a whole node each: few run at once on 2 cores, the rest queue
                view = post(tokens[team], _job(key, team, gpus=4), key, end)
                with lock:
                    answered[key] = view

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(THREADS)]
        for t in threads:
            t.start()
        while len(answered) < 60 and time.time() < end:
            time.sleep(0.1)
        # crash: every service process, with SIGKILL
        for title in ("ray::SchedulerActor",):  # the API is served from its process
            pids = _actor_pids(title)
            assert pids, f"no {title} process"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        assert _kill_cluster(ray_tmp) > 0  # the Ray head, GCS and raylets: all gone
        (state / "up.json").unlink(missing_ok=True)
        up2 = _up(state, port, ray_tmp)
        assert up2.wait(240) == 0, up2.stdout.read() if up2.stdout else ""
        for t in threads:
            t.join(max(1.0, end - time.time()))
        assert len(answered) == THREADS * PER_THREAD

        # every job answered 201 is there exactly once, with its team and spec
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        listed: dict[str, Any] = {}
        after: str | None = None
        while True:  # every page of the job list
            params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
            page = requests.get(url + "/v1/jobs", headers=admin, params=params, timeout=60).json()
            listed.update((j["job_id"], j) for j in page["items"])
            after = page["next_after"]
            if after is None:
                break
        for key, view in answered.items():
            job = listed[view["job_id"]]
            assert (job["team"], job["name"]) == (view["team"], key)
            assert job["spec"] == view["spec"]
        db = sqlite3.connect(state / "journal.db")
        keys = db.execute(
            "SELECT team, idempotency_key, COUNT(*) FROM submissions GROUP BY 1, 2"
        ).fetchall()
        assert all(n == 1 for _, _, n in keys) and len(keys) == len(answered) + 1
        # no run launched twice: one open run per job at most, attempts numbered 1, 2, ...
        rows = db.execute("SELECT job_id, attempt, state FROM runs ORDER BY 1, 2").fetchall()
        by_job: dict[str, list[tuple[int, str]]] = {}
        for job_id, attempt, run_state in rows:
            by_job.setdefault(job_id, []).append((attempt, run_state))
        for job_id, attempts in by_job.items():
            assert [a for a, _ in attempts] == list(range(1, len(attempts) + 1)), job_id
            assert sum(s == "started" for _, s in attempts) <= 1, job_id
        db.close()
        # the long job was running at the crash: relaunched, it resumes from its checkpoint
        deadline = time.time() + 240
        while time.time() < deadline:
            j = requests.get(f"{url}/v1/jobs/{long['job_id']}", headers=admin, timeout=30).json()
            if j["attempts"] >= 2 and j["metrics"].get("start_epoch", 0) >= 1:
                break
            time.sleep(1)
        assert j["attempts"] >= 2 and j["metrics"]["start_epoch"] >= 1, j
    finally:
        subprocess.run([GPUYARD, "down", "--state-dir", str(state)], capture_output=True,
                       timeout=120, env={**os.environ, "RAY_AUTH_MODE": "disabled"})  # fmt: skip
        _kill_cluster(ray_tmp)
