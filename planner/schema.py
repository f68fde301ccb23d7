"""Scenario YAML -> a validated, frozen `Scenario` (the format is in planner/README.md).

Every error is a `ScenarioError` naming the file, the YAML path (``sites[1].grid_cap_mw``),
the bad value and what is allowed; unknown keys are rejected with the allowed ones listed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

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

_SCI = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_FAR = 10**6  # an open-ended eligibility window ends here (quarter index)


class ScenarioError(ValueError):
    def __init__(self, source: str, where: str, value: object, allowed: str) -> None:
        shown = (
            repr(value)
            if not isinstance(value, str) or len(value) < 80
            else repr(value[:77] + "...")
        )
        super().__init__(f"{source}: {where}: {shown} is not allowed ({allowed})")
        self.where = where


def _number(src: str, where: str, v: object, lo: float = 0.0, hi: float = math.inf,
            lo_open: bool = False, hi_open: bool = False) -> float:  # fmt: skip
    if isinstance(v, str) and _SCI.match(v.strip()):
        v = float(v)  # YAML 1.1 (PyYAML) reads 1.0e6 as a string; it needs 1.0e+6
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):  # type: ignore[operator]
        upper = f" and {'<' if hi_open else '<='} {hi:g}" if hi < math.inf else ""
        rng = f"{'>' if lo_open else '>='} {lo:g}" + upper
        raise ScenarioError(src, where, v, f"a number {rng}")
    return float(v)  # type: ignore[arg-type]


class _Doc:
    """Reads one mapping of the YAML, remembering its path for error messages."""

    def __init__(self, src: str, where: str, raw: object, keys: Mapping[str, bool]) -> None:
        # keys: name -> required
        if not isinstance(raw, dict):
            raise ScenarioError(
                src, where or "document", raw, "a mapping with keys " + ", ".join(keys)
            )
        unknown = sorted(str(k) for k in raw if k not in keys)
        if unknown:
            raise ScenarioError(
                src,
                self._at(where, unknown[0]),
                raw[unknown[0]],
                "unknown key; allowed: " + ", ".join(keys),
            )
        for k, required in keys.items():
            if required and k not in raw:
                raise ScenarioError(src, self._at(where, k), None, "a required key")
        self.src, self.where, self.raw = src, where, raw

    @staticmethod
    def _at(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def path(self, key: str) -> str:
        return self._at(self.where, key)

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def num(self, key: str, default: float | None = None, lo: float = 0.0, hi: float = math.inf,
            lo_open: bool = False, hi_open: bool = False) -> float:  # fmt: skip
        v = self.raw.get(key, default)
        return _number(self.src, self.path(key), v, lo, hi, lo_open, hi_open)

    def integer(self, key: str, default: int | None = None, lo: int = 0,
                hi: int | None = None) -> int:  # fmt: skip
        v = self.raw.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
            upper = "" if hi is None else f" and <= {hi}"
            raise ScenarioError(self.src, self.path(key), v, f"an integer >= {lo}{upper}")
        return v

    def text(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        v = self.raw.get(key, default)
        if not isinstance(v, str) or not v.strip() or (choices and v not in choices):
            raise ScenarioError(
                self.src,
                self.path(key),
                v,
                "one of " + ", ".join(choices) if choices else "a non-empty string",
            )
        return v.strip()

    def flag(self, key: str, default: bool) -> bool:
        v = self.raw.get(key, default)
        if not isinstance(v, bool):
            raise ScenarioError(self.src, self.path(key), v, "true or false")
        return v

    def quarter(self, key: str, horizon: Horizon | None, default: str | None = None) -> int:
        v = self.raw.get(key, default)
        try:
            q = parse_quarter(str(v))
        except ValueError:
            raise ScenarioError(self.src, self.path(key), v, "a quarter like 2027Q1") from None
        return q if horizon is None else q - horizon.start

    def region_map(
        self, key: str, regions: tuple[str, ...], lo: float, integer: bool = False
    ) -> dict[str, float]:
        raw = self.raw.get(key) or {}
        if not isinstance(raw, dict):
            raise ScenarioError(self.src, self.path(key), raw, "a mapping of region to a number")
        out: dict[str, float] = {}
        for r, v in raw.items():
            where = f"{self.path(key)}.{r}"
            if r not in regions:
                raise ScenarioError(self.src, where, r, "a region of a site: " + ", ".join(regions))
            if integer and (not isinstance(v, int) or isinstance(v, bool) or v < lo):
                raise ScenarioError(self.src, where, v, f"an integer >= {lo:g}")
            out[str(r)] = _number(self.src, where, v, lo)
        return out

    def seq(self, key: str, required: bool = True) -> list[Any]:
        v = self.raw.get(key, [] if not required else None)
        if not isinstance(v, list) or (required and not v):
            raise ScenarioError(self.src, self.path(key), v, "a non-empty list")
        return v


def _horizon(d: _Doc) -> Horizon:
    h = _Doc(d.src, "horizon", d.get("horizon"), {"start": True, "end": True})
    start, end = h.quarter("start", None), h.quarter("end", None)
    if end < start:
        raise ScenarioError(
            d.src, "horizon.end", h.get("end"), f"a quarter not before {h.get('start')}"
        )
    return Horizon(start=start, quarters=end - start + 1)


def _economics(d: _Doc) -> Economics:
    keys = {"discount_rate_per_year": True, "capex_budget_usd_per_quarter": False, "unserved": True,
            "availability": True, "idle_power_fraction": True, "transfer_usd_per_tb": True, "salvage": False,
            "facility_lifetime_quarters": False}  # fmt: skip
    e = _Doc(d.src, "economics", d.get("economics"), keys)
    u = _Doc(
        d.src,
        "economics.unserved",
        e.get("unserved"),
        {"mode": True, "penalty_usd_per_h100_hour": False},
    )
    mode = u.text("mode", choices=("penalty", "hard"))
    return Economics(
        discount_rate_per_year=e.num("discount_rate_per_year", hi=1.0),
        capex_budget_usd_per_quarter=e.num("capex_budget_usd_per_quarter") if e.has("capex_budget_usd_per_quarter") else None,
        unserved_mode=mode,
        penalty_usd_per_h100_hour=u.num("penalty_usd_per_h100_hour", lo_open=True) if mode == "penalty" else 0.0,
        availability=e.num("availability", lo=0.0, hi=1.0, lo_open=True),
        idle_power_fraction=e.num("idle_power_fraction", hi=1.0),
        transfer_usd_per_tb=e.num("transfer_usd_per_tb"),
        salvage=e.flag("salvage", True),
        facility_lifetime_quarters=e.integer("facility_lifetime_quarters", 80, lo=1),
    )  # fmt: skip


def _window(src: str, where: str, raw: object, horizon: Horizon) -> Window:
    w = _Doc(src, where, raw, {"from": False, "until": False})
    first = w.quarter("from", horizon) if w.has("from") else -_FAR
    last = w.quarter("until", horizon) if w.has("until") else _FAR
    if last < first:
        raise ScenarioError(
            src, f"{where}.until", w.get("until"), f"a quarter not before {w.get('from')}"
        )
    return Window(first, last)


_SKU_KEYS = {"name": True, "gpus_per_system": True, "price_usd_per_system": True, "price_change_per_year": False,
             "region_price_multiplier": False, "it_kw_per_system": True, "bf16_tflops_per_gpu": True,
             "eff_vs_h100": True, "lifetime_quarters": True, "lead_time_quarters": True, "liquid_cooled": False,
             "eligible": True, "supply_cap_systems_per_quarter": False}  # fmt: skip


def _sku(src: str, i: int, raw: object, horizon: Horizon, regions: tuple[str, ...]) -> Sku:
    k = _Doc(src, f"skus[{i}]", raw, _SKU_KEYS)
    n = k.integer("gpus_per_system", lo=1)
    if n not in (8, 72):
        raise ScenarioError(
            src, k.path("gpus_per_system"), n, "8 (HGX/DGX server) or 72 (NVL72 rack)"
        )
    elig_raw = k.get("eligible")
    if not isinstance(elig_raw, dict) or not elig_raw:
        raise ScenarioError(
            src, k.path("eligible"), elig_raw, "a mapping of region to {from, until}"
        )
    eligible: list[tuple[str, Window]] = []
    for r, win in elig_raw.items():
        if r not in regions:
            raise ScenarioError(
                src, f"{k.path('eligible')}.{r}", r, "a region of a site: " + ", ".join(regions)
            )
        eligible.append((str(r), _window(src, f"{k.path('eligible')}.{r}", win or {}, horizon)))
    mult = k.region_map("region_price_multiplier", regions, lo=0.0)
    caps = k.region_map("supply_cap_systems_per_quarter", regions, lo=0, integer=True)
    return Sku(
        name=k.text("name"), gpus_per_system=n, price_usd_per_system=k.num("price_usd_per_system", lo_open=True),
        price_change_per_year=k.num("price_change_per_year", 0.0, lo=-0.9, hi=1.0),
        region_price_multiplier=tuple(sorted(mult.items())), it_kw_per_system=k.num("it_kw_per_system", lo_open=True),
        bf16_tflops_per_gpu=k.num("bf16_tflops_per_gpu", lo_open=True), eff_vs_h100=k.num("eff_vs_h100", lo_open=True),
        lifetime_quarters=k.integer("lifetime_quarters", lo=1), lead_time_quarters=k.integer("lead_time_quarters"),
        liquid_cooled=k.flag("liquid_cooled", False), eligible=tuple(eligible),
        supply_cap_systems_per_quarter=tuple(sorted((r, int(c)) for r, c in caps.items())),
    )  # fmt: skip


_SITE_KEYS = {"name": True, "region": True, "existing_it_mw": True, "existing_racks": True, "grid_cap_mw": True,
              "pue": True, "electricity_usd_per_kwh": True, "rack_kw": True, "liquid_it_mw": False, "block_mw": True,
              "block_usd_per_mw": True, "block_lead_quarters": True, "max_blocks_per_quarter": True,
              "blocks_liquid": False, "opening_cost_usd": False, "installed": False}  # fmt: skip


def _site(src: str, i: int, raw: object, horizon: Horizon, sku_names: tuple[str, ...]) -> Site:
    s = _Doc(src, f"sites[{i}]", raw, _SITE_KEYS)
    existing = s.num("existing_it_mw")
    installed: list[Installed] = []
    for j, item in enumerate(s.seq("installed", required=False)):
        d = _Doc(
            src,
            f"{s.path('installed')}[{j}]",
            item,
            {"sku": True, "systems": True, "delivered": True},
        )
        sku = d.text("sku")
        if sku not in sku_names:
            raise ScenarioError(src, d.path("sku"), sku, "a SKU of skus: " + ", ".join(sku_names))
        installed.append(Installed(sku, d.integer("systems"), d.quarter("delivered", horizon)))
    site = Site(
        name=s.text("name"), region=s.text("region"), existing_it_mw=existing, existing_racks=s.integer("existing_racks"),
        grid_cap_mw=s.num("grid_cap_mw"), pue=s.num("pue", lo=1.0, hi=3.0),
        electricity_usd_per_kwh=s.num("electricity_usd_per_kwh"), rack_kw=s.num("rack_kw", lo_open=True),
        liquid_it_mw=s.num("liquid_it_mw", 0.0, hi=existing), block_mw=s.num("block_mw", lo_open=True),
        block_usd_per_mw=s.num("block_usd_per_mw"), block_lead_quarters=s.integer("block_lead_quarters"),
        max_blocks_per_quarter=s.integer("max_blocks_per_quarter"), blocks_liquid=s.flag("blocks_liquid", False),
        opening_cost_usd=s.num("opening_cost_usd", 0.0), installed=tuple(installed),
    )  # fmt: skip
    if site.existing_it_mw * site.pue > site.grid_cap_mw + 1e-9:
        raise ScenarioError(src, s.path("grid_cap_mw"), site.grid_cap_mw,
                            f">= existing_it_mw x pue = {site.existing_it_mw * site.pue:g}")  # fmt: skip
    return site


_FLEET_KEYS = {f: True for f in Fleet.__dataclass_fields__}
_FLEET_KEYS["params_growth_per_year"] = False


def _growth_map(d: _Doc, key: str) -> tuple[tuple[str, float], ...]:
    raw = d.get(key)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return ((ANY_CASE, d.num(key, lo=-0.9)),)
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(
            d.src, d.path(key), raw, "a rate, or a mapping of growth case to a rate"
        )
    sub = _Doc(d.src, d.path(key), raw, {str(c): False for c in raw})
    return tuple(sorted((str(c), sub.num(str(c), lo=-0.9)) for c in raw))


def _fleet(src: str, where: str, raw: object) -> Fleet:
    f = _Doc(src, where, raw, _FLEET_KEYS)
    ints = {
        "retention_quarters",
        "cameras",
        "height_px",
        "width_px",
        "tokenizer_t",
        "tokenizer_h",
        "tokenizer_w",
    }
    fractions = {"keep_fraction", "mfu", "goodput"}
    values: dict[str, Any] = {}
    for name in Fleet.__dataclass_fields__:
        if name == "vehicle_growth_per_year":
            values[name] = _growth_map(f, name)
        elif name in ints:
            values[name] = f.integer(name, lo=1)
        elif name in fractions:
            values[name] = f.num(name, lo=0.0, hi=1.0, lo_open=True)
        elif name == "params_growth_per_year":
            values[name] = f.num(name, 0.0, lo=-0.9)
        else:
            values[name] = f.num(name, lo_open=name not in {"passes_new", "passes_replay"})
    if values["experiments_multiplier"] < 1.0:
        raise ScenarioError(
            src, f.path("experiments_multiplier"), values["experiments_multiplier"], "a number >= 1"
        )
    return Fleet(**values)


_WORKLOAD_KEYS = {"name": True, "home_site": True, "allowed_regions": True, "fleet": False,
                  "demand_h100_hours_per_quarter": False, "demand_growth_per_year": False, "tb_per_h100_hour": False}  # fmt: skip


def _workload(src: str, i: int, raw: object, horizon: Horizon, sites: tuple[Site, ...]) -> Workload:
    w = _Doc(src, f"workloads[{i}]", raw, _WORKLOAD_KEYS)
    site_names = tuple(s.name for s in sites)
    regions = tuple(sorted({s.region for s in sites}))
    home = w.text("home_site")
    if home not in site_names:
        raise ScenarioError(src, w.path("home_site"), home, "a site name: " + ", ".join(site_names))
    allowed = w.seq("allowed_regions")
    for j, r in enumerate(allowed):
        if r not in regions:
            raise ScenarioError(
                src,
                f"{w.path('allowed_regions')}[{j}]",
                r,
                "a region of a site: " + ", ".join(regions),
            )
    if w.has("fleet") == w.has("demand_h100_hours_per_quarter"):
        raise ScenarioError(
            src,
            w.path("fleet"),
            w.get("fleet"),
            "exactly one of fleet and demand_h100_hours_per_quarter",
        )
    fleet = _fleet(src, w.path("fleet"), w.get("fleet")) if w.has("fleet") else None
    direct: tuple[float, ...] | None = None
    if not fleet:
        raw_d = w.get("demand_h100_hours_per_quarter")
        where = w.path("demand_h100_hours_per_quarter")
        values = raw_d if isinstance(raw_d, list) else [raw_d] * horizon.quarters
        if len(values) != horizon.quarters:
            raise ScenarioError(
                src,
                where,
                f"{len(values)} values",
                f"one number, or {horizon.quarters} (one per quarter)",
            )
        direct = tuple(_number(src, f"{where}[{j}]" if isinstance(raw_d, list) else where, v)
                       for j, v in enumerate(values))  # fmt: skip
    growth = _growth_map(w, "demand_growth_per_year") if w.has("demand_growth_per_year") else ()
    return Workload(
        name=w.text("name"), home_site=home, allowed_regions=tuple(sorted(set(allowed))), fleet=fleet,
        demand_h100_hours=direct, demand_growth_per_year=growth, tb_per_h100_hour=w.num("tb_per_h100_hour", 0.0),
    )  # fmt: skip


def _slo(d: _Doc) -> Slo | None:
    """``slo:`` (optional): the closed loop's service-level objective (planner/README.md)."""
    if not d.has("slo"):
        return None
    keys = {"wait_p95_hours": True, "max_unserved_fraction": False, "iterations": False}
    s = _Doc(d.src, "slo", d.get("slo"), keys)
    return Slo(
        wait_p95_hours=s.num("wait_p95_hours", lo_open=True),
        max_unserved_fraction=s.num("max_unserved_fraction", 0.02, hi=1.0, hi_open=True),
        iterations=s.integer("iterations", 6, lo=1, hi=50),
    )


