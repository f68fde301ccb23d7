"""The probe loop of the GPU tests: where does each rank of a real CUDA Ray Train run compute?

``probe_loop(config)`` is a Ray Train per-worker function, run by the gpuyard service (spec
``entrypoint: tests.gpu.gpu_probe:probe_loop``), by the executor's ``build_trainer``, or by a
script job's own ``TorchTrainer`` (``gpu_probe_script.py``). It uses gpuyard's per-worker
helpers as a team's loop would (``scheduler.train``): the run context, its device, ``report``
and ``mark_first_step``.

Its config (besides the service's reserved key): ``probe_out`` (a directory every worker
can write), ``probe_tag`` (file prefix, default ``probe``), ``hold_s`` (after the checks, keep
the GPUs until ``<probe_out>/<tag>.release`` exists, at most that many seconds: a filler job
that holds the low GPU indices while another job is placed).

Each rank writes ``<probe_out>/<tag>-rank<r>.json`` (also when the loop fails; then with
``error``), and reports ``probe_ok``/``all_reduce`` as Ray Train metrics. The record:

* ``chosen``: the GPU indices the run context says the scheduler chose for this rank, and
  ``placed_node_id``: the Ray node it says the rank was placed on;
* ``gpuyard_gpus``: ``$GPUYARD_GPUS``, the GPUs this worker process claimed
  (``scheduler.train.claim_gpus``, the runtime env's setup hook: one of the sets chosen on
  its node, not necessarily its rank's: two ranks on one node may swap), and
  ``ray_node_id``: the Ray node it runs on;
* ``entry_device``/``entry_uuid``: torch's current CUDA device when the loop starts (what
  Ray Train made current: its device, from ``ray.get_gpu_ids()``, which the setup hook
  answers with the claimed GPUs), before the loop touches anything;
* ``device``/``device_uuid``/``devices``/``devices_uuids``: the helpers' device(s) and
  their UUIDs (``torch.cuda.get_device_properties(dev).uuid``, without NVML's ``GPU-``);
* ``current_device``/``current_uuid``: after ``torch.cuda.set_device(device)``;
* ``backend``: ``torch.distributed.get_backend()``; ``all_reduce``: the sum of rank + 1 over
  the ranks, all-reduced on the device (a real NCCL collective);
* ``cuda_visible_devices`` (the union of the GPUs chosen on the node, set by the setup
  hook), ``ray_gpu_ids`` (``ray.get_gpu_ids()``: the claimed GPUs), ``pid``, and
  ``nvml_gpus_with_pid``: the NVML indices whose compute processes include this pid (a CUDA
  context there); None when NVML cannot tell.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from scheduler import train as kit

TAG = "probe"


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    partial.replace(path)


def _uuid(dev: Any) -> str:
    import torch

    return str(torch.cuda.get_device_properties(dev).uuid)


def nvml_gpus_with_pid(pid: int) -> list[int] | None:
    """NVML indices of the GPUs on which process ``pid`` holds a CUDA context; None when NVML
    cannot list compute processes here."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        on = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(h)
            if any(int(p.pid) == pid for p in procs):
                on.append(i)
        return on
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _probe(config: dict[str, Any], record: dict[str, Any]) -> Any:
    import torch
    import torch.distributed as dist

    record["torch"] = torch.__version__
    record["torch_cuda"] = torch.version.cuda
    record["cuda_available"] = torch.cuda.is_available()
    entry = torch.cuda.current_device()  # Ray Train's pick (TorchConfig's context manager)
    record["entry_device"] = entry
    record["entry_uuid"] = _uuid(entry)
    ctx = kit.context(config)
    record["world_size"] = ctx.world_size
    record["chosen"] = list(ctx.my_gpu_indices)
    record["placed_node_id"] = (
        ctx.node_ids[ctx.world_rank] if ctx.world_rank < len(ctx.node_ids) else None
    )
    record["gpu_indices"] = [list(r) for r in ctx.gpu_indices]
    devs = kit.devices(ctx)
    dev = kit.device(ctx)
    record["devices"] = [str(d) for d in devs]
    record["devices_uuids"] = [_uuid(d) for d in devs]
    record["device"] = str(dev)
    record["device_uuid"] = _uuid(dev)
    torch.cuda.set_device(dev)  # what a loop does (prepare_model does it for DDP)
    record["current_device"] = torch.cuda.current_device()
    record["current_uuid"] = _uuid(record["current_device"])
    record["backend"] = (
        dist.get_backend() if dist.is_available() and dist.is_initialized() else None
    )
    a = torch.randn(512, 512, device=dev)
    record["matmul_finite"] = bool(torch.isfinite((a @ a.T).sum()).item())
    x = torch.tensor([float(ctx.world_rank + 1)], device=dev)
    if record["backend"] is not None:
        dist.all_reduce(x)
    torch.cuda.synchronize(dev)
    record["all_reduce"] = float(x.item())
    if record["backend"] == "nccl":
        version = torch.cuda.nccl.version()  # a tuple in torch 2.x, an int before
        record["nccl_version"] = (
            ".".join(str(v) for v in version) if isinstance(version, tuple) else str(version)
        )
    record["nvml_gpus_with_pid"] = nvml_gpus_with_pid(os.getpid())
    return ctx


def probe_loop(config: dict[str, Any]) -> None:
    """The Ray Train per-worker function (see the module docstring)."""
    import ray
    import ray.train

    out = Path(str(config["probe_out"]))
    tag = str(config.get("probe_tag", TAG))
    hold_s = float(config.get("hold_s", 0.0))
    rank = ray.train.get_context().get_world_rank()
    record: dict[str, Any] = {
        "rank": rank,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "kit": kit.__name__,
        "gpuyard_gpus": os.environ.get(kit.GPUS_ENV),  # the claimed GPUs (claim_gpus)
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "noset_cuda_visible_devices": os.environ.get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"),
        "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "ray_node_id": ray.get_runtime_context().get_node_id(),
    }
    try:
        ctx = _probe(config, record)
    except BaseException as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        _write(out / f"{tag}-rank{rank}.json", record)
        raise
    _write(out / f"{tag}-rank{rank}.json", record)
    kit.mark_first_step(ctx)
    release = out / f"{tag}.release"
    deadline = time.monotonic() + hold_s
    while hold_s > 0 and time.monotonic() < deadline and not release.exists():
        time.sleep(0.2)
    kit.report(ctx, {"probe_ok": 1.0, "all_reduce": record["all_reduce"]})
