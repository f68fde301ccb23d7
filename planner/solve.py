"""Solve a built model and say honestly what came back: a typed `Outcome`.

A bare "Optimal" is never trusted (PuLP 3.x says Optimal for a MIP stopped by its time
limit): the outcome is `optimal` only when the solver proved optimality and the gap between
the incumbent and the best bound is at most `OPTIMAL_GAP`; a solution stopped earlier by the
time limit or by a looser requested gap is `feasible`, with its gap. The best bound comes from
highspy's ``mip_dual_bound``, from CBC's log, or from PuLP 4.x's ``LpSolveStats``; where no
solver tells, it is None (never invented). With HiGHS's two-stage start it is the higher of the
full MIP's bound and that of the start's first stage, a relaxation of the same MIP
(planner/warmstart.py); when the start is already within the requested gap of that bound,
the full MIP is not run.

PuLP API differences between 3.x and 4.x are handled in `planner.compat`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Literal

from planner import SOLVERS, compat
from planner.model import Model
from planner.warmstart import Plan, Start, plan_start, relative_gap, two_stage_start

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no_solution"]
# HiGHS's default mip_rel_gap: what the solver itself calls optimal when left to its defaults.
OPTIMAL_GAP = 1e-4
# After a start, the full MIP runs only with this much time left: its root alone (probing,
# cuts) took 10-12 s on the benchmark instances whatever its time limit, so a shorter run
# overshoots the limit without improving the start, which is then the (time-limited) result.
FULL_MIP_MIN_S = 8.0


@dataclass(frozen=True, slots=True)
class SolveOptions:
    solver: str = "highs"
    time_limit_s: float | None = 60.0
    gap: float | None = 0.01  # relative MIP gap at which to stop
    threads: int | None = 1  # deterministic timings; HiGHS's MIP search is serial anyway
    mip: bool = True  # False: the LP relaxation (integers relaxed)
    fallback: bool = True  # use CBC when HiGHS is not installed
    presolve: bool = True  # HiGHS only; see planner/diagnose.py for why it may be turned off
    # HiGHS MIPs: spend up to this share of the time limit on a start (planner/warmstart.py)
    warm_start_share: float = 0.8
    random_seed: int | None = None  # HiGHS's random_seed (None: HiGHS's default, 0)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    has_solution: bool
    objective: float | None  # USD NPV of the incumbent
    best_bound: float | None  # USD; a lower bound on the optimum, None where unknown
    gap: float | None  # (objective - best_bound) / |objective|; None where unknown
    stop_reason: str  # optimal | gap_limit | time_limit | infeasible | unbounded | error
    solver: str
    solve_s: float
    threads: int | None

    @property
    def headline(self) -> str:
        parts = [f"{self.status} ({self.stop_reason}, {self.solver}, {self.solve_s:.2f} s)"]
        if self.objective is not None:
            parts.append(f"objective ${self.objective:,.0f}")
        if self.best_bound is not None:
            parts.append(f"bound ${self.best_bound:,.0f}")
        if self.gap is not None:
            parts.append(f"gap {self.gap:.3%}")
        return ", ".join(parts)


def interpret(raw: compat.RawSolve, options: SolveOptions, solve_s: float) -> Outcome:
    """Turn what the solver said into an honest status."""
    gap = relative_gap(raw.objective, raw.best_bound) if raw.has_solution else None
    status: Status
    if raw.has_solution:
        if raw.time_limited:
            status, reason = "feasible", "time_limit"
        elif raw.proven and gap is not None and gap <= OPTIMAL_GAP:
            status, reason = "optimal", "optimal"
        elif raw.proven and gap is None and (options.gap or 0.0) <= OPTIMAL_GAP:
            status, reason = "optimal", "optimal"  # no bound reported, but none was relaxed
        elif raw.proven:
            status, reason = "feasible", "gap_limit"
        else:
            status, reason = "feasible", "time_limit" if options.time_limit_s else "stopped"
    elif raw.infeasible:
        status, reason = "infeasible", "infeasible"
    elif raw.unbounded:
        status, reason = "unbounded", "unbounded"
    else:
        status, reason = "no_solution", "time_limit" if raw.time_limited else "error"
    return Outcome(
        status=status,
        has_solution=raw.has_solution,
        objective=raw.objective,
        best_bound=raw.best_bound,
        gap=gap,
        stop_reason=reason,
        solver=raw.solver,
        solve_s=solve_s,
        threads=options.threads,
    )


def _start_is_enough(start: Start, gap: float | None) -> bool:
    g = relative_gap(start.objective, start.bound)
    return g is not None and gap is not None and g <= gap


def _from_start(start: Start) -> compat.RawSolve:
    """The start as the result: proven within the requested gap by stage 1's bound."""
    return compat.RawSolve(
        solver="highs",
        has_solution=True,
        proven=True,
        infeasible=False,
        unbounded=False,
        time_limited=False,
        objective=start.objective,
        best_bound=start.bound,
    )


