"""Execution: the core's ``Launch`` becomes a Ray Train ``TorchTrainer`` run on exactly the
chosen nodes.

Each run is driven by a *runner*, a detached named Ray actor (``gpuyard-runner-<id>`` in
namespace ``gpuyard``) that calls ``TorchTrainer.fit()`` in a thread and keeps the outcome.
Being detached, it outlives a crash of the scheduler service: the restarted service finds it
by the name the journal recorded and re-attaches instead of launching the run again. One idle
runner is kept ready, its imports done, so a launch does not wait for a process to start. The Train controller is owned by
the runner, so killing the runner stops the whole run.

Pinning: worker ``i`` gets ``label_selector {"ray.io/node-id": <node of worker i>}`` (Train V2
turns the list into the placement group's bundle selectors, one per worker, in rank order).
On real GPUs the workers are also told the GPU indices the scheduler chose (``gpu_indices``
in ``config["gpuyard"]``); with ``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES`` Ray leaves
``CUDA_VISIBLE_DEVICES`` alone and ``trainkit.device`` selects those GPUs.

Resume: every attempt of a job uses the same ``RunConfig(name=<job id>, storage_path=...)``,
so a new attempt (after a preemption, a drain or a lost node) restores the last committed
checkpoint. Node loss is handled by the scheduler, not by Train's own retries: a retry would
ask for the same (dead) node, so ``FailureConfig(max_failures=...)`` only covers worker
crashes on live nodes, and ``controller_failure_limit`` bounds how long an unplaceable run
keeps trying.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "gpuyard"
STOP_FILE = "STOP"
RUNNER_LOG = "runner.log"
ENDED_STATES = frozenset({"succeeded", "failed", "stopped"})  # a run's final states


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Where one worker (rank = position in ``RunRequest.workers``) must run."""

    node: str
    ray_node_id: str
    gpu_indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RunRequest:
    job_id: str
    attempt: int
    entrypoint: str  # "package.module:function", a Ray Train per-worker loop
    config: dict[str, Any]
    workers: tuple[WorkerSlot, ...]
    cpus_per_worker: float
    gpus_per_worker: float  # fractional for GPU-sharing workers
    storage_path: str  # Ray Train storage root; the run's name is the job id
    control_dir: str  # STOP file, first-step mark, logs (shared with the workers)
    simulated_gpus: bool
    checkpoint_interval_s: float | None = None
    max_runtime_s: float | None = None
    max_failures: int = 2  # worker crashes on live nodes retried by Train
    controller_failure_limit: int = 2  # unplaceable worker groups, then the run fails
    env: dict[str, str] = field(default_factory=dict)  # extra worker environment


@dataclass(slots=True)
class RunStatus:
    """What a runner reports. ``state``: starting, running, succeeded, failed, stopped (it
    checkpointed and returned because the scheduler asked it to)."""

    job_id: str
    attempt: int
    state: str
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    started_at_s: float = 0.0
    ended_at_s: float | None = None
    first_step_at_s: float | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_entrypoint(entrypoint: str) -> Callable[[dict[str, Any]], None]:
    module_name, _, func_name = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"entrypoint {entrypoint!r}: {module_name} has no function {func_name!r}")
    return func  # type: ignore[no-any-return]


