"""The only module that knows PuLP's API; works with pulp 3.3.x (Python 3.11) and 4.x.

Differences handled here, by feature detection rather than version sniffing:

* variables: 4.x creates them on the problem (``prob.add_variable``), 3.3 has the same method
  and older 3.x only ``LpVariable(...)``;
* expressions: 4.x builds from pairs with ``LpAffineExpression.from_list``, 3.x takes the
  pairs in the constructor;
* constraints: ``prob.constraints`` is a dict in 3.x and a method returning a list in 4.x;
* solving: 3.x's ``solve`` returns an int and leaves ``status``/``sol_status`` on the
  problem, and says "Optimal" for a MIP stopped by its time limit (sol_status 2 then tells);
  4.x returns an ``LpSolveStats`` with ``has_solution`` and ``best_bound``;
* CBC: 3.x bundles ``PULP_CBC_CMD``; 4.x has only ``COIN_CMD`` (CBC from ``pulp[cbc]``);
* HiGHS: ``pulp.HiGHS`` (highspy) in both; the highspy model stays on ``prob.solverModel``,
  which is where the MIP dual bound is read from when PuLP does not report it.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulp  # type: ignore[import-untyped]

Var = Any  # a pulp.LpVariable; pulp ships no type information
Expr = Any  # a pulp.LpAffineExpression
Constraint = Any


def new_problem(name: str) -> Any:
    return pulp.LpProblem(name, pulp.LpMinimize)


def new_var(prob: Any, name: str, low: float | None, up: float | None, integer: bool) -> Var:
    cat = pulp.LpInteger if integer else pulp.LpContinuous
    if hasattr(prob, "add_variable"):
        return prob.add_variable(name, low, up, cat)
    return pulp.LpVariable(name, low, up, cat)  # pulp < 3.3.1


def affine(pairs: Iterable[tuple[Var, float]], constant: float = 0.0) -> Expr:
    """A linear expression from (variable, coefficient) pairs, without per-term temporaries."""
    merged: dict[Any, float] = {}
    for v, c in pairs:
        merged[v] = merged.get(v, 0.0) + c
    items = [(v, c) for v, c in merged.items() if c != 0.0]
    from_list = getattr(pulp.LpAffineExpression, "from_list", None)
    if from_list is not None:
        expr = from_list(items)
        return expr + constant if constant else expr
    return pulp.LpAffineExpression(items, constant=constant)


def add_row(prob: Any, name: str, expr: Expr, sense: str, rhs: float) -> None:
    if sense == "<=":
        prob += (expr <= rhs, name)
    elif sense == ">=":
        prob += (expr >= rhs, name)
    else:
        prob += (expr == rhs, name)


def constraints_by_name(prob: Any) -> dict[str, Constraint]:
    cons = prob.constraints
    rows = cons() if callable(cons) else cons.values()
    return {c.name: c for c in rows}


def terms(e: Expr | Constraint) -> dict[str, float]:
    """Variable name -> coefficient of a linear expression or of a row's left-hand side."""
    return {v.name: float(c) for v, c in e.items()}


def set_objective(prob: Any, expr: Expr) -> None:
    prob.setObjective(expr)


def value(v: Var) -> float:
    x = v.varValue
    return 0.0 if x is None else float(x)


def dual(c: Constraint) -> float | None:
    pi = getattr(c, "pi", None)
    return None if pi is None else float(pi)


@dataclass(frozen=True, slots=True)
class RawSolve:
    """What the solver said, before `solve.Outcome` interprets it."""

    solver: str
    has_solution: bool
    proven: bool  # the solver claims optimality (within its gap tolerance)
    infeasible: bool
    unbounded: bool
    time_limited: bool
    objective: float | None
    best_bound: float | None  # None where the solver does not tell


_banner_silenced = False


