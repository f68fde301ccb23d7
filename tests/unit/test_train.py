"""The training helpers (``scheduler.train``) without Ray: the run context, devices, the
stop/checkpoint predicates and the first-step mark, over a process-local control store."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from scheduler import train
from scheduler.runtime import control
from scheduler.runtime.control import MemoryKV, RunChannel


@pytest.fixture(autouse=True)
def kv() -> Iterator[MemoryKV]:
    store = MemoryKV()
    control.use(store)
    yield store
    control.use(None)


def make_ctx(rank: int = 0, **overrides: Any) -> train.RunContext:
    raw = {
        "job_id": "j-9",
        "run_name": "j-9-0a1b2c3d4e",
        "attempt": 1,
        "checkpoint_interval_s": 10.0,
        "gpu_indices": [[2, 3], [5, 6]],
        "simulated_gpus": True,
        **overrides,
    }
    return train.context({"gpuyard": raw, "lr": 0.1}, world_rank=rank, world_size=2)


def test_context_is_a_typed_view() -> None:
    ctx = make_ctx(rank=1, team="perception", node_ids=["n0", "n1"])
    assert ctx == train.RunContext(
        job_id="j-9",
        run_name="j-9-0a1b2c3d4e",
        attempt=1,
        gpu_indices=((2, 3), (5, 6)),
        node_ids=("n0", "n1"),
        simulated_gpus=True,
        checkpoint_interval_s=10.0,
        world_rank=1,
        world_size=2,
        team="perception",
    )
    assert ctx.my_gpu_indices == (5, 6)
    assert make_ctx(attempt=3).attempt == 3
    assert train.user_config({"gpuyard": {}, "lr": 0.1}) == {"lr": 0.1}


def test_context_without_the_run_info_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(train.ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="config\\['gpuyard'\\] is missing and \\$GPUYARD_RUN"):
        train.context({"lr": 0.1}, world_rank=0, world_size=1)
    with pytest.raises(ValueError, match="gpu_indices for 1 workers, but the run has 2"):
        train.context(
            {"gpuyard": {"job_id": "x", "run_name": "x-1", "gpu_indices": [[0]]}},
            world_rank=0,
            world_size=2,
        )
    with pytest.raises(ValueError, match="lacks run_name"):
        train.context({"gpuyard": {"job_id": "x", "gpu_indices": []}}, world_rank=0, world_size=1)


def test_a_script_reads_the_run_info_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {"job_id": "j-1", "run_name": "j-1-ff", "attempt": 2, "gpu_indices": [[1]],
            "team": "planning", "storage_path": "s3://ckpt/runs"}  # fmt: skip
    monkeypatch.setenv(train.ENV_VAR, json.dumps(info))
    ctx = train.context(world_rank=0, world_size=1)
    assert (ctx.job_id, ctx.attempt, ctx.my_gpu_indices) == ("j-1", 2, (1,))
    assert train.loop_config({"lr": 3e-4}) == {"lr": 3e-4, "gpuyard": info}
    assert train.run_storage(info) == "s3://ckpt/runs/planning"
    with pytest.raises(ValueError, match="reserved"):
        train.loop_config({"gpuyard": 1})
    monkeypatch.setenv(train.ENV_VAR, "{not json")
    with pytest.raises(ValueError, match="GPUYARD_RUN is not JSON"):
        train.run_info()


def test_device_is_the_cpu_for_simulated_gpus() -> None:
    assert train.device(make_ctx()) == torch.device("cpu")


def test_device_refuses_gpus_it_cannot_see(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,5")
    with pytest.raises(RuntimeError, match=r"chose GPUs \[5, 6\] .* hides \[6\]"):
        train.device(make_ctx(rank=1, simulated_gpus=False))


@pytest.mark.parametrize(
    ("visible", "expected"),
    [("5,6", [0, 1]), (None, [5, 6]), ("6,0,1,5", [3, 0])],
)
def test_devices_map_the_chosen_gpus_through_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, expected: list[int]
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ctx = make_ctx(rank=1, simulated_gpus=False)
    assert train.devices(ctx) == [torch.device("cuda", i) for i in expected]
    assert train.device(ctx) == torch.device("cuda", expected[0])


def test_stop_and_checkpoint_predicates() -> None:
    ctx = make_ctx()  # no process group: each answers for itself
    assert not train.stop_requested(ctx)
    RunChannel(ctx.run_name, 1).ask_stop("drain: node-a")
    assert train.stop_requested(ctx)
    assert not train.stop_requested(make_ctx(attempt=2))  # another attempt's request
    assert train.should_checkpoint(ctx, time.time() - 11)
    assert not train.should_checkpoint(ctx, time.time())
    never = make_ctx(checkpoint_interval_s=None)
    assert not train.should_checkpoint(never, 0.0)


def test_the_first_step_is_marked_once_by_rank_zero() -> None:
    name = f"j-{uuid.uuid4().hex}"
    train.mark_first_step(make_ctx(rank=1, run_name=name))
    assert RunChannel(name, 1).first_step_at() is None
    before = time.time()
    train.mark_first_step(make_ctx(run_name=name))
    stamp = RunChannel(name, 1).first_step_at()
    assert stamp is not None and before <= stamp <= time.time()
    train.mark_first_step(make_ctx(run_name=name))
    assert RunChannel(name, 1).first_step_at() == stamp


def test_the_trainer_configs_follow_the_placement() -> None:
    info = {"job_id": "j-3", "run_name": "j-3-aa", "attempt": 1, "team": "mapping",
            "gpu_indices": [[0, 1], [2, 3]], "node_ids": ["aa", "bb"], "gpus_per_worker": 2.0,
            "cpus_per_worker": 4.0, "simulated_gpus": False, "storage_path": "/mnt/ckpt/",
            "max_failures": 3}  # fmt: skip
    scaling = train.scaling_config(info)
    assert (scaling.num_workers, scaling.use_gpu) == (2, True)
    assert scaling.resources_per_worker == {"CPU": 4.0, "GPU": 2.0}
    assert scaling.label_selector == [{"ray.io/node-id": "aa"}, {"ray.io/node-id": "bb"}]
    with pytest.raises(ValueError, match="num_workers is set by the scheduler"):
        train.scaling_config(info, num_workers=4)
    run = train.run_config(info, {"env_vars": {"A": "1"}, "pip": ["six"]})
    assert (run.name, run.storage_path) == ("j-3-aa", "/mnt/ckpt/mapping")
    assert run.failure_config.max_failures == 3
    env = run.worker_runtime_env
    assert env["pip"] == ["six"] and env["env_vars"]["A"] == "1"
    assert json.loads(env["env_vars"][train.ENV_VAR]) == info
    assert env["env_vars"]["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"] == "1"
    assert train.torch_config(info).backend == "nccl"
    assert train.torch_config({**info, "simulated_gpus": True}).backend == "gloo"


def test_each_worker_process_claims_one_placed_slot_of_its_node(
    monkeypatch: pytest.MonkeyPatch, kv: MemoryKV
) -> None:
    import ray

    info = {"job_id": "j-4", "run_name": "j-4-bb", "attempt": 1, "simulated_gpus": False,
            "gpus_per_worker": 2, "gpu_indices": [[6, 7], [2, 3], [0, 1]],
            "node_ids": ["n1", "n2", "n1"]}  # fmt: skip
    monkeypatch.setenv(train.ENV_VAR, json.dumps(info))

    class Here:
        def get_node_id(self) -> str:
            return "n1"

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Here())
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    seen = []
    pids = iter([101, 102, 103, 104, 105])
    monkeypatch.setattr(os, "getpid", lambda: next(pids))
    live = {101, 102, 103}
    monkeypatch.setattr(train, "_alive", lambda pid: pid in live)
    for _ in range(2):  # two worker processes on n1
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        train.claim_gpus()
        seen.append(
            (os.environ["CUDA_VISIBLE_DEVICES"], os.environ[train.GPUS_ENV], ray.get_gpu_ids())
        )
    assert seen == [("0,1,6,7", "6,7", ["6", "7"]), ("0,1,6,7", "0,1", ["0", "1"])]
    with pytest.raises(RuntimeError, match="more GPU workers on Ray node n1 than the 2 placed"):
        train.claim_gpus()  # a third process on n1 while both holders live: no slot left
    assert "more GPU workers" in (RunChannel("j-4-bb", 1).violation() or "")
    live.clear()  # Ray Train restarts the crashed group: the new processes take the slots
    live.update({104, 105})
    restarted = []
    for _ in range(2):
        train.claim_gpus()
        restarted.append(os.environ[train.GPUS_ENV])
    assert restarted == ["6,7", "0,1"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ctx = train.context({"gpuyard": info}, world_rank=0, world_size=3, check_placement=False)
    monkeypatch.setenv(train.GPUS_ENV, "6,7")
    assert train.devices(ctx) == [torch.device("cuda", 2), torch.device("cuda", 3)]


def test_claiming_is_a_no_op_for_simulated_gpus_and_outside_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(train.ENV_VAR, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    train.claim_gpus()
    info = {"job_id": "j", "run_name": "j-1", "gpu_indices": [[0]], "simulated_gpus": True,
            "gpus_per_worker": 1}  # fmt: skip
    monkeypatch.setenv(train.ENV_VAR, json.dumps(info))
    train.claim_gpus()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    real = {**info, "simulated_gpus": False}
    run = train.run_config({**real, "storage_path": "/x"})
    assert run.worker_runtime_env["worker_process_setup_hook"] == train.SETUP_HOOK
    assert (
        "worker_process_setup_hook"
        not in train.run_config({**info, "storage_path": "/x"}).worker_runtime_env
    )


def test_every_run_goes_without_ray_trains_preemption_watcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The switch is the one Ray Train's controller reads, and it reads as off, for the
    runner's controllers and a script's driver alike, simulated GPUs or real."""
    from ray._private import ray_constants
    from ray.train.v2._internal import constants

    from scheduler.runtime.executor import RunRequest, WorkerSlot, script_runtime_env

    assert list(train.RUN_ENV) == [constants.ENABLE_PREEMPTION_WATCHER_ENV_VAR]
    for key, value in train.RUN_ENV.items():
        monkeypatch.setenv(key, value)
        assert ray_constants.env_bool(key, constants.DEFAULT_ENABLE_PREEMPTION_WATCHER) is False
    for simulated in (True, False):
        info = {"job_id": "j-3", "run_name": "j-3-aa", "attempt": 1, "gpu_indices": [[0]],
                "gpus_per_worker": 1.0, "simulated_gpus": simulated}  # fmt: skip
        assert train.worker_env(info).items() >= train.RUN_ENV.items()
    req = RunRequest(
        job_id="j-4", attempt=1, entrypoint=None, config={},
        workers=(WorkerSlot("node-a", "aa", (0,)),), cpus_per_worker=1.0, gpus_per_worker=1.0,
        storage_path="/tmp/ckpt", log_path="/tmp/j-4.log", simulated_gpus=True,
        command="python train.py", runtime_env={"env_vars": {"A": "1"}},
    )  # fmt: skip
    env = script_runtime_env(req)["env_vars"]
    assert env["A"] == "1" and env.items() >= train.RUN_ENV.items()