def _log(control_dir: str, line: str) -> None:
    with open(Path(control_dir) / RUNNER_LOG, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def build_trainer(req: RunRequest) -> Any:
    """The ``TorchTrainer`` for one attempt (imported here: Ray Train is heavy)."""
    # Train V2's classes (the default in Ray 2.60; ``ray.train`` re-exports them at runtime,
    # but its static types are V1's, which lack label_selector)
    from ray.train.torch import TorchConfig
    from ray.train.v2.api.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.torch.torch_trainer import TorchTrainer

    use_gpu = req.gpus_per_worker > 0
    resources: dict[str, float] = {"CPU": req.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = req.gpus_per_worker
    env = dict(req.env)
    if use_gpu and not req.simulated_gpus:
        env["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"] = "1"
    loop_config = dict(req.config)
    loop_config["gpuyard"] = {
        "job_id": req.job_id,
        "attempt": req.attempt,
        "control_dir": req.control_dir,
        "checkpoint_interval_s": req.checkpoint_interval_s,
        "gpu_indices": [list(w.gpu_indices) for w in req.workers],
        "simulated_gpus": req.simulated_gpus,
    }
    return TorchTrainer(
        resolve_entrypoint(req.entrypoint),
        train_loop_config=loop_config,
        # fake GPUs run CPU torch: NCCL needs real GPUs, gloo does not
        torch_config=TorchConfig(backend="nccl" if use_gpu and not req.simulated_gpus else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=len(req.workers),
            use_gpu=use_gpu,
            resources_per_worker=resources,
            label_selector=[{"ray.io/node-id": w.ray_node_id} for w in req.workers],
        ),
        run_config=RunConfig(
            name=req.job_id,
            storage_path=req.storage_path,
            failure_config=FailureConfig(
                max_failures=req.max_failures,
                controller_failure_limit=req.controller_failure_limit,
            ),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            worker_runtime_env={"env_vars": env} if env else None,
        ),
    )


class JobRunner:
    """Drives one attempt of one job (a threaded Ray actor: ``status`` and ``stop`` answer
    while ``fit`` runs). It is created *idle*, ahead of need, so that the imports of Ray Train
    and torch are paid before a job is waiting on them; ``run`` gives it its one attempt."""

    def __init__(self) -> None:
        import ray.train.torch  # noqa: F401  (warm: paid before any job waits on it)

        self.req: RunRequest | None = None
        self.status_ = RunStatus("", 0, "idle")
        self._stop_asked = False
        self._thread: threading.Thread | None = None

    def run(self, req: RunRequest) -> None:
        if self.req is not None:
            raise RuntimeError(f"runner already ran {self.req.job_id} attempt {self.req.attempt}")
        self.req = req
        self.status_ = RunStatus(req.job_id, req.attempt, "starting", started_at_s=time.time())
        Path(req.control_dir).mkdir(parents=True, exist_ok=True)
        stop = Path(req.control_dir) / STOP_FILE
        stop.unlink(missing_ok=True)  # a STOP left by the previous attempt
        (Path(req.control_dir) / "first_step").unlink(missing_ok=True)
        where = ", ".join(
            f"rank {i}: {w.node} GPUs {list(w.gpu_indices)}" for i, w in enumerate(req.workers)
        )
        _log(req.control_dir, f"attempt {req.attempt} launching on {where}")
        self._thread = threading.Thread(target=self._run, args=(req,), daemon=True)
        self._thread.start()

    def _run(self, req: RunRequest) -> None:
        try:
            trainer = build_trainer(req)
            self.status_.state = "running"
            result = trainer.fit()
            metrics = {
                k: float(v)
                for k, v in (result.metrics or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            self.status_.metrics = metrics
            self.status_.state = "stopped" if self._stop_asked else "succeeded"
            self.status_.detail = "checkpointed and stopped" if self._stop_asked else "finished"
        except BaseException as exc:  # the run's failure is data for the scheduler
            self.status_.state = "stopped" if self._stop_asked else "failed"
            self.status_.detail = f"{type(exc).__name__}: {exc}".strip()[:2000]
            _log(req.control_dir, "run failed:\n" + traceback.format_exc())
        self.status_.ended_at_s = time.time()
        _log(req.control_dir, f"attempt {req.attempt} {self.status_.state}: {self.status_.detail}")

    def status(self) -> dict[str, Any]:
        if self.req is None:
            return self.status_.as_dict()
        first = Path(self.req.control_dir) / "first_step"
        if self.status_.first_step_at_s is None and first.exists():
            with contextlib.suppress(ValueError):
                self.status_.first_step_at_s = float(first.read_text().strip())
        metrics_file = Path(self.req.control_dir) / "metrics.json"
        if not self.status_.ended and metrics_file.exists():
            try:
                live = json.loads(metrics_file.read_text())
                self.status_.metrics = {k: float(v) for k, v in live.items()}
            except (ValueError, TypeError, AttributeError):
                pass
        return self.status_.as_dict()

    def stop(self) -> None:
        """Ask the run to checkpoint and return (the loop polls the STOP file)."""
        self._stop_asked = True
        if self.req is None:
            return
        (Path(self.req.control_dir) / STOP_FILE).write_text(str(time.time()))
        _log(self.req.control_dir, f"attempt {self.req.attempt}: stop requested")

    def wait(self, timeout_s: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def new_runner(head_node_id: str) -> tuple[str, Any]:
    """Create an idle, detached runner actor on the head node (where the service runs);
    returns its name (journaled with the run, to find it after a restart) and handle."""
    import ray

    name = f"gpuyard-runner-{uuid.uuid4().hex[:12]}"
    actor_cls = ray.remote(JobRunner)
    handle = actor_cls.options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        num_cpus=0,
        max_concurrency=4,
        label_selector={"ray.io/node-id": head_node_id},
    ).remote()
    return name, handle


def find_runner(name: str) -> Any | None:
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def read_logs(control_dir: str, tail_lines: int) -> str:
    """The runner's lifecycle log and the loop's progress lines, newest last."""
    lines: list[str] = []
    for name in (RUNNER_LOG, "progress.log"):
        path = Path(control_dir) / name
        if path.exists():
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    lines.sort()  # both start with an ISO timestamp
    return "\n".join(lines[-tail_lines:]) + ("\n" if lines else "")


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
