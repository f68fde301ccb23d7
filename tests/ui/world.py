"""A live scheduler service (its real core, driver, journal and API; fake launcher, no Ray)
with a realistic cluster for the status page's tests and screenshot: five 8-GPU nodes in two
regions, jobs of four teams running and waiting, a drained node, a cordoned one, two hot
GPUs, simulated NVML telemetry that follows what runs where."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler.core.model import Placement
from scheduler.runtime import control
from scheduler.runtime.api import make_app
from scheduler.runtime.api_server import ApiServer, ServiceBackend
from scheduler.runtime.auth import Principal, TokenAuth, TokenEntry, hash_token
from scheduler.runtime.config import NVML_NAMES, NodeSpec, ServiceConfig, parse_fleet
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.telemetry import NvmlSession, SimulatedGpu, SimulatedNvml, sample
from scheduler.runtime.views import JobState, JobView, NodeOp
from tests.unit.runtime.test_service import FakeLauncher

TEAMS = ("vision", "nlp", "speech", "robotics")
TOKENS = {team: f"tok-{team}" for team in TEAMS}
ADMIN_TOKEN = "tok-admin"
FLEET = parse_fleet(
    {
        "nodes": [
            {"name": "gpu-a", "count": 3, "gpus": 8, "gpu_model": "H100", "cpus": 96,
             "memory_gib": 1024, "region": "eu"},
            {"name": "gpu-b", "count": 2, "gpus": 8, "gpu_model": "A100", "cpus": 64,
             "memory_gib": 512, "region": "us"},
        ]
    },
    Path("ui-world"),
)  # fmt: skip
# every team has a quota in one cohort (borrowing up to its limit); robotics may hold 4 GPUs
# and borrow none, so its second job waits for quota
QUOTAS = """quotas:
  - {team: nlp, gpu_model: "*", nominal_gpus: 24, borrowing_limit_gpus: 16}
  - {team: vision, gpu_model: "*", nominal_gpus: 8, borrowing_limit_gpus: 12}
  - {team: speech, gpu_model: "*", nominal_gpus: 4, borrowing_limit_gpus: 8}
  - {team: robotics, gpu_model: "*", nominal_gpus: 4, borrowing_limit_gpus: 0}
cohorts:
  research: [nlp, vision, speech, robotics]
"""
DRAINED = "gpu-b-1"
CORDONED = "gpu-a-2"
HOT = (("gpu-a-0", 3, 89.0), ("gpu-a-1", 5, 91.0))  # node, GPU, °C (the core's limit: 87)
WARM = (("gpu-a-0", 2, 79.0),)


OPS = Principal("ops", None, True)  # the admin who drained and cordoned


def auth() -> TokenAuth:
    entries = [TokenEntry(Principal(f"{t}-ci", t, False), hash_token(TOKENS[t])) for t in TEAMS]
    return TokenAuth([*entries, TokenEntry(OPS, hash_token(ADMIN_TOKEN))])


class SimCluster:
    """Every fleet node alive, each with simulated NVML; a GPU's load follows its jobs."""

    def __init__(self, fleet: list[NodeSpec], clock: Any) -> None:
        self.clock = clock
        self.fleet = {n.name: n for n in fleet}
        self.nvml: dict[str, SimulatedNvml] = {}
        self.sessions: dict[str, NvmlSession] = {}
        for n in fleet:
            gpu = SimulatedGpu(NVML_NAMES[n.gpu_model], n.gpu_memory_mib)
            self.nvml[n.name] = SimulatedNvml([gpu] * n.gpus)
            self.sessions[n.name] = NvmlSession(self.nvml[n.name])

    def node_ids(self) -> dict[str, str]:
        return {name: f"ray-{name}" for name in sorted(self.fleet)}

    def telemetry(self) -> list[Any]:
        return [sample(self.sessions[n], n, self.clock()) for n in sorted(self.fleet)]

    def head_node_id(self) -> str:
        return "ray-head"

    def show_load(self, placement: Placement, busy: bool) -> None:
        for w in placement.workers:
            share = w.gpu_milli / 1000
            mem = int(self.fleet[w.node].gpu_memory_mib * (0.35 + 0.5 * share)) if busy else 0
            for g in w.gpu_indices:
                util = min(100.0, (88.0 + 3 * (g % 4)) * share) if busy else 0.0
                self.nvml[w.node].set_load(g, util, mem)


