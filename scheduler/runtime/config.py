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

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from scheduler.config import SchedulerConfig
from scheduler.core.model import REGION_LABEL, Gpu, Node
from scheduler.files.document import (
    CrossField,
    Document,
    FileModel,
    InputRejected,
    Loc,
    read_document,
    reject,
    validate,
)
from scheduler.policies.registry import PACKING, QUEUE
from scheduler.runtime.residency import REGION_PATTERN, REGION_RULE, Residency


class ConfigFileError(InputRejected):
    """A bad fleet or service-config file: one line per problem,
    ``file:line: field.path: msg (got value)``."""


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

# Bounds of a fleet: a value past them is a typo, and the scheduler is built for up to
# 100,000 GPUs (DESIGN.md).
MAX_FLEET_GPUS = 100_000
MAX_FLEET_NODES = 100_000
MAX_GPUS_PER_NODE = 64


def _region(value: str) -> str:
    if not _REGION.fullmatch(value):
        raise ValueError(REGION_RULE)
    return value


_REGION = re.compile(REGION_PATTERN)
# a data-residency region: a Kubernetes/Ray label value (residency.REGION_RULE)
Region = Annotated[
    str, AfterValidator(_region), Field(json_schema_extra={"pattern": REGION_PATTERN})
]
Name = Annotated[str, Field(min_length=1)]


class NodeEntry(FileModel):
    """One node of the fleet file, or ``count`` alike ones named ``name-0`` .. ``name-(count-1)``."""

    name: Name = Field(description="node name (with count: the prefix of the names)")
    count: int | None = Field(
        default=None, ge=1, le=MAX_FLEET_NODES, description="this many alike nodes"
    )
    gpus: int = Field(default=4, ge=0, le=MAX_GPUS_PER_NODE, description="GPUs per node")
    gpu_model: Name = Field(default="H100", description="short model name jobs ask for, e.g. H100")
    gpu_memory_gib: float = Field(default=80, ge=1, le=4096, description="memory of one GPU (GiB)")
    cpus: int = Field(default=8, ge=1, le=100_000, description="CPU cores")
    memory_gib: float = Field(default=32, ge=1, le=1_048_576, description="host memory (GiB)")
    nvlink_domains: int = Field(
        default=1, ge=1, le=MAX_GPUS_PER_NODE, description="GPUs split evenly into this many"
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description=f"node labels (rack, zone; {REGION_LABEL} is the data-residency region)",
        json_schema_extra={
            "properties": {REGION_LABEL: {"type": "string", "pattern": REGION_PATTERN}}
        },
    )
    region: Region | None = Field(
        default=None, description=f"short for labels: {{{REGION_LABEL}: REGION}}"
    )

    @model_validator(mode="after")
    def _one_region(self) -> NodeEntry:
        label = self.labels.get(REGION_LABEL)
        if label is not None and not _REGION.fullmatch(label):
            raise CrossField([(("labels", REGION_LABEL), REGION_RULE, label)])
        if self.region is not None and label is not None and label != self.region:
            msg = f"must be the region of labels.{REGION_LABEL} ({label!r}); give one of them"
            raise CrossField([(("region",), msg, self.region)])
        return self

    def specs(self) -> list[NodeSpec]:
        labels = dict(self.labels)
        if self.region is not None:
            labels[REGION_LABEL] = self.region
        node = NodeSpec(
            name=self.name,
            gpus=self.gpus,
            gpu_model=self.gpu_model,
            gpu_memory_mib=int(self.gpu_memory_gib * 1024),
            cpus=self.cpus,
            memory_mib=int(self.memory_gib * 1024),
            nvlink_domains=self.nvlink_domains,
            labels=tuple(sorted(labels.items())),
        )
        if self.count is None:
            return [node]
        return [replace(node, name=f"{self.name}-{k}") for k in range(self.count)]


class FleetFile(FileModel):
    """The fleet file: which nodes, which GPUs (``gpuyard up --fleet``)."""

    nodes: list[NodeEntry] = Field(min_length=1, description="the nodes, in order")

    @model_validator(mode="after")
    def _names_and_size(self) -> FleetFile:
        nodes = sum(n.count or 1 for n in self.nodes)
        gpus = sum((n.count or 1) * n.gpus for n in self.nodes)
        if nodes > MAX_FLEET_NODES or gpus > MAX_FLEET_GPUS:
            msg = (
                f"the fleet has {nodes} nodes and {gpus} GPUs; at most {MAX_FLEET_NODES} "
                f"nodes and {MAX_FLEET_GPUS} GPUs"
            )
            raise CrossField([((), msg, None)])
        first: dict[str, int] = {}
        problems: list[tuple[Loc, str, Any]] = []
        for i, entry in enumerate(self.nodes):
            for spec in entry.specs():
                if spec.name in first:
                    msg = (
                        f"node name {spec.name!r} is already given by nodes[{first[spec.name]}]; "
                        "node names must be unique"
                    )
                    problems.append((("nodes", i, "name"), msg, entry.name))
                    break
                first.setdefault(spec.name, i)
        if problems:
            raise CrossField(problems)
        return self


def parse_fleet(doc: Any, path: Path, root: Any = None) -> list[NodeSpec]:
    """The nodes of a fleet document (``root``: its YAML node tree, for line numbers)."""
    fleet = validate(FleetFile, Document(doc, str(path), root), error=ConfigFileError)
    return [spec for entry in fleet.nodes for spec in entry.specs()]


def load_fleet(path: str | Path | None) -> list[NodeSpec]:
    """The fleet file's nodes (the built-in fleet for None); :class:`ConfigFileError`."""
    if path is None:
        return parse_fleet(DEFAULT_FLEET, Path("<built-in fleet>"))
    doc = _read(path)
    return parse_fleet(doc.data, Path(path), doc.root)


