"""Real CUDA Ray Train runs with NCCL whose workers must compute on exactly the GPU indices
the scheduler chose, on a local single-node Ray cluster with this machine's GPUs
(``ray.init(num_gpus=N)``, ``simulated_gpus=False``).

1. The executor's own path (``RunRequest`` -> ``build_trainer`` -> ``fit``, in this driver)
   with the highest GPU indices, highest first (rank 0 on the last GPU): Ray's own GPU
   assignment starts at 0, so a worker that followed Ray's pick, or fell back to ``cuda:0``,
   is caught. Its own local cluster, started with ``scheduler.train.CONTROLLER_ENV`` in the
   environment (the Train controller, an actor of this driver, inherits the raylet's), as the
   service's runner actors get it from ``new_runner``; and the trainer's runtime env must run
   the setup hook ``scheduler.train.claim_gpus`` (checked before fitting).
2. The service (scheduler actor, real NVML samplers, runner actors): a filler job takes the
   low GPU indices first, then the job under test is placed on the high ones; both run the
   probe loop at once, and each rank is checked against the placement the service reports.
   A cluster without ``CONTROLLER_ENV`` in the driver's environment, so that the runners'
   own (``new_runner(..., simulated=False)``) is what is tested.

Each worker claims one of the GPU sets the scheduler chose on its node (two ranks may swap
theirs); its device is identified by its UUID (torch) against NVML's UUID of the claimed
index (``gpu_env.check_records``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gpu.gpu_env import (
    PROBE_ENTRYPOINT,
    GpuRay,
    check_jobs,
    check_records,
    describe,
    fail_unless_clean,
    gpu_skip_reason,
    gpu_switches_missing,
    local_gpu_ray,
    ops_principal,
    probe_spec,
    read_records,
    release_filler,
    split_gpus,
    start_filler,
    start_gpu_service,
    stop_service,
    wait_job,
    wait_placed,
)


def skip_reason() -> str | None:
    """Why this module cannot run here (None: it can): NVML, CUDA torch and NCCL."""
    return gpu_skip_reason(1, nccl=True)


SKIP = skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

FIT_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 120.0


@pytest.fixture
def executor_cluster() -> Iterator[GpuRay]:
    """A cluster whose processes inherit the Train controller's switches from this driver
    (a trainer built here runs its controller as an actor of this driver's job)."""
    from scheduler import train

    with local_gpu_ray(env=train.CONTROLLER_ENV) as cluster:
        print(f"local Ray cluster: {cluster.count} GPUs: {[g.name for g in cluster.gpus]}")
        yield cluster


@pytest.fixture
def gpu_cluster() -> Iterator[GpuRay]:
    with local_gpu_ray() as cluster:
        print(f"local Ray cluster: {cluster.count} GPUs: {[g.name for g in cluster.gpus]}")
        yield cluster


def _request(cluster: GpuRay, tmp_path: Path, chosen: list[int], out: Path) -> Any:
    """The executor's ``RunRequest`` for one worker per chosen GPU, as ``runs.run_request``
    builds it."""
    from scheduler.runtime.executor import RunRequest, WorkerSlot

    job_id = f"gpu-exec-{uuid.uuid4().hex[:8]}"
    (tmp_path / "control").mkdir(exist_ok=True)
    wanted: dict[str, Any] = {
        "job_id": job_id,
        "attempt": 0,
        "entrypoint": PROBE_ENTRYPOINT,
        "config": {"probe_out": str(out), "probe_tag": "exec"},
        "workers": tuple(WorkerSlot(cluster.node, cluster.node_id, (g,)) for g in chosen),
        "cpus_per_worker": 1.0,
        "gpus_per_worker": 1.0,
        "storage_path": str(tmp_path / "checkpoints"),
        "log_path": str(tmp_path / "control" / "job.log"),
        "run_name": job_id,
        "team": "gpu-tests",
        "simulated_gpus": False,
        "max_failures": 0,
        "controller_failure_limit": 0,
    }
    return RunRequest(**wanted)


def test_an_executor_run_computes_on_the_highest_gpus_it_was_given(
    executor_cluster: GpuRay, tmp_path: Path
) -> None:
    from scheduler.runtime.executor import build_trainer

    cluster = executor_cluster
    n = cluster.count
    chosen = [n - 1 - rank for rank in range(min(2, n))]  # e.g. [7, 6]: never Ray's [0, 1]
    out = tmp_path / "records"
    trainer = build_trainer(_request(cluster, tmp_path, chosen, out))
    missing = gpu_switches_missing(trainer.run_config.worker_runtime_env, os.environ)
    assert not missing, "build_trainer's trainer, before fit(): " + "; ".join(missing)
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # reported below, with the ranks' records
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    thread.join(FIT_TIMEOUT_S)
    records = read_records(out, "exec", len(chosen))
    print(f"fit: {time.monotonic() - started:.1f} s\n{describe(records, 'executor run')}")
    problems = check_records(
        records,
        [[g] for g in chosen],
        cluster.uuids,
        "executor run",
        nodes=[cluster.node_id] * len(chosen),
    )
    if thread.is_alive():
        problems.insert(0, f"fit() did not return within {FIT_TIMEOUT_S:g} s")
    elif "error" in outcome:
        problems.insert(0, f"fit() raised {type(outcome['error']).__name__}: {outcome['error']}")
    elif outcome["result"].error is not None:
        problems.insert(0, f"the run failed: {outcome['result'].error}")
    fail_unless_clean(problems, records, "executor run")


def test_the_service_runs_each_job_on_the_gpus_it_placed_it_on(
    gpu_cluster: GpuRay, tmp_path: Path
) -> None:
    import ray

    actor = start_gpu_service(gpu_cluster, tmp_path / "state")
    out = tmp_path / "records"
    filler_gpus, workers = split_gpus(gpu_cluster.count)
    try:
        # the service samples real NVML on this node
        deadline = time.monotonic() + 30
        while True:
            (node,) = ray.get(actor.nodes.remote())
            if (node.gpus and node.sampled_at_s is not None) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert node.alive and not node.simulated, node
        assert [g.index for g in node.gpus] == list(range(gpu_cluster.count)), node
        assert all(g.model.startswith("NVIDIA") for g in node.gpus), node

        filler = start_filler(actor, out, filler_gpus, JOB_TIMEOUT_S)
        spec = probe_spec("probe", "perception", workers, 1, out, "probe")
        job_id = ray.get(actor.submit.remote(ops_principal(), spec, None)).job_id
        probe = wait_placed(actor, job_id, "probe")
        print(f"the scheduler placed the probe job on GPUs {[list(r) for r in probe.chosen]}")
        wait_job(actor, job_id, ["SUCCEEDED"], JOB_TIMEOUT_S)
        jobs = [probe]
        if filler is not None:
            release_filler(out)
            wait_job(actor, filler.job_id, ["SUCCEEDED"], 60)
            jobs.insert(0, filler)
        check_jobs(actor, jobs, out, gpu_cluster)
    finally:
        release_filler(out)
        stop_service(actor)
