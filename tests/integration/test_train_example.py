"""The example job really trains under Ray Train: loss goes down, a checkpoint per epoch, a
second run resumes at the next epoch, and a STOP request ends a run after a checkpoint.

Fake GPUs (a worker node advertising ``GPU: 2``) with CPU torch: ``use_gpu=True``,
``TorchConfig(backend="gloo")`` and ``simulated_gpus`` in the gpuyard context (see
/work/shared/notes/ray-2.60.md, section 3). The trainkit checks that need no Ray are at the end.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from scheduler.runtime import trainkit

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


def fit(name: str, storage: Path, control: Path, **config: Any) -> Any:
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from examples.driving_policy import train_loop

    gpuyard = {
        "job_id": name,
        "control_dir": str(control),
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


def stop_after_checkpoints(run_dir: Path, control: Path, count: int) -> threading.Thread:
    """Write the STOP request once ``run_dir`` holds ``count`` checkpoints (what the service
    does to preempt a job part-way through)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(checkpoint_dirs(run_dir)) < count:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        (control / trainkit.STOP_FILE).touch()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.ray
def test_the_example_trains_resumes_and_stops(ray_cluster: None, tmp_path: Path) -> None:
    name = f"drive-{uuid.uuid4().hex[:8]}"
    control = tmp_path / "control"
    control.mkdir()

    # 1. two epochs: the loss goes down, one checkpoint per epoch, the first step is marked
    first = fit(name, tmp_path, control)
    assert first.error is None
    epochs = reported(first)
    assert [(m["epoch"], m["start_epoch"], m["stopped"]) for m in epochs] == [
        (0.0, 0.0, 0.0),
        (1.0, 0.0, 0.0),
    ]
    assert epochs[1]["loss"] < epochs[0]["loss"]
    assert len(checkpoint_dirs(tmp_path / name)) == 2
    marked = float((control / trainkit.FIRST_STEP_FILE).read_text())
    assert marked <= time.time()
    live = json.loads((control / trainkit.METRICS_FILE).read_text())
    assert live == {k: pytest.approx(v) for k, v in epochs[1].items()}

    # 2. same run name: Ray resumes it and the loop starts at the next epoch; once that epoch
    # is checkpointed the service asks it to stop: it checkpoints and returns long before 50
    watcher = stop_after_checkpoints(tmp_path / name, control, count=3)
    second = fit(name, tmp_path, control, epochs=50, step_sleep_s=0.05)
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
    assert float((control / trainkit.FIRST_STEP_FILE).read_text()) == marked  # kept on resume
    assert second.checkpoint is not None
    with second.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / trainkit.STATE_FILE, weights_only=True)
    assert set(state) == {"model", "optimizer", "epoch"}
    assert state["epoch"] == last


# --- trainkit without Ray --------------------------------------------------------------------


def make_ctx(tmp_path: Path, rank: int = 0, **overrides: Any) -> trainkit.RunContext:
    raw = {
        "job_id": "j-9",
        "control_dir": str(tmp_path),
        "checkpoint_interval_s": 10.0,
        "gpu_indices": [[2, 3], [5, 6]],
        "simulated_gpus": True,
        **overrides,
    }
    return trainkit.context({"gpuyard": raw, "lr": 0.1}, world_rank=rank, world_size=2)


def test_context_is_a_typed_view(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, rank=1)
    assert ctx == trainkit.RunContext(
        job_id="j-9",
        control_dir=tmp_path,
        checkpoint_interval_s=10.0,
        gpu_indices=((2, 3), (5, 6)),
        simulated_gpus=True,
        world_rank=1,
        world_size=2,
    )
    assert ctx.my_gpu_indices == (5, 6)
    assert make_ctx(tmp_path, attempt=3).attempt == 3
    assert trainkit.user_config({"gpuyard": {}, "lr": 0.1}) == {"lr": 0.1}


def test_context_without_the_service_key_says_so() -> None:
    with pytest.raises(ValueError, match="config\\['gpuyard'\\] is missing"):
        trainkit.context({"lr": 0.1}, world_rank=0, world_size=1)
    with pytest.raises(ValueError, match="has 1 entries for 2 workers"):
        trainkit.context(
            {"gpuyard": {"job_id": "x", "control_dir": "/tmp", "gpu_indices": [[0]]}},
            world_rank=0,
            world_size=2,
        )
    with pytest.raises(ValueError, match="lacks control_dir"):
        trainkit.context(
            {"gpuyard": {"job_id": "x", "gpu_indices": []}}, world_rank=0, world_size=1
        )


def test_device_is_the_cpu_for_simulated_gpus(tmp_path: Path) -> None:
    assert trainkit.device(make_ctx(tmp_path)) == torch.device("cpu")


def test_device_refuses_gpus_it_cannot_see(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,5")
    with pytest.raises(RuntimeError, match=r"chose GPUs \[5, 6\] .* hides \[6\]"):
        trainkit.device(make_ctx(tmp_path, rank=1, simulated_gpus=False))


@pytest.mark.parametrize(
    ("visible", "expected"),
    [("5,6", [0, 1]), (None, [5, 6]), ("6,0,1,5", [3, 0])],
)
def test_devices_map_the_chosen_gpus_through_cuda_visible_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, visible: str | None, expected: list[int]
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ctx = make_ctx(tmp_path, rank=1, simulated_gpus=False)
    assert trainkit.devices(ctx) == [torch.device("cuda", i) for i in expected]
    assert trainkit.device(ctx) == torch.device("cuda", expected[0])


def test_stop_and_checkpoint_predicates(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)  # no process group: each answers for itself
    assert not trainkit.stop_requested(ctx)
    (tmp_path / trainkit.STOP_FILE).touch()
    assert trainkit.stop_requested(ctx)
    assert trainkit.should_checkpoint(ctx, time.time() - 11)
    assert not trainkit.should_checkpoint(ctx, time.time())
    never = make_ctx(tmp_path, checkpoint_interval_s=None)
    assert not trainkit.should_checkpoint(never, 0.0)


def test_the_first_step_is_marked_once_by_rank_zero(tmp_path: Path) -> None:
    trainkit.mark_first_step(make_ctx(tmp_path, rank=1))
    assert not (tmp_path / trainkit.FIRST_STEP_FILE).exists()
    ctx = make_ctx(tmp_path, job_id=f"j-{uuid.uuid4().hex}")
    before = time.time()
    trainkit.mark_first_step(ctx)
    stamp = (tmp_path / trainkit.FIRST_STEP_FILE).read_text()
    assert before <= float(stamp) <= time.time()
    trainkit.mark_first_step(ctx)
    assert (tmp_path / trainkit.FIRST_STEP_FILE).read_text() == stamp
