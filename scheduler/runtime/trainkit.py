"""What a gpuyard training loop uses: its context, its device, checkpoints, and stop requests.

A training loop is a Ray Train per-worker function ``def loop(config: dict) -> None``, named
by the spec's ``entrypoint``. The service calls it with the user's ``config`` plus one reserved
key, ``config["gpuyard"]``::

    {
        "job_id": "j-42",                 # the job
        "attempt": 0,                     # which launch of the job this run is (optional)
        "control_dir": "/shared/ctl/j-42",  # a directory every worker can read (shared storage)
        "checkpoint_interval_s": 300.0,   # or None: checkpoint when the loop thinks best
        "gpu_indices": [[0], [1]],        # per world rank: the node GPUs the scheduler chose
        "simulated_gpus": False,          # True: Ray's GPUs are fake, train on the CPU
    }

A loop reads it through :func:`context`, restores with :func:`restore`, trains on
:func:`device`, reports with :func:`report` and stops when :func:`stop_requested` says so
(the service writes ``<control_dir>/STOP`` to preempt or drain: checkpoint, then return).
Rank 0 also leaves ``<control_dir>/first_step`` (time of the first step) and
``<control_dir>/metrics.json`` (the last metrics reported) for the service to read live.

Collectives: :func:`report`, :func:`stop_requested` and :func:`should_checkpoint` must be
called by every rank at the same point of the loop. Ray's ``report`` is a barrier, and the two
predicates return rank 0's answer to all ranks (through ``torch.distributed`` when a process
group is up), so that all ranks take the same branch: if rank 0 checkpointed and returned
while rank 1 went on to the next ``report``, the run would hang.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.train
import torch
import torch.distributed as dist

__all__ = [
    "CONFIG_KEY",
    "FIRST_STEP_FILE",
    "METRICS_FILE",
    "STATE_FILE",
    "STOP_FILE",
    "RunContext",
    "Superseded",
    "context",
    "device",
    "devices",
    "mark_first_step",
    "report",
    "restore",
    "should_checkpoint",
    "stop_requested",
    "superseded",
    "user_config",
]

CONFIG_KEY = "gpuyard"
STOP_FILE = "STOP"
ATTEMPT_FILE = "ATTEMPT"  # the job's current attempt, written by the service (runs.py)
FIRST_STEP_FILE = "first_step"
METRICS_FILE = "metrics.json"
STATE_FILE = "state.pt"  # inside each checkpoint directory


@dataclass(frozen=True, slots=True)
class RunContext:
    """A typed view of ``config["gpuyard"]`` plus this worker's place in the gang."""

    job_id: str
    control_dir: Path
    checkpoint_interval_s: float | None
    gpu_indices: tuple[tuple[int, ...], ...]  # per world rank
    simulated_gpus: bool
    world_rank: int
    world_size: int
    attempt: int = 0

    @property
    def is_rank_zero(self) -> bool:
        return self.world_rank == 0

    @property
    def my_gpu_indices(self) -> tuple[int, ...]:
        """The node GPUs the scheduler chose for this worker (empty for a CPU-only worker)."""
        return self.gpu_indices[self.world_rank]


def context(
    config: dict[str, Any], world_rank: int | None = None, world_size: int | None = None
) -> RunContext:
    """Read ``config["gpuyard"]``. Rank and size come from Ray Train's context unless given
    (tests outside a Train run give them). Raises ``ValueError`` naming what is missing."""
    raw = config.get(CONFIG_KEY)
    if not isinstance(raw, dict):
        raise ValueError(
            f"config['{CONFIG_KEY}'] is missing: this loop must be run by the gpuyard service "
            "(or given that dict: job_id, control_dir, checkpoint_interval_s, gpu_indices, "
            "simulated_gpus)"
        )
    missing = [k for k in ("job_id", "control_dir", "gpu_indices") if k not in raw]
    if missing:
        raise ValueError(f"config['{CONFIG_KEY}'] lacks {', '.join(missing)}")
    if world_rank is None or world_size is None:
        train_ctx = ray.train.get_context()
        world_rank = train_ctx.get_world_rank() if world_rank is None else world_rank
        world_size = train_ctx.get_world_size() if world_size is None else world_size
    gpu_indices = tuple(tuple(int(i) for i in rank) for rank in raw["gpu_indices"])
    if len(gpu_indices) != world_size:
        raise ValueError(
            f"config['{CONFIG_KEY}']['gpu_indices'] has {len(gpu_indices)} entries for "
            f"{world_size} workers (one list per world rank; [] for a CPU-only worker)"
        )
    interval = raw.get("checkpoint_interval_s")
    return RunContext(
        job_id=str(raw["job_id"]),
        control_dir=Path(raw["control_dir"]),
        checkpoint_interval_s=None if interval is None else float(interval),
        gpu_indices=gpu_indices,
        simulated_gpus=bool(raw.get("simulated_gpus", False)),
        world_rank=world_rank,
        world_size=world_size,
        attempt=int(raw.get("attempt", 0)),
    )


def user_config(config: dict[str, Any]) -> dict[str, Any]:
    """The user's own config: everything but the reserved key."""
    return {k: v for k, v in config.items() if k != CONFIG_KEY}


