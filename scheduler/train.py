"""What a team's training code imports from gpuyard: the run's placement, checkpoints, stop
requests and metrics. Small and stable: everything else of gpuyard is internal.

Two kinds of job use it.

**A Ray Train loop** (spec ``entrypoint: mypkg.train:loop``; the module may come from the
job's ``runtime_env.working_dir``): gpuyard builds the ``TorchTrainer`` and calls
``loop(config)`` on every worker, with the user's ``config`` plus one reserved key,
``config["gpuyard"]``, the *run info*::

    def loop(config):
        ctx = scheduler.train.context(config)
        model = Net().to(scheduler.train.device(ctx))
        saved = scheduler.train.restore(ctx)          # None on a fresh start
        for step in ...:
            if scheduler.train.stop_requested(ctx):   # preempted, drained or cancelled
                scheduler.train.report(ctx, metrics, state=...)   # checkpoint, then return
                return
            ...
            scheduler.train.report(ctx, metrics, state=... if due else None)

**A script job** (spec ``command: python train.py --lr 3e-4``, or ``ray job submit`` to
gpuyard's address): gpuyard runs the command as a Ray job once the scheduler has placed its
gang, with the run info in the environment variable ``GPUYARD_RUN``. The script builds its
own trainer from what gpuyard chose::

    from ray.train.torch import TorchTrainer
    import scheduler.train as gt

    trainer = TorchTrainer(loop, train_loop_config=gt.loop_config({"lr": 3e-4}),
                           scaling_config=gt.scaling_config(), run_config=gt.run_config(),
                           torch_config=gt.torch_config())
    trainer.fit()

``scaling_config()`` pins worker ``i`` to the node the scheduler chose for rank ``i`` (Ray
Train V2's per-worker ``label_selector`` on ``ray.io/node-id``); ``run_config()`` names the
run and puts its checkpoints under ``<storage_path>/<team>/<run name>`` (the run name is the
job id and the journal's id: never shared by two teams or two journals); the loop uses the
same helpers as above. A worker that finds itself on another node than its rank's (a script
that ignored ``scaling_config()``) reports it and raises; the service stops the job with that
reason.

Stop requests, metrics and the first-step mark travel over Ray's key-value store
(``scheduler.runtime.control``), so they reach workers on every node. Collectives:
:func:`report`, :func:`stop_requested` and :func:`should_checkpoint` must be called by every
rank at the same point of the loop (rank 0's answer is broadcast to all ranks), else a run
whose rank 0 returned while rank 1 went on would hang.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.runtime.control import NAMESPACE, RunChannel

__all__ = [
    "CONFIG_KEY",
    "CONTROLLER_ENV",
    "ENV_VAR",
    "GPUS_ENV",
    "RUN_ENV",
    "STATE_FILE",
    "RunContext",
    "Superseded",
    "claim_gpus",
    "context",
    "device",
    "devices",
    "entry",
    "log",
    "loop_config",
    "mark_first_step",
    "report",
    "restore",
    "run_config",
    "run_info",
    "scaling_config",
    "should_checkpoint",
    "stop_requested",
    "superseded",
    "torch_config",
    "user_config",
]

CONFIG_KEY = "gpuyard"
ENV_VAR = "GPUYARD_RUN"  # the run info of a script job, as JSON
GPUS_ENV = "GPUYARD_GPUS"  # the node GPUs this worker process claimed (claim_gpus)
SETUP_HOOK = "scheduler.train.claim_gpus"  # every worker process of a run on real GPUs
STATE_FILE = "state.pt"  # inside each checkpoint directory
_REQUIRED = ("job_id", "run_name", "gpu_indices")


# --------------------------------------------------------------------------- run info
def run_info(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run info: ``config["gpuyard"]`` when given, else the ``GPUYARD_RUN`` environment
    variable (a script job and its workers). Raises ``ValueError`` saying what is missing."""
    raw: Any = None if config is None else config.get(CONFIG_KEY)
    if raw is None:
        text = os.environ.get(ENV_VAR)
        if text is None:
            raise ValueError(
                f"no gpuyard run info: config['{CONFIG_KEY}'] is missing and ${ENV_VAR} is not "
                "set; this code must be run by the gpuyard service (a job's entrypoint or "
                "command)"
            )
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"${ENV_VAR} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"the gpuyard run info must be a mapping, got {type(raw).__name__}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ValueError(f"the gpuyard run info lacks {', '.join(missing)}")
    return raw


