"""``gpuyard simulate plan``: a plan's fleet, site by site and quarter by quarter, replayed
through the real scheduling core with the planner's own demand as a stream of training jobs.

For each site s and quarter t with GPUs or demand:

1. **Fleet.** The systems installed at s in t (``fleet.installed_systems``: the scenario's
   installed base and the plan's purchases, with lead times and retirements) as the core's
   nodes, or a proportional slice of at most ``max_gpus_per_site`` GPUs (``fleet.site_nodes``).
2. **Demand.** Each workload's H100-hours that the plan serves at s in t (its dispatch), and,
   at the workload's home site, what the plan leaves unserved: teams submit that work
   whether or not the plan bought GPUs for it. Per second of the quarter: hours / (365.25 / 4
   days).
3. **Jobs.** ``jobs.site_jobs`` draws the stream for a window of ``warmup_weeks`` +
   ``weeks_per_quarter`` weeks at that rate (scaled to the slice), per seed.
4. **Replay.** The scenario's queue order, backfill, quotas (a quota file applied to every
   site-quarter as it is, or ``shares``: each team's share of the site's demand as a nominal
   quota of its GPUs, the site's teams in one cohort), priority classes and preemption
   (``simulation:``), built by ``scheduler.config.build_core`` as the service builds it;
   ``simulations.replay.replay_jobs`` drives it up to the window's end.
5. **Measure** over the weeks after the warm-up (jobs submitted then):

   * wait = first start - submit, in hours; a job still waiting at the window's end counts
     with the wait it had by then (a lower bound), so an overloaded site shows long waits
     rather than none; P50/P95/P99 over the measured jobs of every seed together;
   * GPU utilisation = GPU-seconds held in the measured weeks / (GPUs x their length);
   * never fit = measured jobs the core rejected as fitting no node of the fleet;
   * unserved fraction = (growth of the waiting backlog over the measured weeks, in
     GPU-seconds of work not yet started by jobs that had waited longer than the scenario's
     SLO wait, if it has one, plus the work of jobs that fit nowhere) / the work submitted in
     them: the share of the arriving work the fleet did not keep up with (a
     queue that grows), robust to short windows, where work still running at either end
     would make "1 - held / submitted" noisy.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planner.inputs import HOURS_PER_QUARTER, Scenario
from scheduler.config import SchedulerConfig, build_core
from scheduler.core.queueing.priority import PriorityClasses
from scheduler.core.queueing.quota import ANY_MODEL, Quota, QuotaConfig
from simulations.plan_sim.fleet import (
    NodeShape,
    Purchase,
    SiteFleet,
    installed_systems,
    node_shapes,
    read_purchases,
    site_nodes,
)
from simulations.plan_sim.jobs import JobSizes, JobStream, load_job_sizes, site_jobs
from simulations.plan_sim.settings import SimulationSettings
from simulations.replay import Replay, replay_jobs

WEEK_S = 7 * 86400.0
QUARTER_S = HOURS_PER_QUARTER * 3600.0
SITES_COLUMNS = (
    "site",
    "region",
    "quarter",
    "gpus",
    "jobs",
    "wait_p50_h",
    "wait_p95_h",
    "wait_p99_h",
    "gpu_util_pct",
    "never_fit",
    "unserved_fraction",
)
JOBS_COLUMNS = (
    "site",
    "quarter",
    "job_id",
    "team",
    "data_region",
    "num_gpus",
    "gpu_model",
    "submit_s",
    "start_s",
    "end_s",
    "preemptions",
    "seed",
)
JOBS_SAMPLE = 200  # jobs per site-quarter and seed in jobs.csv


@dataclass(frozen=True, slots=True)
class SiteQuarter:
    """One row of ``sites.csv``, and what the loop needs beside it."""

    site: str
    region: str
    quarter: str
    t: int
    gpus: int  # the site's GPUs (the slice may hold fewer: ``gpus_in_slice``)
    jobs: int  # measured jobs, every seed
    wait_p50_h: float
    wait_p95_h: float
    wait_p99_h: float
    gpu_util_pct: float
    never_fit: int
    unserved_fraction: float
    gpus_in_slice: int = 0
    waiting_at_end: int = 0  # measured jobs not started by the window's end
    demand_h100_h: float = 0.0  # the quarter's H100-hours submitted at the site
    planned_util_pct: float = math.nan  # the planner's served / capacity
    wall_s: float = 0.0

    def row(self) -> tuple[object, ...]:
        return (
            self.site,
            self.region,
            self.quarter,
            self.gpus,
            self.jobs,
            _round(self.wait_p50_h),
            _round(self.wait_p95_h),
            _round(self.wait_p99_h),
            _round(self.gpu_util_pct),
            self.never_fit,
            _round(self.unserved_fraction),
        )


def _round(x: float) -> float | str:
    return "" if math.isnan(x) else round(x, 4)


@dataclass(frozen=True, slots=True)
class PlanSimulation:
    sites: tuple[SiteQuarter, ...]
    jobs: tuple[tuple[object, ...], ...]  # jobs.csv rows (a sample)
    wall_s: float
    settings: SimulationSettings = field(default_factory=SimulationSettings)


# ------------------------------------------------------------------ demand per site
def site_demand(
    scenario: Scenario,
    dispatch: Mapping[tuple[str, str, int], float],
    unserved: Mapping[tuple[str, int], float],
) -> dict[tuple[str, int], dict[str, float]]:
    """H100-hours per quarter submitted at each (site, t), per workload: what the plan
    serves there (``dispatch[(workload, site, t)]``), plus, at the workload's home site,
    what it leaves unserved (``unserved[(workload, t)]``)."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    for (w, s, t), h in dispatch.items():
        if h > 0:
            cell = out.setdefault((s, t), {})
            cell[w] = cell.get(w, 0.0) + h
    home = {w.name: w.home_site for w in scenario.workloads}
    for (w, t), h in unserved.items():
        if h > 0:
            cell = out.setdefault((home[w], t), {})
            cell[w] = cell.get(w, 0.0) + h
    return out


