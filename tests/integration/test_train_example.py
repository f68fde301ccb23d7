"""The example job really trains under Ray Train: loss goes down, a checkpoint per epoch, a
second run resumes at the next epoch, and a STOP request ends a run after a checkpoint.

Fake GPUs (a worker node advertising ``GPU: 2``) with CPU torch: ``use_gpu=True``,
``TorchConfig(backend="gloo")`` and ``simulated_gpus`` in the gpuyard context (see
/work/shared/notes/ray-2.60.md, section 3). Stop requests, metrics and the first step travel
over Ray's KV (``scheduler.runtime.control``), which this test's driver reads and writes.
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
import torch

from scheduler import train
from scheduler.runtime.control import RunChannel

ENTRY_CONFIG = {"epochs": 2, "batch_size": 32, "samples": 128, "image_size": 32, "seed": 0}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "RAY_AUTH_MODE")}
    # more fake GPUs than CUDA_VISIBLE_DEVICES lists is refused (note section 5)
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 2,
            "num_gpus": 0,
            "include_dashboard": False,
            "object_store_memory": 80 * 1024**2,
        },
    )
    cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=80 * 1024**2)
    cluster.wait_for_nodes()
    cluster.connect()
    try:
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fit(name: str, storage: Path, **config: Any) -> Any:
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from examples.driving_policy import train_loop

    gpuyard = {
        "job_id": name,
        "run_name": name,
        "attempt": 1,
        "checkpoint_interval_s": None,
        "gpu_indices": [[0], [1]],
        "simulated_gpus": True,
    }
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={**ENTRY_CONFIG, **config, "gpuyard": gpuyard},
        scaling_config=ScalingConfig(
            num_workers=2, use_gpu=True, resources_per_worker={"GPU": 1, "CPU": 1}
        ),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=None),
        ),
    )
    return trainer.fit()


def reported(result: Any) -> list[dict[str, Any]]:
    """Metrics of every checkpoint the run has, in epoch order."""
    return sorted((m for _, m in result.best_checkpoints), key=lambda m: (m["epoch"], m["stopped"]))


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.glob("checkpoint_*") if p.is_dir()]


def stop_after_checkpoints(run_dir: Path, channel: RunChannel, count: int) -> threading.Thread:
    """Ask the run to stop once ``run_dir`` holds ``count`` checkpoints (what the service
    does to preempt a job part-way through)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(checkpoint_dirs(run_dir)) < count:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        channel.ask_stop("preempt: a test")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.ray
def test_the_example_trains_resumes_and_stops(ray_cluster: None, tmp_path: Path) -> None:
    name = f"drive-{uuid.uuid4().hex[:8]}"
    channel = RunChannel(name, 1)

    # 1. two epochs: the loss goes down, one checkpoint per epoch, the first step is marked
    first = fit(name, tmp_path)
    assert first.error is None
    epochs = reported(first)
    assert [(m["epoch"], m["start_epoch"], m["stopped"]) for m in epochs] == [
        (0.0, 0.0, 0.0),
        (1.0, 0.0, 0.0),
    ]
    assert epochs[1]["loss"] < epochs[0]["loss"]
    assert len(checkpoint_dirs(tmp_path / name)) == 2
    marked = channel.first_step_at()
    assert marked is not None and marked <= time.time()
    assert channel.metrics() == {k: pytest.approx(v) for k, v in epochs[1].items()}

    # 2. same run name: Ray resumes it and the loop starts at the next epoch; once that epoch
    # is checkpointed the service asks it to stop: it checkpoints and returns long before 50
    watcher = stop_after_checkpoints(tmp_path / name, channel, count=3)
    second = fit(name, tmp_path, epochs=50, step_sleep_s=0.05)
    watcher.join(timeout=5)
    assert second.error is None
    assert (second.metrics["stopped"], second.metrics["start_epoch"]) == (1.0, 2.0)
    last = int(second.metrics["epoch"])
    assert 2 <= last < 49
    after = reported(second)
    assert [(m["epoch"], m["stopped"]) for m in after] == [
        *((float(e), 0.0) for e in range(last + 1)),
        (float(last), 1.0),
    ]
    assert [m["start_epoch"] for m in after[2:]] == [2.0] * (len(after) - 2)
    assert after[2]["loss"] < epochs[0]["loss"]
    assert channel.first_step_at() == marked  # kept on resume
    assert second.checkpoint is not None
    with second.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / train.STATE_FILE, weights_only=True)
    assert set(state) == {"model", "optimizer", "epoch"}
    assert state["epoch"] == last
