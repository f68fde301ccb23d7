"""Scenario YAML -> a validated, frozen `Scenario` (the format is in planner/README.md).

The file is a pydantic model (:class:`ScenarioFile`, on the shared validation layer
``scheduler/files/document.py``: strict types, no unknown keys, finite numbers, duplicate YAML
keys rejected); what one section cannot check alone (a workload's sites, a SKU's regions,
windows in order, names unique) is checked after it. Every problem is one line of a
:class:`ScenarioError`, in the job spec's format::

    china-dc.yaml:142: sites[1].grid_cap_mw: Input should be greater than or equal to 0 (got -5)

The published JSON Schema (``examples/schemas/scenario.schema.json``) is this model's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
)

from planner.demand import ANY_CASE
from planner.inputs import (
    Economics,
    Fleet,
    Horizon,
    Installed,
    Scenario,
    Site,
    Sku,
    Slo,
    Window,
    Workload,
    parse_quarter,
)
from scheduler.files.document import (
    Document,
    FileModel,
    InputRejected,
    Loc,
    dotted,
    line_of,
    read_document,
    validate,
)

__all__ = ["ScenarioError", "ScenarioFile", "load_scenario", "parse_scenario"]

_SCI = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_QUARTER = r"^[0-9]{4}Q[1-4]$"
_FAR = 10**6  # an open-ended eligibility window ends here (quarter index)
_GRID_TOLERANCE_MW = 1e-9


class ScenarioError(InputRejected):
    """A bad scenario file: one line per problem, ``file:line: field.path: msg (got value)``."""

    @property
    def where(self) -> str:
        """The first problem's field path, e.g. ``sites[1].grid_cap_mw``."""
        return dotted(self.first["loc"])


# --- field types ------------------------------------------------------------------------------


def _sci_float(v: object) -> object:
    """PyYAML (YAML 1.1) reads ``1.0e6`` as a string (it needs ``1.0e+6``); take it as the
    number it means."""
    if isinstance(v, str) and _SCI.match(v.strip()):
        return float(v)
    return v


_SCI_NUMBER = BeforeValidator(_sci_float)
# Constraints first, then the YAML 1.1 fix (so the JSON Schema keeps minimum/maximum).
NonNegative = Annotated[float, Field(ge=0), _SCI_NUMBER]
Positive = Annotated[float, Field(gt=0), _SCI_NUMBER]
Share = Annotated[float, Field(ge=0, le=1), _SCI_NUMBER]
PositiveShare = Annotated[float, Field(gt=0, le=1), _SCI_NUMBER]
Rate = Annotated[float, Field(ge=-0.9), _SCI_NUMBER]
PriceChange = Annotated[float, Field(ge=-0.9, le=1), _SCI_NUMBER]
Pue = Annotated[float, Field(ge=1, le=3), _SCI_NUMBER]
Multiplier = Annotated[float, Field(ge=1), _SCI_NUMBER]
Fraction = Annotated[float, Field(ge=0, lt=1), _SCI_NUMBER]
# Integers at most 2**53: the model computes in floats, which hold such integers exactly.
_MAX_INT = 2**53
Count = Annotated[int, Field(ge=0, le=_MAX_INT)]
PositiveCount = Annotated[int, Field(ge=1, le=_MAX_INT)]
# Leading and trailing blanks are dropped; the pattern says so in the JSON Schema.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"\S")]


def _quarter_label(v: str) -> str:
    if not re.match(_QUARTER, v):
        raise ValueError("Input should be a quarter like 2027Q1")
    return v


Quarter = Annotated[
    str,
    AfterValidator(_quarter_label),
    WithJsonSchema({"type": "string", "pattern": _QUARTER, "examples": ["2027Q1"]}),
]


def _system_size(v: int) -> int:
    if v not in (8, 72):
        raise ValueError("Input should be 8 (an HGX/DGX server) or 72 (an NVL72 rack)")
    return v


SystemGpus = Annotated[
    int,
    AfterValidator(_system_size),
    WithJsonSchema({"type": "integer", "enum": [8, 72]}),
]


def _one_or_many(one: str, many: str) -> Callable[[Any], str]:
    """Discriminator of ``X | <mapping or list of X>``: no union's errors for both members.
    The tags end in ``[]`` so that the error's field path leaves them out."""

    def tag(v: Any) -> str:
        return many if isinstance(v, dict | list) else one

    return tag