def silence_highs_banner() -> None:
    """highspy prints its banner on stdout once per process, even with output off (the note's
    pitfall 10); create the first Highs object with stdout sent to /dev/null."""
    global _banner_silenced
    if _banner_silenced:
        return
    _banner_silenced = True
    try:
        import highspy
    except ImportError:
        return
    sys.stdout.flush()  # what Python still buffers is written before stdout is redirected
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _kwargs(cls: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Only the keyword arguments this solver class accepts (names differ across versions)."""
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in wanted.items() if v is not None and k in params}


def highs_class() -> Any:
    """pulp's highspy-based solver class (named HiGHS; HiGHS_PY in some releases), or None."""
    for name in ("HiGHS", "HiGHS_PY"):
        cls = getattr(pulp, name, None)
        if cls is not None and cls(msg=False).available():
            return cls
    return None


def highs_available() -> bool:
    return highs_class() is not None


def cbc_class() -> Any:
    # COIN_CMD first: a CBC on PATH (4.x: pulp[cbc]); then 3.x's bundled PULP_CBC_CMD, whose
    # deprecation warning in 3.3 is about 4.x, which this module already handles.
    for name in ("COIN_CMD", "PULP_CBC_CMD"):
        cls = getattr(pulp, name, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if cls is not None and cls(msg=False).available():
                return cls
    return None


def _started(cls: Any, start: Mapping[str, float]) -> Any:
    """``cls`` handing ``start`` (variable name -> value) to highspy as a MIP start before it
    runs; pulp 3.3's HiGHS class takes no start itself. Without the hook it builds on
    (``callSolver``), the start is dropped: a start only ever speeds a solve up."""
    if not hasattr(cls, "callSolver"):
        return cls
    import highspy

    class Started(cls):  # type: ignore[misc]
        def callSolver(self, lp: Any) -> None:
            h = lp.solverModel
            col = [0.0] * h.getNumCol()
            for v in lp.variables():
                x = start.get(v.name)
                if x is not None:
                    col[v.index] = x
            sol = highspy.HighsSolution()
            sol.col_value = col
            sol.value_valid = True
            h.setSolution(sol)
            super().callSolver(lp)

    return Started


def run_highs(
    prob: Any,
    mip: bool,
    time_limit: float | None,
    gap: float | None,
    threads: int | None,
    presolve: bool = True,
    start: Mapping[str, float] | None = None,
    random_seed: int | None = None,
    options: Mapping[str, bool | int | float | str] | None = None,
) -> RawSolve:
    """Solve with highspy; ``options`` are further HiGHS options by name (setOptionValue)."""
    silence_highs_banner()
    cls = highs_class()
    if start:
        cls = _started(cls, start)
    opts = {"mip": mip, "msg": False, "timeLimit": time_limit, "gapRel": gap, "threads": threads}
    # passed through to highspy's setOptionValue
    extra: dict[str, Any] = {} if presolve else {"presolve": "off"}
    if random_seed is not None:
        extra["random_seed"] = random_seed
    extra.update(options or {})
    result = prob.solve(cls(**_kwargs(cls, opts), **extra))
    model = getattr(prob, "solverModel", None)
    if model is None:  # no highspy model to ask: fall back to what PuLP reports
        return _from_pulp(prob, result, "highs", None)
    import highspy

    st = model.getModelStatus()
    info = model.getInfo()
    ms = highspy.HighsModelStatus
    has = int(info.primal_solution_status) == 2  # kSolutionStatusFeasible
    is_mip = mip and any(v.cat == pulp.LpInteger for v in prob.variables())
    obj = float(info.objective_function_value) if has else None
    bound: float | None
    if is_mip:
        b = float(info.mip_dual_bound)
        bound = b if abs(b) < 1e300 else None
    else:
        bound = obj if st == ms.kOptimal else None  # an optimal LP's bound is its objective
    return RawSolve(
        solver="highs",
        has_solution=has,
        proven=st == ms.kOptimal,
        infeasible=st == ms.kInfeasible,
        unbounded=st in (ms.kUnbounded, ms.kUnboundedOrInfeasible) and not has,
        time_limited=st == ms.kTimeLimit,
        objective=obj,
        best_bound=bound,
    )


_LOWER_BOUND = re.compile(r"^Lower bound:\s+(\S+)", re.M)
_RESULT = re.compile(r"^Result - (.*)$", re.M)


def run_cbc(
    prob: Any,
    mip: bool,
    time_limit: float | None,
    gap: float | None,
    threads: int | None,
    presolve: bool = True,
) -> RawSolve:
    cls = cbc_class()
    if cls is None:
        raise RuntimeError("CBC is not available (pulp 4.x: pip install 'pulp[cbc]')")
    with tempfile.TemporaryDirectory(prefix="gpuyard-cbc-") as tmp:
        log = Path(tmp) / "cbc.log"
        opts = {"mip": mip, "msg": False, "timeLimit": time_limit, "gapRel": gap, "threads": threads,
                "logPath": str(log)}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            solver = cls(**_kwargs(cls, opts))
        result = prob.solve(solver)
        text = log.read_text() if log.exists() else ""
    # CBC's summary: "Result - Optimal solution found", "... (within gap tolerance)",
    # "Stopped on time limit"; "Lower bound:" is printed when the search stopped early.
    m = _RESULT.search(text)
    lb = _LOWER_BOUND.search(text)
    bound = float(lb.group(1)) if lb else None
    raw = _from_pulp(prob, result, "cbc", bound)
    exact = m is not None and m.group(1).strip() == "Optimal solution found"
    if raw.best_bound is None and raw.proven and raw.objective is not None and (exact or not mip):
        raw = RawSolve(**{**_fields(raw), "best_bound": raw.objective})
    if m is not None and "time limit" in m.group(1):
        raw = RawSolve(**{**_fields(raw), "time_limited": True, "proven": False})
    return raw


def _fields(r: RawSolve) -> dict[str, Any]:
    return {f: getattr(r, f) for f in RawSolve.__dataclass_fields__}


def _from_pulp(prob: Any, result: Any, solver: str, bound: float | None) -> RawSolve:
    if hasattr(result, "has_solution"):  # pulp 4.x LpSolveStats
        status = int(result.status)
        has = bool(result.has_solution)
        bb = getattr(result, "best_bound", None)
        return RawSolve(
            solver=solver,
            has_solution=has,
            proven=status in (1, -7),  # Optimal; GapLimit: proven within the requested gap
            infeasible=status == -1,
            unbounded=status == -2,
            time_limited=status == -4,
            objective=float(result.objective) if has and result.objective is not None else None,
            best_bound=float(bb) if bb is not None else bound,
        )
    status, sol = int(prob.status), int(prob.sol_status)
    has = sol in (1, 2)  # LpSolutionOptimal, LpSolutionIntegerFeasible
    obj = pulp.value(prob.objective) if has else None
    return RawSolve(
        solver=solver,
        has_solution=has,
        proven=sol == 1,  # 3.x says status Optimal (1) at a time limit; sol_status 2 tells
        infeasible=status == -1,
        unbounded=status == -2,
        time_limited=status == 1 and sol == 2,
        objective=float(obj) if obj is not None else None,
        best_bound=bound,
    )
