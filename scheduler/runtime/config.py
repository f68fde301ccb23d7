"""The service's two YAML files: the fleet (which nodes, which GPUs) and the service config
(policies, quotas, priority classes, tokens, ports, periods, data residency). Errors name the
file, the field, the bad value and what is allowed.

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
        region: CN            # data residency: the label gpuyard.io/region (optional)

A node's region is its label ``gpuyard.io/region``: ``region: CN`` is short for
``labels: {gpuyard.io/region: CN}`` (giving both is allowed only with the same value). A
region is a Kubernetes/Ray label value (``residency.REGION_RULE``); like every fleet label it
becomes a Ray node label of the local cluster ``gpuyard up`` starts.

Service config, data residency (``scheduler/runtime/residency.py``)::

    residency:                 # data region -> node regions where such data may be processed
      CN: [CN]
      US: [US]
      EU: [EU, US]
    require_data_region: true  # a job must name its data_region (while the fleet has regions)

Without ``residency`` a data region is processed only in itself. Every node region a rule
names must be a region of the fleet (checked when the service starts with its fleet:
``ServiceConfig.residency_for``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scheduler.config import SchedulerConfig
from scheduler.core.model import REGION_LABEL, Gpu, Node
from scheduler.files.yamlfile import YamlFileError, integer_at, number_at, read_yaml
from scheduler.runtime.residency import REGION_RULE, Residency, is_region


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

    @property
    def region(self) -> str:
        """The node's data-residency region (label ``gpuyard.io/region``), "" without one."""
        return dict(self.labels).get(REGION_LABEL, "")


def fleet_regions(fleet: Sequence[NodeSpec]) -> tuple[str, ...]:
    """The regions the fleet's nodes carry, sorted (nodes without one left out)."""
    return tuple(sorted({n.region for n in fleet} - {""}))


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
              "nvlink_domains", "labels", "region"}  # fmt: skip


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
        labels = _with_region(path, where, raw, labels)
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


def _with_region(
    path: Path, where: str, raw: dict[str, Any], labels: dict[str, str]
) -> dict[str, str]:
    """The node's labels with its region: ``region: CN`` is the label gpuyard.io/region."""
    if REGION_LABEL in labels and not is_region(labels[REGION_LABEL]):
        raise ConfigFileError(
            path, f"{where}.labels.{REGION_LABEL}", labels[REGION_LABEL], REGION_RULE
        )
    if "region" not in raw:
        return labels
    region = raw["region"]
    if not is_region(region):
        raise ConfigFileError(path, f"{where}.region", region, REGION_RULE)
    if labels.get(REGION_LABEL, region) != region:
        raise ConfigFileError(
            path,
            f"{where}.region",
            region,
            f"the region of labels.{REGION_LABEL} ({labels[REGION_LABEL]!r}); give one of them",
        )
    return {**labels, REGION_LABEL: region}


def load_fleet(path: str | Path | None) -> list[NodeSpec]:
    if path is None:
        return parse_fleet(DEFAULT_FLEET, Path("<built-in fleet>"))
    p = Path(path)
    return parse_fleet(read_yaml(p, ConfigFileError), p)