def devices(ctx: RunContext) -> list[torch.device]:
    """The torch devices of this worker's chosen GPUs, in the scheduler's order; ``[cpu]``
    for simulated GPUs and CPU-only workers.

    CUDA numbers the GPUs a process can see from 0, in the order ``CUDA_VISIBLE_DEVICES``
    lists them, so a chosen node GPU index ``g`` is ``cuda:<position of g in that list>``:

    * the service sets ``CUDA_VISIBLE_DEVICES`` to exactly the chosen indices (and
      ``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES=1`` so that Ray does not overwrite it with
      its own pick): the devices are ``cuda:0``, ``cuda:1``...;
    * ``CUDA_VISIBLE_DEVICES`` unset (Ray told not to set it, every GPU visible): the devices
      are ``cuda:<chosen index>``;
    * it lists other GPUs as well: each chosen GPU at its position in the list.

    Raises ``RuntimeError`` if a chosen GPU is not visible or torch has no CUDA: training on a
    GPU the scheduler gave to another job is worse than not starting.
    """
    chosen = ctx.my_gpu_indices
    if ctx.simulated_gpus or not chosen:
        return [torch.device("cpu")]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        ordinals = list(chosen)
    else:
        listed = [v.strip() for v in visible.split(",") if v.strip()]
        hidden = [g for g in chosen if str(g) not in listed]
        if hidden:
            raise RuntimeError(
                f"job {ctx.job_id} rank {ctx.world_rank}: the scheduler chose GPUs "
                f"{list(chosen)} but CUDA_VISIBLE_DEVICES={visible!r} hides {hidden}"
            )
        ordinals = [listed.index(str(g)) for g in chosen]
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"job {ctx.job_id} rank {ctx.world_rank}: GPUs {list(chosen)} were chosen but "
            "torch sees no CUDA device (CPU-only torch, or simulated_gpus should be true)"
        )
    return [torch.device("cuda", i) for i in ordinals]


def device(ctx: RunContext) -> torch.device:
    """The device this worker trains on: the CPU for simulated GPUs, else its first chosen
    GPU (``cuda:0`` when the service made only the chosen GPUs visible; see :func:`devices`
    for the mapping and the errors)."""
    return devices(ctx)[0]


def _rank_zero_says(ctx: RunContext, local: bool) -> bool:
    """Rank 0's ``local`` answer, on every rank (a collective when there is a group)."""
    if ctx.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return local
    on = device(ctx) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if local else 0], dtype=torch.int32, device=on)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def superseded(ctx: RunContext) -> bool:
    """Whether a newer attempt of this job has been started (``<control_dir>/ATTEMPT``, set
    by the service before each attempt, names a higher number than ours). A superseded run
    must neither checkpoint nor go on: :func:`report` refuses its checkpoints and
    :func:`stop_requested` tells it to return. Local: no collective."""
    if ctx.attempt <= 0:
        return False  # run outside the service, or by an older service: no fence
    try:
        current = int((ctx.control_dir / ATTEMPT_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    return current > ctx.attempt


class Superseded(RuntimeError):
    """This run is an older attempt than the job's current one (see :func:`superseded`)."""


def stop_requested(ctx: RunContext) -> bool:
    """Whether the service asked the job to checkpoint and stop (``<control_dir>/STOP``
    exists: a preemption or a drain), or this run was superseded by a newer attempt. A
    collective: every rank gets rank 0's answer."""
    return _rank_zero_says(ctx, (ctx.control_dir / STOP_FILE).exists() or superseded(ctx))


def should_checkpoint(ctx: RunContext, last_checkpoint_s: float) -> bool:
    """Whether ``checkpoint_interval_s`` has passed since ``last_checkpoint_s`` (a
    ``time.time()``); False when the spec set no interval. A collective, like
    :func:`stop_requested`, since ranks' clocks and timings differ."""
    interval = ctx.checkpoint_interval_s
    due = interval is not None and time.time() - last_checkpoint_s >= interval
    return _rank_zero_says(ctx, due)


def restore(ctx: RunContext) -> dict[str, Any] | None:
    """The state saved by the last committed checkpoint of this run (tensors on the CPU;
    ``load_state_dict`` moves them), or None on a fresh start. Loaded with
    ``weights_only=True``: tensors, containers and plain numbers only."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        path = Path(directory) / STATE_FILE
        if not path.exists():
            raise RuntimeError(f"job {ctx.job_id}: checkpoint {directory} has no {STATE_FILE}")
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def report(ctx: RunContext, metrics: dict[str, float], state: dict[str, Any] | None = None) -> None:
    """Report ``metrics``, and checkpoint ``state`` when given. Every rank must call this at the
    same point (it is a collective); rank 0 writes the checkpoint, the other ranks report the
    metrics only. The checkpoint is uploaded to the run's storage before this returns."""
    if ctx.is_rank_zero and superseded(ctx):
        raise Superseded(
            f"job {ctx.job_id}: attempt {ctx.attempt} is superseded by a newer attempt; "
            "not writing its checkpoint over the newer one's"
        )
    if ctx.is_rank_zero:
        _write_atomically(ctx.control_dir / METRICS_FILE, json.dumps(metrics, sort_keys=True))
    if state is None or not ctx.is_rank_zero:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix=f"gpuyard-{ctx.job_id}-") as directory:
        torch.save(state, Path(directory) / STATE_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


_first_step_marked: set[str] = set()


def mark_first_step(ctx: RunContext) -> None:
    """Record when the run made its first training step: rank 0 writes ``time.time()`` to
    ``<control_dir>/first_step``, once per process, and never over an existing file (the
    service removes it before each attempt it wants timed)."""
    if not ctx.is_rank_zero or ctx.job_id in _first_step_marked:
        return
    _first_step_marked.add(ctx.job_id)
    target = ctx.control_dir / FIRST_STEP_FILE
    if target.exists():
        return
    _write_atomically(target, f"{time.time():.6f}\n")


def _write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file and a rename: a reader never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