def read_dispatch(
    plan_dir: Path, scenario: Scenario
) -> tuple[dict[tuple[str, str, int], float], dict[tuple[str, int], float]]:
    """A plan folder's dispatch (``dispatch.csv``: ``quarter,workload,site,sku,served_gpu_h``)
    and unserved demand (``demand.csv``), keyed by quarter index."""
    labels = {q: i for i, q in enumerate(scenario.horizon.labels)}
    dispatch: dict[tuple[str, str, int], float] = {}
    path = plan_dir / "dispatch.csv"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file (a plan folder as `gpuyard plan --out DIR` writes it)"
        )
    for line, row in _rows(path, ("quarter", "workload", "site", "served_gpu_h")):
        key = (row["workload"], row["site"], _quarter(path, line, row["quarter"], labels))
        dispatch[key] = dispatch.get(key, 0.0) + _number(path, line, row, "served_gpu_h")
    unserved: dict[tuple[str, int], float] = {}
    path = plan_dir / "demand.csv"
    for line, row in _rows(path, ("quarter", "workload", "unserved_gpu_h")):
        t = _quarter(path, line, row["quarter"], labels)
        unserved[(row["workload"], t)] = _number(path, line, row, "unserved_gpu_h")
    return dispatch, unserved


def _rows(path: Path, need: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in need if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r} (columns: {reader.fieldnames})")
        yield from enumerate(reader, start=2)


def _quarter(path: Path, line: int, label: str, labels: Mapping[str, int]) -> int:
    if label not in labels:
        raise ValueError(
            f"{path}:{line}: quarter {label!r} is not in the scenario's horizon "
            f"({next(iter(labels))}..{list(labels)[-1]})"
        )
    return labels[label]


def _number(path: Path, line: int, row: Mapping[str, str], col: str) -> float:
    try:
        x = float(row[col])
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{path}:{line}: {col} {row[col]!r} is not a finite number >= 0")
    return x


