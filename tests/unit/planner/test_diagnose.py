"""An infeasible scenario gets a diagnosis that names the binding constraint."""

from __future__ import annotations

from planner.build import build
from planner.diagnose import diagnose
from planner.schema import parse_scenario
from planner.solve import SolveOptions, solve


def test_resident_demand_with_no_eligible_sku_names_the_demand_rows(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["economics"]["unserved"] = {"mode": "hard"}
    tiny_doc["skus"][1]["eligible"] = {
        "US": {},
        "CN": {"from": "2027Q3"},
    }  # slow reaches China late
    sc = parse_scenario(tiny_doc, "tiny.yaml")
    assert solve(build(sc), SolveOptions(gap=None)).status == "infeasible"
    out, findings, table = diagnose(sc)
    assert out.has_solution
    demand = [f for f in findings if f.family == "Workload-demand"]
    assert [(f.key, round(f.slack)) for f in demand] == [
        (("cn-fsd", 0), 4000),
        (("cn-fsd", 1), 6000),
    ]
    assert demand[0].message == (
        "demand of workload cn-fsd in 2027Q1: 4,000 of 4,000 H100-hours cannot be served: "
        "no eligible SKU in region CN by 2027Q1 (earliest: slow from 2027Q3)"
    )
    assert {f.family for f in findings} == {"Workload-demand"}  # nothing else needs slack
    assert table.column("family") == ["Workload-demand", "Workload-demand"]


def test_budget_too_small_names_the_budget(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["economics"]["unserved"] = {"mode": "hard"}
    tiny_doc["economics"]["capex_budget_usd_per_quarter"] = 50000  # less than one system
    sc = parse_scenario(tiny_doc, "tiny.yaml")
    _, findings, _ = diagnose(sc)
    families = {f.family for f in findings}
    assert "Quarter-budget" in families or "Workload-demand" in families
    assert all(f.slack > 0 for f in findings)
    budget = [f for f in findings if f.family == "Quarter-budget"]
    assert all(
        f.message.startswith("capex budget in 2027Q") and " over" in f.message for f in budget
    )


def test_feasible_scenario_needs_no_slack(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    _, findings, _ = diagnose(parse_scenario(tiny_doc, "tiny.yaml"))
    assert findings == []