def _read(path: str | Path) -> Document:
    try:
        return read_document(path)
    except InputRejected as exc:
        raise ConfigFileError(exc.errors) from None


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
                    raise _config_error(
                        self.source,
                        ("teams", g.team, "priority_classes"),
                        f"must be a class of the priority-class file ({known})",
                        name,
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
                    raise _config_error(
                        self.source,
                        ("residency", data_region, i),
                        f"must be a region of the fleet's nodes: {have}",
                        region,
                    )
        rules = tuple((d, tuple(sorted(n))) for d, n in sorted(self.residency))
        return Residency(regions, rules, self.require_data_region)


def _policy(table: dict[str, Any], kind: str) -> Any:
    def check(value: str) -> str:
        if value not in table:
            raise ValueError(f"unknown {kind}; known: {', '.join(table)}")
        return value

    return check


Packing = Annotated[
    str,
    AfterValidator(_policy(PACKING, "packing policy")),
    Field(json_schema_extra={"enum": list(PACKING)}),
]
Queue = Annotated[
    str,
    AfterValidator(_policy(QUEUE, "queue order")),
    Field(json_schema_extra={"enum": list(QUEUE)}),
]
# priorities: Kubernetes PriorityClass values for users are at most one billion
Priority = Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
Seconds = Annotated[float, Field(gt=0, le=1e9)]
Count = Annotated[int, Field(ge=1, le=1_000_000_000)]


def _unique(values: list[str]) -> list[str]:
    for i, v in enumerate(values):
        if v in values[:i]:
            raise CrossField([((i,), "give each node region once", v)])
    return values


class GrantEntry(FileModel):
    """What a team's tokens may ask for."""

    priority_classes: list[Name] = Field(
        default_factory=list,
        description="priority classes the team may name, besides its default class",
    )
    max_priority: Priority = Field(default=0, description="highest plain priority it may set")


NodeRegions = Annotated[
    list[Region],
    Field(min_length=1, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]


class ConfigFile(FileModel):
    """The service config file (``gpuyard up --config``); relative file paths are resolved
    against the file's folder."""

    packing: Packing = "best_fit"
    queue: Queue = "priority"
    backfill: Literal["none", "greedy", "easy"] = "easy"
    preemption: bool = True
    aging_s: Seconds | None = Field(
        default=None, description="a job pending longer is reserved room first"
    )
    fair_share_half_life_s: Seconds | None = Field(
        default=None, description="half-life of past usage in team shares"
    )
    backfill_depth: Count = 500
    preemption_depth: Count = 8
    teams: dict[Name, GrantEntry] = Field(
        default_factory=dict, description="what each team may ask for"
    )
    quotas: Name | None = Field(default=None, description="quota file")
    priority_classes: Name | None = Field(default=None, description="priority-class file")
    tokens: Name | None = Field(default=None, description="API tokens file")
    api_host: Name = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    loop_period_s: float = Field(
        default=0.5, gt=0, le=3600, description="how often the service looks at runs and nodes"
    )
    telemetry_period_s: float = Field(default=2.0, gt=0, le=3600)
    stop_grace_s: float = Field(
        default=60.0, ge=0, le=86_400, description="a run asked to stop is killed after this"
    )
    max_failures: int = Field(default=2, ge=0, le=1000, description="retries of a worker crash")
    state_dir: Name = "~/.gpuyard"
    snapshot_every: Count = 200
    snapshot_events: Count = 10_000
    storage_path: Name | None = Field(default=None, description="where runs' checkpoints go")
    ray_dashboard_url: Name | None = None
    residency: dict[Region, NodeRegions] | None = Field(
        default=None, description="data region -> node regions where its data may be processed"
    )
    require_data_region: bool = False

    def settings(self, folder: Path) -> dict[str, Any]:
        """The file's settings as ServiceConfig fields (file paths resolved against
        ``folder``)."""
        values: dict[str, Any] = {
            k: getattr(self, k) for k in self.model_fields_set if k not in ("teams", "residency")
        }
        for key in ("quotas", "priority_classes", "tokens"):
            value = values.get(key)
            if value is not None and not Path(value).is_absolute():
                values[key] = str((folder / value).resolve())
        if "teams" in self.model_fields_set:
            values["teams"] = tuple(
                TeamGrant(team, tuple(sorted(set(g.priority_classes))), g.max_priority)
                for team, g in sorted(self.teams.items())
            )
        if self.residency is not None:
            values["residency"] = tuple((d, tuple(n)) for d, n in self.residency.items())
        return values


def _config_error(source: str, loc: Loc, msg: str, value: Any) -> ConfigFileError:
    """A problem found after loading (against another file): with its line when the file
    can be read again."""
    try:
        doc: Document | str = read_document(source)
    except InputRejected:
        doc = source
    err = reject(doc, loc, msg, value, error=ConfigFileError)
    assert isinstance(err, ConfigFileError)
    return err


def load_config(path: str | Path | None, **overrides: Any) -> ServiceConfig:
    """The config file's settings (relative file paths resolved against its folder), then
    ``overrides`` (command-line options), over the defaults. :class:`ConfigFileError`."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        values = validate(ConfigFile, _read(p), error=ConfigFileError).settings(p.parent)
        values["source"] = str(p)
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = ServiceConfig(**values)
    if cfg.backfill not in ("none", "greedy", "easy"):
        raise ConfigFileError(
            [
                {
                    "loc": ("backfill",),
                    "msg": "Input should be 'none', 'greedy' or 'easy'",
                    "input": cfg.backfill,
                    "source": cfg.source,
                    "line": None,
                }
            ]
        )
    return cfg
