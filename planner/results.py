"""Solved model -> result tables (new tables, never printed here; `report` prints and plots).

Costs are in USD; ``_usd`` columns are nominal (undiscounted) cash flows of that quarter,
``npv_usd`` the discounted sum. GPU-hours are H100-equivalent.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner import compat
from planner.build import systems_per_rack
from planner.inputs import HOURS_PER_QUARTER
from planner.model import GPU_H_UNIT, USD_UNIT, Model
from planner.solve import Outcome

Cell = str | int | float | None
COST_FAMILIES = ("capex", "salvage", "energy", "transfer", "penalty")


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def column(self, name: str) -> list[Cell]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def records(self) -> list[dict[str, Cell]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


@dataclass(frozen=True, slots=True)
class Results:
    scenario: str
    outcome: Outcome
    build_s: float
    unserved_gpu_h: float | None
    tables: dict[str, Table]

    def summary(self) -> dict[str, object]:
        """The keys of summary.json, exactly."""
        o = self.outcome
        return {
            "status": o.status,
            "has_solution": o.has_solution,
            "objective_usd": o.objective,
            "best_bound_usd": o.best_bound,
            "gap": o.gap,
            "solve_s": round(o.solve_s, 3),
            "build_s": round(self.build_s, 3),
            "unserved_gpu_h": self.unserved_gpu_h,
        }


def _clean(x: float) -> float:
    """Solver noise (1e-9 H100-hours unserved) is zero."""
    return 0.0 if abs(x) < 1e-3 else x


def _int(v: compat.Var) -> int:
    return round(compat.value(v))


def _installed(m: Model, kn: str, sn: str, t: int) -> int:
    k, s = m.scenario.sku(kn), m.scenario.site(sn)
    return m.installed_value(k, s, t)


def purchases(m: Model) -> Table:
    labels = m.scenario.horizon.labels
    rows = [(labels[t], s, k, _int(v), _int(v) * m.scenario.sku(k).gpus_per_system)
            for (k, s, t), v in m.buy.items() if _int(v) > 0]  # fmt: skip
    rows.sort(key=lambda r: (labels.index(str(r[0])), r[1], r[2]))
    return Table("purchases", ("quarter", "site", "sku", "systems", "gpus"), tuple(rows))


def blocks(m: Model) -> Table:
    labels, T = m.scenario.horizon.labels, m.quarters
    rows = []
    for (sn, t), n in sorted(m.blocks_ordered().items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if n > 0:
            s = m.scenario.site(sn)
            online = t + s.block_lead_quarters
            rows.append(
                (labels[t], sn, n, n * s.block_mw, labels[online] if online < T else "after")
            )
    return Table("blocks", ("quarter", "site", "blocks", "it_mw", "online"), tuple(rows))


def installed(m: Model) -> Table:
    sc, labels = m.scenario, m.scenario.horizon.labels
    rows = []
    for t in range(m.quarters):
        for s in sc.sites:
            for k in sc.skus:
                n = _installed(m, k.name, s.name, t)
                if n:
                    rows.append((labels[t], s.name, k.name, n, n * k.gpus_per_system))
    return Table("installed", ("quarter", "site", "sku", "systems", "gpus"), tuple(rows))


def power(m: Model) -> Table:
    """IT load of installed systems against the site's IT capacity and its grid cap."""
    sc, labels = m.scenario, m.scenario.horizon.labels
    rows = []
    for t in range(m.quarters):
        for s in sc.sites:
            load_kw = sum(k.it_kw_per_system * _installed(m, k.name, s.name, t) for k in sc.skus)
            online = sum(_int(v) for v, _ in m.online_blocks(s, t))
            cap_mw = s.existing_it_mw + s.block_mw * online
            racks = sum(_installed(m, k.name, s.name, t) / systems_per_rack(s, k)
                        for k in sc.skus if not k.liquid_cooled and systems_per_rack(s, k) > 0)  # fmt: skip
            rows.append((labels[t], s.name, load_kw / 1000, cap_mw, load_kw / 1000 * s.pue,
                         s.grid_cap_mw, round(racks, 2)))  # fmt: skip
    cols = (
        "quarter",
        "site",
        "it_mw_used",
        "it_mw_capacity",
        "facility_mw",
        "grid_cap_mw",
        "air_racks_used",
    )
    return Table("power", cols, tuple(rows))


