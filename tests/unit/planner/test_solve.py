"""Honest statuses; CBC and HiGHS agree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from planner.bench import generate
from planner.build import build
from planner.compat import RawSolve, cbc_class
from planner.schema import load_scenario
from planner.solve import SolveOptions, interpret, solve

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
    for v in (*m.buy.values(), *m.cum.values(), *m.opened.values()):
        assert start[v.name] == pytest.approx(round(start[v.name]), abs=1e-6)  # whole units
    # the start is a plan: fixing every integer at it leaves a feasible model
    for v in (*m.buy.values(), *m.cum.values(), *m.opened.values()):
        v.lowBound = v.upBound = round(start[v.name])
    assert compat.run_highs(m.prob, True, 10.0, 0.0, 1).has_solution


def test_a_warm_started_solve_reaches_the_same_optimum() -> None:
    cold = solve(build(load_scenario(TINY)), SolveOptions(gap=0.0, warm_start_share=0.0))
    warm = solve(build(load_scenario(TINY)), SolveOptions(gap=0.0, warm_start_share=0.5))
    assert cold.status == warm.status == "optimal"
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9)