def _with_start_bound(raw: compat.RawSolve, start: Start) -> compat.RawSolve:
    """The full MIP's result with the higher of its bound and stage 1's (both valid)."""
    if start.bound is None or not raw.has_solution:
        return raw
    bound = start.bound if raw.best_bound is None else max(raw.best_bound, start.bound)
    return replace(raw, best_bound=bound)


def _stopped_at_start(start: Start) -> compat.RawSolve:
    """The start as the result when no time is left for the full MIP: a time-limited plan."""
    return replace(_from_start(start), proven=False, time_limited=True)


def _load(m: Model, values: dict[str, float]) -> None:
    """Put a start's values back on the model's variables (what `results` reads)."""
    for v in m.prob.variables():
        x = values.get(v.name)
        if x is not None:
            v.varValue = x


def _kept(raw: compat.RawSolve, start: Start, m: Model) -> compat.RawSolve:
    """The full MIP's result, but never worse than the start it was given: HiGHS may reject a
    start (tolerances) or, after presolve, hand back a worse postsolved point; the start is
    then the result, its values loaded on the model. The bound is the higher valid one, never
    above the plan returned."""
    raw = _with_start_bound(raw, start)
    if (
        not raw.has_solution
        or raw.objective is None
        or raw.objective > start.objective * (1 + 1e-9)
    ):
        _load(m, start.values)
        bound = (
            start.bound if raw.best_bound is None else max(raw.best_bound, start.bound or -math.inf)
        )
        raw = replace(raw, has_solution=True, infeasible=False, unbounded=False,
                      objective=start.objective, best_bound=bound)  # fmt: skip
    if raw.best_bound is not None and raw.objective is not None:
        raw = replace(raw, best_bound=min(raw.best_bound, raw.objective))
    return raw


def _solve_highs(m: Model, o: SolveOptions, previous: Model | Plan | None) -> compat.RawSolve:
    started = time.perf_counter()
    limit = o.time_limit_s

    def left() -> float | None:
        return None if limit is None else max(1.0, limit - (time.perf_counter() - started))

    start: Start | None = None
    if previous is not None and o.mip:
        # the previous plan's integers fixed on this model, the rest solved (an LP); None when
        # that plan is not feasible here, and then the usual start is all there is
        plan = previous if isinstance(previous, Plan) else Plan.from_model(previous)
        start = plan_start(m, plan, limit, o.threads, o.random_seed)
    # no two-stage start without a time limit to share, nor for the elastic diagnosis model
    # (solved without presolve, small, and exactness is its point)
    budget = left()
    if o.mip and o.warm_start_share > 0 and budget is not None and o.presolve:
        start = two_stage_start(
            m, o.warm_start_share * budget, o.gap, o.threads, o.random_seed, incumbent=start
        )
    if start is None:
        return compat.run_highs(
            m.prob, o.mip, left(), o.gap, o.threads, o.presolve, None, o.random_seed
        )
    if _start_is_enough(start, o.gap):
        _load(m, start.values)
        return _from_start(start)
    remaining = left()
    if remaining is not None and remaining < FULL_MIP_MIN_S:
        _load(m, start.values)
        return _stopped_at_start(start)
    raw = compat.run_highs(
        m.prob, o.mip, remaining, o.gap, o.threads, o.presolve, start.values, o.random_seed
    )
    return _kept(raw, start, m)


def solve(
    m: Model, options: SolveOptions | None = None, start: Model | Plan | None = None
) -> Outcome:
    """Solve m; ``start`` (HiGHS MIPs only): a previous plan, as the solved `Model` it came
    from or a `Plan`, evaluated on m and handed to HiGHS as a start; when it is not feasible
    for m (hard demand under a derate, an order m cannot place) the usual start is used. The
    plan returned is never worse than a feasible start."""
    o = options or SolveOptions()
    if o.solver not in SOLVERS:
        raise ValueError(f"solver {o.solver!r} is not known (known: {', '.join(SOLVERS)})")
    use = o.solver
    if use == "highs" and not compat.highs_available():
        if not o.fallback:
            raise RuntimeError("HiGHS is not available: pip install highspy")
        use = "cbc"
    started = time.perf_counter()
    if use == "highs":
        raw = _solve_highs(m, o, start)
    else:
        raw = compat.run_cbc(m.prob, o.mip, o.time_limit_s, o.gap, o.threads, o.presolve)
    elapsed = time.perf_counter() - started
    unit = m.objective_unit  # the solver sees millions of USD; report USD

    def usd(v: float | None) -> float | None:
        return None if v is None else v * unit

    raw = replace(raw, objective=usd(raw.objective), best_bound=usd(raw.best_bound))
    return interpret(raw, o, elapsed)
