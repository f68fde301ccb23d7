"""Shadow prices from the LP relaxation, and the price of rules by re-solving without them.

Duals of a MILP are not defined; the duals here are those of an LP: either the relaxation
(integers continuous, ``mode="relaxed"``) or the MILP with its integer decisions fixed at the
solution found (``mode="fixed"``: marginal operating values given the plan). The objective is
an NPV, so a dual is in discounted USD (the solver's units, millions of USD and of H100-hours
and MW, are converted back); per-quarter prices are divided by the quarter's
discount factor to give that quarter's nominal USD.

* demand (2):   marginal USD per H100-hour of each workload in each quarter, and per region;
* power (4):    value of one more IT MW at a site in a quarter, and over the whole horizon;
* grid (5):     value of one more MW of grid connection at a site (NPV);
* budget (10):  value of one more USD of capex budget in a quarter (NPV per USD);
* rules:        price of data residency and of export rules = NPV with the rule - without.
"""

from __future__ import annotations

from dataclasses import replace

from planner import compat
from planner.build import build
from planner.inputs import Scenario
from planner.model import USD_UNIT, BuildOptions, Model
from planner.results import Cell, Table
from planner.solve import Outcome, SolveOptions, solve

COLUMNS = ("kind", "subject", "quarter", "value", "unit")


def _fixed_options(m: Model) -> BuildOptions:
    return BuildOptions(
        fix_before=m.quarters,
        fixed_buys={k: round(compat.value(v)) for k, v in m.buy.items()},
        fixed_blocks=m.blocks_ordered(),
        fixed_open={k: round(compat.value(v)) for k, v in m.opened.items()},
    )


def lp_duals(
    sc: Scenario, options: SolveOptions, solved: Model | None = None, mode: str = "relaxed"
) -> tuple[Outcome, Table]:
    """Solve the LP (relaxed, or with the integers of `solved` fixed) and tabulate duals."""
    if mode not in ("relaxed", "fixed"):
        raise ValueError(f"shadow price mode {mode!r} is not known (known: relaxed, fixed)")
    if mode == "fixed" and solved is None:
        raise ValueError("mode 'fixed' needs the solved MILP")
    lp = build(sc, _fixed_options(solved) if mode == "fixed" and solved else None)
    outcome = solve(lp, replace(options, mip=False, gap=None))
    rows: list[tuple[Cell, ...]] = []
    if outcome.status != "optimal":
        return outcome, Table("shadow_prices", COLUMNS, ())
    labels = sc.horizon.labels
    cons = compat.constraints_by_name(lp.prob)
    region_sum: dict[str, list[float]] = {}
    workloads = {x.name: x for x in sc.workloads}
    site_mw: dict[str, float] = {}
    for name, row in lp.rows.items():
        pi = compat.dual(cons[name])
        if pi is None:
            continue
        if row.family == "Workload-demand":
            w, t = str(row.key[0]), int(row.key[1])
            usd = pi / lp.weight[t]
            rows.append(("demand", w, labels[t], usd, "USD per H100-hour"))
            for region in workloads[w].allowed_regions:
                acc = region_sum.setdefault(region, [0.0, 0.0])
                acc[0] += usd * lp.demand[(w, t)]
                acc[1] += lp.demand[(w, t)]
        elif row.family == "Site-power":
            s, t = str(row.key[0]), int(row.key[1])
            rows.append(
                (
                    "site_it_mw",
                    s,
                    labels[t],
                    -pi * 1000 / lp.weight[t],
                    "USD per IT MW in the quarter",
                )
            )
            site_mw[s] = site_mw.get(s, 0.0) - pi * 1000
        elif row.family == "Site-grid":
            site = sc.site(str(row.key[0]))
            # Nmax = (grid / PUE - P0) / B, so one grid MW is 1 / (PUE * B) blocks.
            rows.append(
                (
                    "site_grid_mw",
                    site.name,
                    "all",
                    -pi * USD_UNIT / (site.pue * site.block_mw),
                    "NPV USD per grid MW",
                )
            )
        elif row.family == "Quarter-budget":
            t = int(row.key[0])
            rows.append(("budget", "capex", labels[t], -pi, "NPV USD per USD of budget"))
    for s, v in sorted(site_mw.items()):
        rows.append(("site_it_mw", s, "all", v, "NPV USD per IT MW for the whole horizon"))
    for region, (weighted, total) in sorted(region_sum.items()):
        if total > 0:
            rows.append(
                (
                    "demand_region",
                    region,
                    "all",
                    weighted / total,
                    "USD per H100-hour, demand-weighted",
                )
            )
    return outcome, Table("shadow_prices", COLUMNS, tuple(rows))


def rule_prices(sc: Scenario, options: SolveOptions, base: Outcome) -> Table:
    """Re-solve with each rule relaxed; its price is the NPV it adds to the plan."""
    rows: list[tuple[Cell, ...]] = []
    for rule, relaxed in (
        ("data_residency", replace(sc, relax_residency=True)),
        ("export_rules", replace(sc, relax_export=True)),
    ):
        out = solve(build(relaxed), options)
        if base.objective is None or out.objective is None:
            rows.append(("rule_price", rule, "all", None, f"unknown: {base.status} / {out.status}"))
            continue
        unit = "NPV USD" if out.status == "optimal" and base.status == "optimal" else (
            f"NPV USD (solves {base.status}/{out.status}, gaps {base.gap or 0:.2%}/{out.gap or 0:.2%})")  # fmt: skip
        rows.append(("rule_price", rule, "all", base.objective - out.objective, unit))
    return Table("rule_prices", COLUMNS, tuple(rows))
