"""What the GPU tests share: why a module must skip, NVML's view of the GPUs, a local Ray
cluster on this machine's real GPUs, the gpuyard service on it, and the check of what each
rank of a run really computed on.

Nothing here runs at import but cheap stdlib code: the test modules import it at collection
time (their module-level skip), and so does ``tests/unit/test_gpu_tests_skip.py`` on machines
without a GPU.

GPU indices are NVML's (``nvmlDeviceGetHandleByIndex``), which are what gpuyard's sampler
reports and what the scheduler chooses from; a rank is checked by the UUID of the device it
computed on (torch) against NVML's UUID of the GPUs it claimed (``GPUYARD_GPUS``: one of the
sets the scheduler chose on its node, see ``scheduler.train.claim_gpus``), so a worker that
silently ran on ``cuda:0``, or whose CUDA numbering differs from NVML's, is caught.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NODE = "gpu-node-0"  # the fleet's (and the Ray node label's) name of this machine
NODE_LABEL = "gpuyard.io/node"  # scheduler.runtime.ray_service.NODE_LABEL
MIB = 1 << 20
PROBE_ENTRYPOINT = "tests.gpu.gpu_probe:probe_loop"
PROBE_SCRIPT = ROOT / "tests" / "gpu" / "gpu_probe_script.py"


# --------------------------------------------------------------------------- skipping
def gpu_skip_reason(
    min_gpus: int = 1, *, cuda_torch: bool = True, nccl: bool = False
) -> str | None:
    """Why a GPU test cannot run here (None: it can), naming exactly what is missing:
    NVML does not start (``"no NVIDIA GPU: NVML Shared Library Not Found"``), NVML sees fewer
    than ``min_gpus`` GPUs, or (``cuda_torch``) torch cannot use them, or (``nccl``) torch
    has no NCCL."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, _NoPermission...
        return f"no NVIDIA GPU: {exc}"
    try:
        count = int(pynvml.nvmlDeviceGetCount())
    except Exception as exc:
        return f"no NVIDIA GPU: nvmlDeviceGetCount failed: {exc}"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    if count == 0:
        return "no NVIDIA GPU: NVML started but sees 0 GPUs"
    if count < min_gpus:
        return f"needs {min_gpus} NVIDIA GPUs, NVML sees {count}"
    if not cuda_torch:
        return None
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return (
                f"no NVIDIA GPU usable by torch: torch {torch.__version__} is a CPU-only build "
                "(torch.cuda.is_available() is False)"
            )
        return (
            f"no NVIDIA GPU usable by torch: torch.cuda.is_available() is False (torch "
            f"{torch.__version__} for CUDA {torch.version.cuda}; the driver is older than that "
            f"CUDA, or CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r} hides "
            "the GPUs)"
        )
    seen = torch.cuda.device_count()
    if seen < min_gpus:
        return (
            f"needs {min_gpus} NVIDIA GPUs, torch sees {seen} (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    if nccl:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_nccl_available()):
            return f"no NCCL: torch {torch.__version__} was built without it"
    return None


# --------------------------------------------------------------------------- NVML
def normalise_uuid(uuid: str | bytes) -> str:
    """NVML's ``GPU-<uuid>`` and torch's bare ``<uuid>`` as one form (lower case, no prefix)."""
    text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    text = text.strip().lower()
    return text.removeprefix("gpu-")


@dataclass(frozen=True, slots=True)
class NvmlGpu:
    index: int
    name: str
    uuid: str  # normalised
    memory_total_mib: int


def nvml_gpus() -> list[NvmlGpu]:
    """Every GPU as NVML numbers it (NVML must be able to start)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        out = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            out.append(
                NvmlGpu(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    uuid=normalise_uuid(pynvml.nvmlDeviceGetUUID(h)),
                    memory_total_mib=int(pynvml.nvmlDeviceGetMemoryInfo(h).total) // MIB,
                )
            )
        return out
    finally:
        pynvml.nvmlShutdown()


def short_model(nvml_name: str) -> str:
    """The fleet's model name for an NVML name: "NVIDIA H100 80GB HBM3" -> "H100"."""
    m = re.search(r"\b([A-Z]{1,3}\d{2,4}[A-Z]?)\b", nvml_name.removeprefix("NVIDIA "))
    return m.group(1) if m else "GPU"


# --------------------------------------------------------------------------- Ray
@dataclass(frozen=True, slots=True)
class GpuRay:
    """A local single-node Ray cluster with this machine's real GPUs."""

    node: str  # the fleet name (Ray label gpuyard.io/node)
    node_id: str  # Ray's hex node id
    cpus: int
    gpus: tuple[NvmlGpu, ...]
    dashboard_url: str | None  # http://host:port when started with the dashboard

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def uuids(self) -> dict[int, str]:
        return {g.index: g.uuid for g in self.gpus}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_jobs_api(url: str, timeout_s: float) -> None:
    """Until the dashboard answers (Ray's Jobs API, where script jobs go)."""
    import requests

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{url}/api/version", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the Ray dashboard at {url} did not answer in {timeout_s:g} s")
        time.sleep(1.0)


