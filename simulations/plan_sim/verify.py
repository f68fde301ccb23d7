"""``gpuyard plan SCENARIO --verify``: plan, replay the plan through the scheduling core
(``replay.py``), and re-plan until every site-quarter meets the scenario's SLO.

Iteration i:

1. Solve the scenario with the derate D_i ({(site, quarter): factor}, D_0 = the scenario's
   own), from the previous plan as a start (``planner.replan``).
2. Replay it: per site-quarter, queue wait P95 and the unserved fraction.
3. A site-quarter fails when wait P95 > ``slo.wait_p95_hours`` or unserved >
   ``slo.max_unserved_fraction``. It is *bound by the scenario* when the plan itself leaves
   more than ``max_unserved_fraction`` of a workload's demand there unserved: the planner
   already hit a limit (power, grid, build rate, supply caps, budget, export rules, lead
   times, or the unserved penalty being cheaper than GPUs), so derating cannot help; the
   binding limits are named from the solved model's tight rows.
4. Every other failing site-quarter gets D_{i+1}(s, t) = max(FLOOR, D_i(s, t) x min(1 -
   STEP, u / (100 alpha))), u the simulated GPU utilisation in % and alpha the scenario's
   availability: the planner's capacity of that site-quarter shrinks to what the replay
   showed it can carry with the queue it had, less a step, so the next plan buys more there
   (or serves the demand elsewhere in its regions).
5. Stop when no site-quarter fails (SLO met), when only scenario-bound ones fail (not
   met, limits named), or after ``slo.iterations`` plans. The last plan is kept.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from planner import compat
from planner.diagnose import _no_capacity_reason
from planner.inputs import DerateKey, Scenario, Slo
from planner.model import GPU_H_UNIT, Model
from planner.replan import plan
from planner.solve import Outcome, SolveOptions
from simulations.plan_sim.fleet import Purchase
from simulations.plan_sim.replay import PlanSimulation, SiteQuarter, simulate, site_demand, tasks
from simulations.plan_sim.settings import SimulationSettings

STEP = 0.1  # assumption: the least a failing site-quarter's capacity shrinks per round
FLOOR = 0.3  # assumption: below this the site-quarter is not worth derating further
ITERATIONS_COLUMNS = (
    "iteration",
    "objective_usd",
    "gpus_bought",
    "worst_wait_p95_h",
    "failed_site_quarters",
    "slo_met",
)
LIMITS = {
    "Site-power": "IT power",
    "Site-grid": "grid connection",
    "Site-racks": "racks",
    "Site-liquid": "liquid-cooled capacity",
    "Site-build-rate": "build rate",
    "Sku-supply": "supply cap",
    "Quarter-budget": "capex budget",
}


@dataclass(frozen=True, slots=True)
class Iteration:
    iteration: int
    outcome: Outcome
    model: Model
    sim: PlanSimulation
    derate: Mapping[DerateKey, float]
    failed: tuple[SiteQuarter, ...]
    bound: tuple[tuple[SiteQuarter, str], ...]  # failing and bound by the scenario, why

    @property
    def gpus_bought(self) -> int:
        sc = self.model.scenario
        return sum(
            round(compat.value(v)) * sc.sku(k).gpus_per_system
            for (k, _s, _t), v in self.model.buy.items()
        )

    @property
    def worst_wait_p95_h(self) -> float:
        waits = [r.wait_p95_h for r in self.sim.sites if not math.isnan(r.wait_p95_h)]
        return max(waits, default=math.nan)

    def row(self) -> tuple[object, ...]:
        obj = self.outcome.objective
        return (
            self.iteration,
            "" if obj is None else round(obj, 2),
            self.gpus_bought,
            "" if math.isnan(self.worst_wait_p95_h) else round(self.worst_wait_p95_h, 4),
            len(self.failed),
            str(not self.failed).lower(),
        )


@dataclass(frozen=True, slots=True)
class Verified:
    iterations: tuple[Iteration, ...]
    slo: Slo
    verdict: str  # one sentence: met, or why not
    limits: tuple[str, ...] = field(default=())

    @property
    def kept(self) -> Iteration:
        return self.iterations[-1]

    @property
    def slo_met(self) -> bool:
        return not self.kept.failed


def dispatch_of(m: Model) -> tuple[dict[tuple[str, str, int], float], dict[tuple[str, int], float]]:
    """A solved model's H100-hours per (workload, site, quarter) and unserved per (workload,
    quarter)."""
    dispatch: dict[tuple[str, str, int], float] = {}
    for (w, _k, s, t), v in m.x.items():
        h = compat.value(v) * GPU_H_UNIT
        if h > 0:
            dispatch[(w, s, t)] = dispatch.get((w, s, t), 0.0) + h
    unserved = {key: max(0.0, compat.value(v) * GPU_H_UNIT) for key, v in m.unserved.items()}
    return dispatch, unserved


def purchases_of(m: Model) -> list[Purchase]:
    return [
        Purchase(t, s, k, round(compat.value(v)))
        for (k, s, t), v in sorted(m.buy.items())
        if round(compat.value(v)) > 0
    ]


def fails(r: SiteQuarter, slo: Slo) -> bool:
    wait = r.wait_p95_h
    return (not math.isnan(wait) and wait > slo.wait_p95_hours) or (
        r.unserved_fraction > slo.max_unserved_fraction
    )


def binding_limits(m: Model, site: str, t: int) -> list[str]:
    """The scenario's limits the solved plan presses against up to quarter ``t`` in the
    site's region: tight rows of the families in ``LIMITS``, in words, one entry per limit
    with the quarters it binds in (the latest ones first named)."""
    sc = m.scenario
    region = sc.site(site).region
    in_region = {s.name for s in sc.sites if s.region == region}
    labels = sc.horizon.labels
    cons = compat.constraints_by_name(m.prob)
    found: dict[str, list[int]] = {}
    for name, row in m.rows.items():
        words = LIMITS.get(row.family)
        if words is None or name not in cons:
            continue
        key = row.key
        q: int | None
        if row.family == "Sku-supply":
            k, r, qq = key
            q = int(qq)
            if r != region:
                continue
            what = f"{words} of {k} in {r} ({row.rhs:g} systems a quarter)"
        elif row.family == "Quarter-budget":
            q = int(key[0])
            what = f"{words}"
        else:
            if key[0] not in in_region:
                continue
            q = int(key[-1]) if len(key) > 1 and isinstance(key[-1], int) else None
            what = f"{words} at {key[0]}"
        if q is not None and q > t:
            continue
        value = cons[name].value()
        if value is not None and abs(value) <= 1e-6 * max(1.0, abs(row.rhs)):
            found.setdefault(what, [])
            if q is not None:
                found[what].append(q)
    out = []
    for what, qs in found.items():
        if not qs:
            out.append(what)
            continue
        qs = sorted(set(qs))
        when = (
            labels[qs[0]]
            if len(qs) == 1
            else f"{len(qs)} quarters, {labels[qs[0]]}-{labels[qs[-1]]}"
        )
        out.append(f"{what} ({when})" if "(" not in what else f"{what[:-1]}; {when})")
    return out


def _bound_reason(m: Model, r: SiteQuarter, slo: Slo) -> str | None:
    """Why the plan itself leaves this site-quarter's demand unserved, or None when it
    serves (within the SLO's unserved fraction) every workload submitted there."""
    sc = m.scenario
    short = []
    for w in sc.workloads:
        e = m.demand.get((w.name, r.t), 0.0)
        u = m.unserved.get((w.name, r.t))
        if e <= 0 or u is None or w.home_site != r.site:
            continue
        frac = max(0.0, compat.value(u) * GPU_H_UNIT) / e
        if frac > slo.max_unserved_fraction:
            short.append((w.name, frac))
    if not short:
        return None
    limits = binding_limits(m, r.site, r.t)
    reasons = []
    served_by = {(wn, t) for (wn, _k, _s, t) in m.x}
    for name, frac in short:
        nothing = _no_capacity_reason(sc, name, r.t) if (name, r.t) not in served_by else None
        reasons.append(
            f"the plan leaves {frac:.0%} of {name}'s demand unserved"
            + (f" ({nothing})" if nothing else "")
        )
    tail = (
        "binding: " + "; ".join(dict.fromkeys(limits))
        if limits
        else "no limit is tight: the unserved penalty (economics.unserved) is cheaper than buying"
    )
    return f"{', '.join(reasons)}; {tail}"


def verify(
    scenario: Scenario,
    options: SolveOptions,
    settings: SimulationSettings,
    seeds: Sequence[int] = (0,),
    traces_dir: Path | None = None,
    workers: int = 1,
    on_plan: Callable[[int, Outcome], None] | None = None,
    on_replay: Callable[[int, SiteQuarter], None] | None = None,
    on_tasks: Callable[[int, int], None] | None = None,
) -> Verified:
    """The loop of the module docstring. ValueError when the scenario has no ``slo:``."""
    slo = scenario.slo
    if slo is None:
        raise ValueError(f"{scenario.source}: no slo: section (plan --verify needs one)")
    derate: dict[DerateKey, float] = {key: f for key, f in scenario.derate_map.items()}
    start: Model | None = None
    done: list[Iteration] = []
    cache: dict[
        object, tuple[SiteQuarter, list[tuple[object, ...]]]
    ] = {}  # replays by fleet and demand
    for i in range(slo.iterations):
        outcome, m = plan(scenario.with_derate(derate), options, start=start)
        if on_plan is not None:
            on_plan(i, outcome)
        if not outcome.has_solution:
            if done:
                break
            raise ValueError(f"{scenario.name}: no plan ({outcome.headline})")
        dispatch, unserved = dispatch_of(m)
        planned = _planned_util(m)
        work = tasks(scenario, purchases_of(m), site_demand(scenario, dispatch, unserved), planned)
        if on_tasks is not None:
            on_tasks(i, len(work))
        sim = simulate(
            scenario,
            work,
            settings,
            seeds,
            traces_dir,
            tick=None if on_replay is None else functools.partial(on_replay, i),
            workers=workers,
            cache=cache,
        )
        failed = tuple(r for r in sim.sites if fails(r, slo))
        bound = tuple((r, why) for r in failed if (why := _bound_reason(m, r, slo)) is not None)
        it = Iteration(i, outcome, m, sim, dict(derate), failed, bound)
        done.append(it)
        if not failed:
            return Verified(tuple(done), slo, f"SLO met after {i + 1} plan(s)")
        fixable = [r for r in failed if r not in {b for b, _ in bound}]
        alpha = scenario.economics.availability
        changed = False
        for r in fixable:
            f = derate.get((r.site, r.t), 1.0)
            u = r.gpu_util_pct / 100.0 / alpha if not math.isnan(r.gpu_util_pct) else 1.0
            new = max(FLOOR, f * min(1.0 - STEP, u))
            if new < f - 1e-9:
                derate[(r.site, r.t)] = new
                changed = True
        if not changed:
            break
        start = m
    last = done[-1]
    limits = tuple(dict.fromkeys(why for _, why in last.bound))
    n_bound = len(last.bound)
    n_other = len(last.failed) - n_bound
    parts = []
    if n_bound:
        parts.append(f"{n_bound} site-quarter(s) cannot meet it within the scenario's limits")
    if n_other:
        parts.append(
            f"{n_other} still miss it after {len(done)} plan(s) (iteration limit {slo.iterations}"
            + (f", derate floor {FLOOR}" if len(done) < slo.iterations else "")
            + ")"
        )
    return Verified(tuple(done), slo, "SLO not met: " + "; ".join(parts), limits)


def _planned_util(m: Model) -> dict[tuple[str, int], float]:
    from planner.results import served

    _, util, _ = served(m)
    labels = {q: i for i, q in enumerate(m.scenario.horizon.labels)}
    return {(str(r[1]), labels[str(r[0])]): 100.0 * float(r[5]) for r in util.rows}  # type: ignore[arg-type]


def write_iterations(v: Verified, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ITERATIONS_COLUMNS)
        w.writerows(it.row() for it in v.iterations)
