"""A MIP start for HiGHS, within a share of the time limit, and previous plans as starts.

On large plans HiGHS's own first plans are poor, and the plans its sub-MIPs find depend on
luck (the HiGHS random seed). The start is built in steps whose plans do not depend on it
(planner/README.md, "Warm start"); every variable's category and bounds are restored after
each step:
 0. Round the LP relaxation: openings at 0.5, the LP again with them fixed, cumulative blocks
    (`ROUNDINGS`), purchases and dispatch re-solved for each rounding (an LP): a plan of
    stage 1 (purchases continuous) in well under a second.
 1. Improve it across sites: RINS (blocks and openings where the plan and the LP relaxation
    round alike fixed, the others solved together), then one region at a time (a region's
    sites solved together, every other site's blocks and openings fixed).
 2. Stage 1: the MIP with purchases continuous, from that plan, for its bound; a relaxation
    of the MIP (same rows and objective), so its proven bound is a lower bound on the MIP's
    optimum. HiGHS's root sub-MIP heuristics are off (`BOUND_FIRST`) when there is a plan.
 3. While the plan is not within `STAGE1_GAP_SHARE` of the gap of that bound: step 1 again,
    while it improves the plan and time is left.
 4. Stage 2: blocks and openings fixed at the plan, whole systems: the MIP over all
    purchases, stopped once within `STAGE2_GAP_SHARE` of the gap of the bound, and, kept if
    better, a quick rounding (each purchase the floor or the ceiling of the plan's).
`planner.solve` hands the result to the full MIP as a start (``compat.run_highs(start=...)``)
and reports the highest proven bound (LP relaxation, stage 1, full MIP). A start never
changes what is optimal, only how fast a good plan is found.

`Plan` is a plan's integer decisions by key; `plan_start` evaluates one on another model (a
re-plan with a derate) and is a start there when feasible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pulp  # type: ignore[import-untyped]

from planner import compat
from planner.inputs import Horizon
from planner.model import BlockKey, BuyKey, Model

# The start's time budget, as shares of it (measured from the start's beginning) and seconds:
# RINS ends by RINS_END and the search by region by LOCAL_END, stage 1 by STAGE1_END unless
# it proves its gap sooner; then RINS and the search by region again (up to RINS_S for RINS a
# round) while they improve the plan and more than STAGE2_MIN_S are left; stage 2 gets the
# rest, its quick rounding up to WHOLE_S of it.
RINS_END = 0.15
LOCAL_END = 0.35
STAGE1_END = 0.7
RINS_S = 3.0
STAGE2_MIN_S = 5.0
WHOLE_S = 2.0
# Stage 1 (and the search after it) stops at this share of the requested gap, leaving the rest
# to stage 2's whole systems (0.05-0.25 % dearer than stage 1's plan on the benchmark);
# stage 2 stops once within STAGE2_GAP_SHARE of it (HiGHS's objective_target).
STAGE1_GAP_SHARE = 0.75
STAGE2_GAP_SHARE = 0.9
# Stage 1 from a plan of the search: HiGHS's root sub-MIP heuristics (RINS, RENS, reduced
# cost) are what held its bound at the root's for 13 s on the benchmark instance (8.296e3);
# without them the tree search starts sooner (8.314e3-8.319e3 after 10 s, HiGHS seeds 0-2).
# Only how the search is spent changes: the bound stays a proven bound.
BOUND_FIRST: dict[str, bool | int | float | str] = {
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_effort": 0.0,
}
ROUNDINGS = (0.5, 0.9)  # cum := floor(lp + c): to nearest, and up unless under 0.1 of a block


@dataclass(frozen=True, slots=True)
class Start:
    values: dict[str, float]  # variable name -> value of a feasible plan, whole systems
    objective: float  # that plan's objective, in solver units
    # The best proven bound of the start's steps (solver units): the LP relaxation's and stage
    # 1's (a relaxation of the MIP: purchases continuous, same rows and objective), so a
    # lower bound on the MIP's optimum as well; None where none was proven.
    bound: float | None


@dataclass(frozen=True, slots=True)
class _Point:
    """A solution of stage 1 (purchases continuous): blocks and openings whole."""

    values: dict[str, float]
    objective: float


def _values(m: Model) -> dict[str, float]:
    return {v.name: float(v.varValue) for v in m.prob.variables() if v.varValue is not None}


def _better(a: _Point | None, b: _Point | None) -> _Point | None:
    if a is None or b is None:
        return a or b
    return a if a.objective <= b.objective else b


class _Bounds:
    """Categories and bounds of the integer variables, to change and to restore."""

    def __init__(self, m: Model) -> None:
        self.m = m
        self.saved = [
            (v, v.cat, v.lowBound, v.upBound)
            for v in (*m.buy.values(), *m.cum.values(), *m.opened.values())
        ]
        self.original = {v.name: (low, up) for v, _, low, up in self.saved}

    def restore(self) -> None:
        for v, cat, low, up in self.saved:
            v.cat, v.lowBound, v.upBound = cat, low, up

    def blocks_fixed(
        self, values: dict[str, float], free: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Fix every site's blocks and opening at ``values`` except those of the sites ``free``."""
        m = self.m
        for (sn, _t), v in m.cum.items():
            self._fix(v, values, sn not in free)
        for sn, v in m.opened.items():
            self._fix(v, values, sn not in free)

    def _fix(self, v: compat.Var, values: dict[str, float], fix: bool) -> None:
        if fix:
            v.lowBound = v.upBound = float(round(values.get(v.name, 0.0)))
        else:
            v.lowBound, v.upBound = self.original[v.name]