@contextlib.contextmanager
def local_gpu_ray(
    *, dashboard: bool = False, env: Mapping[str, str] | None = None
) -> Iterator[GpuRay]:
    """``ray.init(num_gpus=<NVML's count>)`` on this machine, its node labelled as the fleet
    node ``NODE``; the environment every Ray process inherits is set first (token auth off
    as in the other Ray tests, CUDA_VISIBLE_DEVICES unset so that Ray takes every GPU,
    RAY_ADDRESS unset so that ``ray.init`` starts this cluster, this checkout importable by
    the workers, this venv's ``python`` first on PATH for script jobs, a bounded
    worker-group start), plus ``env``: e.g. ``scheduler.train.CONTROLLER_ENV`` for a test
    that builds a ``TorchTrainer`` in this driver (its Train controller is a Ray actor: it
    inherits the raylet's environment). Everything is restored afterwards."""
    import ray

    gpus = tuple(nvml_gpus())
    inherited = {
        "RAY_AUTH_MODE": "disabled",
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "60",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "PATH": os.pathsep.join(
            p for p in (str(Path(sys.executable).parent), os.environ.get("PATH")) if p
        ),
        **(env or {}),
    }
    unset = ("CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")  # all GPUs; a new local cluster
    saved = {k: os.environ.get(k) for k in (*inherited, *unset)}
    for key in unset:
        os.environ.pop(key, None)
    os.environ.update(inherited)
    cpus = max(4, min(os.cpu_count() or 4, 32))
    if ray.is_initialized():
        ray.shutdown()
    try:
        kwargs: dict[str, Any] = {
            "num_cpus": cpus,
            "num_gpus": len(gpus),
            "labels": {NODE_LABEL: NODE},
            "namespace": "gpuyard",
            "log_to_driver": False,
            "include_dashboard": dashboard,
            "object_store_memory": 512 * MIB,
        }
        if dashboard:
            kwargs.update(dashboard_host="127.0.0.1", dashboard_port=_free_port())
        info = ray.init(**kwargs)
        url = getattr(info, "dashboard_url", None) if dashboard else None
        if url and not str(url).startswith("http"):
            url = f"http://{url}"
        if url:
            _wait_for_jobs_api(url, 60.0)
        yield GpuRay(NODE, ray.get_runtime_context().get_node_id(), cpus, gpus, url)
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------- the service
def ops_principal() -> Any:
    from scheduler.runtime.auth import Principal

    return Principal("ops", None, True)  # the tests call the scheduler actor as an admin


