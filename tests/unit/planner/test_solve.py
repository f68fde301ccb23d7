"""Honest statuses; CBC and HiGHS agree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from planner.build import build
from planner.compat import RawSolve, cbc_class
from planner.schema import load_scenario
from planner.solve import SolveOptions, interpret, solve
from simulations.bench.planner import generate

TINY = Path(__file__).parents[2] / "data" / "planner" / "tiny.yaml"


def _raw(**over: object) -> RawSolve:
    base: dict[str, object] = dict(solver="highs", has_solution=True, proven=True, infeasible=False,
                                   unbounded=False, time_limited=False, objective=100.0, best_bound=100.0)  # fmt: skip
    base.update(over)
    return RawSolve(**base)  # type: ignore[arg-type]


def test_interpret_never_trusts_a_bare_optimal() -> None:
    o = SolveOptions(gap=0.01)
    assert interpret(_raw(), o, 1.0).status == "optimal"
    # PuLP 3.x: status Optimal at the time limit with an incumbent
    t = interpret(_raw(time_limited=True, proven=False, best_bound=90.0), o, 1.0)
    assert (t.status, t.stop_reason, t.gap) == ("feasible", "time_limit", pytest.approx(0.1))
    g = interpret(_raw(best_bound=99.5), o, 1.0)  # stopped by the requested 1 % gap
    assert (g.status, g.stop_reason) == ("feasible", "gap_limit")
    assert interpret(_raw(best_bound=None), o, 1.0).status == "feasible"  # gap unknown, was relaxed
    assert interpret(_raw(best_bound=None), SolveOptions(gap=None), 1.0).status == "optimal"
    n = interpret(_raw(has_solution=False, proven=False, time_limited=True, objective=None), o, 1.0)
    assert (n.status, n.has_solution) == ("no_solution", False)
    assert (
        interpret(_raw(has_solution=False, infeasible=True, objective=None), o, 1.0).status
        == "infeasible"
    )


def test_time_limited_solve_is_not_optimal() -> None:
    m = build(generate(seed=0, sites=20, quarters=40))
    out = solve(m, SolveOptions(time_limit_s=1.0, gap=1e-6))
    assert out.status != "optimal"
    assert out.stop_reason == "time_limit"
    if out.has_solution:
        assert out.status == "feasible" and out.gap is not None and out.gap > 1e-6
        assert out.best_bound is not None and out.best_bound <= out.objective  # type: ignore[operator]


@pytest.mark.skipif(cbc_class() is None, reason="CBC is not installed")
def test_cbc_and_highs_agree_on_a_small_instance() -> None:
    sc = load_scenario(TINY)
    h = solve(build(sc), SolveOptions(solver="highs", gap=None))
    c = solve(build(sc), SolveOptions(solver="cbc", gap=None))
    assert h.status == c.status == "optimal"
    assert h.objective is not None and c.objective is not None
    assert math.isclose(h.objective, c.objective, rel_tol=1e-7)
    assert c.best_bound is not None and math.isclose(c.best_bound, c.objective, rel_tol=1e-7)


def test_unknown_solver_is_an_error() -> None:
    with pytest.raises(ValueError, match="solver 'gurobi' is not known"):
        solve(build(load_scenario(TINY)), SolveOptions(solver="gurobi"))


def test_the_two_stage_start_is_a_plan_and_leaves_the_model_as_it_was() -> None:
    from planner import compat
    from planner.warmstart import two_stage_start

    m = build(load_scenario(TINY))
    before = [(v.name, v.cat, v.lowBound, v.upBound) for v in m.prob.variables()]
    start = two_stage_start(m, 10.0, 0.0, 1)
    assert start is not None
    assert [(v.name, v.cat, v.lowBound, v.upBound) for v in m.prob.variables()] == before
    values = start.values
    for v in (*m.buy.values(), *m.cum.values(), *m.opened.values()):
        assert values[v.name] == pytest.approx(round(values[v.name]), abs=1e-6)  # whole units
    # the start is a plan: fixing every integer at it leaves a feasible model
    for v in (*m.buy.values(), *m.cum.values(), *m.opened.values()):
        v.lowBound = v.upBound = round(values[v.name])
    assert compat.run_highs(m.prob, True, 10.0, 0.0, 1).has_solution


def test_the_start_bound_is_a_lower_bound_on_the_optimum() -> None:
    """Stage 1 relaxes purchases only: its bound may not exceed the MIP's proven optimum
    (tiny scenario; tests/unit/planner/test_bruteforce.py checks that optimum by enumeration)."""
    from planner.warmstart import two_stage_start

    optimum = solve(build(load_scenario(TINY)), SolveOptions(gap=0.0, warm_start_share=0.0))
    assert optimum.status == "optimal" and optimum.objective is not None
    m = build(load_scenario(TINY))
    start = two_stage_start(m, 10.0, 0.0, 1)
    assert start is not None and start.bound is not None
    unit = m.objective_unit
    assert start.bound * unit <= optimum.objective * (1 + 1e-9)
    assert start.objective * unit >= optimum.objective * (1 - 1e-9)


def test_a_start_within_the_gap_is_the_result_and_its_bound_is_kept() -> None:
    from planner.solve import _from_start, _with_start_bound
    from planner.warmstart import Start

    start = Start({}, objective=100.0, bound=99.5)
    out = interpret(_from_start(start), SolveOptions(gap=0.01), 1.0)
    assert (out.status, out.stop_reason, out.gap) == ("feasible", "gap_limit", pytest.approx(0.005))
    # the full MIP's bound is replaced only by a higher one
    assert _with_start_bound(_raw(best_bound=99.0), start).best_bound == 99.5
    assert _with_start_bound(_raw(best_bound=99.8), start).best_bound == 99.8
    assert _with_start_bound(_raw(best_bound=None), start).best_bound == 99.5
    none = Start({}, objective=100.0, bound=None)
    assert _with_start_bound(_raw(best_bound=None), none).best_bound is None


def test_a_large_plan_within_its_gap_has_a_bound_below_its_objective() -> None:
    out = solve(build(generate(seed=0, sites=4, quarters=12)), SolveOptions(time_limit_s=20.0))
    assert out.has_solution and out.best_bound is not None and out.objective is not None
    assert out.best_bound <= out.objective * (1 + 1e-9)


def test_a_warm_started_solve_reaches_the_same_optimum() -> None:
    cold = solve(build(load_scenario(TINY)), SolveOptions(gap=0.0, warm_start_share=0.0))
    warm = solve(build(load_scenario(TINY)), SolveOptions(gap=0.0, warm_start_share=0.5))
    assert cold.status == warm.status == "optimal"
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9)
