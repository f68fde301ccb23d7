"""The service on Ray: the scheduler loop in one named, restartable actor, the launcher and
cluster views it uses, and the backend the HTTP API calls.

* ``gpuyard-scheduler`` (namespace ``gpuyard``) is a detached threaded actor with
  ``max_restarts=-1``: if its process dies (``kill -9``), Ray starts it again and it recovers
  from the journal (``service.py``). It runs on the head node, where the journal lives.
* The HTTP API is served from that actor's process (``api_server.py``: uvicorn, FastAPI), so
  a request reaches the service without a Ray hop, and a restarted actor serves it again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import ray

from scheduler.core.model import Placement
from scheduler.runtime.auth import Principal
from scheduler.runtime.config import NodeSpec, ServiceConfig
from scheduler.runtime.control import NAMESPACE
from scheduler.runtime.executor import RunRequest, find_runner, new_runner
from scheduler.runtime.views import AuditView, JobState, JobView, NodeOp, NodeView, QueueEntry

SCHEDULER_NAME = "gpuyard-scheduler"
NODE_LABEL = "gpuyard.io/node"  # names a Ray node after its fleet node


class RayLauncher:
    """Runs on runner actors; keeps one idle runner ready (its process started and Ray Train
    and torch imported) so a launch does not wait for them."""

    def __init__(self, head_node_id: str, simulated: bool = True) -> None:
        self.head = head_node_id
        self.simulated = simulated
        self._drop_idle()  # a previous incarnation's spare
        self.spare: tuple[str, Any] | None = new_runner(head_node_id, simulated)

    def _drop_idle(self) -> None:
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == NAMESPACE and a["name"].startswith("gpuyard-runner-")
        ]
        handles = [h for h in (find_runner(n) for n in names) if h is not None]
        for handle, st in zip(handles, self.status(handles), strict=True):
            if st is not None and st.get("state") == "idle":
                self.kill(handle)

    def prepare(self) -> tuple[str, Any]:
        ready, self.spare = self.spare, new_runner(self.head, self.simulated)
        return ready if ready is not None else new_runner(self.head, self.simulated)

    def run(self, handle: Any, req: RunRequest) -> None:
        handle.run.remote(req)

    def find(self, runner: str) -> Any | None:
        return find_runner(runner)

    def status(self, handles: Sequence[Any]) -> list[dict[str, Any] | None]:
        refs = [h.status.remote() for h in handles]
        out: list[dict[str, Any] | None] = []
        for ref in refs:
            try:
                out.append(ray.get(ref, timeout=30))
            except ray.exceptions.RayError:
                out.append(None)  # the runner is gone (or hung): the run is lost
        return out

    def stop(self, handle: Any, why: str = "") -> None:
        handle.stop.remote(why)

    def kill(self, handle: Any) -> None:
        """The run ends now: the runner stops what lives outside it (a script job's Ray
        job), then the runner dies (an entrypoint job's trainer with it)."""
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(handle.terminate.remote(), timeout=15)
        with contextlib.suppress(ValueError):  # already gone
            ray.kill(handle, no_restart=True)


class RayCluster:
    """Which fleet nodes are alive in Ray, and their samplers' telemetry."""

    def __init__(self, fleet: Sequence[NodeSpec], simulated: bool, period_s: float) -> None:
        self.fleet = {n.name: n for n in fleet}
        self.simulated = simulated
        self.period_s = period_s
        self.samplers: dict[str, Any] = {}
        self._ids: dict[str, str] = {}

    def node_ids(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        for node in ray.nodes():  # type: ignore[no-untyped-call]
            name = node.get("Labels", {}).get(NODE_LABEL)
            if node.get("Alive") and name in self.fleet:
                ids[name] = node["NodeID"]
        for name, node_id in ids.items():
            if self._ids.get(name) != node_id:
                self.samplers.pop(name, None)  # a new Ray node under that name: new sampler
        self._ids = ids
        return ids

    def _sampler(self, name: str) -> Any:
        from scheduler.runtime.config import NVML_NAMES
        from scheduler.runtime.telemetry import SimulatedGpu, start_sampler

        if name not in self.samplers:
            spec = self.fleet[name]
            sims = None
            if self.simulated:
                per = max(1, spec.gpus // spec.nvlink_domains)
                sims = [
                    SimulatedGpu(NVML_NAMES.get(spec.gpu_model, f"NVIDIA {spec.gpu_model}"),
                                 spec.gpu_memory_mib, g // per)
                    for g in range(spec.gpus)
                ]  # fmt: skip
            self.samplers[name] = start_sampler(name, self._ids[name], sims)
        return self.samplers[name]

    def telemetry(self) -> list[Any]:
        names = sorted(n for n in self._ids if self.fleet[n].gpus > 0)
        refs = [(n, self._sampler(n).read.remote()) for n in names]
        out = []
        for name, ref in refs:
            try:
                out.append(ray.get(ref, timeout=10))
            except ray.exceptions.RayError:  # died, unschedulable (node gone) or hung
                self.samplers.pop(name, None)
        return out

    def head_node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def inject(self, node: str, kind: str, gpu: int, value: float) -> None:
        ray.get(self._sampler(node).inject.remote(kind, gpu, value))

    def show_load(self, placement: Placement, busy: bool) -> None:
        """Simulated GPUs follow what runs on them (busy: 95 % utilisation and a third of
        their memory per worker's share); real GPUs report their own load."""
        if not self.simulated:
            return
        for w in placement.workers:
            if w.node not in self._ids:
                continue
            share = w.gpu_milli / 1000
            mem = int(self.fleet[w.node].gpu_memory_mib * share / 3) if busy else 0
            for g in w.gpu_indices:
                self._sampler(w.node).set_load.remote(g, 95.0 * share if busy else 0.0, mem)


class SchedulerActor:
    """The service in a Ray actor; its poller, committer and effector run in threads
    (``SchedulerService.start``), and so does its HTTP API when the config names a tokens
    file (``api_server.py``)."""

    def __init__(self, cfg: ServiceConfig, fleet: list[NodeSpec], simulated: bool) -> None:
        from scheduler.runtime.service import SchedulerService

        head = str(ray.get_runtime_context().get_node_id())
        self.cfg = cfg
        self.cluster = RayCluster(fleet, simulated, cfg.telemetry_period_s)
        self.service = SchedulerService(
            cfg, fleet, RayLauncher(head, simulated), self.cluster, simulated
        )
        self.service.start()
        self.api: Any = None
        self.backend: Any = None
        if cfg.tokens is not None:
            self.start_api()

    def start_api(
        self, tokens: str | None = None, host: str | None = None, port: int | None = None
    ) -> str:
        """Serve the HTTP API from this process (again after a restart: the constructor
        calls it); the arguments override the config (tests)."""
        from scheduler.runtime.api import make_app
        from scheduler.runtime.api_server import ApiServer, ServiceBackend
        from scheduler.runtime.auth import TokenAuth

        path = tokens or self.cfg.tokens
        if path is None:
            raise ValueError("the API needs a tokens file (config key tokens)")
        if self.api is not None:
            return str(self.api.url)
        self.backend = ServiceBackend(self.service)
        app = make_app(self.backend, TokenAuth.from_file(path))
        self.api = ApiServer(app, host or self.cfg.api_host, port or self.cfg.api_port)
        url: str = self.api.start()
        return url

    def ready(self) -> bool:
        return True

    def submit(self, who: Principal, spec: dict[str, Any], idempotency_key: str | None) -> JobView:
        return self.service.submit(spec, idempotency_key, who)

    def list_jobs(self, team: str | None, state: JobState | None) -> list[JobView]:
        return self.service.list_jobs(team, state)

    def get_job(self, job_id: str) -> JobView:
        return self.service.get_job(job_id)

    def cancel(self, who: Principal, job_id: str) -> JobView:
        return self.service.cancel(job_id, who)

    def logs(self, job_id: str, tail_lines: int) -> str:
        return self.service.logs(job_id, tail_lines)

    def queue(self, team: str | None) -> list[QueueEntry]:
        return self.service.queue(team)

    def nodes(self) -> list[NodeView]:
        return self.service.nodes()

    def node_op(self, who: Principal, node: str, op: NodeOp) -> NodeView:
        return self.service.node_op(node, op, who)

    def audit(self, since_s: float | None, team: str | None, limit: int) -> list[AuditView]:
        return self.service.audit(since_s, team, limit)

    def refused(self, who: Principal, action: str, target: str, outcome: str, detail: str) -> None:
        self.service.refused(who, action, target, outcome, detail)

    def metrics_text(self) -> str:
        return self.service.metrics_text()

    def run_status(self, job_id: str) -> dict[str, Any] | None:
        return self.service.run_status(job_id)

    def inject(self, node: str, kind: str, gpu: int, value: float) -> None:
        """Fault injection into a simulated node's NVML (tests, demos)."""
        self.cluster.inject(node, kind, gpu, value)

    def loop_errors(self) -> list[str]:
        return list(self.service.errors)

    def pid(self) -> int:
        import os

        return os.getpid()

    def shutdown(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.backend.close()
        self.service.close()


def start_scheduler(cfg: ServiceConfig, fleet: list[NodeSpec], simulated: bool) -> Any:
    """Create (or find) the scheduler actor on this driver's node and wait until it is up."""
    head = str(ray.get_runtime_context().get_node_id())
    actor_cls: Any = ray.remote(SchedulerActor)
    actor = actor_cls.options(
        name=SCHEDULER_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        max_restarts=-1,
        max_task_retries=0,
        max_concurrency=64,  # API calls wait on the committer; group commit needs many
        num_cpus=0,
        label_selector={"ray.io/node-id": head},
        get_if_exists=True,
    ).remote(cfg, fleet, simulated)
    ray.get(actor.ready.remote(), timeout=120)
    return actor


def scheduler_handle() -> Any:
    return ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)


def wait_until(pred: Any, timeout_s: float, period_s: float = 0.5) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(period_s)
    return False


def connect(address: str, wait_s: float) -> None:
    """``ray.init`` to ``address``, retrying for ``wait_s`` seconds while the head is still
    starting (on Kubernetes the same container starts it just before)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            # WARNING: not Ray's "Connecting to / Connected to Ray cluster" INFO lines (gpuyard
            # prints the address and the dashboard itself); Ray's warnings and errors still show
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
            return
        except (ConnectionError, RuntimeError, TimeoutError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(2.0)


def start_service(
    cfg: ServiceConfig, fleet: list[NodeSpec], address: str, simulated: bool, wait_s: float
) -> dict[str, Any]:
    """Connect to the Ray cluster at ``address`` and start the scheduler actor, which serves
    the HTTP API, on it (``gpuyard up`` after it has started a local cluster, ``gpuyard k8s up`` in the
    KubeRay head pod). ``simulated``: the fleet's GPUs and their NVML are simulated."""
    if cfg.tokens is None:
        raise ValueError(
            "the service config needs a tokens file (key tokens); on Kubernetes it is the "
            "ConfigMap's tokens.yaml, whose token_env entries read the gpuyard-tokens Secret"
        )
    started = time.time()
    connect(address, wait_s)
    start_scheduler(cfg, fleet, simulated)
    api = f"http://{cfg.api_host}:{cfg.api_port}"
    return {
        "address": address,
        "api": api,
        "simulated": simulated,
        "nodes": [n.name for n in fleet],
        "up_s": round(time.time() - started, 1),
    }
