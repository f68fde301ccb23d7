"""A script job on real GPUs: the service runs ``tests/gpu/gpu_probe_script.py`` as a Ray job
(spec ``command``); the script builds its own ``TorchTrainer`` with
``scheduler.train.scaling_config()``/``run_config()``/``torch_config()``/``loop_config()`` and
the probe loop, and each rank must compute on exactly the GPUs it claimed, one of the sets
the scheduler chose on its node (UUIDs, ``gpu_env.check_records``), over NCCL. The script
refuses to fit (exit 2, in the job's log) when its trainer lacks the setup hook or its driver
the Train controller's switch (``gpu_env.gpu_switches_missing``).

A local single-node Ray cluster with this machine's GPUs and the dashboard (Ray's Jobs API,
which script jobs are submitted to). Where the GPUs allow, a filler job takes the low GPU
indices first, so the script job's gang lands on the high ones.
"""

from __future__ import annotations

import importlib
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gpu.gpu_env import (
    PROBE_SCRIPT,
    GpuRay,
    check_jobs,
    gpu_skip_reason,
    local_gpu_ray,
    ops_principal,
    release_filler,
    split_gpus,
    start_filler,
    start_gpu_service,
    stop_service,
    wait_job,
    wait_placed,
)


def script_jobs_missing() -> str | None:
    """Why script jobs cannot be run by this checkout (None: they can)."""
    try:
        train = importlib.import_module("scheduler.train")
    except ImportError as exc:
        return f"script jobs not available: no module scheduler.train ({exc})"
    if not callable(getattr(train, "scaling_config", None)):
        return "script jobs not available: scheduler.train has no scaling_config"
    from scheduler.runtime.spec import JobSpec

    if "command" not in JobSpec.model_fields:
        return "script jobs not available: the job spec has no 'command' field"
    return None


def skip_reason() -> str | None:
    """Why this module cannot run here (None: it can): NVML, CUDA torch, NCCL, then script
    jobs in this checkout."""
    return gpu_skip_reason(1, nccl=True) or script_jobs_missing()


SKIP = skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

JOB_TIMEOUT_S = 150.0


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[GpuRay]:
    with local_gpu_ray(dashboard=True) as cluster:
        assert cluster.dashboard_url, "ray.init(include_dashboard=True) gave no dashboard URL"
        print(f"local Ray cluster: {cluster.count} GPUs, dashboard {cluster.dashboard_url}")
        yield cluster


def script_spec(workers: int, out: Path) -> dict[str, object]:
    command = f"python {shlex.quote(str(PROBE_SCRIPT))} --out {shlex.quote(str(out))} --tag script"
    return {
        "name": "probe-script",
        "team": "perception",
        "workers": workers,
        "gpus_per_worker": 1,
        "cpus_per_worker": 1.0,
        "memory_gib_per_worker": 2.0,
        "command": command,
    }


def test_a_script_job_computes_on_the_gpus_the_scheduler_chose(
    gpu_cluster: GpuRay, tmp_path: Path
) -> None:
    import ray

    actor = start_gpu_service(gpu_cluster, tmp_path / "state")
    out = tmp_path / "records"
    filler_gpus, workers = split_gpus(gpu_cluster.count)
    try:
        filler = start_filler(actor, out, filler_gpus, JOB_TIMEOUT_S)
        submitted = ray.get(actor.submit.remote(ops_principal(), script_spec(workers, out), None))
        assert getattr(submitted, "kind", "script") == "script", submitted
        job = wait_placed(actor, submitted.job_id, "script")
        print(f"the scheduler placed the script job on GPUs {[list(r) for r in job.chosen]}")
        done = wait_job(actor, job.job_id, ["SUCCEEDED"], JOB_TIMEOUT_S)
        print(f"script job {job.job_id}: Ray job {getattr(done, 'ray_job_id', None)}")
        jobs = [job]
        if filler is not None:
            release_filler(out)
            wait_job(actor, filler.job_id, ["SUCCEEDED"], 60)
            jobs.insert(0, filler)
        check_jobs(actor, jobs, out, gpu_cluster)
    finally:
        release_filler(out)
        stop_service(actor)