def _frozen(v: object) -> object:
    """A YAML value made read-only: mappings become MappingProxyType, lists tuples."""
    if isinstance(v, dict):
        return MappingProxyType({k: _frozen(x) for k, x in v.items()})
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


def _simulation(d: _Doc) -> Mapping[str, Any] | None:
    """``simulation:`` (optional): kept as a read-only mapping for the closed loop, which
    validates it; the planner checks only that it is a mapping."""
    if not d.has("simulation"):
        return None
    raw = d.get("simulation")
    if not isinstance(raw, dict):
        raise ScenarioError(d.src, "simulation", raw, "a mapping (read by the closed loop)")
    return MappingProxyType({str(k): _frozen(v) for k, v in raw.items()})


def _unique(src: str, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ScenarioError(
                src, f"{key}[{i}].name", n, f"a name not used by another entry of {key}"
            )
        seen.add(n)


def parse_scenario(doc: object, source: str) -> Scenario:
    keys = {"name": True, "horizon": True, "growth_case": False, "economics": True, "skus": True, "sites": True,
            "workloads": True, "notes": False, "slo": False, "simulation": False}  # fmt: skip
    d = _Doc(source, "", doc, keys)
    horizon = _horizon(d)
    raw_sites = d.seq("sites")
    regions = tuple(sorted({str(s.get("region")) for s in raw_sites if isinstance(s, dict)}))
    skus = tuple(_sku(source, i, r, horizon, regions) for i, r in enumerate(d.seq("skus")))
    _unique(source, "skus", [k.name for k in skus])
    sku_names = tuple(k.name for k in skus)
    sites = tuple(_site(source, i, r, horizon, sku_names) for i, r in enumerate(raw_sites))
    _unique(source, "sites", [s.name for s in sites])
    workloads = tuple(
        _workload(source, i, r, horizon, sites) for i, r in enumerate(d.seq("workloads"))
    )
    _unique(source, "workloads", [w.name for w in workloads])
    scenario = Scenario(
        name=d.text("name"), source=source, horizon=horizon, growth_case="base", economics=_economics(d),
        skus=skus, sites=sites, workloads=workloads, notes=tuple(str(n) for n in d.seq("notes", required=False)),
        slo=_slo(d), simulation=_simulation(d),
    )  # fmt: skip
    cases = scenario.growth_cases() or ("base",)
    case = d.text("growth_case", "base", choices=cases)
    return Scenario(
        **{**{f: getattr(scenario, f) for f in Scenario.__dataclass_fields__}, "growth_case": case}
    )


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(
            str(p), "file", str(p), f"a readable YAML file ({e.strerror})"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(str(p), "document", str(e).splitlines()[0], "valid YAML") from None
    return parse_scenario(doc, str(p))