def start_gpu_service(cluster: GpuRay, state_dir: Path) -> Any:
    """The scheduler actor on ``cluster`` with real GPUs (``simulated=False``: real NVML
    samplers, NCCL, the GPU indices passed to the workers), fleet = this machine."""
    from scheduler.runtime.config import NodeSpec, ServiceConfig
    from scheduler.runtime.ray_service import start_scheduler

    fleet = [
        NodeSpec(
            name=cluster.node,
            gpus=cluster.count,
            gpu_model=short_model(cluster.gpus[0].name),
            gpu_memory_mib=min(g.memory_total_mib for g in cluster.gpus),
            cpus=cluster.cpus,
            memory_mib=64 * 1024,
        )
    ]
    wanted: dict[str, Any] = {
        "state_dir": str(state_dir),
        "loop_period_s": 0.3,
        "telemetry_period_s": 1.0,
        "stop_grace_s": 30.0,
        "backfill": "easy",
        "preemption": False,
        "max_failures": 0,  # a crashed worker fails the run at once: the test says why
        # keys of the service as it is being extended (storage, script jobs); older
        # ServiceConfigs lack them
        "storage_path": str(state_dir / "checkpoints"),
        "ray_dashboard_url": cluster.dashboard_url,
    }
    known = {f.name for f in fields(ServiceConfig)}
    cfg = ServiceConfig(**{k: v for k, v in wanted.items() if k in known and v is not None})
    return start_scheduler(cfg, fleet, simulated=False)


def split_gpus(count: int) -> tuple[int, int]:
    """(GPUs a filler job takes first, workers of one GPU each of the job under test): the
    filler takes the low indices, so the job under test gets high ones and a worker that
    used ``cuda:0`` instead is caught."""
    if count == 1:
        return 0, 1
    if count == 2:
        return 1, 1
    return count - 2, 2


def probe_spec(
    name: str, team: str, workers: int, gpus: int, out: Path, tag: str, hold_s: float = 0.0
) -> dict[str, Any]:
    """A train job running the probe loop (``tests/gpu/gpu_probe.py``)."""
    return {
        "name": name,
        "team": team,
        "workers": workers,
        "gpus_per_worker": gpus,
        "cpus_per_worker": 1.0,
        "memory_gib_per_worker": 2.0,
        "entrypoint": PROBE_ENTRYPOINT,
        "config": {"probe_out": str(out), "probe_tag": tag, "hold_s": hold_s},
    }


def job_text(actor: Any, job_id: str) -> str:
    """The job's view and the tail of its log, for a failure message."""
    import ray

    try:
        view = ray.get(actor.get_job.remote(job_id), timeout=30)
        logs = ray.get(actor.logs.remote(job_id, 200), timeout=30)
    except Exception as exc:
        return f"(job {job_id}: could not read its view or log: {type(exc).__name__}: {exc})"
    return (
        f"job {job_id}: {view.state} ({view.reason}); placement "
        f"{[(p.rank, p.node, p.gpu_indices) for p in view.placement]}\n--- log ---\n{logs}"
    )


def wait_job(actor: Any, job_id: str, states: Sequence[str], timeout_s: float) -> Any:
    """The job's view once its state is one of ``states``; an AssertionError with its view
    and log when it ends in another state or the deadline passes."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        view = ray.get(actor.get_job.remote(job_id), timeout=30)
        state = str(getattr(view.state, "value", view.state))
        if state in states:
            return view
        if state in ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"):
            raise AssertionError(f"wanted {list(states)}, got {state}\n{job_text(actor, job_id)}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g} s waiting for {list(states)}\n"
                + job_text(actor, job_id)
            )
        time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class Placed:
    """Where the scheduler placed a job (seen while it runs: a finished job's view has no
    placement any more) and the tag of its probe records."""

    job_id: str
    tag: str
    nodes: tuple[str, ...]  # per rank
    chosen: tuple[tuple[int, ...], ...]  # per rank: the node GPU indices


def wait_placed(actor: Any, job_id: str, tag: str, timeout_s: float = 30.0) -> Placed:
    """The job's placement once it is RUNNING (an AssertionError if it never is)."""
    view = wait_job(actor, job_id, ["RUNNING"], timeout_s)
    ranks = sorted(view.placement, key=lambda p: p.rank)
    if not ranks:
        raise AssertionError(f"{job_id} is RUNNING without a placement\n{job_text(actor, job_id)}")
    return Placed(
        job_id,
        tag,
        tuple(p.node for p in ranks),
        tuple(tuple(int(g) for g in p.gpu_indices) for p in ranks),
    )


