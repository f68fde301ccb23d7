"""Loaders for Alibaba's GPU trace v2023 (``openb_node_list_*.csv``, ``openb_pod_list_*.csv``).

Every column is read and validated; a malformed row stops the load with ``file:line``, the
column, the bad value and what is allowed (:class:`TraceError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scheduler.core.model import MILLI_PER_GPU, Gpu, Job, Node, WorkerRequest
from simulations.traces.csvrows import cell_int, read_rows
from simulations.traces.errors import TraceError

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL = ("gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")

# GPU memory by model where public; the trace's G2/G3 are anonymised, so their memory is unknown (0).
# H800, H20, A100 (80 GB), L40S: models of the synthetic fleets (``simulations/synthetic.py``).
GPU_MEMORY_MIB = {
    "T4": 16384,
    "P100": 16384,
    "V100M16": 16384,
    "V100M32": 32768,
    "A10": 24576,
    "L40S": 49152,
    "A100": 81920,
    "H800": 81920,
    "H20": 98304,
}
MAX_GPUS_PER_NODE = 64


@dataclass(frozen=True, slots=True)
class TracePod:
    """One row of a pod list; optional columns are empty/-1 when the file lacks them."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    gpu_spec: tuple[str, ...] = ()
    qos: str = ""
    pod_phase: str = ""
    creation_time: int = -1
    deletion_time: int = -1
    scheduled_time: int = -1

    @property
    def gpu_request_milli(self) -> int:
        """The GPU milli this pod asks for: ``num_gpu * gpu_milli``."""
        return self.num_gpu * self.gpu_milli

    def to_job(self, job_id: str | None = None, submitted_at_s: float = 0.0) -> Job:
        worker = WorkerRequest(
            cpu_milli=self.cpu_milli,
            memory_mib=self.memory_mib,
            gpus=self.num_gpu,
            gpu_milli=self.gpu_milli if self.num_gpu else MILLI_PER_GPU,
            gpu_models=self.gpu_spec,
        )
        return Job(job_id=job_id or self.name, worker=worker, submitted_at_s=submitted_at_s)


def load_nodes(path: str | Path) -> list[Node]:
    """Nodes with ``gpu`` GPUs of one ``model`` each (CPU-only rows have ``gpu == 0``)."""
    p = Path(path)
    nodes: list[Node] = []
    seen: set[str] = set()
    for line, row in read_rows(p, NODE_COLUMNS):
        name = row["sn"].strip()
        if not name or name in seen:
            raise TraceError(str(p), line, "sn", name, "a non-empty node name not used before")
        seen.add(name)
        cpu = cell_int(p, line, row, "cpu_milli", 0)
        mem = cell_int(p, line, row, "memory_mib", 0)
        count = cell_int(p, line, row, "gpu", 0, MAX_GPUS_PER_NODE)
        model = row["model"].strip()
        if count and not model:
            raise TraceError(str(p), line, "model", model, "a GPU model name when gpu > 0")
        gpus = tuple(
            Gpu(model=model, memory_mib=GPU_MEMORY_MIB.get(model, 0)) for _ in range(count)
        )
        nodes.append(Node(name=name, cpu_milli=cpu, memory_mib=mem, gpus=gpus))
    return nodes


def load_pods(path: str | Path) -> list[TracePod]:
    """Pods in file order. ``gpu_milli`` must be 1000 for multi-GPU pods and 0 for CPU-only pods."""
    p = Path(path)
    pods: list[TracePod] = []
    seen: set[str] = set()
    for line, row in read_rows(p, POD_COLUMNS):
        name = row["name"].strip()
        if not name or name in seen:
            raise TraceError(str(p), line, "name", name, "a non-empty pod name not used before")
        seen.add(name)
        cpu = cell_int(p, line, row, "cpu_milli", 0)
        mem = cell_int(p, line, row, "memory_mib", 0)
        num_gpu = cell_int(p, line, row, "num_gpu", 0, MAX_GPUS_PER_NODE)
        gpu_milli = cell_int(p, line, row, "gpu_milli", 0, MILLI_PER_GPU)
        if num_gpu == 0 and gpu_milli != 0:
            raise TraceError(str(p), line, "gpu_milli", row["gpu_milli"], "0 when num_gpu is 0")
        if num_gpu >= 1 and gpu_milli == 0:
            raise TraceError(
                str(p), line, "gpu_milli", row["gpu_milli"], "1..1000 when num_gpu >= 1"
            )
        if num_gpu > 1 and gpu_milli != MILLI_PER_GPU:
            raise TraceError(str(p), line, "gpu_milli", row["gpu_milli"], "1000 when num_gpu > 1")
        spec_raw = (row.get("gpu_spec") or "").strip()
        spec = tuple(sorted({s.strip() for s in spec_raw.split("|") if s.strip()}))
        if spec_raw and not spec:
            raise TraceError(str(p), line, "gpu_spec", spec_raw, "GPU model names separated by '|'")

        def opt_int(col: str, line: int = line, row: dict[str, str] = row) -> int:
            return cell_int(p, line, row, col, 0) if (row.get(col) or "").strip() else -1

        pods.append(
            TracePod(
                name=name,
                cpu_milli=cpu,
                memory_mib=mem,
                num_gpu=num_gpu,
                gpu_milli=gpu_milli,
                gpu_spec=spec,
                qos=(row.get("qos") or "").strip(),
                pod_phase=(row.get("pod_phase") or "").strip(),
                creation_time=opt_int("creation_time"),
                deletion_time=opt_int("deletion_time"),
                scheduled_time=opt_int("scheduled_time"),
            )
        )
    return pods
