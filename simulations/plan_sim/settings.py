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
:class:`SettingsError` (scheduler/files/document.py's format) that names the file, the line
where the file can be read, the path (``simulation.teams[1].share``), the bad value and what
is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator

from scheduler.core.queueing.priority import PriorityClasses
from scheduler.files.document import (
    Document,
    FileModel,
    InputRejected,
    Loc,
    line_of,
    read_document,
    validate,
)
from scheduler.policies.registry import QUEUE

TRACE_NAMES = ("philly", "alibaba2023")
SHARE_TOLERANCE = 1e-6  # the teams of one workload have shares summing to 1 within this
_SCI = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
# tags of the unions below; pydantic puts them in an error's location, messages leave them
# out (document.py drops a location part in brackets)
_TAG_TRACE, _TAG_CSV = "[job_sizes:trace]", "[job_sizes:csv]"
_TAG_PATH, _TAG_MAPPING = "[quotas:path]", "[quotas:mapping]"


class SettingsError(InputRejected):
    """A bad ``simulation:`` value: one line per problem,
    ``file:line: simulation.field: msg (got value)``."""


def _sci_float(v: object) -> object:
    """PyYAML (YAML 1.1) reads ``1.0e6`` as a string; take it as the number it means."""
    if isinstance(v, str) and _SCI.match(v.strip()):
        return float(v)
    return v


Number = Annotated[float, BeforeValidator(_sci_float)]


_Strict = FileModel


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
            raise ValueError("unknown queue order; known: " + ", ".join(QUEUE))
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
        fail = _Failing(source)
        if not isinstance(raw, Mapping):
            raise fail([((), "Input should be a mapping", raw, "dict_type")])
        try:
            settings = validate(cls, Document(_thaw_top(raw), source), error=SettingsError)
        except SettingsError as e:
            raise fail(
                [(x["loc"], x["msg"], x.get("input"), x.get("type")) for x in e.errors]
            ) from None
        problems = settings._check(workloads, skus)
        if problems:
            raise fail([(loc, msg, value, "cross_field") for loc, msg, value in problems])
        return settings

    def _check(
        self, workloads: Sequence[str] | None, skus: Sequence[str] | None
    ) -> list[tuple[Loc, str, Any]]:
        """What one field alone cannot say: names that must exist, shares that sum to 1
        (the first problem found)."""
        if skus is not None:
            for sku in self.node_shapes:
                if sku not in skus:
                    msg = "must be a SKU of the scenario: " + ", ".join(skus)
                    return [(("node_shapes", sku), msg, sku)]
        by_workload: dict[str, list[int]] = {}
        class_of: dict[str, tuple[int, str | None]] = {}
        for i, team in enumerate(self.teams):
            if workloads is not None and team.workload not in workloads:
                msg = "must be a workload of the scenario: " + ", ".join(workloads)
                return [(("teams", i, "workload"), msg, team.workload)]
            if team.priority_class is not None and team.priority_class not in self.priority_classes:
                known = (
                    ", ".join(self.priority_classes)
                    or "none defined in simulation.priority_classes"
                )
                msg = f"must be a priority class: {known}"
                return [(("teams", i, "priority_class"), msg, team.priority_class)]
            same = by_workload.setdefault(team.workload, [])
            if any(self.teams[j].name == team.name for j in same):
                msg = f"must be a team not listed before for workload {team.workload}"
                return [(("teams", i, "name"), msg, team.name)]
            same.append(i)
            first = class_of.setdefault(team.name, (i, team.priority_class))
            if first[1] != team.priority_class:
                msg = (
                    f"must be the class team {team.name} has in simulation.teams[{first[0]}] "
                    f"({first[1]})"
                )
                return [(("teams", i, "priority_class"), msg, team.priority_class)]
        for workload, idx in by_workload.items():
            total = math.fsum(self.teams[i].share for i in idx)
            if abs(total - 1.0) > SHARE_TOLERANCE:
                listed = ", ".join(f"teams[{i}]" for i in idx)
                msg = (
                    f"the shares of the teams of workload {workload} must sum to 1; {listed} "
                    f"sum to {total:g}"
                )
                return [(("teams", idx[-1], "share"), msg, self.teams[idx[-1]].share)]
        return []

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


def _thaw_top(raw: Mapping[str, Any]) -> dict[str, Any]:
    thawed = _thaw(raw)
    assert isinstance(thawed, dict)
    return thawed


class _Failing:
    """Makes a :class:`SettingsError` whose problems sit under ``simulation`` in the file
    ``source`` (with their lines when ``source`` is a file that can be read)."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self.root = read_document(source).root
        except InputRejected:
            self.root = None

    def __call__(self, problems: Sequence[tuple[Loc, str, Any, str | None]]) -> SettingsError:
        errors = []
        for loc, msg, value, kind in problems:
            at = ("simulation", *loc)
            e: dict[str, Any] = {
                "loc": at,
                "msg": msg,
                "source": self.source,
                "line": line_of(self.root, at),
                "type": kind,
            }
            if value is not None or kind not in ("missing", "cross_field"):
                e["input"] = value
            errors.append(e)
        return SettingsError(errors)
