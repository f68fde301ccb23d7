"""Scenario sweep and regret: ``--sweep growth=low,base,high``.

Each case is solved on its own (plan i). A plan is then judged under every other case j by
fixing the orders it places in its first year (the decisions that cannot wait for the
future to be known) and re-solving the rest under case j: cost[i][j]. The regret of plan i
under case j is cost[i][j] - cost[j][j]; the plan with the least maximum regret is the robust
first-year choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from planner import compat
from planner.build import build
from planner.inputs import QUARTERS_PER_YEAR, Scenario
from planner.model import BuildOptions, Model
from planner.results import Cell, Table
from planner.solve import Outcome, SolveOptions, solve

SWEEP_KEYS = ("growth",)


def parse_sweep(spec: str, sc: Scenario) -> tuple[str, tuple[str, ...]]:
    """``growth=low,base,high`` -> ("growth", ("low", "base", "high")), checked against the scenario."""
    key, sep, values = spec.partition("=")
    if not sep or key.strip() not in SWEEP_KEYS:
        raise ValueError(
            f"--sweep {spec!r} is not allowed (KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)})"
        )
    cases = tuple(v.strip() for v in values.split(",") if v.strip())
    known = sc.growth_cases()
    bad = [c for c in cases if c not in known]
    if not cases or bad:
        raise ValueError(
            f"--sweep {spec!r}: {', '.join(bad) or 'no case'} is not a growth case of {sc.source} "
            f"(defined: {', '.join(known) or 'none; give vehicle_growth_per_year as a mapping'})"
        )
    return key.strip(), cases


@dataclass(frozen=True, slots=True)
class SweepResult:
    cases: tuple[str, ...]
    outcomes: dict[str, Outcome]
    models: dict[str, Model]
    regret: Table
    summary: Table


def _first_year(m: Model, quarters: int) -> BuildOptions:
    return BuildOptions(
        fix_before=quarters,
        fixed_buys={k: round(compat.value(v)) for k, v in m.buy.items() if k[2] < quarters},
        fixed_blocks={k: n for k, n in m.blocks_ordered().items() if k[1] < quarters},
        fixed_open={k: round(compat.value(v)) for k, v in m.opened.items()},
    )


def run_sweep(
    sc: Scenario,
    cases: tuple[str, ...],
    options: SolveOptions,
    tick: Callable[[str], None] | None = None,
) -> SweepResult:
    first = min(QUARTERS_PER_YEAR, sc.horizon.quarters)
    outcomes: dict[str, Outcome] = {}
    models: dict[str, Model] = {}
    for c in cases:
        m = build(sc.with_growth(c))
        outcomes[c] = solve(m, options)
        models[c] = m
        if tick:
            tick(f"case {c}: {outcomes[c].status}")
    cost: dict[tuple[str, str], Outcome] = {}
    for i in cases:
        if not outcomes[i].has_solution:
            continue
        fixed = _first_year(models[i], first)
        for j in cases:
            cost[(i, j)] = (
                outcomes[j] if i == j else solve(build(sc.with_growth(j), fixed), options)
            )
            if tick and i != j:
                tick(f"plan {i} under {j}: {cost[(i, j)].status}")
    rows: list[tuple[Cell, ...]] = []
    worst: dict[str, float] = {}
    for (i, j), out in cost.items():
        best = outcomes[j].objective
        regret = out.objective - best if out.objective is not None and best is not None else None
        if regret is not None:
            worst[i] = max(worst.get(i, float("-inf")), regret)
        rows.append((i, j, out.objective, regret, out.status, out.gap))
    regret_t = Table(
        "regret", ("plan", "scenario", "npv_usd", "regret_usd", "status", "gap"), tuple(rows)
    )
    summary = tuple((i, outcomes[i].objective, worst.get(i), outcomes[i].status) for i in cases)
    return SweepResult(
        cases, outcomes, models, regret_t,
        Table("sweep", ("plan", "own_npv_usd", "max_regret_usd", "status"), summary),
    )  # fmt: skip
