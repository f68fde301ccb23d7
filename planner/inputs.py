"""Validated, frozen planner inputs: what `schema.load_scenario` returns and `build` reads.

Units are in the names (``_mw``, ``_kw``, ``_usd``, ``_quarters``). Quarters are indices into
the horizon (0 = the first planned quarter); an index may be negative for equipment delivered
before the horizon starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

HOURS_PER_QUARTER = 8766.0 / 4  # a Julian year of 365.25 days, split into four quarters
QUARTERS_PER_YEAR = 4
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


def parse_quarter(label: str) -> int:
    """``"2027Q1"`` -> an absolute quarter number (year * 4 + quarter - 1); ValueError if malformed."""
    m = _QUARTER.match(label)
    if not m:
        raise ValueError(f"{label!r} is not a quarter like 2027Q1")
    return int(m.group(1)) * 4 + int(m.group(2)) - 1


def quarter_label(absolute: int) -> str:
    return f"{absolute // 4}Q{absolute % 4 + 1}"


@dataclass(frozen=True, slots=True)
class Horizon:
    start: int  # absolute quarter number of the first planned quarter
    quarters: int

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(quarter_label(self.start + t) for t in range(self.quarters))

    def index(self, label: str) -> int:
        """Index of a quarter label relative to the start (negative before the horizon)."""
        return parse_quarter(label) - self.start


@dataclass(frozen=True, slots=True)
class Window:
    """Quarters [first, last] (indices, inclusive) in which something holds."""

    first: int
    last: int

    def contains(self, t: int) -> bool:
        return self.first <= t <= self.last


@dataclass(frozen=True, slots=True)
class Installed:
    sku: str
    systems: int
    delivered: int  # quarter index of delivery; may be < 0


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    region: str
    existing_it_mw: float
    existing_racks: int
    grid_cap_mw: float  # facility draw (IT x PUE) the grid connection allows
    pue: float
    electricity_usd_per_kwh: float
    rack_kw: float  # air-cooled power density per rack
    liquid_it_mw: float  # existing liquid-cooled IT capacity (part of existing_it_mw)
    block_mw: float  # IT MW added by one power block
    block_usd_per_mw: float
    block_lead_quarters: int
    max_blocks_per_quarter: int
    blocks_liquid: bool  # whether new blocks are liquid-cooled
    opening_cost_usd: float  # 0: none; else a binary decides whether blocks may be built
    installed: tuple[Installed, ...] = ()

    @property
    def racks_per_block(self) -> int:
        return int(self.block_mw * 1000 // self.rack_kw)

    @property
    def max_blocks(self) -> int:
        """Most blocks the grid cap allows in total (constraint (6))."""
        headroom = self.grid_cap_mw / self.pue - self.existing_it_mw
        return max(0, int(headroom / self.block_mw + 1e-9)) if self.block_mw > 0 else 0


@dataclass(frozen=True, slots=True)
class Sku:
    name: str
    gpus_per_system: int
    price_usd_per_system: float  # in the first planned quarter, before region multipliers
    price_change_per_year: float  # e.g. -0.15: 15 % cheaper each year
    region_price_multiplier: tuple[tuple[str, float], ...]
    it_kw_per_system: float
    bf16_tflops_per_gpu: float
    eff_vs_h100: float
    lifetime_quarters: int
    lead_time_quarters: int
    liquid_cooled: bool
    eligible: tuple[tuple[str, Window], ...]  # region -> delivery quarters allowed
    supply_cap_systems_per_quarter: tuple[tuple[str, int], ...]  # region -> cap on orders

    def eligible_in(self, region: str, t: int) -> bool:
        return any(r == region and w.contains(t) for r, w in self.eligible)

    def multiplier(self, region: str) -> float:
        return float(dict(self.region_price_multiplier).get(region, 1.0))

    def price(self, region: str, t: int) -> float:
        """USD per system ordered in quarter t for a site in ``region``."""
        yearly: float = (1.0 + self.price_change_per_year) ** (t / QUARTERS_PER_YEAR)
        return self.price_usd_per_system * yearly * self.multiplier(region)

    def h100_hours_per_system(self, hours: float, availability: float) -> float:
        return self.eff_vs_h100 * self.gpus_per_system * hours * availability


@dataclass(frozen=True, slots=True)
class Fleet:
    """The note's section 4a inputs for one region's fleet data."""

    vehicles: float  # data-collecting vehicles in the first planned quarter
    vehicle_growth_per_year: tuple[tuple[str, float], ...]  # growth case -> rate
    clips_per_vehicle_day: float
    clip_s: float
    keep_fraction: float
    retention_quarters: int
    cameras: int
    sampled_fps: float
    height_px: int
    width_px: int
    tokenizer_t: int  # temporal compression s_t
    tokenizer_h: int
    tokenizer_w: int
    params_b: float  # trainable parameters, billions, in the first quarter
    params_growth_per_year: float
    passes_new: float
    passes_replay: float
    experiments_multiplier: float
    mfu: float
    goodput: float
    reference_tflops: float  # dense BF16 peak of the reference GPU (H100: 989)
    video_gb_per_hour: float  # stored size of one hour of multi-camera video


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    home_site: str  # where its data lands; serving elsewhere costs transfer
    allowed_regions: tuple[str, ...]
    fleet: Fleet | None
    # Either fleet or a direct demand (H100-hours per quarter, one per quarter, growth applied).
    demand_h100_hours: tuple[float, ...] | None = None
    demand_growth_per_year: tuple[tuple[str, float], ...] = ()
    tb_per_h100_hour: float = 0.0  # only with direct demand: data moved per H100-hour served


@dataclass(frozen=True, slots=True)
class Economics:
    discount_rate_per_year: float
    capex_budget_usd_per_quarter: float | None  # None: no budget constraint
    unserved_mode: str  # "penalty" or "hard"
    penalty_usd_per_h100_hour: float
    availability: float  # share of installed hours usable for training
    idle_power_fraction: float  # IT power drawn by an idle system, share of full power
    transfer_usd_per_tb: float
    salvage: bool  # credit the unused life left at the horizon's end
    facility_lifetime_quarters: int = 80  # power blocks; facility life is 15-30 years (note 3c)


@dataclass(frozen=True, slots=True)
class Slo:
    """The closed loop's service-level objective (the scenario's ``slo:``); the planner stores
    it, the loop that replays plans through the scheduler's simulator reads it."""

    wait_p95_hours: float  # p95 queue wait a site-quarter may have, hours (> 0)
    max_unserved_fraction: float = 0.02  # share of demand that may go unserved, [0, 1)
    iterations: int = 6  # the loop's limit on plan -> simulate -> re-plan rounds, 1..50


