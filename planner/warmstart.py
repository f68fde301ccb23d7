"""A MIP start for HiGHS from two smaller solves ("relax and fix"), within the time limit.

On large plans HiGHS's own heuristics find poor first plans: on the benchmark instance
(BENCHMARKS.md section 4) its incumbent after 60 s was about 2 % dearer than this start.
 1. Solve with purchases (buy) continuous: power blocks and site openings stay integer, and
    the fractional systems show where and when capacity is needed.
 2. Fix blocks and openings at that plan and solve the integer purchases against it.
 3. Hand the result to the full MIP as a start (``compat.run_highs(start=...)``): the solver
    keeps it as its incumbent unless it finds better, and prunes with it.
Stage 1 is a relaxation of the MIP (same rows and objective, purchases continuous), so its
proven best bound is also a lower bound on the MIP's optimum. HiGHS's root cuts do better on
it than on the full MIP, whose root probing is slow (benchmark: 8.306e3 against 8.282e3 after
the full MIP's first 25 s); `planner.solve` reports the higher of the two bounds and skips the
full MIP when the start is already within the requested gap of stage 1's bound.
If either stage finds no plan (say, rounding left too little power for whole systems), there
is no start and the full MIP runs alone: a start never changes what is optimal, only how fast
a good plan is found. Every variable's category and bounds are restored afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pulp  # type: ignore[import-untyped]

from planner import compat
from planner.model import Model

# Of the start's time budget; stage 2 gets the rest. Stage 1 is the hard part (its integers
# are the blocks and openings); stage 2, with those fixed, is quick.
STAGE1_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Start:
    values: dict[str, float]  # variable name -> value of a feasible plan (stage 2's)
    objective: float  # that plan's objective, in solver units
    # Stage 1's best bound (solver units): stage 1 is a relaxation of the MIP (purchases
    # continuous, same rows and objective), so its proven bound is a lower bound on the MIP's
    # optimum as well; None where HiGHS gave none.
    bound: float | None


def two_stage_start(
    m: Model, budget_s: float, gap: float | None, threads: int | None
) -> Start | None:
    """A feasible plan with stage 1's bound, or None when the stages found no plan."""
    if not m.buy:
        return None
    started = time.perf_counter()
    stage_gap = max(gap or 0.0, 0.01)
    buys = list(m.buy.values())
    for v in buys:
        v.cat = pulp.LpContinuous
    try:
        first = compat.run_highs(m.prob, True, STAGE1_SHARE * budget_s, stage_gap, threads)
    finally:
        for v in buys:
            v.cat = pulp.LpInteger
    if not first.has_solution:
        return None
    fixed = [(v, v.lowBound, v.upBound) for v in (*m.cum.values(), *m.opened.values())]
    plan = {v.name: float(round(v.varValue or 0.0)) for v, _, _ in fixed}
    for v, _, _ in fixed:
        v.lowBound = v.upBound = plan[v.name]
    # Stage 2 gets what is left of the budget (stage 1 stops early once within its gap).
    left = max(1.0, budget_s - (time.perf_counter() - started))
    try:
        second = compat.run_highs(m.prob, True, left, stage_gap / 4, threads)
    finally:
        for v, low, up in fixed:
            v.lowBound, v.upBound = low, up
    if not second.has_solution or second.objective is None:
        return None
    values = {v.name: v.varValue for v in m.prob.variables() if v.varValue is not None}
    return Start(values, second.objective, first.best_bound)