def start_filler(actor: Any, out: Path, gpus: int, timeout_s: float) -> Placed | None:
    """Submit a job holding ``gpus`` GPUs (the low indices: placed first) until
    :func:`release_filler`; returns where it was placed once its worker runs (so it holds
    Ray's GPUs too before the job under test asks Ray for its own), None when ``gpus`` is 0."""
    import ray

    if gpus == 0:
        return None
    spec = probe_spec("filler", "mapping", 1, gpus, out, "filler", hold_s=2 * timeout_s)
    job_id = str(ray.get(actor.submit.remote(ops_principal(), spec, None)).job_id)
    placed = wait_placed(actor, job_id, "filler")
    if not read_records(out, "filler", 1, timeout_s=timeout_s):
        raise AssertionError("the filler job never ran the probe\n" + job_text(actor, job_id))
    return placed


def release_filler(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "filler.release").touch()


def check_jobs(actor: Any, jobs: Sequence[Placed], out: Path, cluster: GpuRay) -> None:
    """Every job: placed on this node, no GPU given twice, and each rank computed where the
    scheduler placed it (:func:`check_records`)."""
    problems: list[str] = []
    taken: dict[int, str] = {}
    for job in jobs:
        if set(job.nodes) != {cluster.node}:
            problems.append(f"{job.job_id}: placed on {list(job.nodes)}, not {cluster.node}")
        for g in (g for rank in job.chosen for g in rank):
            if g in taken:
                problems.append(f"GPU {g} was given to {taken[g]} and to {job.job_id}")
            taken[g] = job.job_id
        records = read_records(out, job.tag, len(job.chosen))
        print(f"{job.tag} ({job.job_id}) placed on GPUs {[list(r) for r in job.chosen]}:")
        print(describe(records, job.tag))
        ray_nodes = [cluster.node_id if n == cluster.node else n for n in job.nodes]
        problems += check_records(
            records, job.chosen, cluster.uuids, f"{job.tag} {job.job_id}", nodes=ray_nodes
        )
    if problems:
        raise AssertionError(
            "\n".join(problems) + "\n" + "\n".join(job_text(actor, j.job_id) for j in jobs)
        )


def stop_service(actor: Any) -> None:
    import ray

    try:
        ray.get(actor.shutdown.remote(), timeout=30)
    finally:
        ray.kill(actor, no_restart=True)


# --------------------------------------------------------------------------- trainers
def gpu_switches_missing(
    worker_runtime_env: Mapping[str, Any] | None, controller_env: Mapping[str, str]
) -> list[str]:
    """What a trainer built for real GPUs lacks of the switches that leave the choice of
    GPUs to the scheduler (empty: nothing), checked before ``fit()`` so that a regression
    fails early and says what is missing: the workers' runtime env (``RunConfig.
    worker_runtime_env``, from ``scheduler.train.run_config``) must run the setup hook
    ``scheduler.train.claim_gpus`` and tell Ray core not to set ``CUDA_VISIBLE_DEVICES``;
    ``controller_env`` (the environment the Train controller inherits: the driver's, whose
    raylet and actors inherit it) must have ``scheduler.train.CONTROLLER_ENV``."""
    from scheduler import train

    env = dict(worker_runtime_env or {})
    problems = []
    hook = env.get("worker_process_setup_hook")
    if hook != train.SETUP_HOOK:
        problems.append(
            f"the workers' runtime env has worker_process_setup_hook={hook!r}, not "
            f"{train.SETUP_HOOK!r}: no worker would claim the GPUs the scheduler chose"
        )
    noset = dict(env.get("env_vars") or {}).get("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES")
    if noset != "1":
        problems.append(
            f"the workers' runtime env sets RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES="
            f"{noset!r}, not '1': Ray core would set CUDA_VISIBLE_DEVICES to its own GPU picks"
        )
    for key, value in train.CONTROLLER_ENV.items():
        if controller_env.get(key) != value:
            problems.append(
                f"{key}={controller_env.get(key)!r} in the Train controller's environment, "
                f"not {value!r}: Ray Train would overwrite CUDA_VISIBLE_DEVICES with Ray's "
                "GPU picks"
            )
    return problems


