"""The GPU tests' skip path, exercised where there is no GPU (CI): every ``tests/gpu`` module
is marked ``gpu`` and skips itself with a reason naming what is missing; and the check that
compares where each rank computed with where the scheduler placed it catches a worker on
the wrong GPU."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pynvml
import pytest
import torch

from tests.gpu import gpu_env

MODULES = (
    "tests.gpu.test_nvml_real",
    "tests.gpu.test_cuda_train_pinned",
    "tests.gpu.test_script_job_gpu",
)


def _nvml_has_no_library() -> None:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def _nvml_sees(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: count)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)


def _machine_has_nvml() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.parametrize("name", MODULES)
def test_each_gpu_module_is_marked_and_skips_without_nvml(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module: ModuleType = importlib.import_module(name)
    marks = module.pytestmark
    assert [m.name for m in marks] == ["gpu", "skipif"]
    (skipif,) = (m for m in marks if m.name == "skipif")
    assert skipif.args == (module.SKIP is not None,)
    assert skipif.kwargs["reason"] == (module.SKIP or "")
    monkeypatch.setattr(pynvml, "nvmlInit", _nvml_has_no_library)
    assert module.skip_reason() == "no NVIDIA GPU: NVML Shared Library Not Found"


@pytest.mark.parametrize("name", MODULES)
def test_on_this_machine_the_module_skips_for_want_of_a_gpu(name: str) -> None:
    module = importlib.import_module(name)
    if _machine_has_nvml():
        pytest.skip("this machine has NVML: the no-GPU skip path is not taken here")
    print(f"{name}: {module.SKIP}")
    assert module.SKIP is not None and "no NVIDIA GPU" in module.SKIP
    assert module.SKIP.startswith("no NVIDIA GPU: ")


def test_the_reason_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _nvml_sees(monkeypatch, 0)
    assert gpu_env.gpu_skip_reason() == "no NVIDIA GPU: NVML started but sees 0 GPUs"
    _nvml_sees(monkeypatch, 1)
    assert gpu_env.gpu_skip_reason(2) == "needs 2 NVIDIA GPUs, NVML sees 1"
    assert gpu_env.gpu_skip_reason(1, cuda_torch=False) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = gpu_env.gpu_skip_reason(1)
    assert reason is not None and reason.startswith("no NVIDIA GPU usable by torch: ")
    if torch.version.cuda is None:
        assert "CPU-only build" in reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_env.gpu_skip_reason(1) is None
    assert gpu_env.gpu_skip_reason(1, nccl=True) in (
        None,
        f"no NCCL: torch {torch.__version__} was built without it",
    )


def test_script_jobs_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("tests.gpu.test_script_job_gpu")
    missing = module.script_jobs_missing()
    assert missing is None or missing.startswith("script jobs not available")
    fake = ModuleType("scheduler.train")
    monkeypatch.setitem(sys.modules, "scheduler.train", fake)
    assert module.script_jobs_missing() == (
        "script jobs not available: scheduler.train has no scaling_config"
    )


# --- the comparison of where ranks computed with where they were placed ----------------------

UUIDS = {i: f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd" for i in range(8)}
NODE = "a" * 56  # a Ray node id
OTHER = "b" * 56


def _bare(gpu: int) -> str:
    return gpu_env.normalise_uuid(UUIDS[gpu]).upper()  # torch's form: no "GPU-" prefix


def _record(
    rank: int,
    gpu: int,
    world: int = 2,
    *,
    claimed: int | None = None,
    node: str = NODE,
    visible: str = "6,7",
    **overrides: Any,
) -> dict[str, Any]:
    """Rank ``rank``'s probe record: the scheduler chose ``gpu`` for it on ``node``, and its
    process claimed ``claimed`` (default: ``gpu``) and computed there, as it should."""
    mine = gpu if claimed is None else claimed
    record = {
        "rank": rank,
        "chosen": [gpu],
        "placed_node_id": node,
        "ray_node_id": node,
        "gpuyard_gpus": f"{mine}",
        "world_size": world,
        "devices": ["cuda:0"],
        "devices_uuids": [_bare(mine)],
        "device": "cuda:0",
        "device_uuid": _bare(mine),
        "current_device": 0,
        "current_uuid": _bare(mine),
        "entry_device": 0,
        "entry_uuid": _bare(mine),
        "backend": "nccl",
        "all_reduce": world * (world + 1) / 2,
        "cuda_visible_devices": visible,
        "ray_gpu_ids": [str(mine)],
        "nvml_gpus_with_pid": [mine],
    }
    record.update(overrides)
    return record


def _check(records: dict[int, dict[str, Any]], chosen: list[list[int]], **kw: Any) -> list[str]:
    nodes = kw.pop("nodes", [NODE] * len(chosen))
    return gpu_env.check_records(records, chosen, UUIDS, "probe", nodes=nodes, **kw)


def test_uuids_normalise_across_nvml_and_torch() -> None:
    assert gpu_env.normalise_uuid("GPU-AbC-1") == "abc-1" == gpu_env.normalise_uuid(b"abc-1")


def test_gpu_lists_parse() -> None:
    assert gpu_env.gpu_list("6, 7") == [6, 7] == gpu_env.gpu_list([6, "7"])
    assert gpu_env.gpu_list("") == []
    assert gpu_env.gpu_list(None) is None and gpu_env.gpu_list("GPU-1") is None


def test_records_of_ranks_on_their_chosen_gpus_pass() -> None:
    records = {0: _record(0, 7), 1: _record(1, 6)}
    assert _check(records, [[7], [6]]) == []
    text = gpu_env.describe(records)
    assert f"rank 1 on Ray node {NODE}: chosen [6], claimed GPUYARD_GPUS='6'" in text


def test_two_ranks_on_one_node_may_swap_their_sets() -> None:
    records = {0: _record(0, 7, claimed=6), 1: _record(1, 6, claimed=7)}
    assert _check(records, [[7], [6]]) == []
    pairs = {
        0: _record(0, 4, claimed=6, visible="4,5,6,7", gpuyard_gpus="6,7"),
        1: _record(1, 6, claimed=4, visible="4,5,6,7", gpuyard_gpus="4,5"),
    }
    pairs[0].update(chosen=[4, 5], devices_uuids=[_bare(6), _bare(7)], nvml_gpus_with_pid=[6, 7])
    pairs[1].update(chosen=[6, 7], devices_uuids=[_bare(4), _bare(5)], nvml_gpus_with_pid=[4, 5])
    assert _check(pairs, [[4, 5], [6, 7]]) == []
    pairs[1]["devices_uuids"] = [_bare(5), _bare(4)]
    (problem,) = _check(pairs, [[4, 5], [6, 7]])
    assert problem.startswith(f"probe rank 1 on Ray node {NODE} (GPU sets chosen there: ")
    assert "its devices are ['GPU 5', 'GPU 4']" in problem
    assert "want its claimed GPUs [4, 5] in that order" in problem


def test_ranks_on_two_nodes_claim_only_their_nodes_sets() -> None:
    records = {
        0: _record(0, 3, visible="3"),
        1: _record(1, 3, node=OTHER, visible="3"),
    }
    assert _check(records, [[3], [3]], nodes=[NODE, OTHER]) == []
    records[1] = _record(1, 3, node=OTHER, visible="3", ray_node_id=NODE)
    problems = _check(records, [[3], [3]], nodes=[NODE, OTHER])
    assert any(
        p.startswith(f"probe rank 1 on Ray node {OTHER}")
        and f"it ran on Ray node {NODE}, not where the scheduler placed it" in p
        for p in problems
    ), problems


def test_the_same_slot_claimed_twice_is_caught() -> None:
    records = {0: _record(0, 7), 1: _record(1, 6, claimed=7)}
    problems = _check(records, [[7], [6]])
    assert (
        f"probe on Ray node {NODE}: ranks [0, 1] all claimed GPUs [7], a set the scheduler "
        "chose once there (sets chosen: [[7], [6]])" in problems
    ), problems
    assert any(
        f"probe on Ray node {NODE}: no rank claimed GPUs [6]" in p
        and "(claims: rank 0: [7], rank 1: [7])" in p
        for p in problems
    ), problems
    assert not any("rank 0 on" in p for p in problems), problems  # rank 0 did right


def test_a_set_the_scheduler_never_chose_on_that_node_is_caught() -> None:
    records = {0: _record(0, 7), 1: _record(1, 6, claimed=5)}
    problems = _check(records, [[7], [6]])
    assert (
        f"probe rank 1 on Ray node {NODE} (GPU sets chosen there: [[7], [6]]): it claimed GPUs "
        "[5], not one of the sets the scheduler chose on that node"
    ) in problems, problems
    assert any("no rank claimed GPUs [6]" in p for p in problems), problems
    # set [3] was chosen, but for a rank on another node
    records = {0: _record(0, 7, visible="7"), 1: _record(1, 3, node=OTHER, visible="3")}
    records[0].update(gpuyard_gpus="3", devices_uuids=[_bare(3)], device_uuid=_bare(3))
    problems = _check(records, [[7], [3]], nodes=[NODE, OTHER])
    assert any(
        p.startswith(f"probe rank 0 on Ray node {NODE} (GPU sets chosen there: [[7]])")
        and "it claimed GPUs [3], not one of the sets" in p
        for p in problems
    ), problems


def test_a_rank_without_a_claim_is_caught() -> None:
    records = {0: _record(0, 7), 1: _record(1, 6, gpuyard_gpus=None)}
    problems = _check(records, [[7], [6]])
    assert any(
        "rank 1" in p and "GPUYARD_GPUS=None: the worker claimed no GPU set" in p for p in problems
    ), problems
    assert not any("no rank claimed" in p for p in problems), problems  # rank 1's unknown


def test_a_rank_that_computed_on_gpu_0_is_caught() -> None:
    zero = _bare(0)
    records = {
        0: _record(0, 7),
        1: _record(1, 6, device_uuid=zero, devices_uuids=[zero], current_uuid=zero),
    }
    problems = _check(records, [[7], [6]])
    outside = "outside the job's GPUs [6, 7]"
    assert (
        f"probe rank 1 on Ray node {NODE} (GPU sets chosen there: [[7], [6]]): it computed on "
        f"GPU 0, not its claimed first GPU 6, {outside}"
    ) in problems, problems
    assert any("devices are ['GPU 0']" in p for p in problems), problems
    assert any("the current CUDA device is GPU 0, not its claimed first GPU 6" in p
               for p in problems), problems  # fmt: skip
    assert not any("rank 0" in p for p in problems), problems


def test_ray_trains_entry_device_must_be_the_claimed_first_gpu() -> None:
    inside = _record(0, 7, claimed=6, entry_uuid=_bare(7), entry_device=1)
    records = {0: inside, 1: _record(1, 6, claimed=7)}
    (problem,) = _check(records, [[7], [6]])
    assert problem.endswith(
        "before the loop ran, Ray Train made GPU 7 (cuda:1) current, not its claimed first GPU 6"
    ), problem
    stray = _record(0, 7, world=1, all_reduce=1.0, visible="7", entry_uuid=_bare(0))
    (problem,) = _check({0: stray}, [[7]])
    assert problem.endswith(
        "Ray Train made GPU 0 (cuda:0) current, not its claimed first GPU 7, outside the "
        "job's GPUs [7]"
    ), problem


def test_a_trainer_without_the_gpu_switches_is_refused_before_fitting(tmp_path: Path) -> None:
    from scheduler import train

    env = {
        "worker_process_setup_hook": train.SETUP_HOOK,
        "env_vars": {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"},
    }
    assert gpu_env.gpu_switches_missing(env, dict(train.CONTROLLER_ENV)) == []
    problems = gpu_env.gpu_switches_missing({"env_vars": {}}, {})
    assert len(problems) == 2 + len(train.CONTROLLER_ENV), problems
    assert problems[0].startswith("the workers' runtime env has worker_process_setup_hook=None")
    assert "TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES=None in the Train controller's" in problems[-1]
    info = {
        "job_id": "j",
        "run_name": "j",
        "gpu_indices": [[7], [6]],
        "node_ids": [NODE, NODE],
        "gpus_per_worker": 1,
        "simulated_gpus": False,
        "storage_path": str(tmp_path),
    }
    run_config = train.run_config(info)  # what build_trainer and a script's trainer use
    assert gpu_env.gpu_switches_missing(run_config.worker_runtime_env, train.CONTROLLER_ENV) == []


def test_ray_setting_cuda_visible_devices_is_caught() -> None:
    records = {0: _record(0, 7), 1: _record(1, 6, visible="0,1")}
    problems = _check(records, [[7], [6]])
    assert any(
        "rank 1" in p
        and "CUDA_VISIBLE_DEVICES='0,1', want the union of the GPUs chosen on the node, '6,7'" in p
        for p in problems
    ), problems


def test_gloo_a_wrong_sum_a_stray_context_and_a_failed_rank_are_caught() -> None:
    records = {
        0: _record(0, 7, backend="gloo", all_reduce=1.0, nvml_gpus_with_pid=[0, 7]),
        1: _record(1, 6, error="RuntimeError: CUDA_VISIBLE_DEVICES='0,1' hides [6]"),
    }
    problems = _check(records, [[7], [6]])
    text = "\n".join(problems)
    where = f"probe rank 0 on Ray node {NODE} (GPU sets chosen there: [[7], [6]])"
    assert f"{where}: torch.distributed backend 'gloo', not nccl" in problems
    assert f"{where}: all_reduce gave 1.0, want 3.0" in problems
    assert "holds a CUDA context on GPUs [0]" in text
    assert (
        f"probe rank 1 on Ray node {NODE} (GPU sets chosen there: [[7], [6]]): the loop failed: "
        "RuntimeError: CUDA_VISIBLE_DEVICES='0,1' hides [6] (GPUYARD_GPUS='6'"
    ) in text
    assert len(problems) == 4, problems  # the failed rank's claim still counts on its node
    assert gpu_env.check_records({}, [[7]], UUIDS, nodes=[NODE]) == [
        f"run rank 0 on Ray node {NODE} (GPU sets chosen there: [[7]]): no record (the rank "
        "never reached the probe)"
    ]


def test_an_unknown_pid_namespace_leaves_the_context_check_out() -> None:
    records = {0: _record(0, 3, world=1, nvml_gpus_with_pid=[], all_reduce=1.0, visible="3")}
    assert _check(records, [[3]]) == []


def test_the_filler_takes_the_low_gpus_and_the_model_names() -> None:
    assert [gpu_env.split_gpus(n) for n in (1, 2, 3, 8)] == [(0, 1), (1, 1), (1, 2), (6, 2)]
    assert gpu_env.short_model("NVIDIA H100 80GB HBM3") == "H100"
    assert gpu_env.short_model("NVIDIA H200") == "H200"
    assert gpu_env.short_model("NVIDIA A100-SXM4-80GB") == "A100"
    assert gpu_env.short_model("NVIDIA GH200 480GB") == "GH200"
