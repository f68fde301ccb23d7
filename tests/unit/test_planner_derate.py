"""Derating constraint (3) per site-quarter: validation, the rows it changes (and the energy
terms it leaves alone), and what results report."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from planner import compat
from planner.build import build
from planner.inputs import HOURS_PER_QUARTER, Scenario
from planner.model import GPU_H_UNIT, Model
from planner.results import collect
from planner.schema import parse_scenario
from planner.solve import SolveOptions, solve

TINY = Path(__file__).parent.parent / "data" / "planner" / "tiny.yaml"
EXACT = SolveOptions(gap=0.0, time_limit_s=30)


def _tiny() -> Scenario:
    return parse_scenario(yaml.safe_load(TINY.read_text()), "tiny.yaml")


def _error(sc: Scenario, factors: dict) -> str:  # type: ignore[type-arg]
    with pytest.raises(ValueError) as e:
        sc.with_derate(factors)
    return str(e.value)


def test_with_derate_takes_indices_and_labels_and_replaces_the_derate() -> None:
    sc = _tiny()
    assert sc.derate == () and sc.derate_factor("us-a", 1) == 1.0
    d = sc.with_derate({("us-a", "2027Q3"): 0.7, ("us-a", 1): 0.5, ("cn-a", 0): 1})
    assert d.derate == (("cn-a", 0, 1.0), ("us-a", 1, 0.5), ("us-a", 2, 0.7))
    assert d.derate_factor("us-a", 1) == 0.5 and d.derate_factor("us-a", 0) == 1.0
    assert d.derate_map == {("cn-a", 0): 1.0, ("us-a", 1): 0.5, ("us-a", 2): 0.7}
    assert d.with_derate({("us-a", 0): 0.9}).derate == (("us-a", 0, 0.9),)  # replaced
    assert d.with_derate({}).derate == ()
    merged = d.with_derate({**d.derate_map, ("us-a", 1): 0.4})
    assert merged.derate == (("cn-a", 0, 1.0), ("us-a", 1, 0.4), ("us-a", 2, 0.7))
    assert sc.derate == () and hash(d) != hash(sc)  # frozen and hashable


def test_bad_derates_name_site_quarter_value_and_what_is_allowed() -> None:
    sc = _tiny()
    assert _error(sc, {("us-b", 0): 0.5}) == (
        "derate: site 'us-b' is not allowed (a site of scenario 'tiny': us-a, cn-a)"
    )
    assert _error(sc, {("us-a", 3): 0.5}) == (
        "derate of site 'us-a': quarter 3 is not allowed (a quarter of the horizon: "
        "index 0..2, 2027Q1..2027Q3)"
    )
    assert _error(sc, {("us-a", -1): 0.5}).startswith("derate of site 'us-a': quarter -1 is not")
    assert _error(sc, {("us-a", "2027Q4"): 0.5}).startswith(
        "derate of site 'us-a': quarter 3 is not allowed (a quarter of the horizon"
    )
    assert _error(sc, {("us-a", "Q1-2027"): 0.5}) == (
        "derate of site 'us-a': quarter 'Q1-2027' is not allowed (a quarter index 0..2 or a "
        "label like 2027Q1)"
    )
    allowed = (
        "is not allowed (a finite factor f with 0 < f <= 1: the share of installed hours usable)"
    )
    for bad in (0.0, -0.1, 1.5, math.nan, math.inf, True, "0.5"):
        assert _error(sc, {("cn-a", 1): bad}) == (
            f"derate of site 'cn-a' in quarter 1 (2027Q2): {bad!r} {allowed}"
        )
    assert _error(sc, {("us-a", 0): 0.5, ("us-a", "2027Q1"): 0.6}) == (
        "derate of site 'us-a' in quarter 0: given twice (one factor per site-quarter)"
    )
    assert _error(sc, {"us-a": 0.5}) == "derate key 'us-a' is not allowed (a (site, quarter) pair)"


def test_a_scenario_built_with_a_bad_derate_is_rejected_too() -> None:
    with pytest.raises(ValueError, match=r"derate of site 'us-a' in quarter 0 \(2027Q1\): 2"):
        replace(_tiny(), derate=(("us-a", 0, 2.0),))
    with pytest.raises(ValueError, match="given twice"):
        replace(_tiny(), derate=(("us-a", 0, 0.5), ("us-a", 0, 0.6)))


def _capacity_coefficients(m: Model, site: str, t: int) -> dict[str, float]:
    """SKU -> H100-hours one installed system adds to the capacity row (3) at site in t."""
    cons = compat.constraints_by_name(m.prob)
    out: dict[str, float] = {}
    for name, row in m.rows.items():
        if row.family == "Sku-capacity" and row.key[1:] == (site, t):
            inst = m.inst[(str(row.key[0]), site, t)]
            out[str(row.key[0])] = -compat.terms(cons[name])[inst.name] * GPU_H_UNIT
    return out


def test_the_derate_scales_only_the_capacity_rows_of_its_site_quarter() -> None:
    sc = _tiny()
    base, derated = build(sc), build(sc.with_derate({("us-a", 1): 0.5}))
    h = HOURS_PER_QUARTER * sc.economics.availability * 8  # eff x n x H x alpha per system
    assert _capacity_coefficients(base, "us-a", 1) == {
        "fast": pytest.approx(1.0 * h, rel=1e-12),
        "slow": pytest.approx(0.3 * h, rel=1e-12),
    }
    assert _capacity_coefficients(derated, "us-a", 1) == {
        "fast": pytest.approx(0.5 * h, rel=1e-12),
        "slow": pytest.approx(0.5 * 0.3 * h, rel=1e-12),
    }
    for site, t in (("us-a", 0), ("us-a", 2), ("cn-a", 1)):
        assert _capacity_coefficients(derated, site, t) == _capacity_coefficients(base, site, t)
    # the energy of a served H100-hour (busy power / (eff x n)) and of idle systems is the same:
    # a derate limits the hours served, not what serving one costs
    assert compat.terms(derated.prob.objective) == compat.terms(base.prob.objective)


def test_a_derate_costs_at_least_nothing_and_utilisation_reports_it() -> None:
    sc = _tiny()
    base = solve(build(sc), EXACT)
    same = solve(build(sc.with_derate({("us-a", 1): 1.0})), EXACT)
    assert same.objective == pytest.approx(base.objective, rel=1e-12)
    m = build(sc.with_derate({("us-a", 1): 0.5, ("us-a", 2): 0.7}))
    out = solve(m, EXACT)
    assert out.status == "optimal" and out.objective is not None and base.objective is not None
    assert out.objective > base.objective
    util = collect(m, out).tables["utilisation"]
    assert util.columns == ("quarter", "site", "region", "capacity_gpu_h", "served_gpu_h",
                            "utilisation", "derate", "usable_gpu_h")  # fmt: skip
    rows = {(r["quarter"], r["site"]): r for r in util.records()}
    assert [rows[(q, "us-a")]["derate"] for q in ("2027Q1", "2027Q2", "2027Q3")] == [1.0, 0.5, 0.7]
    assert {r["derate"] for (q, s), r in rows.items() if s == "cn-a"} == {1.0}
    for r in rows.values():
        cap, usable, served, f = (
            float(str(r[c])) for c in ("capacity_gpu_h", "usable_gpu_h", "served_gpu_h", "derate")
        )
        assert usable == pytest.approx(f * cap, rel=1e-12)
        assert served <= usable * (1 + 1e-9)
        assert r["utilisation"] == pytest.approx(served / cap, rel=1e-12)