# --------------------------------------------------------------------------- records
def record_path(out: Path, tag: str, rank: int) -> Path:
    return out / f"{tag}-rank{rank}.json"


def read_records(
    out: Path, tag: str, count: int, timeout_s: float = 0.0
) -> dict[int, dict[str, Any]]:
    """The probe's records of ranks 0..count-1 (waiting up to ``timeout_s`` for all)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got: dict[int, dict[str, Any]] = {}
        for rank in range(count):
            path = record_path(out, tag, rank)
            with contextlib.suppress(OSError, ValueError):
                got[rank] = json.loads(path.read_text())
        if len(got) == count or time.monotonic() >= deadline:
            return got
        time.sleep(0.5)


def gpu_list(value: Any) -> list[int] | None:
    """GPU indices from ``GPUYARD_GPUS``/``CUDA_VISIBLE_DEVICES`` (``"6,7"``) or a recorded
    list; None when absent or not a list of integers."""
    if value is None:
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        return None
    try:
        return [int(p) for p in parts]
    except (TypeError, ValueError):
        return None


def _sets(sets: Sequence[Sequence[int]]) -> str:
    return str([list(s) for s in sets])


def check_records(
    records: Mapping[int, Mapping[str, Any]],
    chosen: Sequence[Sequence[int]],
    uuids: Mapping[int, str],
    what: str = "run",
    *,
    nodes: Sequence[str],
) -> list[str]:
    """What is wrong with where a run's ranks computed (empty: nothing). ``chosen``: the
    scheduler's GPU indices per rank; ``nodes``: the Ray node id it placed each rank on;
    ``uuids``: NVML's UUID per index (of that node: the GPU tests run on one machine).

    Each worker process claims one of the GPU sets the scheduler chose on its node
    (``scheduler.train.claim_gpus``: ``GPUYARD_GPUS``), so two ranks on one node may swap
    their sets. So each rank must: run on its node; have claimed one of the sets chosen
    there; see the union of those sets (``CUDA_VISIBLE_DEVICES``); compute on exactly its
    claimed GPUs in order (by UUID), with the first one current, and made current by Ray
    Train before the loop; use NCCL; have all-reduced the right sum; and hold no CUDA
    context on a GPU outside the job (NVML's process list; where this process's pid is not
    found there, e.g. in another PID namespace, that check is left out). On each node the
    claimed sets must be the chosen sets, as a multiset: no set claimed twice, none left."""
    problems: list[str] = []
    if len(nodes) != len(chosen):
        return [f"{what}: {len(nodes)} nodes given for {len(chosen)} placed ranks"]
    by_uuid = {normalise_uuid(u): i for i, u in uuids.items()}
    job_gpus = {g for rank in chosen for g in rank}
    allowed = {normalise_uuid(uuids[g]) for g in job_gpus if g in uuids}
    slots: dict[str, list[tuple[int, ...]]] = {}
    for node, want in zip(nodes, chosen, strict=True):
        slots.setdefault(node, []).append(tuple(int(g) for g in want))
    claims: dict[str, dict[tuple[int, ...], list[int]]] = {n: {} for n in slots}
    unknown: set[str] = set()  # nodes with a rank whose claim is not known

    def gpu(u: Any) -> str:
        i = by_uuid.get(normalise_uuid(str(u)))
        return f"GPU {i}" if i is not None else f"a GPU NVML does not list ({u})"

    def uuid_of(rec: Mapping[str, Any], key: str) -> str:
        return normalise_uuid(str(rec.get(key) or ""))

    size = len(chosen)
    for rank, node in enumerate(nodes):
        there = slots[node]
        where = f"{what} rank {rank} on Ray node {node} (GPU sets chosen there: {_sets(there)})"
        rec = records.get(rank)
        if rec is None:
            problems.append(f"{where}: no record (the rank never reached the probe)")
            unknown.add(node)
            continue
        raw_claim = rec.get("gpuyard_gpus")
        claimed = gpu_list(raw_claim) or None  # "" or []: no claim
        ran_on = rec.get("ray_node_id")
        if ran_on != node:
            problems.append(
                f"{where}: it ran on Ray node {ran_on}, not where the scheduler placed it"
            )
            unknown.add(node)
            claimed = None  # a claim there is not one of this node's slots
        elif claimed is None:
            unknown.add(node)
        else:
            claims[node].setdefault(tuple(claimed), []).append(rank)
        if rec.get("error"):
            problems.append(
                f"{where}: the loop failed: {rec['error']} (GPUYARD_GPUS={raw_claim!r}, "
                f"CUDA_VISIBLE_DEVICES={rec.get('cuda_visible_devices')!r}, Ray's GPU ids "
                f"{rec.get('ray_gpu_ids')})"
            )
            continue
        if list(rec.get("chosen", [])) != list(chosen[rank]):
            problems.append(
                f"{where}: its run context says the scheduler chose GPUs {rec.get('chosen')} "
                f"for rank {rank}, the scheduler says {list(chosen[rank])}"
            )
        if rec.get("placed_node_id") != node:
            problems.append(
                f"{where}: its run context says rank {rank} was placed on Ray node "
                f"{rec.get('placed_node_id')}"
            )
        if rec.get("world_size") != size:
            problems.append(f"{where}: world size {rec.get('world_size')}, want {size}")
        if claimed is None and ran_on == node:
            problems.append(
                f"{where}: GPUYARD_GPUS={raw_claim!r}: the worker claimed no GPU set "
                f"(scheduler.train.claim_gpus, the runtime env's worker_process_setup_hook, "
                "did not run)"
            )
        elif claimed is not None and tuple(claimed) not in there:
            problems.append(
                f"{where}: it claimed GPUs {claimed}, not one of the sets the scheduler chose "
                "on that node"
            )
        union = sorted({g for s in there for g in s})
        visible_raw = rec.get("cuda_visible_devices")
        visible = gpu_list(visible_raw)
        if visible is None or len(set(visible)) != len(visible) or sorted(visible) != union:
            problems.append(
                f"{where}: CUDA_VISIBLE_DEVICES={visible_raw!r}, want the union of the GPUs "
                f"chosen on the node, {','.join(str(g) for g in union)!r} (else Ray set it: "
                "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES=1 on the workers, "
                "TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES=0 in the Train controller's env)"
            )
        entry = f"{gpu(rec.get('entry_uuid'))} (cuda:{rec.get('entry_device')})"
        outside = f"outside the job's GPUs {sorted(job_gpus)}"
        if claimed is not None and not set(claimed) <= set(uuids):
            problems.append(f"{where}: NVML has no GPU {sorted(set(claimed) - set(uuids))}")
        elif claimed is not None:
            mine = f"its claimed first GPU {claimed[0]}"
            expected = [normalise_uuid(uuids[g]) for g in claimed]
            got = [normalise_uuid(u) for u in rec.get("devices_uuids") or []]
            if got != expected:
                problems.append(
                    f"{where}: its devices are {[gpu(u) for u in got]} ({rec.get('devices')}), "
                    f"want its claimed GPUs {claimed} in that order (CUDA_VISIBLE_DEVICES="
                    f"{visible_raw!r})"
                )
            off = {  # ", outside the job's GPUs [..]" where it is
                key: "" if uuid_of(rec, key) in allowed else f", {outside}"
                for key in ("device_uuid", "current_uuid", "entry_uuid")
            }
            if uuid_of(rec, "device_uuid") != expected[0]:
                problems.append(
                    f"{where}: it computed on {gpu(rec.get('device_uuid'))}, not "
                    f"{mine}{off['device_uuid']}"
                )
            if uuid_of(rec, "current_uuid") != expected[0]:
                problems.append(
                    f"{where}: the current CUDA device is {gpu(rec.get('current_uuid'))}, "
                    f"not {mine}{off['current_uuid']}"
                )
            if uuid_of(rec, "entry_uuid") != expected[0]:
                problems.append(
                    f"{where}: before the loop ran, Ray Train made {entry} current, not "
                    f"{mine}{off['entry_uuid']}"
                )
        else:  # no claim to compare with: at least inside the job
            if uuid_of(rec, "device_uuid") not in allowed:
                problems.append(f"{where}: it computed on {gpu(rec.get('device_uuid'))}, {outside}")
            if uuid_of(rec, "entry_uuid") not in allowed:
                problems.append(
                    f"{where}: before the loop ran, Ray Train made {entry} current, {outside}"
                )
        if rec.get("backend") != "nccl":
            problems.append(f"{where}: torch.distributed backend {rec.get('backend')!r}, not nccl")
        if rec.get("all_reduce") != size * (size + 1) / 2:
            problems.append(
                f"{where}: all_reduce gave {rec.get('all_reduce')}, want {size * (size + 1) / 2}"
            )
        on = rec.get("nvml_gpus_with_pid")
        if on:  # [] or None: this pid is not in NVML's lists (PID namespace) or NVML failed
            stray_gpus = sorted(set(on) - job_gpus)
            if stray_gpus:
                problems.append(
                    f"{where}: its process holds a CUDA context on GPUs {stray_gpus} "
                    f"(NVML's compute processes), {outside}"
                )
            if claimed is not None and claimed[0] not in on:
                problems.append(
                    f"{where}: NVML lists its process on GPUs {on}, not on its claimed first "
                    f"GPU {claimed[0]}"
                )
    for node, there in slots.items():
        want_count = Counter(there)
        took = claims[node]
        for s, ranks in sorted(took.items()):
            if 0 < want_count[s] < len(ranks):
                times = "once" if want_count[s] == 1 else f"{want_count[s]} times"
                problems.append(
                    f"{what} on Ray node {node}: ranks {ranks} all claimed GPUs {list(s)}, a set "
                    f"the scheduler chose {times} there (sets chosen: {_sets(there)})"
                )
        if node in unknown:
            continue  # a rank's claim is not known: a set may be its, not left over
        left = want_count - Counter({s: len(r) for s, r in took.items()})
        by_rank = ", ".join(
            f"rank {r}: {list(s)}" for r, s in sorted((r, s) for s, rs in took.items() for r in rs)
        )
        for s in sorted(left):
            problems.append(
                f"{what} on Ray node {node}: no rank claimed GPUs {list(s)}, one of the sets the "
                f"scheduler chose there (claims: {by_rank})"
            )
    extra = sorted(set(records) - set(range(size)))
    if extra:
        problems.append(f"{what}: records of ranks {extra} beyond the {size} placed")
    return problems


def describe(records: Mapping[int, Mapping[str, Any]], what: str = "run") -> str:
    """One line per rank (printed: ``-rA`` shows it)."""
    lines = []
    for rank in sorted(records):
        r = records[rank]
        where = (
            f"{what} rank {rank} on Ray node {r.get('ray_node_id')}: chosen {r.get('chosen')}, "
            f"claimed GPUYARD_GPUS={r.get('gpuyard_gpus')!r}, "
            f"CUDA_VISIBLE_DEVICES={r.get('cuda_visible_devices')!r}"
        )
        if r.get("error"):
            lines.append(f"{where}: ERROR {r['error']}")
            continue
        lines.append(
            f"{where} -> {r.get('device')} uuid {r.get('device_uuid')} (current "
            f"cuda:{r.get('current_device')}, entry cuda:{r.get('entry_device')}), backend "
            f"{r.get('backend')}, all_reduce {r.get('all_reduce')}, Ray GPU ids "
            f"{r.get('ray_gpu_ids')}, NVML GPUs with its pid {r.get('nvml_gpus_with_pid')}, "
            f"helpers {r.get('kit')}"
        )
    return "\n".join(lines)


def fail_unless_clean(problems: Sequence[str], records: Mapping[int, Mapping[str, Any]],
                      what: str, extra: Callable[[], str] | None = None) -> None:  # fmt: skip
    if problems:
        more = f"\n{extra()}" if extra is not None else ""
        raise AssertionError(
            "\n".join([*problems, "--- records ---", describe(records, what)]) + more
        )