@dataclass(frozen=True, slots=True)
class RunContext:
    """One worker's view of its run: the job, the attempt, where each rank was placed."""

    job_id: str
    run_name: str
    attempt: int
    gpu_indices: tuple[tuple[int, ...], ...]  # per world rank: the node GPUs chosen
    node_ids: tuple[str, ...]  # per world rank: the Ray node chosen ("" when unknown)
    simulated_gpus: bool
    checkpoint_interval_s: float | None
    world_rank: int
    world_size: int
    team: str = ""
    runner: str = ""  # the runner actor (logs)

    @property
    def is_rank_zero(self) -> bool:
        return self.world_rank == 0

    @property
    def my_gpu_indices(self) -> tuple[int, ...]:
        """The node GPUs the scheduler chose for this worker (empty for a CPU-only worker)."""
        return self.gpu_indices[self.world_rank]

    @property
    def channel(self) -> RunChannel:
        return RunChannel(self.run_name, self.attempt)


def context(
    config: dict[str, Any] | None = None,
    world_rank: int | None = None,
    world_size: int | None = None,
    *,
    check_placement: bool = True,
) -> RunContext:
    """This worker's :class:`RunContext`. Rank and size come from Ray Train's context unless
    given (tests outside a Train run give them). With ``check_placement`` (the default) a
    worker on another Ray node than the one chosen for its rank reports it and raises
    ``RuntimeError``: training outside the placement takes GPUs the scheduler gave to
    another job."""
    raw = run_info(config)
    if world_rank is None or world_size is None:
        import ray.train

        train_ctx = ray.train.get_context()
        world_rank = train_ctx.get_world_rank() if world_rank is None else world_rank
        world_size = train_ctx.get_world_size() if world_size is None else world_size
    gpu_indices = tuple(tuple(int(i) for i in rank) for rank in raw["gpu_indices"])
    if len(gpu_indices) != world_size:
        raise ValueError(
            f"the gpuyard run info has gpu_indices for {len(gpu_indices)} workers, but the "
            f"run has {world_size} (use scheduler.train.scaling_config() for the trainer)"
        )
    node_ids = tuple(str(n) for n in raw.get("node_ids", [""] * world_size))
    interval = raw.get("checkpoint_interval_s")
    ctx = RunContext(
        job_id=str(raw["job_id"]),
        run_name=str(raw["run_name"]),
        attempt=int(raw.get("attempt", 0)),
        gpu_indices=gpu_indices,
        node_ids=node_ids,
        simulated_gpus=bool(raw.get("simulated_gpus", False)),
        checkpoint_interval_s=None if interval is None else float(interval),
        world_rank=world_rank,
        world_size=world_size,
        team=str(raw.get("team", "")),
        runner=str(raw.get("runner", "")),
    )
    if check_placement:
        _check_placement(ctx)
    return ctx


def _check_placement(ctx: RunContext) -> None:
    import ray

    if not ray.is_initialized() or ctx.world_rank >= len(ctx.node_ids):
        return
    wanted = ctx.node_ids[ctx.world_rank]
    here = ray.get_runtime_context().get_node_id()
    if wanted and here != wanted:
        what = (
            f"rank {ctx.world_rank} runs on Ray node {here}, but the scheduler placed it on "
            f"{wanted}: build the trainer with scheduler.train.scaling_config()"
        )
        ctx.channel.report_violation(what)
        raise RuntimeError(f"job {ctx.job_id}: {what}")


def user_config(config: dict[str, Any]) -> dict[str, Any]:
    """The user's own config: everything but the reserved key."""
    return {k: v for k, v in config.items() if k != CONFIG_KEY}