DerateKey = tuple[str, int | str]  # (site name, quarter index or label like "2027Q1")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str  # file the scenario came from, for messages
    horizon: Horizon
    growth_case: str
    economics: Economics
    skus: tuple[Sku, ...]
    sites: tuple[Site, ...]
    workloads: tuple[Workload, ...]
    # Relaxations used by `shadow` to price rules; a loaded scenario has both False.
    relax_residency: bool = False
    relax_export: bool = False
    notes: tuple[str, ...] = field(default=())
    # (site, quarter index, factor in (0, 1]): constraint (3) of that site-quarter may use only
    # that share of its installed hours (the closed loop's measured usable share); sorted, one
    # entry per site-quarter; missing: 1. Validated on construction (ValueError).
    derate: tuple[tuple[str, int, float], ...] = ()
    slo: Slo | None = None
    # The scenario's ``simulation:`` mapping, read-only and not validated by the planner (the
    # closed loop reads it); excluded from the hash (a mapping has none).
    simulation: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for entry in self.derate:
            site, t, f = entry
            self._check_derate(site, t, f)
            if (site, t) in seen:
                raise ValueError(
                    f"derate of site {site!r} in quarter {t}: given twice (one factor per site-quarter)"
                )
            seen.add((site, t))

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({s.region for s in self.sites}))

    def sku(self, name: str) -> Sku:
        return next(k for k in self.skus if k.name == name)

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def with_growth(self, case: str) -> Scenario:
        return replace(self, growth_case=case)

    def derate_factor(self, site: str, t: int) -> float:
        """The factor of constraint (3) at ``site`` in quarter index ``t`` (1 where none)."""
        for s, q, f in self.derate:
            if s == site and q == t:
                return f
        return 1.0

    @property
    def derate_map(self) -> dict[DerateKey, float]:
        """The derate as {(site, quarter index): factor}, e.g. to merge another round into."""
        return {(s, t): f for s, t, f in self.derate}

    def with_derate(self, factors: Mapping[DerateKey, float]) -> Scenario:
        """This scenario with its derate replaced by ``factors`` ({(site, quarter): factor},
        quarter an index 0..quarters-1 or a label like "2027Q1"; {} removes it). To add to the
        current derate: ``sc.with_derate({**sc.derate_map, **more})``. ValueError names the
        site, the quarter and the value when a factor is not finite and in (0, 1], the site
        is unknown or the quarter is outside the horizon."""
        entries: dict[tuple[str, int], float] = {}
        for key, f in factors.items():
            if not isinstance(key, tuple) or len(key) != 2:
                raise ValueError(f"derate key {key!r} is not allowed (a (site, quarter) pair)")
            site, q = key
            t = self._quarter_index(site, q)
            self._check_derate(site, t, f)
            if (site, t) in entries:
                raise ValueError(
                    f"derate of site {site!r} in quarter {t}: given twice (one factor per site-quarter)"
                )
            entries[(site, t)] = float(f)
        return replace(self, derate=tuple((s, t, f) for (s, t), f in sorted(entries.items())))

    def _quarter_index(self, site: str, q: object) -> int:
        if isinstance(q, str):
            try:
                return self.horizon.index(q)
            except ValueError:
                raise ValueError(
                    f"derate of site {site!r}: quarter {q!r} is not allowed (a quarter index "
                    f"0..{self.horizon.quarters - 1} or a label like {self.horizon.labels[0]})"
                ) from None
        if isinstance(q, bool) or not isinstance(q, int):
            raise ValueError(
                f"derate of site {site!r}: quarter {q!r} is not allowed (a quarter index "
                f"0..{self.horizon.quarters - 1} or a label like {self.horizon.labels[0]})"
            )
        return q

    def _check_derate(self, site: object, t: object, f: object) -> None:
        names = [s.name for s in self.sites]
        if site not in names:
            raise ValueError(
                f"derate: site {site!r} is not allowed (a site of scenario {self.name!r}: "
                + ", ".join(names)
                + ")"
            )
        n = self.horizon.quarters
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < n:
            labels = self.horizon.labels
            raise ValueError(
                f"derate of site {site!r}: quarter {t!r} is not allowed (a quarter of the horizon: "
                f"index 0..{n - 1}, {labels[0]}..{labels[-1]})"
            )
        ok = isinstance(f, int | float) and not isinstance(f, bool) and math.isfinite(f)
        if not ok or not 0 < f <= 1:  # type: ignore[operator]
            raise ValueError(
                f"derate of site {site!r} in quarter {t} ({self.horizon.labels[t]}): {f!r} is not "
                "allowed (a finite factor f with 0 < f <= 1: the share of installed hours usable)"
            )

    def growth_cases(self) -> tuple[str, ...]:
        cases: set[str] = set()
        for w in self.workloads:
            rates = w.fleet.vehicle_growth_per_year if w.fleet else w.demand_growth_per_year
            cases |= {c for c, _ in rates if c != "*"}
        return tuple(sorted(cases))
