"""Re-planning from a previous plan: the start is evaluated on the new (derated) model and the
plan returned is never worse; a start that does not fit the new model does not crash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner import compat
from planner.build import build
from planner.inputs import DerateKey, Scenario
from planner.model import Model
from planner.replan import plan, replan
from planner.results import collect
from planner.schema import parse_scenario
from planner.solve import SolveOptions, _kept, solve
from planner.warmstart import Plan, Start, plan_start, plan_values

TINY = Path(__file__).parent.parent / "data" / "planner" / "tiny.yaml"
EXACT = SolveOptions(gap=0.0, time_limit_s=30)
DERATE: dict[DerateKey, float] = {("us-a", 1): 0.5, ("us-a", "2027Q3"): 0.7}


def _tiny(hard: bool = False) -> Scenario:
    doc = yaml.safe_load(TINY.read_text())
    if hard:
        doc["economics"]["unserved"] = {"mode": "hard"}
    return parse_scenario(doc, "tiny.yaml")


def _npv(m: Model) -> float:
    """The objective of the values on the model's variables, in USD."""
    return float(sum(compat.value(v) * c for v, c in m.prob.objective.items()) * m.objective_unit)


def test_the_plan_of_a_solved_model() -> None:
    _, m = plan(_tiny(), EXACT)
    p = Plan.from_model(m)
    assert p == Plan(
        buys={("fast", "us-a", 0): 2, ("fast", "us-a", 1): 1, ("slow", "us-a", 0): 1,
              ("slow", "us-a", 2): 1, ("slow", "cn-a", 0): 1, ("slow", "cn-a", 1): 1},
        blocks={}, opened={},
    )  # fmt: skip
    tables = collect(m, solve(m, EXACT)).tables
    again = Plan.from_records(
        m.scenario.horizon, tables["purchases"].records(), tables["blocks"].records()
    )
    assert again == p
    as_csv = [{k: str(v) for k, v in r.items()} for r in tables["purchases"].records()]
    assert Plan.from_records(m.scenario.horizon, as_csv) == p  # csv.DictReader gives strings


def test_a_start_without_a_derate_gives_the_same_optimum() -> None:
    o1, m1 = plan(_tiny(), EXACT)
    o2, m2 = plan(_tiny(), EXACT, start=m1)
    assert o1.status == o2.status == "optimal"
    assert o2.objective == pytest.approx(o1.objective, rel=1e-9)
    assert _npv(m2) == pytest.approx(o2.objective, rel=1e-9)


def test_a_derated_replan_is_no_worse_than_its_start_evaluated_on_the_new_model() -> None:
    o1, m1 = plan(_tiny(), EXACT)
    derated = _tiny().with_derate(DERATE)
    fresh = build(derated)
    start = plan_start(fresh, Plan.from_model(m1), 10.0, 1)
    assert start is not None  # penalty mode: the lost capacity is unserved demand
    start_usd = start.objective * fresh.objective_unit
    assert start_usd == pytest.approx(1_019_479.19, abs=0.01)
    assert o1.objective is not None and start_usd > o1.objective
    o2, m2 = replan(m1, DERATE, EXACT)
    assert m2.scenario.derate == (("us-a", 1, 0.5), ("us-a", 2, 0.7))
    assert o2.status == "optimal" and o2.objective is not None
    assert o2.objective <= start_usd * (1 + 1e-9)
    cold = solve(build(derated), EXACT)
    assert o2.objective == pytest.approx(cold.objective, rel=1e-9)
    assert o2.objective == pytest.approx(470_864.0, abs=1.0)
    assert _npv(m2) == pytest.approx(o2.objective, rel=1e-9)
    # without the two-stage start, the full MIP starts from the previous plan alone
    alone, _ = plan(derated, SolveOptions(gap=0.0, time_limit_s=30, warm_start_share=0.0), start=m1)
    assert alone.objective == pytest.approx(cold.objective, rel=1e-9)


def test_an_infeasible_start_falls_back_to_the_usual_start() -> None:
    """Hard demand: with half of us-a's hours in 2027Q3, the previous plan cannot serve it."""
    o1, m1 = plan(_tiny(hard=True), EXACT)
    assert o1.status == "optimal"
    derated = _tiny(hard=True).with_derate({("us-a", 2): 0.5})
    assert plan_start(build(derated), Plan.from_model(m1), 10.0, 1) is None
    o2, _ = plan(derated, EXACT, start=m1)
    cold = solve(build(derated), EXACT)
    assert o2.status == cold.status == "optimal"
    assert o2.objective == pytest.approx(cold.objective, rel=1e-9)
    assert o2.objective == pytest.approx(463_905.0, abs=1.0)


def test_a_start_the_model_cannot_hold_is_no_start() -> None:
    m = build(_tiny())
    unknown_sku = Plan(buys={("H100", "us-a", 0): 1})
    assert plan_values(m, unknown_sku) is None and plan_start(m, unknown_sku, 10.0, 1) is None
    too_many = Plan(buys={("slow", "cn-a", 0): 99})  # over the CN supply cap of 3
    assert plan_values(m, too_many) is not None and plan_start(m, too_many, 10.0, 1) is None
    out, _ = plan(_tiny(), EXACT, start=too_many)
    assert out.status == "optimal" and out.objective == pytest.approx(329_198.0, abs=1.0)


def test_highs_given_an_infeasible_start_does_not_crash() -> None:
    m = build(_tiny())
    junk = {v.name: 1e6 for v in m.prob.variables()}
    raw = compat.run_highs(m.prob, True, 10.0, 0.0, 1, start=junk, random_seed=1)
    assert raw.has_solution and raw.proven
    assert raw.objective is not None and raw.objective * m.objective_unit == pytest.approx(
        329_198.0, abs=1.0
    )


def test_a_full_mip_worse_than_its_start_returns_the_start() -> None:
    m = build(_tiny())
    worse = compat.RawSolve(
        "highs", True, False, False, False, True, objective=110.0, best_bound=90.0
    )
    kept = _kept(worse, Start({}, objective=100.0, bound=95.0), m)
    assert (kept.objective, kept.best_bound, kept.time_limited) == (100.0, 95.0, True)
    none = compat.RawSolve(
        "highs", False, False, False, False, True, objective=None, best_bound=None
    )
    kept = _kept(none, Start({}, objective=100.0, bound=None), m)
    assert (kept.has_solution, kept.objective, kept.best_bound) == (True, 100.0, None)
    better = compat.RawSolve(
        "highs", True, True, False, False, False, objective=99.0, best_bound=99.0
    )
    assert (
        _kept(better, Start({}, objective=100.0, bound=99.5), m).best_bound == 99.0
    )  # <= objective


def test_highs_random_seeds_reach_the_same_optimum() -> None:
    results = {
        solve(build(_tiny()), SolveOptions(gap=0.0, random_seed=s)).objective for s in (0, 1, 2)
    }
    assert len({round(r or 0.0, 3) for r in results}) == 1