# ------------------------------------------------------------------ one site-quarter
def _config(settings: SimulationSettings, quotas: QuotaConfig | None) -> SchedulerConfig:
    classes: PriorityClasses | None = settings.priority_class_config()
    return SchedulerConfig(
        queue=settings.queue,
        backfill=settings.backfill,
        preemption=settings.preemption,
        quotas=quotas,
        priority_classes=classes,
    )


SHARES = "shares"  # simulation.quotas: each team's share of the site's demand, as GPUs


def _shares(stream: JobStream, fleet: SiteFleet) -> QuotaConfig | None:
    """``quotas: shares``: each team of the stream gets a nominal quota of the slice's GPUs in
    proportion to its H100-hours there, every team of the site in one cohort (borrowing
    what others leave unused, reclaimed by preemption when it is on)."""
    total = math.fsum(s.h100_hours for s in stream.streams)
    if total <= 0:
        return None
    quotas = tuple(
        Quota(s.team, ANY_MODEL, fleet.gpus_in_slice * s.h100_hours / total)
        for s in stream.streams
        if s.h100_hours > 0
    )
    return QuotaConfig(quotas, tuple((q.team, fleet.site) for q in quotas))


def load_settings_quotas(
    settings: SimulationSettings, scenario: Scenario, teams: Sequence[str]
) -> QuotaConfig | None:
    """The quota file ``simulation.quotas`` names (relative to the scenario's folder) or
    holds (a mapping in the quota-file format), applied as it is to every site-quarter's
    replay; None for none or for ``shares`` (built per site-quarter)."""
    from scheduler.files.quota_file import load_quotas

    q = settings.quotas
    if q is None or q == SHARES:
        return None
    if isinstance(q, str):
        path = Path(q)
        if not path.is_absolute() and scenario.source:
            path = Path(scenario.source).parent / path
        return load_quotas(path, known_teams=teams)
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "simulation-quotas.yaml"
        path.write_text(yaml.safe_dump(dict(q), sort_keys=False))
        return load_quotas(path, known_teams=teams)


def measure(
    fleet: SiteFleet,
    streams: Sequence[tuple[JobStream, Replay]],
    measure_from_s: float,
    until_s: float,
    patience_s: float = 0.0,
) -> tuple[int, float, float, float, float, int, float, int]:
    """(jobs, wait P50/P95/P99 h, GPU util %, never fit, unserved fraction, still waiting)
    over the jobs submitted in [measure_from_s, until_s) of every seed's replay. The waiting
    backlog at either end counts jobs that had waited longer than ``patience_s`` by then (the
    SLO's wait: a job waiting less is on time, not unserved)."""
    waits: list[float] = []
    held = work = 0.0
    never = waiting = 0
    span = until_s - measure_from_s
    backlog0 = backlog1 = 0.0  # GPU-seconds of work waiting to start, at both ends
    never_work = 0.0  # GPU-seconds of measured jobs that fit nowhere
    for _stream, replay in streams:
        for track in replay.tracks:
            held += track.held_gpu_s(measure_from_s, until_s)
            if not track.rejected:
                gpu_s = track.gpus * track.work_s
                if track.submit_s < measure_from_s - patience_s and not (
                    track.start_s <= measure_from_s
                ):
                    backlog0 += gpu_s  # waiting (or never started) when measuring began
                if math.isnan(track.start_s) and track.submit_s < until_s - patience_s:
                    backlog1 += gpu_s
            if track.submit_s < measure_from_s:
                continue
            work += track.gpus * track.work_s
            if track.rejected:
                never += 1
                never_work += track.gpus * track.work_s
                continue
            if math.isnan(track.start_s):
                waiting += 1
                waits.append(until_s - track.submit_s)
            else:
                waits.append(track.start_s - track.submit_s)
    jobs = len(waits) + never
    if waits:
        p50, p95, p99 = (float(x) / 3600.0 for x in np.percentile(waits, [50, 95, 99]))
    else:
        p50 = p95 = p99 = math.nan
    gpus = fleet.gpus_in_slice * len(streams)
    util = 100.0 * held / (gpus * span) if gpus and span > 0 else math.nan
    # work that arrived and found no room: the growth of the waiting backlog, and the work of
    # jobs that fit nowhere
    unserved = min(1.0, (max(0.0, backlog1 - backlog0) + never_work) / work) if work > 0 else 0.0
    return jobs, p50, p95, p99, util, never, unserved, waiting