@dataclass(frozen=True, slots=True)
class TeamGrant:
    """What a team's tokens may ask for: the priority classes it may name (besides the
    default class its jobs get anyway) and its highest plain ``priority``. A team the config
    does not list gets ``TeamGrant(team)``: the default class only, priority 0."""

    team: str
    priority_classes: tuple[str, ...] = ()
    max_priority: int = 0


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How the live service schedules and where it keeps its state."""

    packing: str = "best_fit"
    queue: str = "priority"
    backfill: str = "easy"
    preemption: bool = True
    aging_s: float | None = None  # SchedulerConfig.aging_s
    fair_share_half_life_s: float | None = None
    backfill_depth: int = 500
    preemption_depth: int = 8
    teams: tuple[TeamGrant, ...] = ()  # what each team may ask for (priority, classes)
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
    snapshot_every: int = 200  # batches between two snapshots of the core (and compactions)
    snapshot_events: int = 10_000  # ... or events, whichever first (bounds a restart's replay)
    # where every run's checkpoints go (a local or NFS path every node mounts, or a URI such
    # as s3://bucket/prefix); runs live in <storage_path>/<team>/<run name>. Default:
    # <state_dir>/runs, which only a single-machine cluster can share
    storage_path: str | None = None
    ray_dashboard_url: str | None = None  # Ray's Jobs API for script jobs; default: discovered
    # data region -> node regions where its data may be processed, in the file's order
    # (None: each region of the fleet in itself only); see residency_for
    residency: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    require_data_region: bool = False  # a spec must name its data_region (fleet with regions)
    source: str = "<service config>"  # the file these settings came from (errors name it)

    @property
    def storage_root(self) -> str:
        return self.storage_path or str(self.state_path / "runs")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    def grant(self, team: str) -> TeamGrant:
        for g in self.teams:
            if g.team == team:
                return g
        return TeamGrant(team)

    def scheduler_config(self, models: list[str] | None = None) -> SchedulerConfig:
        """The core's configuration, with the quota and priority-class files read now."""
        from scheduler.files.priority_file import load_priority_classes
        from scheduler.files.quota_file import load_quotas

        quotas = load_quotas(self.quotas, models=models) if self.quotas else None
        classes = load_priority_classes(self.priority_classes) if self.priority_classes else None
        for g in self.teams:
            for name in g.priority_classes:
                if classes is None or name not in classes.values:
                    known = ", ".join(sorted(classes.values)) if classes else "none configured"
                    raise ConfigFileError(
                        Path(self.source),
                        f"teams.{g.team}.priority_classes",
                        name,
                        f"a class of the priority-class file ({known})",
                    )
        return SchedulerConfig(
            packing=self.packing,
            queue=self.queue,
            backfill=self.backfill,  # type: ignore[arg-type]
            preemption=self.preemption,
            aging_s=self.aging_s,
            fair_share_half_life_s=self.fair_share_half_life_s,
            backfill_depth=self.backfill_depth,
            preemption_depth=self.preemption_depth,
            quotas=quotas,
            priority_classes=classes,
        )

    def residency_for(self, fleet: Sequence[NodeSpec]) -> Residency:
        """The residency rules checked against ``fleet``: every node region a rule names must
        be a region of the fleet's nodes, else ``ConfigFileError`` naming the rule's entry
        (``residency.CN[0]``), its value and the fleet's regions."""
        regions = fleet_regions(fleet)
        if self.residency is None:
            return Residency(regions, None, self.require_data_region)
        for data_region, node_regions in self.residency:
            for i, region in enumerate(node_regions):
                if region not in regions:
                    have = ", ".join(regions) or f"none: no fleet node has a {REGION_LABEL} label"
                    raise ConfigFileError(
                        Path(self.source),
                        f"residency.{data_region}[{i}]",
                        region,
                        f"a region of the fleet's nodes: {have}",
                    )
        rules = tuple((d, tuple(sorted(n))) for d, n in sorted(self.residency))
        return Residency(regions, rules, self.require_data_region)


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "packing": (str,), "queue": (str,), "backfill": (str,), "preemption": (bool,),
    "quotas": (str,), "priority_classes": (str,), "tokens": (str,), "api_host": (str,),
    "api_port": (int,), "loop_period_s": (int, float), "telemetry_period_s": (int, float),
    "stop_grace_s": (int, float), "max_failures": (int,), "state_dir": (str,),
    "aging_s": (int, float), "fair_share_half_life_s": (int, float), "backfill_depth": (int,),
    "preemption_depth": (int,), "snapshot_every": (int,), "snapshot_events": (int,),
    "teams": (dict,), "storage_path": (str,), "ray_dashboard_url": (str,),
    "residency": (dict,), "require_data_region": (bool,),
}  # fmt: skip
_POSITIVE = {"aging_s", "fair_share_half_life_s", "backfill_depth", "preemption_depth",
             "snapshot_every", "snapshot_events", "loop_period_s", "telemetry_period_s", "api_port"}  # fmt: skip
_GRANT_KEYS = {"priority_classes", "max_priority"}


def _grants(path: Path, doc: Any) -> tuple[TeamGrant, ...]:
    """``teams: {perception: {priority_classes: [production], max_priority: 10}}``."""
    out = []
    for team, raw in sorted(doc.items(), key=lambda kv: str(kv[0])):
        where = f"teams.{team}"
        if not isinstance(team, str) or not team:
            raise ConfigFileError(path, where, team, "a team name (a string; quote numbers)")
        if not isinstance(raw, dict):
            raise ConfigFileError(path, where, raw, "a mapping with priority_classes, max_priority")
        extra = sorted(str(k) for k in set(raw) - _GRANT_KEYS)
        if extra:
            raise ConfigFileError(
                path, f"{where}.{extra[0]}", raw[extra[0]], "priority_classes or max_priority"
            )
        classes = raw.get("priority_classes", [])
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise ConfigFileError(
                path, f"{where}.priority_classes", classes, "a list of priority class names"
            )
        top = raw.get("max_priority", 0)
        if isinstance(top, bool) or not isinstance(top, int):
            raise ConfigFileError(path, f"{where}.max_priority", top, "an integer")
        out.append(TeamGrant(team, tuple(sorted(set(classes))), top))
    return tuple(out)


def _residency(path: Path, doc: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``residency: {CN: [CN], EU: [EU, US]}``, in the file's order."""
    out = []
    for data_region, raw in doc.items():
        where = f"residency.{data_region}"
        if not is_region(data_region):
            # YAML reads some bare words as booleans or numbers (NO, on, 1): quote them
            raise ConfigFileError(path, where, data_region, REGION_RULE + "; quote it in YAML")
        if not isinstance(raw, list) or not raw:
            raise ConfigFileError(
                path, where, raw, f"a non-empty list of node regions, e.g. [{data_region}]"
            )
        for i, region in enumerate(raw):
            if not is_region(region):
                raise ConfigFileError(
                    path, f"{where}[{i}]", region, REGION_RULE + "; quote it in YAML"
                )
            if region in raw[:i]:
                raise ConfigFileError(path, f"{where}[{i}]", region, "each node region once")
        out.append((data_region, tuple(raw)))
    return tuple(out)


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
            if key in _POSITIVE and isinstance(value, int | float) and value <= 0:
                raise ConfigFileError(p, key, value, "a number > 0")
            if key == "teams":
                value = _grants(p, value)
            elif key == "residency":
                value = _residency(p, value)
            elif (
                key in ("quotas", "priority_classes", "tokens")
                and not Path(str(value)).is_absolute()
            ):
                value = str((p.parent / str(value)).resolve())
            values[key] = value
        values["source"] = str(p)
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = ServiceConfig(**values)
    if cfg.backfill not in ("none", "greedy", "easy"):
        raise ConfigFileError(Path(str(path)), "backfill", cfg.backfill, "none, greedy or easy")
    return cfg