# --------------------------------------------------------------------------- devices
def devices(ctx: RunContext) -> list[Any]:
    """The torch devices of this worker's chosen GPUs, in the scheduler's order; ``[cpu]``
    for simulated GPUs and CPU-only workers.

    CUDA numbers the GPUs a process can see from 0, in the order ``CUDA_VISIBLE_DEVICES``
    lists them, so a chosen node GPU index ``g`` is ``cuda:<position of g in that list>``
    (``cuda:<g>`` when the variable is unset: the service tells Ray not to set it, with
    ``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES=1``). Raises ``RuntimeError`` if a chosen
    GPU is not visible or torch has no CUDA: training on a GPU the scheduler gave to another
    job is worse than not starting."""
    import torch

    claimed = os.environ.get(GPUS_ENV)
    chosen = tuple(int(g) for g in claimed.split(",")) if claimed else ctx.my_gpu_indices
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


def device(ctx: RunContext) -> Any:
    """The device this worker trains on: the CPU for simulated GPUs, else its first chosen
    GPU (see :func:`devices` for the mapping and the errors)."""
    return devices(ctx)[0]


# --------------------------------------------------------------------------- control
def _rank_zero_says(ctx: RunContext, local: bool) -> bool:
    """Rank 0's ``local`` answer, on every rank (a collective when there is a group)."""
    import torch
    import torch.distributed as dist

    if ctx.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return local
    on = device(ctx) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if local else 0], dtype=torch.int32, device=on)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def superseded(ctx: RunContext) -> bool:
    """Whether a newer attempt of this job has started. A superseded run must neither
    checkpoint nor go on: :func:`report` refuses its checkpoints and :func:`stop_requested`
    tells it to return. Local: no collective."""
    return ctx.attempt > 0 and ctx.channel.superseded()


class Superseded(RuntimeError):
    """This run is an older attempt than the job's current one (see :func:`superseded`)."""


def stop_requested(ctx: RunContext) -> bool:
    """Whether the service asked the job to checkpoint and stop (a preemption, a drain, a
    cancel), or this run was superseded. A collective: every rank gets rank 0's answer."""
    local = ctx.is_rank_zero and (ctx.channel.stop_asked() is not None or superseded(ctx))
    return _rank_zero_says(ctx, local)


def should_checkpoint(ctx: RunContext, last_checkpoint_s: float) -> bool:
    """Whether ``checkpoint_interval_s`` has passed since ``last_checkpoint_s`` (a
    ``time.time()``); False when the spec set no interval. A collective."""
    interval = ctx.checkpoint_interval_s
    due = interval is not None and time.time() - last_checkpoint_s >= interval
    return _rank_zero_says(ctx, due)


