"""The scenario's ``simulation:`` mapping, validated: how a plan's fleet is replayed.

The planner keeps ``simulation:`` as an opaque read-only mapping (``Scenario.simulation``);
this module is where it is checked. Every field is optional::

    simulation:
      job_sizes: philly            # philly | alibaba2023 | {csv: PATH} (num_gpus,duration_s)
      max_duration_h: 24           # cap on a job's run time on its SKU (h); default none
      checkpoint_interval_s: 1800  # given to every job; null: a preempted job loses its work
      weeks_per_quarter: 1         # simulated weeks per quarter (> 0, <= 13; 0.5: half a week)
      warmup_weeks: 1              # weeks simulated before the measured ones (0..13)
      max_gpus_per_site: 512       # at most this many GPUs of each GPU model of a site are
                                   # replayed, a slice of its pool (plan_sim/fleet.py); null: whole
      queue: fifo                  # a queue order of scheduler/policies/registry.py
      backfill: easy               # none | easy
      preemption: false
      quotas: shares               # each team's share of a site's demand as a nominal quota of
                                   # its GPUs (one cohort per site); or a quota file
                                   # (scheduler/files/quota_file.py) or its content as a
                                   # mapping, applied as it is to every site-quarter
      priority_classes: {prod: 10, batch: 0}   # class name -> priority value
      teams:                       # default: one team per workload, named after it, priority 0
        - {name: perception, workload: cn-fsd, share: 0.7, priority_class: prod}
        - {name: research, workload: cn-fsd, share: 0.3}
      node_shapes:                 # per SKU, over the built-in shapes (fleet.py); any subset
        H20: {cpu_milli: 96000, memory_mib: 1048576}

Numbers are strict (an integer field takes no 1.0 nor true) and finite; unknown keys are
refused with the allowed ones listed. :meth:`SimulationSettings.from_mapping` raises a
:class:`SettingsError` that names the file, the path (``simulation.teams[1].share``), the bad
value and what is allowed.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from scheduler.core.queueing.priority import PriorityClasses
from scheduler.policies.registry import QUEUE

TRACE_NAMES = ("philly", "alibaba2023")
SHARE_TOLERANCE = 1e-6  # the teams of one workload have shares summing to 1 within this
_SCI = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
# tags of the unions below; pydantic puts them in an error's location, messages leave them out
_TAG_TRACE, _TAG_CSV = "job_sizes:trace", "job_sizes:csv"
_TAG_PATH, _TAG_MAPPING = "quotas:path", "quotas:mapping"
_TAGS = frozenset({_TAG_TRACE, _TAG_CSV, _TAG_PATH, _TAG_MAPPING})


class SettingsError(ValueError):
    """A bad ``simulation:`` value: file, path, value and what is allowed."""

    def __init__(self, source: str, where: str, value: object, allowed: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{source}: {where}: {shown} is not allowed ({allowed})")
        self.source, self.where, self.value, self.allowed = source, where, value, allowed


def _sci_float(v: object) -> object:
    """PyYAML (YAML 1.1) reads ``1.0e6`` as a string; take it as the number it means."""
    if isinstance(v, str) and _SCI.match(v.strip()):
        return float(v)
    return v


Number = Annotated[float, BeforeValidator(_sci_float)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class CsvSizes(_Strict):
    """Job sizes from a CSV of one's own: columns ``num_gpus`` and ``duration_s``; a relative
    path is read relative to the scenario file."""

    csv: str = Field(min_length=1)


class TeamSettings(_Strict):
    name: str = Field(min_length=1)
    workload: str = Field(min_length=1)
    share: Number = Field(gt=0, le=1)  # of the workload's hours
    priority_class: str | None = Field(default=None, min_length=1)


class NodeShapeSettings(_Strict):
    """Overrides of one SKU's node shape (``fleet.NodeShape``); fields not given keep the
    built-in value."""

    gpus_per_node: int | None = Field(default=None, ge=1, le=64)
    cpu_milli: int | None = Field(default=None, ge=1)
    memory_mib: int | None = Field(default=None, ge=1)
    gpu_memory_mib: int | None = Field(default=None, ge=1)
    gpus_per_nvlink_domain: int | None = Field(default=None, ge=1, le=64)
    nodes_per_system: int | None = Field(default=None, ge=1)


def _job_sizes_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return _TAG_TRACE
    if isinstance(v, Mapping | CsvSizes):
        return _TAG_CSV
    return None


def _quotas_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return _TAG_PATH
    if isinstance(v, Mapping):
        return _TAG_MAPPING
    return None


JobSizesSpec = Annotated[
    Annotated[Literal["philly", "alibaba2023"], Tag(_TAG_TRACE)]
    | Annotated[CsvSizes, Tag(_TAG_CSV)],
    Discriminator(
        _job_sizes_kind,
        custom_error_type="job_sizes",
        custom_error_message="philly, alibaba2023 or a mapping {csv: PATH}",
    ),
]
QuotasSpec = Annotated[
    Annotated[str, Tag(_TAG_PATH)] | Annotated[dict[str, Any], Tag(_TAG_MAPPING)],
    Discriminator(
        _quotas_kind,
        custom_error_type="quotas",
        custom_error_message="a quota file path or a mapping in the quota-file format",
    ),
]


class SimulationSettings(_Strict):
    """The whole ``simulation:`` mapping; the defaults are those of a scenario without one."""

    job_sizes: JobSizesSpec = "philly"
    max_duration_h: Number | None = Field(default=None, gt=0)
    checkpoint_interval_s: Number | None = Field(default=1800.0, gt=0)
    weeks_per_quarter: Number = Field(default=1.0, gt=0, le=13)  # may be a fraction of a week
    warmup_weeks: Number = Field(default=1.0, ge=0, le=13)
    max_gpus_per_site: int | None = Field(default=512, ge=1)
    queue: str = "fifo"
    backfill: Literal["none", "easy"] = "easy"
    preemption: bool = False
    quotas: QuotasSpec | None = None
    priority_classes: dict[str, int] = Field(default_factory=dict)
    teams: tuple[TeamSettings, ...] = ()
    node_shapes: dict[str, NodeShapeSettings] = Field(default_factory=dict)

    @field_validator("queue")
    @classmethod
    def _known_queue(cls, v: str) -> str:
        if v not in QUEUE:
            raise ValueError("a queue order: " + ", ".join(QUEUE))
        return v

    @classmethod
    def from_mapping(
        cls,
        raw: Mapping[str, Any] | None,
        source: str = "simulation",
        workloads: Sequence[str] | None = None,
        skus: Sequence[str] | None = None,
    ) -> SimulationSettings:
        """Validate ``raw`` (a scenario's ``simulation:``; None: all defaults). With
        ``workloads`` and ``skus`` (the scenario's names), teams must name a workload and
        node shapes a SKU. Raises :class:`SettingsError`."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SettingsError(source, "simulation", raw, "a mapping")
        try:
            settings = cls.model_validate(_thaw(raw))
        except ValidationError as e:
            raise _settings_error(e, source) from None
        settings._check(source, workloads, skus)
        return settings

    def _check(
        self, source: str, workloads: Sequence[str] | None, skus: Sequence[str] | None
    ) -> None:
        """What one field alone cannot say: names that must exist, shares that sum to 1."""
        if skus is not None:
            for sku in self.node_shapes:
                if sku not in skus:
                    raise SettingsError(
                        source,
                        f"simulation.node_shapes.{sku}",
                        sku,
                        "a SKU of the scenario: " + ", ".join(skus),
                    )
        by_workload: dict[str, list[int]] = {}
        class_of: dict[str, tuple[int, str | None]] = {}
        for i, team in enumerate(self.teams):
            where = f"simulation.teams[{i}]"
            if workloads is not None and team.workload not in workloads:
                raise SettingsError(
                    source,
                    f"{where}.workload",
                    team.workload,
                    "a workload of the scenario: " + ", ".join(workloads),
                )
            if team.priority_class is not None and team.priority_class not in self.priority_classes:
                known = (
                    ", ".join(self.priority_classes)
                    or "none defined in simulation.priority_classes"
                )
                raise SettingsError(
                    source,
                    f"{where}.priority_class",
                    team.priority_class,
                    f"a priority class: {known}",
                )
            same = by_workload.setdefault(team.workload, [])
            if any(self.teams[j].name == team.name for j in same):
                raise SettingsError(
                    source,
                    f"{where}.name",
                    team.name,
                    f"a team not listed before for workload {team.workload}",
                )
            same.append(i)
            first = class_of.setdefault(team.name, (i, team.priority_class))
            if first[1] != team.priority_class:
                raise SettingsError(
                    source,
                    f"{where}.priority_class",
                    team.priority_class,
                    f"the class team {team.name} has in simulation.teams[{first[0]}] ({first[1]})",
                )
        for workload, idx in by_workload.items():
            total = math.fsum(self.teams[i].share for i in idx)
            if abs(total - 1.0) > SHARE_TOLERANCE:
                listed = ", ".join(f"teams[{i}]" for i in idx)
                raise SettingsError(
                    source,
                    f"simulation.teams[{idx[-1]}].share",
                    self.teams[idx[-1]].share,
                    f"shares of the teams of workload {workload} summing to 1; {listed} sum to {total:g}",
                )

    def priority(self, team: TeamSettings) -> int:
        """The priority value of a team's jobs: its class's value, 0 without a class."""
        return 0 if team.priority_class is None else self.priority_classes[team.priority_class]

    def priority_class_config(self) -> PriorityClasses | None:
        """The core's priority classes (each team's default class), or None when none are set."""
        if not self.priority_classes:
            return None
        defaults = {t.name: t.priority_class for t in self.teams if t.priority_class is not None}
        return PriorityClasses(values=dict(self.priority_classes), team_default=defaults)


def _thaw(v: object) -> object:
    """The planner freezes ``simulation:`` (MappingProxyType, tuples); strict validation wants
    dicts for mappings and tuples for sequences."""
    if isinstance(v, Mapping):
        return {k: _thaw(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return tuple(_thaw(x) for x in v)
    return v


def _where(loc: Sequence[int | str]) -> str:
    out = "simulation"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _allowed_keys(loc: Sequence[int | str]) -> tuple[str, ...]:
    """The keys of the model found at ``loc`` (walking fields, tuple items and dict values)."""
    ann: Any = SimulationSettings
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return ()
            ann = field.annotation
        elif typing.get_origin(ann) is tuple and isinstance(part, int):
            ann = typing.get_args(ann)[0]
        elif typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        else:
            return ()
    ann = _unwrap(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return tuple(ann.model_fields)
    return ()


def _unwrap(ann: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X; a union -> its model member, if it has one."""
    while True:
        if typing.get_origin(ann) is Annotated:
            ann = typing.get_args(ann)[0]
        elif typing.get_origin(ann) in (typing.Union, types.UnionType):
            members = [_unwrap(a) for a in typing.get_args(ann) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            ann = models[0] if models else members[0]
        else:
            return ann


def _settings_error(e: ValidationError, source: str) -> SettingsError:
    errors = e.errors()
    # an unknown key first: it is often a misspelt required one, reported missing as well
    err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = [p for p in err["loc"] if p not in _TAGS]
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc[:-1]))
        return SettingsError(source, _where(loc), value, f"unknown key; allowed: {allowed}")
    if kind == "missing":
        return SettingsError(source, _where(loc), None, "a required key")
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:] if msg else msg
    return SettingsError(source, _where(loc), value, msg)
