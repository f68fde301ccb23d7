"""Export eligibility, data residency, vintages: exact outcomes on the tiny scenario."""

from __future__ import annotations

from dataclasses import replace

from planner import compat
from planner.build import build
from planner.model import Model
from planner.results import collect
from planner.schema import parse_scenario
from planner.solve import SolveOptions, solve

EXACT = SolveOptions(gap=None, time_limit_s=30)


def _solved(doc: dict, **relax: bool) -> Model:  # type: ignore[type-arg]
    sc = replace(parse_scenario(doc, "tiny.yaml"), **relax)
    m = build(sc)
    assert solve(m, EXACT).status == "optimal"
    return m


def _bought(m: Model) -> set[tuple[str, str]]:
    return {(k, s) for (k, s, _), v in m.buy.items() if compat.value(v) > 0.5}


def _short_in_china(doc: dict) -> dict:  # type: ignore[type-arg]
    """China's demand outgrows what the capped, eligible slow SKU can serve."""
    doc["skus"][1]["supply_cap_systems_per_quarter"] = {"CN": 1}
    doc["workloads"][1]["demand_h100_hours_per_quarter"] = [4000, 30000, 30000]
    return doc


def test_export_rules_no_ineligible_purchase_in_cn(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc = _short_in_china(tiny_doc)
    m = _solved(tiny_doc)
    assert not any(k == "fast" and s == "cn-a" for k, s, _ in m.buy)  # never even a variable
    assert ("fast", "cn-a") not in _bought(m) and ("slow", "cn-a") in _bought(m)
    # Relaxed, the cheaper-per-H100-hour fast SKU is bought in China: the rule did bind.
    assert ("fast", "cn-a") in _bought(_solved(tiny_doc, relax_export=True))


def test_residency_cn_workload_never_served_outside_cn(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc = _short_in_china(tiny_doc)
    m = _solved(tiny_doc)
    assert {s for (w, _, s, _) in m.x if w == "cn-fsd"} == {"cn-a"}
    served = collect(m, solve(m, EXACT)).tables["demand"]
    assert any(
        r["workload"] == "cn-fsd" and float(r["unserved_gpu_h"] or 0) > 0 for r in served.records()
    )
    relaxed = _solved(tiny_doc, relax_residency=True)
    abroad = sum(
        compat.value(v) for (w, _, s, _), v in relaxed.x.items() if w == "cn-fsd" and s == "us-a"
    )
    assert abroad > 0  # without the rule, China's data would be trained in the US


def test_vintage_activity_windows(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][0]["lifetime_quarters"] = 1  # fast: lead 1, alive 1 quarter
    tiny_doc["skus"][1]["lifetime_quarters"] = 2  # slow: lead 0, alive 2 quarters
    tiny_doc["sites"][0]["installed"] = [{"sku": "slow", "systems": 2, "delivered": "2026Q3"}]
    sc = parse_scenario(tiny_doc, "tiny.yaml")
    m = build(sc)
    fast, slow, us = sc.sku("fast"), sc.sku("slow"), sc.site("us-a")
    # existing: delivered at t = -2, alive 2 quarters: t = -2, -1 only, so none in the horizon
    assert [m.existing(slow, us, t) for t in range(3)] == [0, 0, 0]
    tiny_doc["sites"][0]["installed"][0]["delivered"] = "2026Q4"  # t = -1: alive at -1 and 0
    sc = parse_scenario(tiny_doc, "tiny.yaml")
    m = build(sc)
    fast, slow, us = sc.sku("fast"), sc.sku("slow"), sc.site("us-a")
    assert [m.existing(slow, us, t) for t in range(3)] == [2, 0, 0]
    # an order in tau is alive in [tau + lead, tau + lead + lifetime - 1]
    assert [v.name for v in m.active_orders(fast, us, 2)] == [m.buy[("fast", "us-a", 1)].name]
    assert m.active_orders(fast, us, 0) == []
    assert [v.name for v in m.active_orders(slow, us, 1)] == [
        m.buy[("slow", "us-a", t)].name for t in (0, 1)
    ]
    assert solve(m, EXACT).status == "optimal"
    for t in range(3):  # the installed state variable equals its definition (1)
        want = m.existing(slow, us, t) + sum(
            round(compat.value(v)) for v in m.active_orders(slow, us, t)
        )
        assert m.installed_value(slow, us, t) == want
