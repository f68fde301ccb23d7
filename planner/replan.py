"""Plan, and plan again from a previous plan: the planner's side of the closed loop (plan ->
replay through the scheduler's simulator -> derate the site-quarters that missed the SLO ->
plan again).

    o1, m1 = plan(scenario)
    o2, m2 = plan(scenario.with_derate({("cn-sh", 3): 0.8}), start=m1)   # or replan(m1, {...})

A start is the previous plan's purchases, blocks and openings evaluated on the new model
(`planner.warmstart.plan_start`) and handed to HiGHS; the plan returned is never worse than
it. Where it is not feasible for the new model (hard demand that a derate makes unmeetable,
an order the new model cannot place) the usual two-stage start is used instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from planner.build import build
from planner.inputs import DerateKey, Scenario
from planner.model import Model
from planner.solve import Outcome, SolveOptions, solve
from planner.warmstart import Plan


def plan(
    scenario: Scenario, options: SolveOptions | None = None, start: Model | Plan | None = None
) -> tuple[Outcome, Model]:
    """Build and solve ``scenario``, from ``start`` (a solved `Model` or a `Plan`) if given."""
    m = build(scenario)
    return solve(m, options, start=start), m


def replan(
    previous: Model, derate: Mapping[DerateKey, float], options: SolveOptions | None = None
) -> tuple[Outcome, Model]:
    """``previous``'s scenario with its derate replaced by ``derate`` (see
    `Scenario.with_derate`), solved from ``previous``'s plan."""
    return plan(previous.scenario.with_derate(derate), options, start=previous)