def restore(ctx: RunContext) -> dict[str, Any] | None:
    """The state saved by the last committed checkpoint of this run (tensors on the CPU),
    or None on a fresh start. Loaded with ``weights_only=True``."""
    import ray.train
    import torch

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
    """Report ``metrics``, and checkpoint ``state`` when given. Every rank must call this at
    the same point (a collective); rank 0 writes the checkpoint to the run's storage before
    this returns, and publishes the metrics to the service."""
    import ray.train
    import torch

    if ctx.is_rank_zero and superseded(ctx):
        raise Superseded(
            f"job {ctx.job_id}: attempt {ctx.attempt} is superseded by a newer attempt; "
            "not writing its checkpoint over the newer one's"
        )
    if ctx.is_rank_zero:
        ctx.channel.put_metrics(metrics)
    if state is None or not ctx.is_rank_zero:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix=f"gpuyard-{ctx.job_id}-") as directory:
        torch.save(state, Path(directory) / STATE_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


_first_step_marked: set[tuple[str, int]] = set()


def mark_first_step(ctx: RunContext) -> None:
    """Record when the run made its first training step (rank 0, once per attempt)."""
    key = (ctx.run_name, ctx.attempt)
    if not ctx.is_rank_zero or key in _first_step_marked:
        return
    _first_step_marked.add(key)
    ctx.channel.mark_first_step(time.time())


def log(ctx: RunContext, line: str) -> None:
    """Add a line to the job's log (``gpuyard logs``); rank 0's lines only, best effort."""
    if not ctx.is_rank_zero or not ctx.runner:
        return
    import ray

    try:
        runner = ray.get_actor(ctx.runner, namespace=NAMESPACE)
    except ValueError:
        return  # the runner is gone: the run is ending
    runner.log.remote(f"rank 0: {line}")


# --------------------------------------------------------------------------- trainers
def loop_config(
    user: dict[str, Any] | None = None, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``user`` plus the run info under ``"gpuyard"``: the ``train_loop_config`` of a
    script's trainer, so that its loop can call :func:`context`."""
    if user and CONFIG_KEY in user:
        raise ValueError(f"loop_config: key '{CONFIG_KEY}' is reserved for the run info")
    return {**(user or {}), CONFIG_KEY: run_info(config)}


def scaling_config(info: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """Ray Train V2's ``ScalingConfig`` for exactly the scheduler's placement: one worker per
    placed rank, its CPUs and GPUs, pinned to its node. ``overrides`` may set what does not
    change the placement (e.g. ``accelerator_type``); asking for another number of workers
    or other resources is refused with ``ValueError``."""
    from ray.train.v2.api.config import ScalingConfig

    raw = info if info is not None else run_info()
    fixed = {
        "num_workers",
        "use_gpu",
        "resources_per_worker",
        "label_selector",
        "placement_strategy",
    }
    bad = sorted(set(overrides) & fixed)
    if bad:
        raise ValueError(
            f"scaling_config: {', '.join(bad)} is set by the scheduler's placement "
            "(ask for other resources in the job spec)"
        )
    gpus = float(raw.get("gpus_per_worker", 0))
    resources: dict[str, float] = {"CPU": float(raw.get("cpus_per_worker", 1))}
    if gpus > 0:
        resources["GPU"] = gpus
    node_ids = [str(n) for n in raw.get("node_ids", [])]
    return ScalingConfig(
        num_workers=len(raw["gpu_indices"]),
        use_gpu=gpus > 0,
        resources_per_worker=resources,
        label_selector=[{"ray.io/node-id": n} for n in node_ids] if node_ids else None,
        **overrides,
    )


def real_gpus(info: dict[str, Any]) -> bool:
    return float(info.get("gpus_per_worker", 0)) > 0 and not info.get("simulated_gpus", False)


# Ray picks a GPU index for each worker itself (its own free list), and Ray Train then sets
# CUDA_VISIBLE_DEVICES on every worker to its node's picks: neither knows the GPUs the
# scheduler chose (off an unhealthy GPU, inside one NVLink domain). On real GPUs, three
# switches hand the choice to gpuyard: Ray core leaves CUDA_VISIBLE_DEVICES alone
# (RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES), Ray Train does not share its picks
# (TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES=0, read by the Train controller), and every worker
# process runs claim_gpus() first (runtime_env worker_process_setup_hook).
CONTROLLER_ENV = {"TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES": "0"}

# Every run, simulated or not: Ray Train's preemption watcher (one more actor process per
# attempt, ~240 MB and 2 s of CPU to start) logs Ray's node-drain notices and hands them to
# the workers (ray.train.get_preemption_info). Those notices come from Ray's autoscaler, and
# gpuyard's fleet has none (k8s/base/raycluster.yaml): gpuyard drains nodes itself, and a
# loop learns of it from scheduler.train.stop_requested, with time to checkpoint.
RUN_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def worker_env(info: dict[str, Any]) -> dict[str, str]:
    """The environment every worker of the run gets: the run info, and on real GPUs the
    switches that leave the choice of GPUs to the scheduler (see ``claim_gpus``)."""
    env = {**RUN_ENV, ENV_VAR: json.dumps(info, sort_keys=True)}
    if real_gpus(info):
        env["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"] = "1"
        env.update(CONTROLLER_ENV)
    return env


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def claim_gpus() -> None:
    """Run at the start of every worker process of a run on real GPUs (before anything
    touches CUDA): take one of the worker slots the scheduler placed on this node (Ray's
    KV hands each slot to one process), make the node's chosen GPUs of the run visible
    (``CUDA_VISIBLE_DEVICES``, their union, so that NCCL can reach its neighbours), and
    answer ``ray.get_gpu_ids()`` with this slot's GPUs, so that Ray Train's own device
    (``ray.train.torch.get_device``) is the chosen one. Two ranks on one node may swap their
    GPU sets; each set is one the scheduler chose. No-op elsewhere (the driver, the
    controller, CPU or simulated runs)."""
    text = os.environ.get(ENV_VAR)
    if not text:
        return
    info = json.loads(text)
    if not real_gpus(info):
        return
    import ray

    node = ray.get_runtime_context().get_node_id()
    ids = [str(n) for n in info.get("node_ids", [])]
    slots = [
        tuple(int(g) for g in gpus)
        for gpus, n in zip(info["gpu_indices"], ids, strict=False)
        if n == node
    ]
    if not slots:
        return  # not a node of the placement: context() reports it and stops the run
    channel = RunChannel(str(info["run_name"]), int(info.get("attempt", 0)))
    mine = channel.claim_slot(node, len(slots), os.getpid(), _alive)
    if mine is None:
        what = f"more GPU workers on Ray node {node} than the {len(slots)} placed there"
        channel.report_violation(what)
        raise RuntimeError(f"job {info['job_id']}: {what}")
    union = sorted({g for s in slots for g in s})
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in union)
    os.environ[GPUS_ENV] = ",".join(str(g) for g in slots[mine])
    chosen = [str(g) for g in slots[mine]]
    ray.get_gpu_ids = lambda: list(chosen)


def run_config(
    info: dict[str, Any] | None = None,
    runtime_env: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    """Ray Train V2's ``RunConfig`` of the run: its name and storage (every attempt of the
    job uses the same, so a new attempt resumes from the last committed checkpoint), the
    failure limits the service chose, and the workers' environment (``runtime_env`` merged
    with :func:`worker_env`)."""
    from ray.train.v2.api.config import CheckpointConfig, FailureConfig, RunConfig

    raw = info if info is not None else run_info()
    fixed = {"name", "storage_path"}
    bad = sorted(set(overrides) & fixed)
    if bad:
        raise ValueError(f"run_config: {', '.join(bad)} is set by gpuyard (one per run)")
    env = dict(runtime_env or {})
    env["env_vars"] = {**dict(env.get("env_vars") or {}), **worker_env(raw)}
    if real_gpus(raw):
        env["worker_process_setup_hook"] = SETUP_HOOK
    kwargs: dict[str, Any] = {
        "failure_config": FailureConfig(
            max_failures=int(raw.get("max_failures", 2)),
            controller_failure_limit=int(raw.get("controller_failure_limit", 2)),
        ),
        "checkpoint_config": CheckpointConfig(num_to_keep=2),
        **overrides,
    }
    return RunConfig(
        name=str(raw["run_name"]),
        storage_path=run_storage(raw),
        worker_runtime_env=env,
        **kwargs,
    )


def run_storage(info: dict[str, Any]) -> str:
    """Where the team's runs live: ``<storage_path>/<team>`` (a local or NFS path, or a URI
    such as ``s3://bucket/prefix``)."""
    root = str(info.get("storage_path", "")).rstrip("/")
    if not root:
        raise ValueError("the gpuyard run info has no storage_path")
    team = str(info.get("team", "")) or "_"
    return f"{root}/{team}"


def torch_config(info: dict[str, Any] | None = None) -> Any:
    """NCCL on real GPUs; gloo for CPU workers and simulated GPUs (CPU torch)."""
    from ray.train.torch import TorchConfig

    raw = info if info is not None else run_info()
    real_gpus = float(raw.get("gpus_per_worker", 0)) > 0 and not raw.get("simulated_gpus", False)
    return TorchConfig(backend="nccl" if real_gpus else "gloo")


def entry(config: dict[str, Any]) -> None:
    """The per-worker function of an entrypoint job: imports the spec's ``module:function``
    on the worker (where the job's working directory and py_modules are) and calls it."""
    entrypoint = str(run_info(config).get("entrypoint", ""))
    module_name, _, func_name = entrypoint.partition(":")
    if not module_name or not func_name:
        raise ValueError(f"entrypoint {entrypoint!r}: expected 'package.module:function'")
    module = importlib.import_module(module_name)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"entrypoint {entrypoint!r}: {module_name} has no function {func_name!r}")
    func(config)