def _relaxation(
    m: Model, b: _Bounds, threads: int | None, seed: int | None
) -> tuple[float | None, dict[str, float] | None]:
    """The LP relaxation: its bound (a lower bound on the MIP's optimum) and its blocks and
    openings, or (None, None) where it has no solution."""
    for v, *_ in b.saved:
        v.cat = pulp.LpContinuous
    try:
        lp = compat.run_highs(m.prob, False, None, None, threads, random_seed=seed)
    finally:
        b.restore()
    values = {v.name: compat.value(v) for v in (*m.cum.values(), *m.opened.values())}
    return (lp.best_bound, values) if lp.has_solution else (None, None)


def _rounded(
    m: Model, b: _Bounds, relaxed: dict[str, float], threads: int | None, seed: int | None
) -> _Point | None:
    """A stage-1 plan from the LP relaxation, whatever HiGHS's sub-MIPs find: openings
    rounded, the LP solved again with them fixed, blocks rounded (`ROUNDINGS`) and purchases
    and dispatch solved for each rounding (an LP); the cheapest, or None."""
    for v, *_ in b.saved:
        v.cat = pulp.LpContinuous
    try:
        for v in m.opened.values():
            v.lowBound = v.upBound = float(relaxed[v.name] >= 0.5)
        if m.opened:
            again = compat.run_highs(m.prob, False, None, None, threads, random_seed=seed)
            if not again.has_solution:
                return None
        cum = {v.name: compat.value(v) if m.opened else relaxed[v.name] for v in m.cum.values()}
        best: _Point | None = None
        for c in ROUNDINGS if m.cum else ROUNDINGS[:1]:
            for v in m.cum.values():
                low, up = b.original[v.name]
                x = max(float(math.floor(cum[v.name] + c + 1e-9)), low or 0.0)
                v.lowBound = v.upBound = x if up is None else min(x, up)
            raw = compat.run_highs(m.prob, False, None, None, threads, random_seed=seed)
            if raw.objective is not None:
                best = _better(best, _Point(_values(m), raw.objective))
        return best
    finally:
        b.restore()


def _sub_mip(
    m: Model, point: _Point, limit: float, threads: int | None, seed: int | None
) -> _Point:
    """Solve m as its bounds now stand (purchases continuous, some blocks fixed) from
    ``point``; the better of the two."""
    raw = compat.run_highs(m.prob, True, limit, 1e-4, threads, start=point.values, random_seed=seed)
    if raw.objective is not None and raw.objective < point.objective * (1 - 1e-9):
        return _Point(_values(m), raw.objective)
    return point