# A rate for every growth case, or one per case ({low: 0.05, base: 0.15}).
Growth = Annotated[
    Annotated[Rate, Tag("rate[]")]
    | Annotated[dict[str, Rate], Field(min_length=1), Tag("cases[]")],
    Discriminator(_one_or_many("rate[]", "cases[]")),
]
# One number for every quarter, or one per quarter of the horizon.
Demand = Annotated[
    Annotated[NonNegative, Tag("number[]")] | Annotated[list[NonNegative], Tag("quarters[]")],
    Discriminator(_one_or_many("number[]", "quarters[]")),
]


class _Model(FileModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


# --- the file's sections -----------------------------------------------------------------------


class HorizonFile(_Model):
    """The planned quarters, both inclusive."""

    start: Quarter
    """First planned quarter, e.g. 2027Q1."""
    end: Quarter
    """Last planned quarter (not before start)."""


class UnservedFile(_Model):
    """What demand the plan does not serve costs."""

    mode: Literal["penalty", "hard"]
    """penalty: unserved H100-hours cost penalty_usd_per_h100_hour; hard: all demand is met."""
    penalty_usd_per_h100_hour: Positive | None = None
    """USD per unserved H100-hour (> 0); required with mode penalty."""


class EconomicsFile(_Model):
    discount_rate_per_year: Share
    """Yearly discount rate of the NPV, in [0, 1]."""
    capex_budget_usd_per_quarter: NonNegative | None = None
    """Capex allowed per quarter, USD (absent or null: no budget constraint)."""
    unserved: UnservedFile
    availability: PositiveShare
    """Share of installed hours usable for training, in (0, 1]."""
    idle_power_fraction: Share
    """IT power an idle system draws, as a share of its full power, in [0, 1]."""
    transfer_usd_per_tb: NonNegative
    """USD per TB of new data moved to a site other than the workload's home site."""
    salvage: bool = True
    """Credit the straight-line value of life left at the horizon's end."""
    facility_lifetime_quarters: PositiveCount = 80
    """Life of a power block, quarters (for its salvage value)."""


class WindowFile(_Model):
    """Delivery quarters allowed, both inclusive; a missing end is open."""

    first: Quarter | None = Field(default=None, alias="from")
    """First quarter a delivery is allowed (absent: always before until)."""
    until: Quarter | None = None
    """Last quarter a delivery is allowed (absent: no end; not before from)."""


class SkuFile(_Model):
    """A GPU system one can buy."""

    name: Name
    """Unique among skus, e.g. H100."""
    gpus_per_system: SystemGpus
    """8 (an HGX/DGX server) or 72 (an NVL72 rack)."""
    price_usd_per_system: Positive
    """USD per system in the first planned quarter, before region multipliers."""
    price_change_per_year: PriceChange = 0.0
    """Yearly price change, in [-0.9, 1] (-0.1: 10 % cheaper each year)."""
    region_price_multiplier: dict[str, NonNegative] | None = None
    """Region (of a site) -> price multiplier (default 1)."""
    it_kw_per_system: Positive
    """IT power of one system at full load, kW."""
    bf16_tflops_per_gpu: Positive
    """Dense BF16 peak per GPU, TFLOPS."""
    eff_vs_h100: Positive
    """Training throughput of one GPU in H100 equivalents."""
    lifetime_quarters: PositiveCount
    """Quarters a system is in service after delivery."""
    lead_time_quarters: Count
    """Quarters from order to delivery."""
    liquid_cooled: bool = False
    """Needs liquid-cooled capacity (not air-cooled racks)."""
    eligible: Annotated[dict[str, WindowFile | None], Field(min_length=1)]
    """Region (of a site) -> the quarters a delivery there is allowed (export rules); a region
    not listed may not receive this SKU."""
    supply_cap_systems_per_quarter: dict[str, Count] | None = None
    """Region (of a site) -> most systems ordered per quarter (default: no cap)."""


class InstalledFile(_Model):
    """Systems delivered before (or during) the plan."""

    sku: Name
    """A SKU of skus."""
    systems: Count
    delivered: Quarter
    """Quarter of delivery (before the horizon for systems already there)."""


class SiteFile(_Model):
    """A data centre."""

    name: Name
    """Unique among sites."""
    region: Name
    """The site's region (export rules, data residency), e.g. CN."""
    existing_it_mw: NonNegative
    """IT power already built, MW."""
    existing_racks: Count
    """Air-cooled racks already built."""
    grid_cap_mw: NonNegative
    """Facility draw (IT x PUE) the grid connection allows, MW (>= existing_it_mw x pue)."""
    pue: Pue
    """Power usage effectiveness, in [1, 3]."""
    electricity_usd_per_kwh: NonNegative
    rack_kw: Positive
    """Air-cooled power density per rack, kW."""
    liquid_it_mw: NonNegative = 0.0
    """Existing liquid-cooled IT power, MW (part of existing_it_mw, so at most that)."""
    block_mw: Positive
    """IT MW one power block adds."""
    block_usd_per_mw: NonNegative
    block_lead_quarters: Count
    """Quarters from ordering a block to using it."""
    max_blocks_per_quarter: Count
    blocks_liquid: bool = False
    """New blocks are liquid-cooled."""
    opening_cost_usd: NonNegative = 0.0
    """0: none; else building any block first opens the site at this cost."""
    installed: list[InstalledFile] = Field(default_factory=list)


class FleetFile(_Model):
    """One region's fleet data (planner-facts.md section 4a): demand equations (D1)-(D7)."""

    vehicles: Positive
    """Data-collecting vehicles in the first planned quarter."""
    vehicle_growth_per_year: Growth
    """A yearly rate (>= -0.9), or growth case -> rate ({low: 0.05, base: 0.15})."""
    clips_per_vehicle_day: Positive
    clip_s: Positive
    keep_fraction: PositiveShare
    """Share of clips kept after curation, in (0, 1]."""
    retention_quarters: PositiveCount
    """Quarters curated video is kept for replay."""
    cameras: PositiveCount
    sampled_fps: Positive
    height_px: PositiveCount
    width_px: PositiveCount
    tokenizer_t: PositiveCount
    """Temporal compression of the tokenizer."""
    tokenizer_h: PositiveCount
    tokenizer_w: PositiveCount
    params_b: Positive
    """Trainable parameters in the first quarter, billions."""
    params_growth_per_year: Rate = 0.0
    """Yearly growth of the parameters, >= -0.9."""
    passes_new: NonNegative
    """Training passes over each quarter's new video."""
    passes_replay: NonNegative
    """Passes over the retained pool per quarter."""
    experiments_multiplier: Multiplier
    """Compute of all experiments over the main training run, >= 1."""
    mfu: PositiveShare
    """Model FLOPS utilisation, in (0, 1]."""
    goodput: PositiveShare
    """Share of time training makes progress, in (0, 1]."""
    reference_tflops: Positive
    """Dense BF16 peak of the reference GPU (H100: 989)."""
    video_gb_per_hour: Positive
    """Stored size of one hour of multi-camera video, GB."""


class WorkloadFile(_Model):
    """A training workload: its demand (fleet data, or H100-hours directly) and where it may
    run."""

    name: Name
    """Unique among workloads."""
    home_site: Name
    """The site (of sites) where its data lands; serving it elsewhere costs transfer."""
    allowed_regions: Annotated[list[str], Field(min_length=1)]
    """Regions (of sites) it may run in (data residency)."""
    fleet: FleetFile | None = None
    """Demand from fleet data; give exactly one of fleet and demand_h100_hours_per_quarter."""
    demand_h100_hours_per_quarter: Demand | None = None
    """H100-hours per quarter: one number for every quarter, or one per quarter."""
    demand_growth_per_year: Growth | None = None
    """With a direct demand: a yearly rate, or growth case -> rate."""
    tb_per_h100_hour: NonNegative = 0.0
    """With a direct demand: TB of data moved per H100-hour served away from home."""


class SloFile(_Model):
    """The closed loop's service-level objective (planner/README.md, "Closed loop")."""

    wait_p95_hours: Positive
    """p95 queue wait a site-quarter may have, hours (> 0)."""
    max_unserved_fraction: Fraction = 0.02
    """Share of demand that may go unserved, in [0, 1)."""
    iterations: Annotated[int, Field(ge=1, le=50)] = 6
    """The loop's limit on plan -> simulate -> re-plan rounds, 1..50."""


class ScenarioFile(_Model):
    """A capacity-planning scenario for `gpuyard plan` (planner/README.md)."""

    model_config = ConfigDict(title="gpuyard planner scenario")

    name: Name
    horizon: HorizonFile
    growth_case: Name = "base"
    """The growth case planned for: one of the workloads' cases (default base)."""
    economics: EconomicsFile
    skus: Annotated[list[SkuFile], Field(min_length=1)]
    sites: Annotated[list[SiteFile], Field(min_length=1)]
    workloads: Annotated[list[WorkloadFile], Field(min_length=1)]
    notes: list[str] = Field(default_factory=list)
    """Free text carried into the outputs (sources, policy facts)."""
    slo: SloFile | None = None
    simulation: dict[str, Any] | None = None
    """How plans are replayed through the scheduling core (simulations/plan_sim/settings.py
    validates it)."""


# --- what the sections cannot check alone ------------------------------------------------------


class _Problems:
    """Problems found after the model, each with its line where the document has one."""

    def __init__(self, doc: Document) -> None:
        self.doc, self.errors = doc, list[dict[str, Any]]()

    def add(self, loc: Loc, msg: str, value: Any = None) -> None:
        e: dict[str, Any] = {"loc": loc, "msg": msg, "source": self.doc.source}
        e["line"] = line_of(self.doc.root, loc)
        if value is not None:
            e["input"] = value
        self.errors.append(e)

    def given(self, loc: Loc) -> Any:
        """The value at ``loc`` as the document has it (before validation)."""
        v = self.doc.data
        for part in loc:
            v = v[part]
        return v

    def raise_any(self) -> None:
        if self.errors:
            raise ScenarioError(self.errors)


def _one_of(what: str, names: tuple[str, ...] | list[str]) -> str:
    return f"Input should be {what}: {', '.join(names)}" if names else f"there is no {what}"


def _quarter(label: str, horizon: Horizon) -> int:
    return parse_quarter(label) - horizon.start


def _unique(p: _Problems, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            p.add((key, i, "name"), f"Input should be a name not used by another entry of {key}", n)
        seen.add(n)


def _rates(g: float | dict[str, float]) -> tuple[tuple[str, float], ...]:
    if isinstance(g, dict):
        return tuple(sorted((c, float(r)) for c, r in g.items()))
    return ((ANY_CASE, float(g)),)


def _frozen(v: object) -> object:
    """A YAML value made read-only: mappings become MappingProxyType, lists tuples."""
    if isinstance(v, dict):
        return MappingProxyType({k: _frozen(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


def _horizon(f: ScenarioFile, p: _Problems) -> Horizon:
    start, end = parse_quarter(f.horizon.start), parse_quarter(f.horizon.end)
    if end < start:
        p.add(("horizon", "end"), f"Input should be a quarter not before start {f.horizon.start}",
              f.horizon.end)  # fmt: skip
        end = start
    return Horizon(start=start, quarters=end - start + 1)


def _economics(e: EconomicsFile, p: _Problems) -> Economics:
    u = e.unserved
    if u.mode == "penalty" and u.penalty_usd_per_h100_hour is None:
        p.add(("economics", "unserved", "penalty_usd_per_h100_hour"),
              "required field is missing (with mode penalty, a number > 0)")  # fmt: skip
    return Economics(
        discount_rate_per_year=float(e.discount_rate_per_year),
        capex_budget_usd_per_quarter=None if e.capex_budget_usd_per_quarter is None
        else float(e.capex_budget_usd_per_quarter),
        unserved_mode=u.mode,
        penalty_usd_per_h100_hour=float(u.penalty_usd_per_h100_hour or 0.0) if u.mode == "penalty" else 0.0,
        availability=float(e.availability),
        idle_power_fraction=float(e.idle_power_fraction),
        transfer_usd_per_tb=float(e.transfer_usd_per_tb),
        salvage=e.salvage,
        facility_lifetime_quarters=e.facility_lifetime_quarters,
    )  # fmt: skip


def _region_keys(p: _Problems, loc: Loc, keys: Mapping[str, object] | None,
                 regions: tuple[str, ...]) -> None:  # fmt: skip
    for r in keys or {}:
        if r not in regions:
            p.add((*loc, r), _one_of("a region of a site", regions), r)


def _window(p: _Problems, loc: Loc, w: WindowFile | None, horizon: Horizon) -> Window:
    if w is None:
        return Window(-_FAR, _FAR)
    first = -_FAR if w.first is None else _quarter(w.first, horizon)
    last = _FAR if w.until is None else _quarter(w.until, horizon)
    if last < first:
        p.add((*loc, "until"), f"Input should be a quarter not before from {w.first}", w.until)
    return Window(first, last)


def _sku(p: _Problems, i: int, k: SkuFile, horizon: Horizon, regions: tuple[str, ...]) -> Sku:
    loc: Loc = ("skus", i)
    _region_keys(p, (*loc, "eligible"), k.eligible, regions)
    _region_keys(p, (*loc, "region_price_multiplier"), k.region_price_multiplier, regions)
    _region_keys(
        p, (*loc, "supply_cap_systems_per_quarter"), k.supply_cap_systems_per_quarter, regions
    )
    eligible = tuple(
        (r, _window(p, (*loc, "eligible", r), w, horizon)) for r, w in k.eligible.items()
    )
    mult = k.region_price_multiplier or {}
    caps = k.supply_cap_systems_per_quarter or {}
    return Sku(
        name=k.name, gpus_per_system=k.gpus_per_system, price_usd_per_system=float(k.price_usd_per_system),
        price_change_per_year=float(k.price_change_per_year),
        region_price_multiplier=tuple(sorted((r, float(m)) for r, m in mult.items())),
        it_kw_per_system=float(k.it_kw_per_system), bf16_tflops_per_gpu=float(k.bf16_tflops_per_gpu),
        eff_vs_h100=float(k.eff_vs_h100), lifetime_quarters=k.lifetime_quarters,
        lead_time_quarters=k.lead_time_quarters, liquid_cooled=k.liquid_cooled, eligible=eligible,
        supply_cap_systems_per_quarter=tuple(sorted(caps.items())),
    )  # fmt: skip


def _site(p: _Problems, i: int, s: SiteFile, horizon: Horizon, skus: tuple[str, ...]) -> Site:
    loc: Loc = ("sites", i)
    for j, d in enumerate(s.installed):
        if d.sku not in skus:
            p.add((*loc, "installed", j, "sku"), _one_of("a SKU of skus", skus), d.sku)
    if s.liquid_it_mw > s.existing_it_mw:
        p.add((*loc, "liquid_it_mw"),
              f"Input should be less than or equal to existing_it_mw = {s.existing_it_mw:g}", s.liquid_it_mw)  # fmt: skip
    if s.existing_it_mw * s.pue > s.grid_cap_mw + _GRID_TOLERANCE_MW:
        p.add((*loc, "grid_cap_mw"),
              f"Input should be >= existing_it_mw x pue = {s.existing_it_mw * s.pue:g}", s.grid_cap_mw)  # fmt: skip
    return Site(
        name=s.name, region=s.region, existing_it_mw=float(s.existing_it_mw), existing_racks=s.existing_racks,
        grid_cap_mw=float(s.grid_cap_mw), pue=float(s.pue), electricity_usd_per_kwh=float(s.electricity_usd_per_kwh),
        rack_kw=float(s.rack_kw), liquid_it_mw=float(s.liquid_it_mw), block_mw=float(s.block_mw),
        block_usd_per_mw=float(s.block_usd_per_mw), block_lead_quarters=s.block_lead_quarters,
        max_blocks_per_quarter=s.max_blocks_per_quarter, blocks_liquid=s.blocks_liquid,
        opening_cost_usd=float(s.opening_cost_usd),
        installed=tuple(Installed(d.sku, d.systems, _quarter(d.delivered, horizon)) for d in s.installed),
    )  # fmt: skip


def _fleet(f: FleetFile) -> Fleet:
    values: dict[str, Any] = {}
    for name in Fleet.__dataclass_fields__:
        v = getattr(f, name)
        values[name] = _rates(v) if name == "vehicle_growth_per_year" else v
    return Fleet(**values)


def _workload(p: _Problems, i: int, w: WorkloadFile, horizon: Horizon,
              sites: tuple[Site, ...]) -> Workload:  # fmt: skip
    loc: Loc = ("workloads", i)
    names = tuple(s.name for s in sites)
    regions = tuple(sorted({s.region for s in sites}))
    if w.home_site not in names:
        p.add((*loc, "home_site"), _one_of("a site name", names), w.home_site)
    for j, r in enumerate(w.allowed_regions):
        if r not in regions:
            p.add((*loc, "allowed_regions", j), _one_of("a region of a site", regions), r)
    direct: tuple[float, ...] | None = None
    raw = w.demand_h100_hours_per_quarter
    if (w.fleet is None) == (raw is None):
        given = "both are given" if raw is not None else "neither is given"
        p.add((*loc, "fleet"),
              f"give exactly one of fleet and demand_h100_hours_per_quarter ({given})")  # fmt: skip
    elif isinstance(raw, list):
        if len(raw) != horizon.quarters:
            p.add((*loc, "demand_h100_hours_per_quarter"),
                  f"Input should be one number, or a list of {horizon.quarters} (one per quarter), "
                  f"not of {len(raw)}", p.given((*loc, "demand_h100_hours_per_quarter")))  # fmt: skip
        direct = tuple(float(v) for v in raw)
    elif raw is not None:
        direct = (float(raw),) * horizon.quarters
    growth = () if w.demand_growth_per_year is None else _rates(w.demand_growth_per_year)
    return Workload(
        name=w.name, home_site=w.home_site, allowed_regions=tuple(sorted(set(w.allowed_regions))),
        fleet=None if w.fleet is None else _fleet(w.fleet), demand_h100_hours=direct,
        demand_growth_per_year=growth, tb_per_h100_hour=float(w.tb_per_h100_hour),
    )  # fmt: skip


def _slo(s: SloFile | None) -> Slo | None:
    if s is None:
        return None
    return Slo(float(s.wait_p95_hours), float(s.max_unserved_fraction), s.iterations)


def _scenario(doc: Document) -> Scenario:
    f = validate(ScenarioFile, doc, error=ScenarioError)
    p = _Problems(doc)
    horizon = _horizon(f, p)
    p.raise_any()  # the other checks count quarters of the horizon
    regions = tuple(sorted({s.region for s in f.sites}))
    skus = tuple(_sku(p, i, k, horizon, regions) for i, k in enumerate(f.skus))
    _unique(p, "skus", [k.name for k in skus])
    sku_names = tuple(k.name for k in skus)
    sites = tuple(_site(p, i, s, horizon, sku_names) for i, s in enumerate(f.sites))
    _unique(p, "sites", [s.name for s in sites])
    workloads = tuple(_workload(p, i, w, horizon, sites) for i, w in enumerate(f.workloads))
    _unique(p, "workloads", [w.name for w in workloads])
    economics = _economics(f.economics, p)
    p.raise_any()
    simulation = None if f.simulation is None else MappingProxyType(
        {k: _frozen(v) for k, v in f.simulation.items()})  # fmt: skip
    scenario = Scenario(
        name=f.name, source=doc.source, horizon=horizon, growth_case="base", economics=economics,
        skus=skus, sites=sites, workloads=workloads, notes=tuple(f.notes), slo=_slo(f.slo),
        simulation=simulation,
    )  # fmt: skip
    cases = scenario.growth_cases() or ("base",)
    if f.growth_case not in cases:
        p.add(("growth_case",), _one_of("a growth case of the workloads", cases), f.growth_case)
        p.raise_any()
    return scenario.with_growth(f.growth_case)


def parse_scenario(doc: object, source: str) -> Scenario:
    """A scenario from its parsed YAML ``doc`` (no line numbers); ScenarioError if invalid."""
    return _scenario(Document(doc, source))


def load_scenario(path: str | Path) -> Scenario:
    """The scenario file at ``path``; ScenarioError (file, line, field, value, what is
    allowed) if it cannot be read, is not YAML, gives a key twice or is invalid."""
    try:
        doc = read_document(path)
    except InputRejected as e:
        raise ScenarioError(e.errors) from None
    return _scenario(doc)
