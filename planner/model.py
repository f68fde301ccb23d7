"""The built model: PuLP problem plus the index of every variable, row and cost term, so that
`results`, `shadow` and `diagnose` read tables back without parsing names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from planner import compat
from planner.inputs import Scenario, Site, Sku

# Solver units, so that HiGHS sees coefficients near 1 (USD and GPU-hours reach 1e9 and the
# badly scaled model took 12 s instead of well under a second to reach a 1 % gap):
USD_UNIT = 1e6  # objective, costs and budget rows in millions of USD
GPU_H_UNIT = 1e6  # dispatch, unserved and demand in millions of H100-hours
# Power rows are in MW.

BuyKey = tuple[str, str, int]  # (sku, site, order quarter)
BlockKey = tuple[str, int]  # (site, order quarter)
DispatchKey = tuple[str, str, str, int]  # (workload, sku, site, quarter)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    elastic: bool = False  # add a slack to every row and minimise relative slack (diagnose)
    # Orders placed in quarters < fix_before are fixed to these values (missing keys: 0); used
    # to evaluate one plan's first year under another scenario (sweep) and for fixed-integer LPs.
    fix_before: int = 0
    fixed_buys: Mapping[BuyKey, int] = field(default_factory=dict)
    fixed_blocks: Mapping[BlockKey, int] = field(default_factory=dict)
    fixed_open: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Row:
    family: str  # "Workload-demand", "Site-power", ... (planner/README.md numbers them)
    key: tuple[str | int, ...]
    sense: str
    rhs: float
    empty: bool  # the row had no variables (only possible to satisfy by its constant)
    scale: float = 1.0  # natural units (H100-hours, USD, ...) per solver unit of the row


@dataclass
class Model:
    scenario: Scenario
    options: BuildOptions
    prob: Any
    demand: dict[tuple[str, int], float]
    tb_per_h100h: dict[tuple[str, int], float]
    weight: tuple[float, ...]  # discount factor of each quarter's cash flows
    buy: dict[BuyKey, compat.Var] = field(default_factory=dict)
    # inst[k, s, t]: systems installed (1), a state variable with a sparse recursion, so that
    # power and capacity rows have one term per SKU instead of one per active order quarter
    inst: dict[BuyKey, compat.Var] = field(default_factory=dict)
    # cum[s, t]: blocks ordered at s in quarters 0..t (cumulative, so that branching acts on
    # the capacity that matters and each power row has one block term; see define_blocks)
    cum: dict[BlockKey, compat.Var] = field(default_factory=dict)
    opened: dict[str, compat.Var] = field(default_factory=dict)
    x: dict[DispatchKey, compat.Var] = field(default_factory=dict)
    unserved: dict[tuple[str, int], compat.Var] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    slack: dict[str, compat.Var] = field(default_factory=dict)
    # cost family -> quarter -> (variable, discounted coefficient) pairs, and constants
    cost: dict[str, dict[int, list[tuple[compat.Var, float]]]] = field(default_factory=dict)
    cost_const: dict[str, dict[int, float]] = field(default_factory=dict)
    build_s: float = 0.0
    _n: int = 0

    @property
    def quarters(self) -> int:
        return self.scenario.horizon.quarters

    def new_var(
        self, prefix: str, low: float | None, up: float | None, integer: bool
    ) -> compat.Var:
        self._n += 1
        return compat.new_var(self.prob, f"{prefix}{self._n}", low, up, integer)

    def existing(self, k: Sku, s: Site, t: int) -> int:
        """Systems of SKU k at site s delivered before the plan and still alive in quarter t (1)."""
        return sum(
            i.systems
            for i in s.installed
            if i.sku == k.name and i.delivered <= t < i.delivered + k.lifetime_quarters
        )

    def active_orders(self, k: Sku, s: Site, t: int) -> list[compat.Var]:
        """Orders active in t: ordered in tau, delivered tau + lead, alive for lifetime (1)."""
        lo = t - k.lead_time_quarters - k.lifetime_quarters + 1
        hi = t - k.lead_time_quarters
        return [
            self.buy[(k.name, s.name, tau)]
            for tau in range(max(0, lo), hi + 1)
            if (k.name, s.name, tau) in self.buy
        ]

    def installed_const(self, k: Sku, s: Site, t: int) -> int:
        """The constant part of inst[k,s,t]: existing systems where no inst variable exists."""
        return 0 if (k.name, s.name, t) in self.inst else self.existing(k, s, t)

    def installed_terms(self, k: Sku, s: Site, t: int) -> list[tuple[compat.Var, float]]:
        """The variable part of inst[k,s,t] (1): the state variable, where orders can exist."""
        v = self.inst.get((k.name, s.name, t))
        return [] if v is None else [(v, 1.0)]

    def installed_value(self, k: Sku, s: Site, t: int) -> int:
        return self.installed_const(k, s, t) + sum(
            round(compat.value(v)) for v, _ in self.installed_terms(k, s, t)
        )

    def online_blocks(self, s: Site, t: int) -> list[tuple[compat.Var, float]]:
        """Blocks ordered up to t - lead are online in t (4)."""
        key = (s.name, min(t - s.block_lead_quarters, self._last_order(s.name)))
        return [(self.cum[key], 1.0)] if key in self.cum else []

    def _last_order(self, site: str) -> int:
        return max((t for (sn, t) in self.cum if sn == site), default=-1)

    def ordered_terms(self, site: str, t: int) -> list[tuple[compat.Var, float]]:
        """Blocks ordered in quarter t: cum[s, t] - cum[s, t-1] (none after the last order quarter)."""
        if (site, t) not in self.cum:
            return []
        pairs = [(self.cum[(site, t)], 1.0)]
        if (site, t - 1) in self.cum:
            pairs.append((self.cum[(site, t - 1)], -1.0))
        return pairs

    def blocks_ordered(self) -> dict[BlockKey, int]:
        out: dict[BlockKey, int] = {}
        for (sn, t), v in self.cum.items():
            prev = self.cum.get((sn, t - 1))
            out[(sn, t)] = round(compat.value(v)) - (
                round(compat.value(prev)) if prev is not None else 0
            )
        return out

    def add_row(
        self,
        family: str,
        key: tuple[str | int, ...],
        pairs: list[tuple[compat.Var, float]],
        sense: str,
        rhs: float,
        scale: float = 1.0,
    ) -> None:
        name = f"r{len(self.rows)}"
        self.rows[name] = Row(family, key, sense, rhs, empty=not pairs, scale=scale)
        if self.options.elastic and sense != "==":
            # (E): one non-negative slack per row, in the direction that relaxes it.
            s = self.new_var("slack", 0.0, None, False)
            self.slack[name] = s
            pairs = [*pairs, (s, -1.0 if sense == "<=" else 1.0)]
        compat.add_row(self.prob, name, compat.affine(pairs), sense, rhs)

    @property
    def objective_unit(self) -> float:
        """USD per unit of the solver's objective (the elastic objective has no unit)."""
        return 1.0 if self.options.elastic else USD_UNIT

    def add_cost(self, family: str, t: int, pairs: list[tuple[compat.Var, float]]) -> None:
        """Discounted USD per unit of each variable; stored in solver units (USD_UNIT)."""
        scaled = [(v, c / USD_UNIT) for v, c in pairs]
        self.cost.setdefault(family, {}).setdefault(t, []).extend(scaled)

    def add_cost_const(self, family: str, t: int, amount_usd: float) -> None:
        fam = self.cost_const.setdefault(family, {})
        fam[t] = fam.get(t, 0.0) + amount_usd / USD_UNIT