def _by_region(
    m: Model,
    b: _Bounds,
    point: _Point,
    relaxed: dict[str, float],
    deadline: float,
    threads: int | None,
    seed: int | None,
) -> _Point:
    """Local search, one pass: for one region at a time, re-solve the blocks and openings of
    its sites together (they serve the same workloads) with every other site's fixed and
    purchases continuous, from ``point``; the regions where the plan and the LP relaxation
    differ most first, each with an equal share of the time left before ``deadline``."""
    region = {s.name: s.region for s in m.scenario.sites}

    def differ(r: str) -> float:
        return -sum(abs(relaxed[v.name] - point.values.get(v.name, 0.0))
                    for (sn, _), v in m.cum.items() if region[sn] == r)  # fmt: skip

    regions = sorted({region[sn] for sn, _ in m.cum}, key=lambda r: (differ(r), r))
    for i, r in enumerate(regions):
        left = deadline - time.perf_counter()
        if left < 0.2:
            break
        for v in m.buy.values():
            v.cat = pulp.LpContinuous
        b.blocks_fixed(point.values, free={sn for sn, rn in region.items() if rn == r})
        try:
            point = _sub_mip(m, point, left / (len(regions) - i), threads, seed)
        finally:
            b.restore()
    return point


def _rins(
    m: Model,
    b: _Bounds,
    point: _Point,
    relaxed: dict[str, float],
    limit: float,
    threads: int | None,
    seed: int | None,
) -> _Point:
    """RINS: blocks and openings where the plan and the LP relaxation round alike stay fixed,
    the others, at any site, are solved together (purchases continuous), from ``point``."""
    for v in m.buy.values():
        v.cat = pulp.LpContinuous
    try:
        for v in (*m.cum.values(), *m.opened.values()):
            x = float(round(point.values.get(v.name, 0.0)))
            if abs(relaxed[v.name] - x) < 0.5:
                v.lowBound = v.upBound = x
        return _sub_mip(m, point, limit, threads, seed)
    finally:
        b.restore()


def _whole(
    m: Model, b: _Bounds, point: _Point, limit: float, threads: int | None, seed: int | None
) -> Start | None:
    """Whole systems near a stage-1 plan, fast: its blocks and openings fixed, each purchase
    the floor or the ceiling of the plan's (all floors are feasible wherever demand may go
    unserved). Kept when stage 2 ends with a worse plan of its own (on the benchmark, 0.5 %
    above stage 2's usual plans; handed to stage 2 as a start, it held HiGHS there)."""
    b.blocks_fixed(point.values)
    for v in m.buy.values():
        y = point.values.get(v.name, 0.0)
        low, up = b.original[v.name]
        v.lowBound = max(float(math.floor(y + 1e-6)), low or 0.0)
        v.upBound = (
            float(math.ceil(y - 1e-6)) if up is None else min(float(math.ceil(y - 1e-6)), up)
        )
    try:
        raw = compat.run_highs(m.prob, True, limit, 1e-4, threads, random_seed=seed)
    finally:
        b.restore()
    return None if raw.objective is None else Start(_values(m), raw.objective, None)