def served(m: Model) -> tuple[Table, Table, float]:
    """Demand against what was served (per workload) and where it ran (per site)."""
    sc, labels = m.scenario, m.scenario.horizon.labels
    by_wt: dict[tuple[str, int], float] = {}
    by_st: dict[tuple[str, int], float] = {}
    for (wn, _k, sn, t), v in m.x.items():
        val = compat.value(v) * GPU_H_UNIT
        by_wt[(wn, t)] = by_wt.get((wn, t), 0.0) + val
        by_st[(sn, t)] = by_st.get((sn, t), 0.0) + val
    rows: list[tuple[Cell, ...]] = []
    total_unserved = 0.0
    for w in sc.workloads:
        for t in range(m.quarters):
            e = m.demand[(w.name, t)]
            u = (
                _clean(compat.value(m.unserved[(w.name, t)]) * GPU_H_UNIT)
                if (w.name, t) in m.unserved
                else 0.0
            )
            total_unserved += u
            rows.append((labels[t], w.name, e, min(e, by_wt.get((w.name, t), 0.0)), u))
    demand = Table(
        "demand",
        ("quarter", "workload", "demand_gpu_h", "served_gpu_h", "unserved_gpu_h"),
        tuple(rows),
    )
    util_rows: list[tuple[Cell, ...]] = []
    h = HOURS_PER_QUARTER * sc.economics.availability
    for t in range(m.quarters):
        for s in sc.sites:
            cap = sum(
                k.eff_vs_h100 * k.gpus_per_system * h * _installed(m, k.name, s.name, t)
                for k in sc.skus
            )
            use = by_st.get((s.name, t), 0.0)
            f = sc.derate_factor(s.name, t)
            if cap > 0:
                util_rows.append((labels[t], s.name, s.region, cap, use, use / cap, f, f * cap))
    # capacity_gpu_h is the installed (underated) capacity, so that utilisation compares with a
    # simulation of the same systems; derate is the factor of (3), usable_gpu_h = derate x capacity
    # what the plan may serve there.
    util = Table("utilisation", ("quarter", "site", "region", "capacity_gpu_h", "served_gpu_h", "utilisation",
                                 "derate", "usable_gpu_h"), tuple(util_rows))  # fmt: skip
    return demand, util, total_unserved


def costs(m: Model) -> Table:
    """Nominal cash flows per quarter by family, plus each quarter's discounted total."""
    labels = m.scenario.horizon.labels
    rows: list[tuple[Cell, ...]] = []
    for t in range(m.quarters):
        disc = {f: _clean(USD_UNIT * (sum(compat.value(v) * c for v, c in m.cost.get(f, {}).get(t, []))
                + m.cost_const.get(f, {}).get(t, 0.0))) for f in COST_FAMILIES}  # fmt: skip
        nominal = [disc[f] / m.weight[t] for f in COST_FAMILIES]
        rows.append((labels[t], *nominal, sum(nominal), sum(disc.values())))
    cols = ("quarter", *(f"{f}_usd" for f in COST_FAMILIES), "total_usd", "npv_usd")
    return Table("costs", cols, tuple(rows))


def dispatch(m: Model) -> Table:
    """Where each workload's H100-hours run: per quarter, workload, site and SKU (what
    ``gpuyard simulate plan`` replays at each site)."""
    labels = m.scenario.horizon.labels
    rows: list[tuple[Cell, ...]] = []
    for (wn, kn, sn, t), v in sorted(
        m.x.items(), key=lambda kv: (kv[0][3], kv[0][0], kv[0][2], kv[0][1])
    ):
        val = _clean(compat.value(v) * GPU_H_UNIT)
        if val > 0:
            rows.append((labels[t], wn, sn, kn, val))
    return Table("dispatch", ("quarter", "workload", "site", "sku", "served_gpu_h"), tuple(rows))


def collect(m: Model, outcome: Outcome) -> Results:
    if not outcome.has_solution:
        return Results(m.scenario.name, outcome, m.build_s, None, {})
    demand, util, unserved = served(m)
    tables = [purchases(m), blocks(m), installed(m), power(m), demand, util, costs(m), dispatch(m)]
    return Results(m.scenario.name, outcome, m.build_s, unserved, {t.name: t for t in tables})