class ShiftedClock:
    """Real time shifted into the past while the world is built, so that jobs were submitted
    and started minutes to hours before the page looks (the shift only shrinks: monotonic)."""

    def __init__(self, shift_s: float) -> None:
        self.shift_s = shift_s

    def __call__(self) -> float:
        return time.time() + self.shift_s

    def advance(self, s: float) -> None:
        self.shift_s = min(0.0, self.shift_s + s)


def job(
    name: str, team: str, workers: int, gpus: int, hours: float, **extra: Any
) -> dict[str, Any]:
    return {"name": name, "team": team, "workers": workers, "gpus_per_worker": gpus,
            "entrypoint": "examples.driving_policy:train_loop",
            "estimated_duration_s": hours * 3600, "checkpoint_interval_s": 600, **extra}  # fmt: skip


# (minutes before now it was submitted, spec), submitted in this order: the first ones fill the
# cluster, the later ones mostly wait (the core decides which run)
FIRST = [
    (190, job("llama-70b-ft", "nlp", 2, 8, 6, gpu_models=["H100"])),
    (150, job("resnet-sweep", "vision", 1, 4, 4, gpu_models=["A100"])),
    (120, job("whisper-distill", "speech", 1, 2, 3)),
    (95, job("grasp-policy", "robotics", 2, 1, 2.5, gpu_models=["A100"])),
    (80, job("detr-coco", "vision", 1, 4, 2, gpu_models=["H100"])),
    (60, job("tokenizer-bench", "nlp", 1, 1, 1.5, gpu_models=["H100"])),
]
LATER = [
    (45, job("llama-405b-pretrain", "nlp", 3, 8, 48, gpu_models=["H100"], priority=5)),
    (30, job("vit-huge", "vision", 2, 4, 5, gpu_models=["A100"], priority=10)),
    (20, job("tts-multilingual", "speech", 1, 8, 6, gpu_models=["H100"])),
    (12, job("sim2real-rl", "robotics", 1, 4, 3, gpu_models=["A100"])),
    (5, job("seg-anything-ft", "vision", 1, 2, 1)),
]


@dataclass
class World:
    service: SchedulerService
    cluster: SimCluster
    url: str
    running: list[JobView]
    waiting: list[JobView]

    def of(self, team: str) -> list[JobView]:
        return [j for j in self.running + self.waiting if j.team == team]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(state_dir: Path) -> Iterator[World]:
    """The world, its API served by uvicorn on a free localhost port."""
    with control.process_local():
        clock = ShiftedClock(-200 * 60.0)
        cluster = SimCluster(FLEET, clock)
        quotas = state_dir / "quotas.yaml"
        quotas.write_text(QUOTAS)
        cfg = ServiceConfig(state_dir=str(state_dir), telemetry_period_s=1.0, stop_grace_s=30.0,
                            preemption=False, quotas=str(quotas))  # fmt: skip
        launcher = FakeLauncher()
        svc = SchedulerService(cfg, FLEET, launcher, cluster, simulated=True, clock=clock)
        svc.step()
        for node, gpu, c in HOT + WARM:
            cluster.nvml[node].set_temperature(gpu, c)
        svc.node_op(DRAINED, NodeOp.DRAIN, OPS)
        at = 200
        views: list[JobView] = []
        for ago, spec in FIRST + LATER:
            clock.advance((at - ago) * 60.0)
            at = ago
            views.append(svc.submit(spec))
            svc.step()
        svc.node_op(CORDONED, NodeOp.CORDON, OPS)
        clock.advance(at * 60.0)
        clock.shift_s = 0.0
        for k, run in enumerate(launcher.runs.values()):  # what the training loops report
            if run.req is not None:
                run.metrics = {"step": 1200.0 * (k + 3), "loss": round(2.4 / (k + 2), 3)}
        svc.step()
        svc.step()
        jobs = [svc.get_job(j.job_id) for j in views]
        backend = ServiceBackend(svc, threads=8)
        server = ApiServer(make_app(backend, auth()), "127.0.0.1", free_port())
        url = server.start()
        try:
            yield World(
                svc, cluster, url,
                [j for j in jobs if j.state is JobState.RUNNING],
                [j for j in jobs if j.state is JobState.PENDING],
            )  # fmt: skip
        finally:
            server.stop()
            backend.close()
            svc.close()
