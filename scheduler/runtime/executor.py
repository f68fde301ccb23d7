"""Execution: the core's ``Launch`` becomes a run on exactly the chosen nodes and GPUs.

Each run is driven by a *runner*, a detached named Ray actor (``gpuyard-runner-<id>`` in
namespace ``gpuyard``) on the head node that keeps the outcome. Being detached, it outlives a
crash of the scheduler service: the restarted service finds it by the name the journal
recorded and re-attaches instead of launching the run again. One idle runner is kept ready,
its imports done, so a launch does not wait for a process to start.

Two kinds of run (``RunRequest.kind``):

* ``train``: the spec's ``entrypoint`` (a Ray Train per-worker loop). The runner builds the
  ``TorchTrainer`` and calls ``fit()`` in a thread; the controller is the runner's, so killing
  the runner stops the whole run. The loop is imported on the workers
  (``scheduler.train.entry``), where the job's ``runtime_env`` (working_dir, py_modules, pip,
  env_vars...) is installed: the runner itself never imports the team's code.
* ``script``: the spec's ``command``, handed to Ray's own Jobs API (``JobSubmissionClient`` on
  the cluster's dashboard) with the job's ``runtime_env`` and the run info in
  ``GPUYARD_RUN``; the script builds its trainer with ``scheduler.train.scaling_config()``.
  The runner follows the Ray job's status and logs, and stops it (``stop_job``: SIGTERM,
  then SIGKILL) when the run is killed or its GPU workers leave the placement.

Pinning: worker ``i`` gets ``label_selector {"ray.io/node-id": <node of worker i>}`` (Train V2
turns the list into the placement group's bundle selectors, one per worker, in rank order).
On real GPUs the workers are also told the GPU indices the scheduler chose (``gpu_indices``
in the run info); with ``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES`` Ray leaves
``CUDA_VISIBLE_DEVICES`` alone and ``scheduler.train.device`` selects those GPUs.

Resume: every attempt of a job uses the same ``RunConfig(name=<run name>,
storage_path=<storage>/<team>)``, so a new attempt restores the last committed checkpoint.
The run name is the job id and the journal's id, so two journals (or two teams) never share
a run directory. Node loss is handled by the scheduler, not by Train's own retries.

Control (stop requests, metrics, the first step, the attempt fence) goes over Ray's KV
(``control.py``); the job's log is one append-only file on the head, written by its runners.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scheduler.runtime.control import NAMESPACE, RunChannel

ENDED_STATES = frozenset({"succeeded", "failed", "stopped"})  # a run's final states
SCRIPT_POLL_S = 1.0  # how often a script job's status, logs and placement are looked at
STATE_API_EVERY = 5  # Ray's state API (which actors hold GPUs where) every 5th poll only


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
    entrypoint: str | None  # "package.module:function", a Ray Train per-worker loop
    config: dict[str, Any]
    workers: tuple[WorkerSlot, ...]
    cpus_per_worker: float
    gpus_per_worker: float  # fractional for GPU-sharing workers
    storage_path: str  # the storage root; the run lives in <storage_path>/<team>/<run_name>
    log_path: str  # the job's log file (on the head, where the runners run)
    simulated_gpus: bool
    run_name: str = ""  # "<job id>-<journal id>"; the job id when empty
    team: str = ""
    command: str | None = None  # a script job's shell command (run as a Ray job)
    runtime_env: dict[str, Any] = field(default_factory=dict)  # Ray's format, URIs only
    packages: dict[str, str] = field(default_factory=dict)  # gcs:// URI -> the service's copy
    dashboard_url: str | None = None  # Ray's Jobs API, for script jobs
    checkpoint_interval_s: float | None = None
    max_runtime_s: float | None = None
    max_failures: int = 2  # worker crashes on live nodes retried by Train
    controller_failure_limit: int = 2  # unplaceable worker groups, then the run fails
    env: dict[str, str] = field(default_factory=dict)  # extra worker environment

    @property
    def kind(self) -> str:
        return "script" if self.command is not None else "train"

    @property
    def name(self) -> str:
        return self.run_name or self.job_id

    @property
    def submission_id(self) -> str:
        """The Ray Jobs API id of a script job's attempt."""
        return f"gpuyard-{self.name}-a{self.attempt}"

    def info(self, runner: str = "") -> dict[str, Any]:
        """The run info the workers (and a script's driver) get: ``scheduler.train``."""
        return {
            "job_id": self.job_id,
            "team": self.team,
            "run_name": self.name,
            "attempt": self.attempt,
            "kind": self.kind,
            "entrypoint": self.entrypoint,
            "storage_path": self.storage_path,
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "gpu_indices": [list(w.gpu_indices) for w in self.workers],
            "node_ids": [w.ray_node_id for w in self.workers],
            "nodes": [w.node for w in self.workers],
            "cpus_per_worker": self.cpus_per_worker,
            "gpus_per_worker": self.gpus_per_worker,
            "simulated_gpus": self.simulated_gpus,
            "max_failures": self.max_failures,
            "controller_failure_limit": self.controller_failure_limit,
            "runner": runner,
        }


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
    ray_job_id: str | None = None  # a script job's submission id in Ray's Jobs API

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def append_log(path: str | Path, text: str, stamp: bool = True) -> None:
    """Append to a job's log: a timestamped line, or (``stamp=False``) raw output as is."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if stamp:
        text = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text.rstrip()}\n"
    with open(target, "a", encoding="utf-8") as f:
        f.write(text)


def build_trainer(req: RunRequest, runner: str = "") -> Any:
    """The ``TorchTrainer`` of an entrypoint job's attempt, from the same helpers a script
    uses (``scheduler.train``): one definition of pinning, storage and environment."""
    from ray.train.v2.torch.torch_trainer import TorchTrainer

    from scheduler import train

    info = req.info(runner)
    runtime_env = dict(req.runtime_env)
    if req.env:
        runtime_env["env_vars"] = {**dict(runtime_env.get("env_vars") or {}), **req.env}
    return TorchTrainer(
        train.entry,
        train_loop_config={**req.config, train.CONFIG_KEY: info},
        torch_config=train.torch_config(info),
        scaling_config=train.scaling_config(info),
        run_config=train.run_config(info, runtime_env),
    )


def script_runtime_env(req: RunRequest, runner: str = "") -> dict[str, Any]:
    """A script job's ``runtime_env``: the spec's, plus the run info for the driver and
    (inherited by every task and actor of the Ray job) its workers."""
    from scheduler import train

    env = dict(req.runtime_env)
    info = req.info(runner)
    env["env_vars"] = {**dict(env.get("env_vars") or {}), **req.env, **train.worker_env(info)}
    if train.real_gpus(info):
        env["worker_process_setup_hook"] = train.SETUP_HOOK
    return env


class JobRunner:
    """Drives one attempt of one job (a threaded Ray actor: ``status`` and ``stop`` answer
    while the run goes on). It is created *idle*, ahead of need, so that the imports of Ray
    Train and torch are paid before a job is waiting on them; ``run`` gives it its one
    attempt."""

    def __init__(self) -> None:
        import ray.train.torch  # noqa: F401  (warm: paid before any job waits on it)

        self.req: RunRequest | None = None
        self.status_ = RunStatus("", 0, "idle")
        self._stop_asked = False
        self._stop_why = ""
        self._killed = False
        self._outside = ""  # why a script job's workers were found outside the placement
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _name(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_actor_name() or "")

    def run(self, req: RunRequest) -> None:
        if self.req is not None:
            raise RuntimeError(f"runner already ran {self.req.job_id} attempt {self.req.attempt}")
        self.req = req
        self.status_ = RunStatus(req.job_id, req.attempt, "starting", started_at_s=time.time())
        if req.kind == "script":
            self.status_.ray_job_id = req.submission_id
        where = ", ".join(
            f"rank {i}: {w.node} GPUs {list(w.gpu_indices)}" for i, w in enumerate(req.workers)
        )
        self.log(f"attempt {req.attempt} ({req.kind}) launching on {where}")
        if self._stop_asked:  # a threaded actor: a stop may have been served before this call
            self._pass_stop(req, " before the launch")
        target = self._run_script if req.kind == "script" else self._run_train
        self._thread = threading.Thread(target=self._guard, args=(target, req), daemon=True)
        self._thread.start()

    def _guard(self, target: Any, req: RunRequest) -> None:
        try:
            if req.packages:
                from scheduler.runtime.packages import ensure_in_gcs

                for uri, path in req.packages.items():
                    ensure_in_gcs(uri, path)
            target(req)
        except BaseException as exc:  # the run's failure is data for the scheduler
            if req.kind == "script":  # the Ray job must not outlive a runner that lost it
                with contextlib.suppress(Exception):
                    self._client(req).stop_job(req.submission_id)
            self.status_.state = "stopped" if self._stop_asked else "failed"
            self.status_.detail = f"{type(exc).__name__}: {exc}".strip()[:2000]
            self.log("run failed:\n" + traceback.format_exc())
        self.status_.ended_at_s = time.time()
        self.log(f"attempt {req.attempt} {self.status_.state}: {self.status_.detail}")

    def _run_train(self, req: RunRequest) -> None:
        trainer = build_trainer(req, self._name())
        self.status_.state = "running"
        result = trainer.fit()
        self.status_.metrics = {
            k: float(v)
            for k, v in (result.metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        self.status_.state = "stopped" if self._stop_asked else "succeeded"
        self.status_.detail = "checkpointed and stopped" if self._stop_asked else "finished"

    # ------------------------------------------------------------ script jobs
    def _client(self, req: RunRequest) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(req.dashboard_url or _dashboard_url())

    def _run_script(self, req: RunRequest) -> None:
        client = self._client(req)
        self._stop_older_attempts(client, req)
        client.submit_job(
            entrypoint=req.command,
            submission_id=req.submission_id,
            runtime_env=script_runtime_env(req, self._name()),
            metadata={"gpuyard.job_id": req.job_id, "gpuyard.attempt": str(req.attempt)},
        )
        self.status_.state = "running"
        shown = 0  # characters of the Ray job's log already copied into the job's log
        ray_job: str | None = None
        polls = 0
        while True:
            polls += 1
            info = client.get_job_info(req.submission_id)
            ray_job = ray_job or info.job_id
            shown = self._copy_logs(client, req, shown)
            status = str(getattr(info.status, "value", info.status))
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                self._script_ended(req, status, info.message or "")
                return
            if not self._killed:
                outside = self._outside_placement(
                    req, ray_job if polls % STATE_API_EVERY == 1 else None
                )
                if outside:
                    self._killed = True
                    self._outside = outside
                    self.log(f"workers outside the placement: {outside}; stopping the Ray job")
                    client.stop_job(req.submission_id)
            time.sleep(SCRIPT_POLL_S)

    def _script_ended(self, req: RunRequest, status: str, message: str) -> None:
        if self._outside:
            self.status_.state = "failed"
            self.status_.detail = f"workers outside the placement: {self._outside}"
        elif status == "SUCCEEDED":
            self.status_.state = "stopped" if self._stop_asked else "succeeded"
            self.status_.detail = "checkpointed and stopped" if self._stop_asked else "finished"
        elif self._stop_asked or self._killed:
            self.status_.state = "stopped"
            self.status_.detail = f"Ray job {status.lower()}: {message}".strip()
        else:
            self.status_.state = "failed"
            self.status_.detail = f"Ray job {status.lower()}: {message}".strip()[:2000]
        self.status_.metrics = RunChannel(req.name, req.attempt).metrics()

    def _copy_logs(self, client: Any, req: RunRequest, shown: int) -> int:
        try:
            text = str(client.get_job_logs(req.submission_id))
        except RuntimeError:
            return shown
        if len(text) > shown:
            append_log(req.log_path, text[shown:], stamp=False)
        return max(shown, len(text))

    def _stop_older_attempts(self, client: Any, req: RunRequest) -> None:
        """A Ray job of an older attempt still running (its runner died with the service):
        stop it before this attempt takes its GPUs."""
        prefix = f"gpuyard-{req.name}-a"
        for job in client.list_jobs():
            sub = job.submission_id or ""
            status = str(getattr(job.status, "value", job.status))
            if (
                sub.startswith(prefix)
                and sub != req.submission_id
                and status in ("PENDING", "RUNNING")
            ):
                self.log(f"stopping {sub}, an older attempt still running in Ray")
                with contextlib.suppress(RuntimeError):
                    client.stop_job(sub)

    def _outside_placement(self, req: RunRequest, ray_job: str | None) -> str:
        """What of the Ray job holds GPUs outside its placement: a worker that said so
        (``scheduler.train.context``), or an actor asking for GPUs on another node or beyond
        the gang's count (Ray's state API; not asked when ``ray_job`` is None). Empty when
        all is well."""
        said = RunChannel(req.name, req.attempt).violation()
        if said:
            return said
        if ray_job is None or req.gpus_per_worker <= 0:
            return ""
        try:
            from ray.util.state import list_actors

            actors = list_actors(
                filters=[("job_id", "=", ray_job), ("state", "=", "ALIVE")],
                detail=True,
                raise_on_missing_output=False,
                timeout=10,
            )
        except Exception:  # the state API is optional: the workers' own check remains
            return ""
        allowed = {w.ray_node_id for w in req.workers}
        holders = [a for a in actors if float((a.required_resources or {}).get("GPU", 0)) > 0]
        for a in holders:
            if a.node_id not in allowed:
                return f"{a.class_name} {a.actor_id[:12]} holds GPUs on Ray node {a.node_id}, not in the placement"
        if len(holders) > len(req.workers):
            return f"{len(holders)} actors hold GPUs; the placement has {len(req.workers)} workers"
        return ""

    # ------------------------------------------------------------ the service's calls
    def status(self) -> dict[str, Any]:
        if self.req is None:
            return self.status_.as_dict()
        channel = RunChannel(self.req.name, self.req.attempt)
        if self.status_.first_step_at_s is None:
            self.status_.first_step_at_s = channel.first_step_at()
        if not self.status_.ended:
            live = channel.metrics()
            if live:
                self.status_.metrics = live
        return self.status_.as_dict()

    def stop(self, why: str = "") -> None:
        """Ask the run to checkpoint and return (its loop polls ``stop_requested``)."""
        self._stop_asked = True
        self._stop_why = why or "stop requested"
        if self.req is not None:  # else run() passes it on
            self._pass_stop(self.req)

    def _pass_stop(self, req: RunRequest, when: str = "") -> None:
        RunChannel(req.name, req.attempt).ask_stop(self._stop_why)
        self.log(f"attempt {req.attempt}: stop requested{when} ({self._stop_why})")

    def terminate(self) -> None:
        """End the run now, before this runner is killed: a script job's Ray job is stopped
        (Ray sends SIGTERM, then SIGKILL); an entrypoint job's trainer dies with the
        runner."""
        self._killed = True
        if self.req is None or self.req.kind != "script":
            return
        with contextlib.suppress(Exception):
            self._client(self.req).stop_job(self.req.submission_id)
            self.log(f"attempt {self.req.attempt}: Ray job {self.req.submission_id} stopped")

    def log(self, line: str) -> None:
        if self.req is not None:
            with self._lock:
                append_log(self.req.log_path, line)

    def wait(self, timeout_s: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def _dashboard_url() -> str:
    """The cluster's dashboard (Ray's Jobs API) as this Ray process knows it."""
    import ray

    url = ray._private.worker.get_dashboard_url()  # type: ignore[no-untyped-call]
    if not url:
        raise RuntimeError(
            "script jobs need Ray's Jobs API, but this cluster runs no dashboard "
            "(start the head with --include-dashboard=true, or set ray_dashboard_url)"
        )
    return url if "://" in url else f"http://{url}"


def new_runner(head_node_id: str, simulated: bool = True) -> tuple[str, Any]:
    """Create an idle, detached runner actor on the head node (where the service runs);
    returns its name (journaled with the run, to find it after a restart) and handle. Its
    Train controllers inherit ``scheduler.train.RUN_ENV``, and on real GPUs
    ``scheduler.train.CONTROLLER_ENV``."""
    import ray

    from scheduler import train

    name = f"gpuyard-runner-{uuid.uuid4().hex[:12]}"
    actor_cls = ray.remote(JobRunner)
    handle = actor_cls.options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        num_cpus=0,
        max_concurrency=8,
        label_selector={"ray.io/node-id": head_node_id},
        runtime_env={"env_vars": {**train.RUN_ENV, **({} if simulated else train.CONTROLLER_ENV)}},
    ).remote()
    return name, handle


def find_runner(name: str) -> Any | None:
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def read_log(path: str | Path, offset: int, limit_bytes: int) -> tuple[str, int]:
    """The log from byte ``offset`` on (at most ``limit_bytes``, cut at a line's end when
    one is in range): the text and where the next read starts."""
    target = Path(path)
    if not target.exists():
        return "", offset
    with open(target, "rb") as f:
        f.seek(offset)
        data = f.read(limit_bytes)
    if len(data) == limit_bytes and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return data.decode("utf-8", errors="replace"), offset + len(data)


def tail_log(path: str | Path, tail_lines: int) -> str:
    """The last ``tail_lines`` lines of the log."""
    target = Path(path)
    if not target.exists():
        return ""
    lines = target.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-tail_lines:]) + ("\n" if lines else "")
