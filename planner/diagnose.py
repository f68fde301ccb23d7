"""Why is a scenario infeasible? The elastic model (E) of planner/README.md: every row gets a
non-negative slack and the model minimises the slacks relative to each row's right-hand side.
The rows that need slack are the binding constraints; each gets a sentence in the terms of
the scenario, not a solver status code."""

from __future__ import annotations

from dataclasses import dataclass, replace

from planner import compat
from planner.build import build, can_host
from planner.inputs import Scenario
from planner.model import BuildOptions, Row
from planner.results import Cell, Table
from planner.solve import Outcome, SolveOptions, solve


@dataclass(frozen=True, slots=True)
class Finding:
    family: str
    key: tuple[str | int, ...]
    slack: float
    rhs: float
    message: str


def _no_capacity_reason(sc: Scenario, workload: str, t: int) -> str:
    """Why a workload has no variable that could serve it in quarter t."""
    w = next(x for x in sc.workloads if x.name == workload)
    labels = sc.horizon.labels
    regions = "/".join(w.allowed_regions)
    sites = [s for s in sc.sites if s.region in w.allowed_regions]
    if not sites:
        return f"no site in region {regions}"
    later: list[str] = []
    for k in sc.skus:
        for s in sites:
            if not can_host(s, k):
                continue
            # Earliest delivery: eligible in the region and no earlier than the lead time.
            arrivals = [
                d
                for d in range(k.lead_time_quarters, sc.horizon.quarters)
                if k.eligible_in(s.region, d)
            ]
            if arrivals and arrivals[0] > t:
                later.append(f"{k.name} from {labels[arrivals[0]]}")
    hint = f" (earliest: {', '.join(sorted(set(later)))})" if later else ""
    return f"no eligible SKU in region {regions} by {labels[t]}{hint}"


def _describe(sc: Scenario, row: Row, slack: float) -> str:
    labels = sc.horizon.labels
    key = row.key
    q = (
        labels[int(key[-1])]
        if key and isinstance(key[-1], int) and row.family != "Sku-supply"
        else ""
    )
    f = row.family
    if f == "Workload-demand":
        why = (
            _no_capacity_reason(sc, str(key[0]), int(key[1]))
            if row.empty
            else "not enough capacity can be built in time"
        )
        return f"demand of workload {key[0]} in {q}: {slack:,.0f} of {row.rhs:,.0f} H100-hours cannot be served: {why}"
    if f == "Site-power":
        return f"IT power at site {key[0]} in {q}: {slack:,.2f} MW beyond what existing capacity and blocks give"
    if f == "Site-grid":
        return f"grid cap at site {key[0]}: {slack:,.1f} more power blocks than its grid connection allows"
    if f == "Site-racks":
        return f"air-cooled racks at site {key[0]} in {q}: {slack:,.1f} racks short"
    if f == "Site-liquid":
        return f"liquid-cooled capacity at site {key[0]} in {q}: {slack:,.2f} MW short"
    if f == "Site-build-rate":
        return f"build rate at site {key[0]} in {q}: {slack:,.1f} blocks over its limit per quarter"
    if f == "Sku-supply":
        return f"supply cap of {key[0]} in region {key[1]} in {labels[int(key[2])]}: {slack:,.1f} systems over"
    if f == "Quarter-budget":
        return f"capex budget in {q}: ${slack:,.0f} over"
    if f == "Sku-capacity":
        f_st = sc.derate_factor(str(key[1]), int(key[2]))
        derated = f" (derated to {f_st:.0%})" if f_st < 1 else ""
        return f"capacity of {key[0]} at {key[1]} in {q}{derated}: {slack:,.0f} H100-hours over"
    return f"{f} {key}: slack {slack:g}"


def diagnose(
    sc: Scenario, options: SolveOptions | None = None
) -> tuple[Outcome, list[Finding], Table]:
    """Solve the elastic model; list the rows that need slack, largest relative slack first."""
    o = options or SolveOptions()
    m = build(sc, BuildOptions(elastic=True))
    # HiGHS 1.16's presolve can hand back a worse postsolved point than the MIP it proved
    # (seen on elastic models: objective 47 vs dual bound 7); the elastic model is small, so
    # solve it exactly without presolve.
    out = solve(m, replace(o, gap=None, presolve=False))
    findings: list[Finding] = []
    if out.has_solution:
        for name, v in m.slack.items():
            row = m.rows[name]
            s = compat.value(v)
            if s > 1e-6 * max(1.0, abs(row.rhs)):
                natural = replace(row, rhs=row.rhs * row.scale)
                slack = s * row.scale
                findings.append(
                    Finding(row.family, row.key, slack, natural.rhs, _describe(sc, natural, slack))
                )
    # Largest relative slack first; ties (whole rows short) in the order of the rows.
    findings.sort(key=lambda f: -round(f.slack / max(1.0, abs(f.rhs)), 6))
    rows: tuple[tuple[Cell, ...], ...] = tuple(
        (f.family, "/".join(str(k) for k in f.key), f.slack, f.rhs, f.message) for f in findings
    )
    return out, findings, Table("diagnosis", ("family", "key", "slack", "rhs", "message"), rows)