def simulate_site_quarter(
    scenario: Scenario,
    fleet: SiteFleet,
    hours_per_quarter: Mapping[str, float],
    settings: SimulationSettings,
    sizes: JobSizes,
    seeds: Sequence[int],
    quotas: QuotaConfig | None = None,
    planned_util_pct: float = math.nan,
) -> tuple[SiteQuarter, list[tuple[object, ...]]]:
    """Steps 3-5 for one site-quarter: its row of ``sites.csv`` and its sample of jobs."""
    t0 = time.perf_counter()
    label = scenario.horizon.labels[fleet.t]
    warm = settings.warmup_weeks * WEEK_S
    length = warm + settings.weeks_per_quarter * WEEK_S
    hours = {w: h * length / QUARTER_S for w, h in hours_per_quarter.items() if h > 0}
    demand = sum(hours_per_quarter.values())
    if fleet.gpus_in_slice == 0:
        row = SiteQuarter(
            fleet.site, fleet.region, label, fleet.t, 0, 0, math.nan, math.nan, math.nan,
            math.nan, 0, 1.0 if demand > 0 else 0.0, 0, 0, demand, planned_util_pct,
            time.perf_counter() - t0,
        )  # fmt: skip
        return row, []
    runs: list[tuple[JobStream, Replay]] = []
    sample: list[tuple[object, ...]] = []
    for seed in seeds:
        stream = site_jobs(scenario, fleet, hours, 0.0, length, sizes, settings, seed)
        mine = _shares(stream, fleet) if settings.quotas == SHARES else quotas
        state = build_core(_config(settings, mine), list(fleet.nodes))
        durations = [j.estimated_duration_s or 0.0 for j in stream.jobs]
        replay = replay_jobs(state, stream.jobs, durations, until_s=length)
        runs.append((stream, replay))
        measured = [
            (j, tr) for j, tr in zip(stream.jobs, replay.tracks, strict=True) if tr.submit_s >= warm
        ]
        step = max(1, len(measured) // JOBS_SAMPLE)
        for j, tr in measured[::step][:JOBS_SAMPLE]:
            sample.append(
                (
                    fleet.site, label, j.job_id, j.team, j.data_region,
                    j.num_workers * j.worker.gpus, j.worker.gpu_models[0] if j.worker.gpu_models else "",
                    round(tr.submit_s, 1), _round(tr.start_s), _round(tr.end_s), tr.preemptions, seed,
                )
            )  # fmt: skip
    patience = scenario.slo.wait_p95_hours * 3600.0 if scenario.slo is not None else 0.0
    jobs, p50, p95, p99, util, never, unserved, waiting = measure(
        fleet, runs, warm, length, patience
    )
    row = SiteQuarter(
        fleet.site, fleet.region, label, fleet.t, fleet.gpus_total, jobs, p50, p95, p99, util,
        never, unserved, fleet.gpus_in_slice, waiting, demand, planned_util_pct,
        time.perf_counter() - t0,
    )  # fmt: skip
    return row, sample


# ------------------------------------------------------------------ the whole plan
@dataclass(frozen=True, slots=True)
class Task:
    """One site-quarter to replay."""

    site: str
    t: int
    systems: Mapping[str, int]
    hours: Mapping[str, float]
    planned_util_pct: float

    @property
    def key(self) -> tuple[object, ...]:
        """What decides the replay: the site-quarter, its systems and its demand."""
        return (
            self.site,
            self.t,
            tuple(sorted(self.systems.items())),
            tuple(sorted(self.hours.items())),
        )


def tasks(
    scenario: Scenario,
    purchases: Iterable[Purchase],
    demand: Mapping[tuple[str, int], Mapping[str, float]],
    planned_util: Mapping[tuple[str, int], float] | None = None,
) -> list[Task]:
    """Every (site, quarter) with GPUs installed or demand submitted, in quarter then
    scenario site order."""
    systems = installed_systems(scenario, purchases)
    out: list[Task] = []
    for t in range(len(scenario.horizon.labels)):
        for s in scenario.sites:
            have = {k: n for k, n in systems.get((s.name, t), {}).items() if n > 0}
            # to the hundredth of an H100-hour, so that equal demands are equal replays
            hours = {w: round(h, 2) for w, h in demand.get((s.name, t), {}).items()}
            if not have and not any(h > 0 for h in hours.values()):
                continue
            util = (planned_util or {}).get((s.name, t), math.nan)
            out.append(Task(s.name, t, have, hours, util))
    return out


def _one(
    args: tuple[
        Scenario,
        Task,
        SimulationSettings,
        JobSizes,
        Mapping[str, NodeShape],
        tuple[int, ...],
        QuotaConfig | None,
    ],
) -> tuple[SiteQuarter, list[tuple[object, ...]]]:
    scenario, task, settings, sizes, shapes, seeds, quotas = args
    fleet = site_nodes(
        scenario, task.site, task.t, task.systems, shapes, settings.max_gpus_per_site
    )
    return simulate_site_quarter(
        scenario, fleet, task.hours, settings, sizes, seeds, quotas, task.planned_util_pct
    )


def simulate(
    scenario: Scenario,
    work: Sequence[Task],
    settings: SimulationSettings,
    seeds: Sequence[int] = (0,),
    traces_dir: Path | None = None,
    quotas: QuotaConfig | None = None,
    tick: Callable[[SiteQuarter], None] | None = None,
    workers: int = 1,
    cache: dict[object, tuple[SiteQuarter, list[tuple[object, ...]]]] | None = None,
) -> PlanSimulation:
    """Replay every task (steps 1-5 of the module docstring), ``workers`` processes at a
    time (each replay is one core's work; results in task order whatever the workers).
    ``cache`` (kept by the caller across calls with the same settings and seeds) answers a
    task whose fleet and demand were replayed before: replays are deterministic."""
    t0 = time.perf_counter()
    relative = Path(scenario.source).parent if scenario.source else None
    sizes = load_job_sizes(settings.job_sizes, traces_dir, relative_to=relative)
    if quotas is None:
        teams = [t.name for t in settings.teams] or [w.name for w in scenario.workloads]
        quotas = load_settings_quotas(settings, scenario, teams)
    shapes = node_shapes(scenario, settings)
    bare = dataclasses.replace(
        scenario, simulation=None
    )  # parsed already; a mappingproxy does not pickle
    results: dict[int, tuple[SiteQuarter, list[tuple[object, ...]]]] = {}
    todo: list[int] = []
    for i, task in enumerate(work):
        hit = None if cache is None else cache.get(task.key)
        if hit is None:
            todo.append(i)
        else:  # the same fleet and demand as a replay already made: the same outcome
            results[i] = (
                dataclasses.replace(hit[0], planned_util_pct=task.planned_util_pct),
                hit[1],
            )
    args = [(bare, work[i], settings, sizes, shapes, tuple(seeds), quotas) for i in todo]
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, out in zip(todo, pool.map(_one, args), strict=True):
                results[i] = out
                if tick is not None:
                    tick(out[0])
    else:
        for i, a in zip(todo, args, strict=True):
            results[i] = _one(a)
            if tick is not None:
                tick(results[i][0])
    rows: list[SiteQuarter] = []
    jobs: list[tuple[object, ...]] = []
    for i, task in enumerate(work):
        row, sample = results[i]
        if cache is not None:
            cache[task.key] = (row, sample)
        rows.append(row)
        jobs += sample
    if tick is not None and cache is not None:
        for i in sorted(set(range(len(work))) - set(todo)):
            tick(results[i][0])
    return PlanSimulation(tuple(rows), tuple(jobs), time.perf_counter() - t0, settings)


def simulate_plan_dir(
    plan_dir: Path,
    scenario: Scenario,
    settings: SimulationSettings,
    seeds: Sequence[int] = (0,),
    traces_dir: Path | None = None,
    quotas: QuotaConfig | None = None,
    tick: Callable[[SiteQuarter], None] | None = None,
    workers: int = 1,
    on_tasks: Callable[[int], None] | None = None,
) -> PlanSimulation:
    """:func:`simulate` for a plan folder written by ``gpuyard plan --out``; ``on_tasks``
    hears how many site-quarters there are before the first replay."""
    purchases = read_purchases(plan_dir / "purchases.csv", scenario)
    dispatch, unserved = read_dispatch(plan_dir, scenario)
    planned = read_planned_util(plan_dir, scenario)
    work = tasks(scenario, purchases, site_demand(scenario, dispatch, unserved), planned)
    if on_tasks is not None:
        on_tasks(len(work))
    return simulate(scenario, work, settings, seeds, traces_dir, quotas, tick, workers)


def read_planned_util(plan_dir: Path, scenario: Scenario) -> dict[tuple[str, int], float]:
    """The planner's utilisation per (site, t) in % (``utilisation.csv``), if written."""
    path = plan_dir / "utilisation.csv"
    out: dict[tuple[str, int], float] = {}
    if not path.exists():
        return out
    labels = {q: i for i, q in enumerate(scenario.horizon.labels)}
    for line, row in _rows(path, ("quarter", "site", "utilisation")):
        t = _quarter(path, line, row["quarter"], labels)
        out[(row["site"], t)] = 100.0 * _number(path, line, row, "utilisation")
    return out


# ------------------------------------------------------------------ outputs
def write_outputs(sim: PlanSimulation, out: Path, plots: bool = True) -> list[Path]:
    """``sites.csv``, ``jobs.csv`` and (with ``plots``) ``waits.png`` and ``utilisation.png``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "sites.csv", out / "jobs.csv"]
    with paths[0].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SITES_COLUMNS)
        w.writerows(r.row() for r in sim.sites)
    with paths[1].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(JOBS_COLUMNS)
        w.writerows(sim.jobs)
    if plots:
        paths += plot(sim, out)
    return paths


def plot(sim: PlanSimulation, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = sorted({r.site for r in sim.sites})
    quarters = sorted({(r.t, r.quarter) for r in sim.sites})
    xs = {t: i for i, (t, _) in enumerate(quarters)}
    fig, axes = plt.subplots(len(sites), 1, figsize=(10, 2.6 * len(sites)), squeeze=False)
    for ax, site in zip(axes[:, 0], sites, strict=True):
        rows = [r for r in sim.sites if r.site == site and not math.isnan(r.wait_p50_h)]
        for name, attr in (("P50", "wait_p50_h"), ("P95", "wait_p95_h"), ("P99", "wait_p99_h")):
            ax.plot(
                [xs[r.t] for r in rows], [getattr(r, attr) for r in rows], marker="o", label=name
            )
        ax.set_title(f"{site}: queue wait (h)")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.legend(loc="upper left", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_xticks(range(len(quarters)), [q for _, q in quarters], rotation=90, fontsize=7)
    fig.tight_layout()
    waits = out / "waits.png"
    fig.savefig(waits, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4))
    for site in sites:
        rows = [r for r in sim.sites if r.site == site and not math.isnan(r.gpu_util_pct)]
        line = ax.plot(
            [xs[r.t] for r in rows],
            [r.gpu_util_pct for r in rows],
            marker="o",
            label=f"{site} simulated",
        )
        ax.plot(
            [xs[r.t] for r in rows], [r.planned_util_pct for r in rows], linestyle="--",
            color=line[0].get_color(), label=f"{site} planner",
        )  # fmt: skip
    ax.set_xticks(range(len(quarters)), [q for _, q in quarters], rotation=90, fontsize=7)
    ax.set_ylabel("GPU utilisation %")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    util = out / "utilisation.png"
    fig.savefig(util, dpi=110)
    plt.close(fig)
    return [waits, util]
