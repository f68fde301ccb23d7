"""A MIP start for HiGHS from two smaller solves ("relax and fix"), within the time limit.

On large plans HiGHS's own heuristics find poor first plans: on the benchmark instance
(BENCHMARKS.md section 4) its incumbent after 60 s was about 2 % dearer than this start.
 1. Solve with purchases (buy) continuous: power blocks and site openings stay integer, and
    the fractional systems show where and when capacity is needed.
 2. Fix blocks and openings at that plan and solve the integer purchases against it.
 3. Hand the result to the full MIP as a start (``compat.run_highs(start=...)``): the solver
    keeps it as its incumbent unless it finds better, and prunes with it.
If either stage finds no plan (say, rounding left too little power for whole systems), there
is no start and the full MIP runs alone: a start never changes what is optimal, only how fast
a good plan is found. Every variable's category and bounds are restored afterwards.
"""

from __future__ import annotations

import pulp  # type: ignore[import-untyped]

from planner import compat
from planner.model import Model

STAGE1_SHARE = 0.6  # of the start's time budget; the rest goes to stage 2


def two_stage_start(
    m: Model, budget_s: float, gap: float | None, threads: int | None
) -> dict[str, float] | None:
    """Variable name -> value of a feasible plan, or None when the stages found none."""
    if not m.buy:
        return None
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
    try:
        second = compat.run_highs(
            m.prob, True, (1 - STAGE1_SHARE) * budget_s, stage_gap / 2, threads
        )
    finally:
        for v, low, up in fixed:
            v.lowBound, v.upBound = low, up
    if not second.has_solution:
        return None
    return {v.name: v.varValue for v in m.prob.variables() if v.varValue is not None}
