"""Shadow prices from the LP relaxation, and the price of rules."""

from __future__ import annotations

import math

from planner.build import build
from planner.schema import parse_scenario
from planner.shadow import lp_duals, rule_prices
from planner.solve import SolveOptions, solve

EXACT = SolveOptions(gap=None)


def test_unservable_demand_is_priced_at_the_penalty(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][1]["supply_cap_systems_per_quarter"] = {"CN": 0}  # nothing for China at all
    sc = parse_scenario(tiny_doc, "tiny.yaml")
    out, table = lp_duals(sc, EXACT)
    assert out.status == "optimal"
    cn = [r for r in table.records() if r["kind"] == "demand" and r["subject"] == "cn-fsd"]
    assert len(cn) == 3 and all(math.isclose(float(r["value"]), 20.0) for r in cn)  # type: ignore[arg-type]
    us = [
        float(r["value"])
        for r in table.records()
        if r["kind"] == "demand" and r["subject"] == "us-fsd"
    ]  # type: ignore[arg-type]
    assert all(0 < v < 20.0 for v in us)  # US demand is served: cheaper than the penalty


def test_fixed_mode_and_rule_prices_are_consistent(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    sc = parse_scenario(tiny_doc, "tiny.yaml")
    m = build(sc)
    base = solve(m, EXACT)
    out, _ = lp_duals(sc, EXACT, m, mode="fixed")
    assert out.status == "optimal" and out.objective is not None and base.objective is not None
    assert math.isclose(out.objective, base.objective, rel_tol=1e-9)  # integers fixed at the plan
    prices = {r["subject"]: r["value"] for r in rule_prices(sc, EXACT, base).records()}
    assert set(prices) == {"data_residency", "export_rules"}
    assert all(float(v) >= -1e-6 for v in prices.values())  # type: ignore[arg-type]  # relaxing never costs
