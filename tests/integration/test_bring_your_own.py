"""Teams' own code and Ray habits through gpuyard, on a local multi-node Ray cluster with
simulated GPUs, its checkpoints in S3 (a local S3-compatible server: moto):

* a Ray Train loop whose code exists only in a temporary working directory (uploaded by the
  SDK, never installed) and which imports a package that only its ``pip`` list installs:
  trains, checkpoints to S3, is drained off its node, resumes from its S3 checkpoint on the
  other node;
* a script job submitted with Ray's own ``ray job submit --working-dir`` to gpuyard's
  address: it waits in gpuyard's queue (``ray job status`` says why), builds its trainer with
  ``scheduler.train.scaling_config()``, is drained, resumes on the other node; ``ray job
  logs`` shows its output and ``ray job stop`` cancels a waiting one;
* a script that ignores the placement is stopped with that reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
moto_server = pytest.importorskip("moto.server")
from ray.cluster_utils import Cluster  # noqa: E402

from scheduler.client import Client  # noqa: E402
from scheduler.runtime.config import ServiceConfig, parse_fleet  # noqa: E402
from tests.integration.test_service_ray import wait_for  # noqa: E402

pytestmark = pytest.mark.ray

BUCKET = "gpuyard-ckpt"
FLEET = {
    "nodes": [
        {"name": f"node-{x}", "gpus": 2, "gpu_model": "H100", "gpu_memory_gib": 80, "cpus": 4,
         "memory_gib": 16}
        for x in "ab"
    ]
}  # fmt: skip
RAY = str(Path(sys.executable).with_name("ray"))

LOOP = """
import time

import torch
import tabulate  # installed by the job's pip list only

from scheduler import train


def loop(config):
    ctx = train.context(config)
    model = torch.nn.Linear(4, 1)
    start = 0
    saved = train.restore(ctx)
    if saved is not None:
        model.load_state_dict(saved["model"])
        start = int(saved["epoch"]) + 1
    for epoch in range(start, int(config["epochs"])):
        for _ in range(5):
            if train.stop_requested(ctx):
                train.report(ctx, {"epoch": float(epoch - 1), "start": float(start),
                                   "stopped": 1.0},
                             state={"model": model.state_dict(), "epoch": epoch - 1})
                return
            time.sleep(float(config.get("sleep", 0.1)))
            train.mark_first_step(ctx)
        train.report(ctx, {"epoch": float(epoch), "start": float(start), "stopped": 0.0,
                           "tabulate": float(bool(tabulate.tabulate([[1]])))},
                     state={"model": model.state_dict(), "epoch": epoch})
"""

SCRIPT = """
import argparse
import time

import torch
from ray.train.torch import TorchTrainer

import scheduler.train as gt


def loop(config):
    ctx = gt.context(config)
    start = 0
    saved = gt.restore(ctx)
    if saved is not None:
        start = int(saved["epoch"]) + 1
    for epoch in range(start, int(config["epochs"])):
        for _ in range(5):
            if gt.stop_requested(ctx):
                gt.report(ctx, {"epoch": float(epoch - 1), "start": float(start),
                                "stopped": 1.0}, state={"epoch": epoch - 1})
                return
            time.sleep(0.2)
            gt.mark_first_step(ctx)
        gt.report(ctx, {"epoch": float(epoch), "start": float(start), "stopped": 0.0},
                  state={"epoch": epoch})


parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--ignore-placement", action="store_true")
args = parser.parse_args()
info = gt.run_info()
print(f"script attempt {info['attempt']} on {info['nodes']}", flush=True)
if args.ignore_placement:
    from ray.train.v2.api.config import ScalingConfig

    scaling = ScalingConfig(num_workers=1, use_gpu=True, resources_per_worker={"GPU": 1},
                            label_selector={"ray.io/node-id": "!" + info["node_ids"][0]})
else:
    scaling = gt.scaling_config()
trainer = TorchTrainer(loop, train_loop_config=gt.loop_config({"epochs": args.epochs}),
                       scaling_config=scaling, run_config=gt.run_config(),
                       torch_config=gt.torch_config())
