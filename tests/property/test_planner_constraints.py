"""Random small feasible scenarios: the solution keeps power, grid, budget, supply and
eligibility limits (checked from the result tables, not from the model's rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner import compat
from planner.build import build
from planner.results import collect
from planner.schema import parse_scenario
from planner.solve import SolveOptions, solve

TINY = yaml.safe_load((Path(__file__).parents[1] / "data" / "planner" / "tiny.yaml").read_text())


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(TINY))
    doc["economics"]["capex_budget_usd_per_quarter"] = draw(st.sampled_from([3e5, 1e6, 5e6]))
    doc["skus"][1]["supply_cap_systems_per_quarter"] = {
        "CN": draw(st.integers(0, 3)),
        "US": draw(st.integers(0, 4)),
    }
    doc["skus"][0]["lead_time_quarters"] = draw(st.integers(0, 2))
    for site in doc["sites"]:
        site["existing_it_mw"] = draw(st.sampled_from([0.0, 0.02, 0.05]))
        site["grid_cap_mw"] = site["existing_it_mw"] * site["pue"] + draw(
            st.sampled_from([0.0, 0.07, 0.2])
        )
        site["block_mw"] = draw(st.sampled_from([0.02, 0.05]))
        site["max_blocks_per_quarter"] = draw(st.integers(0, 2))
        site["block_lead_quarters"] = draw(st.integers(0, 2))
    for w in doc["workloads"]:
        w["demand_h100_hours_per_quarter"] = [draw(st.integers(0, 60000)) for _ in range(3)]
    return doc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_solutions_respect_power_budget_and_supply(doc: dict[str, Any]) -> None:
    sc = parse_scenario(doc, "generated.yaml")
    m = build(sc)
    out = solve(m, SolveOptions(gap=None, time_limit_s=10))
    assert out.has_solution  # penalty mode: doing nothing is always feasible
    res = collect(m, out)
    for r in res.tables["power"].records():
        s = sc.site(str(r["site"]))
        assert float(r["it_mw_used"]) <= float(r["it_mw_capacity"]) + 1e-6  # type: ignore[arg-type]
        assert float(r["it_mw_capacity"]) * s.pue <= s.grid_cap_mw + 1e-6  # type: ignore[arg-type]
    budget = sc.economics.capex_budget_usd_per_quarter
    assert budget is not None
    for r in res.tables["costs"].records():
        assert float(r["capex_usd"]) <= budget * (1 + 1e-9)  # type: ignore[arg-type]
    per: dict[tuple[str, str, str], int] = {}
    for r in res.tables["purchases"].records():
        k, s = sc.sku(str(r["sku"])), sc.site(str(r["site"]))
        t = sc.horizon.index(str(r["quarter"]))
        assert k.eligible_in(s.region, t + k.lead_time_quarters)  # export rules
        key = (k.name, s.region, str(r["quarter"]))
        per[key] = per.get(key, 0) + int(r["systems"])  # type: ignore[call-overload]
    for (kn, region, _q), n in per.items():
        cap = dict(sc.sku(kn).supply_cap_systems_per_quarter).get(region)
        assert cap is None or n <= cap
    blocks = {}
    for (sn, _t), n in m.blocks_ordered().items():
        assert 0 <= n <= sc.site(sn).max_blocks_per_quarter  # build rate
        blocks[sn] = blocks.get(sn, 0) + n
    for (w, _k, s, _t), v in m.x.items():  # residency
        if compat.value(v) > 1e-9:
            assert sc.site(s).region in next(x for x in sc.workloads if x.name == w).allowed_regions