def two_stage_start(
    m: Model,
    budget_s: float,
    gap: float | None,
    threads: int | None,
    random_seed: int | None = None,
    incumbent: Start | None = None,
) -> Start | None:
    """A feasible plan with the best proven bound, or None when no step found a plan.

    ``incumbent`` (a whole plan feasible for m, say a previous plan evaluated on it) seeds
    the search and is returned when nothing better is found."""
    if not m.buy:
        return incumbent
    started = time.perf_counter()
    target = max(gap or 0.0, 0.01)
    stage1_gap = STAGE1_GAP_SHARE * target

    def until(share: float, reserve: float = 0.0) -> float:
        return started + share * budget_s - reserve - time.perf_counter()

    b = _Bounds(m)
    bounds: list[float] = []
    # (0) a stage-1 plan from rounding the LP, whatever HiGHS's sub-MIPs find
    lp_bound, relaxed = _relaxation(m, b, threads, random_seed)
    if relaxed is None:
        return incumbent  # no LP solution: the full MIP says why (infeasible or unbounded)
    lp: dict[str, float] = relaxed
    bounds += [] if lp_bound is None else [lp_bound]
    point = _rounded(m, b, lp, threads, random_seed)
    if incumbent is not None:
        point = _better(point, _Point(incumbent.values, incumbent.objective))

    def improve(point: _Point, rins_s: float, region_until: float) -> _Point:
        """RINS, then the search by region, each within its time."""
        if rins_s >= 1.0:
            point = _rins(m, b, point, lp, rins_s, threads, random_seed)
        if region_until - time.perf_counter() >= 1.0:
            point = _by_region(m, b, point, lp, region_until, threads, random_seed)
        return point

    # (1) improve it across sites: RINS, then one region at a time
    if point is not None:
        point = improve(point, until(RINS_END), started + LOCAL_END * budget_s)
    # (2) stage 1: the MIP with purchases continuous, for its bound (from that plan, with
    # HiGHS's root sub-MIP heuristics off); with no plan yet, HiGHS's own heuristics
    for v in m.buy.values():
        v.cat = pulp.LpContinuous
    try:
        first = compat.run_highs(
            m.prob, True, max(1.0, until(STAGE1_END)), stage1_gap, threads,
            start=None if point is None else point.values, random_seed=random_seed,
            options=None if point is None else BOUND_FIRST,
        )  # fmt: skip
    finally:
        b.restore()
    if first.best_bound is not None:
        bounds.append(first.best_bound)
    if first.objective is not None:
        point = _better(point, _Point(_values(m), first.objective))
    bound = max(bounds) if bounds else None
    if point is None:
        return None if incumbent is None else Start(incumbent.values, incumbent.objective, bound)
    # (3) not within stage 1's gap of the bound: RINS and the search by region again, while
    # they improve the plan and more than stage 2's time is left
    while (g := relative_gap(point.objective, bound)) is None or g > stage1_gap:
        left = until(1.0, STAGE2_MIN_S)
        if left < 1.0:
            break
        before = point.objective
        point = improve(point, min(RINS_S, left), min(started + budget_s - STAGE2_MIN_S,
                                                       time.perf_counter() + left))  # fmt: skip
        if point.objective >= before * (1 - 1e-6):
            break
    # (4) stage 2: blocks and openings fixed at that plan, whole systems; it stops once its
    # plan is within STAGE2_GAP_SHARE of the requested gap of the bound (HiGHS's
    # objective_target), else at a tenth of stage 1's gap. A quick rounding of the purchases
    # first, kept if stage 2 ends with worse (as a start, it held HiGHS back).
    best = incumbent
    whole = _whole(m, b, point, max(1.0, min(WHOLE_S, until(1.0))), threads, random_seed)
    if whole is not None and (best is None or whole.objective < best.objective):
        best = whole
    enough = (
        None
        if bound is None or bound <= 0 or STAGE2_GAP_SHARE * target >= 0.5
        else {"objective_target": bound / (1 - STAGE2_GAP_SHARE * target)}
    )
    if whole is None or enough is None or whole.objective > enough["objective_target"]:
        b.blocks_fixed(point.values)
        try:
            second = compat.run_highs(
                m.prob, True, max(1.0, until(1.0)), stage1_gap / 10, threads,
                random_seed=random_seed, options=enough,
            )  # fmt: skip
        finally:
            b.restore()
        if second.objective is not None and (best is None or second.objective < best.objective):
            best = Start(_values(m), second.objective, None)
    return None if best is None else Start(best.values, best.objective, bound)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """(objective - bound) / |objective|, at least 0; None where either is unknown."""
    if objective is None or bound is None:
        return None
    return max(0.0, objective - bound) / max(abs(objective), 1e-9)


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan's integer decisions by key, independent of any one built model: what a re-plan
    (say, of the same scenario with a derate) starts from. Keys are those of `Model.buy` and
    `Model.blocks_ordered`; missing keys are 0."""

    buys: Mapping[BuyKey, int] = field(default_factory=dict)  # systems ordered (sku, site, t)
    blocks: Mapping[BlockKey, int] = field(default_factory=dict)  # blocks ordered (site, t)
    # site -> 0/1 where the site has an opening cost; missing: open where it orders blocks
    opened: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_model(cls, m: Model) -> Plan:
        """The plan a solved model holds (its variables' values)."""
        return cls(
            buys={k: n for k, v in m.buy.items() if (n := round(compat.value(v))) > 0},
            blocks={k: n for k, n in m.blocks_ordered().items() if n > 0},
            opened={k: round(compat.value(v)) for k, v in m.opened.items()},
        )

    @classmethod
    def from_records(
        cls,
        horizon: Horizon,
        purchases: Iterable[Mapping[str, object]],
        blocks: Iterable[Mapping[str, object]] = (),
    ) -> Plan:
        """From rows of purchases.csv (quarter, site, sku, systems) and blocks.csv (quarter,
        site, blocks), as `Table.records()` or `csv.DictReader` give them; quarters are labels
        like 2027Q1. Openings follow the blocks."""
        buys: dict[BuyKey, int] = {}
        for r in purchases:
            key = (str(r["sku"]), str(r["site"]), horizon.index(str(r["quarter"])))
            buys[key] = buys.get(key, 0) + int(str(r["systems"]))
        ordered: dict[BlockKey, int] = {}
        for r in blocks:
            bkey = (str(r["site"]), horizon.index(str(r["quarter"])))
            ordered[bkey] = ordered.get(bkey, 0) + int(str(r["blocks"]))
        return cls(buys=buys, blocks=ordered)


def plan_values(m: Model, plan: Plan) -> dict[str, float] | None:
    """Values of m's integer variables (buy, cum, open) for ``plan``; None when the plan
    orders something m has no variable for (another horizon, an SKU no longer eligible)."""
    if any(n > 0 and k not in m.buy for k, n in plan.buys.items()):
        return None
    if any(n > 0 and k not in m.cum for k, n in plan.blocks.items()):
        return None
    values = {v.name: float(plan.buys.get(k, 0)) for k, v in m.buy.items()}
    running: dict[str, int] = {}
    for (site, t), v in sorted(m.cum.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        running[site] = running.get(site, 0) + plan.blocks.get((site, t), 0)
        values[v.name] = float(running[site])
    for site, v in m.opened.items():
        default = int(running.get(site, 0) > 0)
        values[v.name] = float(plan.opened.get(site, default))
    return values


def plan_start(
    m: Model,
    plan: Plan,
    time_limit_s: float | None,
    threads: int | None,
    random_seed: int | None = None,
) -> Start | None:
    """``plan`` evaluated on m: its integers fixed, the rest (installed systems, dispatch,
    unserved) solved; a `Start` with that objective, or None when the plan is not feasible
    for m (with a derate, penalty mode absorbs lost capacity as unserved demand; hard mode
    may not). Every variable's bounds are restored afterwards."""
    values = plan_values(m, plan)
    if values is None:
        return None
    fixed = [(v, v.lowBound, v.upBound) for v in (*m.buy.values(), *m.cum.values(), *m.opened.values())]  # fmt: skip
    for v, _, _ in fixed:
        v.lowBound = v.upBound = values[v.name]
    try:
        raw = compat.run_highs(m.prob, True, time_limit_s, None, threads, random_seed=random_seed)
    finally:
        for v, low, up in fixed:
            v.lowBound, v.upBound = low, up
    if not raw.has_solution or raw.objective is None:
        return None
    solved = {v.name: v.varValue for v in m.prob.variables() if v.varValue is not None}
    return Start(solved, raw.objective, None)