result = trainer.fit()
print(f"script done: {result.metrics}", flush=True)
"""


@pytest.fixture(scope="module")
def s3() -> Any:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "gpuyard", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # every Ray process started below inherits it
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def service(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from scheduler.runtime.local import _free_port, dev_tokens
    from scheduler.runtime.ray_service import start_scheduler

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    # a script job's `python` is the cluster's: this environment's, as on a real cluster
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    dash = _free_port()
    c = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 4, "num_gpus": 0, "include_dashboard": True, "dashboard_port": dash,
            "dashboard_host": "127.0.0.1", "object_store_memory": 100 * 1024**2,
        },
    )  # fmt: skip
    fleet = parse_fleet(FLEET, Path("test"))
    nodes = {}
    for spec in fleet:
        labels = {**dict(spec.labels), "gpuyard.io/node": spec.name}
        nodes[spec.name] = c.add_node(num_cpus=4, num_gpus=2, labels=labels,
                                      object_store_memory=80 * 1024**2)  # fmt: skip
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="gpuyard", log_to_driver=False)
    state = tmp_path_factory.mktemp("byo")
    tokens, plain = dev_tokens(state, ["perception", "planning"])
    port = _free_port()
    cfg = ServiceConfig(
        state_dir=str(state), tokens=str(tokens), api_port=port, loop_period_s=0.3,
        telemetry_period_s=1.0, stop_grace_s=20.0, preemption=False,
        storage_path=f"s3://{BUCKET}/runs", ray_dashboard_url=f"http://127.0.0.1:{dash}",
    )  # fmt: skip
    actor = start_scheduler(cfg, fleet, simulated=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            Client(url, None).healthz()
            break
        except Exception:
            time.sleep(0.5)
    yield {"url": url, "tokens": plain, "state": state, "actor": actor, "cluster": c,
           "dashboard": f"http://127.0.0.1:{dash}"}  # fmt: skip
    ray.shutdown()
    c.shutdown()


def s3_checkpoints(s3: Any, prefix: str) -> set[str]:
    """The checkpoint folders in the bucket under ``prefix`` (``runs/<team>/<job id>-``)."""
    out = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            out.update(p for p in obj["Key"].split("/") if p.startswith("checkpoint_"))
    return out


def drain_and_resume(svc: dict[str, Any], admin: Client, team: Client, job_id: str,
                     s3: Any, prefix: str) -> Any:  # fmt: skip
    """Drain the job's node once it has a checkpoint in S3; it must come back on the other
    node (attempt 2) and finish from that checkpoint."""
    running = wait_for(lambda: (j := team.job(job_id)).state == "RUNNING" and j, 120, "running")
    node = running.placement[0].node
    wait_for(lambda: s3_checkpoints(s3, prefix), 180, f"a checkpoint under s3://{BUCKET}/{prefix}")
    admin.drain(node)
    try:
        moved = wait_for(
            lambda: (j := team.job(job_id)).attempts == 2 and j.state == "RUNNING" and j,
            180,
            "the relaunch after the drain",
        )
        assert moved.placement[0].node != node and moved.preemptions == 1
        done = wait_for(
            lambda: (j := team.job(job_id)).state.terminal and j, 240, "the end of the job"
        )
    finally:
        admin.uncordon(node)
    return done


def test_a_working_dir_job_with_pip_trains_on_s3_and_resumes_after_a_drain(
    service: dict[str, Any], s3: Any, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    (code / "mycode").mkdir(parents=True)
    (code / "mycode" / "__init__.py").write_text("")
    (code / "mycode" / "loop.py").write_text(textwrap.dedent(LOOP))
    (code / "big.bin").write_bytes(b"x" * 2_000_000)
    (code / ".gitignore").write_text("big.bin\n")
    with pytest.raises(ImportError):
        __import__("mycode")  # the code is nowhere but in that folder
    team = Client(service["url"], service["tokens"]["perception"])
    admin = Client(service["url"], service["tokens"]["admin"])
    spec = {
        "name": "wd-loop", "workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 1,
        "memory_gib_per_worker": 1, "entrypoint": "mycode.loop:loop",
        "config": {"epochs": 16, "sleep": 0.2},
        "runtime_env": {"pip": ["tabulate"], "env_vars": {"TEAM_FLAG": "1"}},
    }  # fmt: skip
    job = team.submit(spec, working_dir=str(code))
    uri = job.spec["runtime_env"]["working_dir"]
    assert uri.startswith("gcs://_ray_pkg_") and uri.endswith(".zip")
    kept = service["state"] / "packages" / uri.removeprefix("gcs://")
    assert kept.is_file() and kept.stat().st_size < 100_000  # big.bin was .gitignored
    prefix = f"runs/perception/{job.job_id}-"
    done = drain_and_resume(service, admin, team, job.job_id, s3, prefix)
    assert done.state == "SUCCEEDED", done.reason
    assert done.attempts == 2
    assert done.metrics["epoch"] == 15.0 and done.metrics["start"] >= 1.0
    assert done.metrics["tabulate"] == 1.0
    # every checkpoint is under the team's folder and this journal's run name, in S3
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/")["Contents"]}
    runs = {k.split("/")[2] for k in keys if k.startswith("runs/perception/")} - {""}
    assert len(runs) == 1 and runs.pop().startswith(f"{job.job_id}-")


def test_ray_job_submit_to_gpuyard_queues_runs_resumes_and_stops(
    service: dict[str, Any], s3: Any, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(textwrap.dedent(SCRIPT))
    token = service["tokens"]["planning"]
    env = {**os.environ, "RAY_JOB_HEADERS": json.dumps({"Authorization": f"Bearer {token}"}),
           "RAY_AUTH_MODE": "disabled"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)

    def ray_job(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RAY, "job", *args], capture_output=True, text=True, env=env, timeout=120,
            cwd=tmp_path,
        )  # fmt: skip

    meta = {"gpuyard.team": "planning", "gpuyard.workers": "1", "gpuyard.gpus_per_worker": "2",
            "gpuyard.name": "script-job"}  # fmt: skip
    # both GPUs of one node: a second such job waits while the first runs
    sub = ray_job(
        "submit", "--address", service["url"], "--working-dir", str(work), "--no-wait",
        "--entrypoint-num-gpus", "2", "--metadata-json", json.dumps(meta),
        "--", "python", "train.py", "--epochs", "16",
    )  # fmt: skip
    assert sub.returncode == 0, sub.stdout + sub.stderr
    first = sub.stdout.split("Job '")[1].split("'")[0]
    team = Client(service["url"], token)
    admin = Client(service["url"], service["tokens"]["admin"])
    assert team.job(first).kind == "script"

    # a second job that cannot start while the first holds its node's GPUs... (2 nodes x 2):
    # fill the other node too, so the third waits in the queue
    second = ray_job(
        "submit", "--address", service["url"], "--working-dir", str(work), "--no-wait",
        "--entrypoint-num-gpus", "2", "--metadata-json", json.dumps(meta),
        "--", "python", "train.py", "--epochs", "1000",
    )  # fmt: skip
    waiting = ray_job(
        "submit", "--address", service["url"], "--working-dir", str(work), "--no-wait",
        "--entrypoint-num-gpus", "2", "--metadata-json", json.dumps(meta),
        "--", "python", "train.py",
    )  # fmt: skip
    assert second.returncode == 0 and waiting.returncode == 0, waiting.stdout + waiting.stderr
    second_id = second.stdout.split("Job '")[1].split("'")[0]
    waiting_id = waiting.stdout.split("Job '")[1].split("'")[0]
    status = ray_job("status", "--address", service["url"], waiting_id)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "PENDING" in status.stdout and "waiting in gpuyard's queue" in status.stdout
    assert "position" in status.stdout
    stop = ray_job("stop", "--address", service["url"], "--no-wait", waiting_id)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert team.job(waiting_id).state == "CANCELLED"
    team.cancel(second_id)

    prefix = f"runs/planning/{first}-"
    done = drain_and_resume(service, admin, team, first, s3, prefix)
    assert done.state == "SUCCEEDED", done.reason
    assert done.metrics["epoch"] == 15.0 and done.metrics["start"] >= 1.0
    logs = ray_job("logs", "--address", service["url"], first)
    assert logs.returncode == 0
    assert "script attempt 1 on" in logs.stdout and "script attempt 2 on" in logs.stdout
    assert "script done" in logs.stdout
    final = ray_job("status", "--address", service["url"], first)
    assert f"Job '{first}' succeeded" in final.stdout


def test_a_script_whose_workers_leave_the_placement_is_stopped(
    service: dict[str, Any], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(textwrap.dedent(SCRIPT))
    team = Client(service["url"], service["tokens"]["perception"])
    job = team.submit(
        {"name": "rogue", "workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 1,
         "memory_gib_per_worker": 1, "command": "python train.py --ignore-placement --epochs 50"},
        working_dir=str(work),
    )  # fmt: skip
    done = wait_for(lambda: (j := team.job(job.job_id)).state.terminal and j, 180, "the stop")
    assert done.state == "FAILED"
    assert "outside the placement" in done.reason


def test_a_script_that_ignores_its_stop_request_is_killed_after_the_grace_period(
    service: dict[str, Any],
) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    team = Client(service["url"], service["tokens"]["planning"])
    job = team.submit(
        {"name": "stubborn", "workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 1,
         "memory_gib_per_worker": 1,
         "command": "python -c \"import time; print('not listening', flush=True); time.sleep(900)\""}
    )  # fmt: skip
    running = wait_for(
        lambda: (j := team.job(job.job_id)).state == "RUNNING" and j.ray_job_id and j,
        120,
        "the script running",
    )
    ray_jobs = JobSubmissionClient(service["dashboard"])

    def status() -> Any:
        try:
            return ray_jobs.get_job_status(running.ray_job_id)
        except RuntimeError:  # not handed to Ray yet
            return None

    wait_for(lambda: status() == JobStatus.RUNNING, 60, "Ray's job")
    asked = time.time()
    assert team.cancel(job.job_id).state == "CANCELLED"
    wait_for(
        lambda: status() == JobStatus.STOPPED,
        90,
        "the Ray job stopped after the grace period",
    )
    assert time.time() - asked >= 15  # it had its 20 s (less the poll periods) to stop itself
    assert "not listening" in team.logs(job.job_id)
