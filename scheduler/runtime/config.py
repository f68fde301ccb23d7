"""The service's two YAML files: the fleet (which nodes, which GPUs) and the service config
(policies, quotas, priority classes, tokens, ports, periods). Errors name the file, the
field, the bad value and what is allowed.

Fleet file::

    nodes:
      - name: node-a          # with count: n, names node-a-0 .. node-a-(n-1)
        gpus: 4
        gpu_model: H100       # short model name, as jobs ask for it (gpu_models)
        gpu_memory_gib: 80
        cpus: 8
        memory_gib: 64
        nvlink_domains: 1     # GPUs split evenly into this many NVLink domains
        labels: {rack: r0, zone: z0}
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scheduler.core.model import Gpu, Node
from scheduler.files.yamlfile import YamlFileError, integer_at, number_at, read_yaml


class ConfigFileError(YamlFileError):
    pass


# NVML's names for the simulated models (what nvmlDeviceGetName returns on the real thing)
NVML_NAMES = {
    "H100": "NVIDIA H100 80GB HBM3",
    "H200": "NVIDIA H200",
    "H20": "NVIDIA H20",
    "A100": "NVIDIA A100-SXM4-80GB",
    "B200": "NVIDIA B200",
}


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    gpus: int
    gpu_model: str
    gpu_memory_mib: int
    cpus: int
    memory_mib: int
    nvlink_domains: int = 1
    labels: tuple[tuple[str, str], ...] = ()

    def to_node(self) -> Node:
        per = max(1, self.gpus // max(1, self.nvlink_domains))
        gpus = tuple(
            Gpu(self.gpu_model, self.gpu_memory_mib, nvlink_domain=g // per)
            for g in range(self.gpus)
        )
        return Node(self.name, self.cpus * 1000, self.memory_mib, gpus, self.labels)


DEFAULT_FLEET: dict[str, Any] = {
    "nodes": [
        {"name": "node-h100-0", "gpus": 4, "gpu_model": "H100", "gpu_memory_gib": 80,
         "cpus": 8, "memory_gib": 32, "nvlink_domains": 1, "labels": {"rack": "r0", "zone": "z0"}},
        {"name": "node-h100-1", "gpus": 4, "gpu_model": "H100", "gpu_memory_gib": 80,
         "cpus": 8, "memory_gib": 32, "nvlink_domains": 1, "labels": {"rack": "r1", "zone": "z0"}},
        {"name": "node-h20-0", "gpus": 4, "gpu_model": "H20", "gpu_memory_gib": 96,
         "cpus": 8, "memory_gib": 32, "nvlink_domains": 1, "labels": {"rack": "r1", "zone": "z0"}},
    ]
}  # fmt: skip

_NODE_KEYS = {"name", "count", "gpus", "gpu_model", "gpu_memory_gib", "cpus", "memory_gib",
              "nvlink_domains", "labels"}  # fmt: skip


def _field_int(
    path: Path, where: str, raw: dict[str, Any], key: str, default: int, low: int
) -> int:
    return integer_at(ConfigFileError, path, f"{where}.{key}", raw.get(key, default), low)


def _field_mib(path: Path, where: str, raw: dict[str, Any], key: str, default: float) -> int:
    """A size given in GiB (>= 1), in MiB."""
    return int(number_at(ConfigFileError, path, f"{where}.{key}", raw.get(key, default), 1) * 1024)


def parse_fleet(doc: Any, path: Path) -> list[NodeSpec]:
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        got = doc.get("nodes") if isinstance(doc, dict) else doc
        raise ConfigFileError(path, "nodes", got, "a non-empty list of nodes")
    specs: list[NodeSpec] = []
    for i, raw in enumerate(doc["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(raw, dict):
            raise ConfigFileError(path, where, raw, "a mapping with name, gpus, gpu_model, ...")
        extra = sorted(set(raw) - _NODE_KEYS)
        if extra:
            raise ConfigFileError(
                path,
                f"{where}.{extra[0]}",
                raw[extra[0]],
                "one of " + ", ".join(sorted(_NODE_KEYS)),
            )
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigFileError(path, f"{where}.name", name, "a non-empty string")
        model = raw.get("gpu_model", "H100")
        if not isinstance(model, str) or not model:
            raise ConfigFileError(
                path, f"{where}.gpu_model", model, "a GPU model name such as H100"
            )
        labels = raw.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ConfigFileError(path, f"{where}.labels", labels, "a mapping of string to string")
        count = _field_int(path, where, raw, "count", 1, 1)
        node = NodeSpec(
            name=name,
            gpus=_field_int(path, where, raw, "gpus", 4, 0),
            gpu_model=model,
            gpu_memory_mib=_field_mib(path, where, raw, "gpu_memory_gib", 80),
            cpus=_field_int(path, where, raw, "cpus", 8, 1),
            memory_mib=_field_mib(path, where, raw, "memory_gib", 32),
            nvlink_domains=_field_int(path, where, raw, "nvlink_domains", 1, 1),
            labels=tuple(sorted((str(k), v) for k, v in labels.items())),
        )
        if "count" not in raw:
            specs.append(node)
        else:  # name-0 .. name-(count-1)
            specs.extend(replace(node, name=f"{name}-{k}") for k in range(count))
    names = [s.name for s in specs]
    for n in names:
        if names.count(n) > 1:
            raise ConfigFileError(path, "nodes", n, "unique node names")
    return specs


def load_fleet(path: str | Path | None) -> list[NodeSpec]:
    if path is None:
        return parse_fleet(DEFAULT_FLEET, Path("<built-in fleet>"))
    p = Path(path)
    return parse_fleet(read_yaml(p, ConfigFileError), p)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How the live service schedules and where it keeps its state."""

    packing: str = "best_fit"
    queue: str = "priority"
    backfill: str = "easy"
    preemption: bool = True
    quotas: str | None = None  # quota file (scheduler/files/quota_file.py format)
    priority_classes: str | None = None  # priority-class file
    tokens: str | None = None  # API tokens file (auth.py format)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    loop_period_s: float = 0.5  # how often the service looks at runs, nodes and the clock
    telemetry_period_s: float = 2.0
    stop_grace_s: float = 60.0  # a run asked to checkpoint and stop is killed after this
    max_failures: int = 2  # Train retries of a worker crash on a live node
    state_dir: str = "~/.gpuyard"

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "packing": (str,), "queue": (str,), "backfill": (str,), "preemption": (bool,),
    "quotas": (str,), "priority_classes": (str,), "tokens": (str,), "api_host": (str,),
    "api_port": (int,), "loop_period_s": (int, float), "telemetry_period_s": (int, float),
    "stop_grace_s": (int, float), "max_failures": (int,), "state_dir": (str,),
}  # fmt: skip


def load_config(path: str | Path | None, **overrides: Any) -> ServiceConfig:
    """The config file's settings (relative file paths resolved against its folder), then
    ``overrides`` (command-line options), over the defaults."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        doc = read_yaml(p, ConfigFileError)
        if not isinstance(doc, dict):
            raise ConfigFileError(p, "document", doc, "a mapping of settings")
        for key, value in doc.items():
            if key not in _CONFIG_TYPES:
                raise ConfigFileError(
                    p, str(key), value, "one of " + ", ".join(sorted(_CONFIG_TYPES))
                )
            types = _CONFIG_TYPES[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise ConfigFileError(p, key, value, " or ".join(t.__name__ for t in types))
            if (
                key in ("quotas", "priority_classes", "tokens")
                and not Path(str(value)).is_absolute()
            ):
                value = str((p.parent / str(value)).resolve())
            values[key] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = ServiceConfig(**values)
    if cfg.backfill not in ("none", "greedy", "easy"):
        raise ConfigFileError(Path(str(path)), "backfill", cfg.backfill, "none, greedy or easy")
    return cfg
