"""The planner's demand as a seeded stream of training jobs for one site and window.

Notation: a site s with a window [a, a + L) in seconds; workload w with a target of E_w
H100-equivalent GPU-hours submitted at s in the window (the planner's demand served there,
``hours_h100``); team j of w with share sigma_j (``simulation.teams``; default one team per
workload, named after it, share 1, priority 0); phi the slice fraction (the fleet is a slice
of the site, ``fleet.SiteFleet.capacity_fraction``); G_k and eff_k the GPUs of SKU k in the
(sliced) fleet and its H100 efficiency; a trace of M jobs (g_i GPUs, d_i seconds).

* (J1) Each (workload, team) is one stream with target T = phi * sigma_j * E_w H100-hours.
* (J2) Durations are H100 durations; with ``max_duration_h`` = c, a job's run time on its
  SKU k (J5) is capped at c hours: d_i <- min(d_i, 3600 c eff_k) (long trainings run as a
  chain of jobs of at most c hours, as a cluster's wall-time limit makes them do). A job's
  H100-hours are h_i = g_i * d_i / 3600, whatever SKU it runs on.
* (J3) Sizes are bootstrapped: trace rows i_1, i_2, ... drawn uniformly with replacement, the
  pair (g, d) kept together (the empirical joint distribution of gang size and duration),
  each with its SKU of (J5) drawn at the same time (the cap of (J2) depends on it).
* (J4) Count: N = min{ n : h_{i_1} + ... + h_{i_n} >= T }, then the N-th job's duration is
  shortened to d' = (T - h_{i_1} - ... - h_{i_{N-1}}) * 3600 / g_{i_N} > 0.
* (J5) SKU: a job of g GPUs independently runs on SKU k with P(k | g) = eff_k G_k /
  sum_{k' : G_k' >= g} eff_k' G_k' among the SKUs with at least g GPUs (all of them when none
  has: the job never fits), pinned (``gpu_models=(k,)``), for d / eff_k seconds
  (``estimated_duration_s``). For gangs every SKU can hold, the expected load of SKU k over
  its capacity, E[H100-hours on k] / (eff_k G_k), is the same for every SKU; a gang goes only
  to a model pool that can hold it (a team picks one that can run its job; in a slice of a
  site a small pool would otherwise turn big gangs into jobs that never fit).
* (J6) Arrivals: U_1..U_N iid uniform on [0, 1), sorted; job m arrives at a + L * U_(m). A
  Poisson process of rate lambda = T / (L * mean h) on the window has expected H100-hours T;
  this is such a process conditioned on its count, the count being N of (J4) (E[N] is about
  lambda * L), so that the total is hit on every stream, not only in expectation.
* (J7) Slices: in a slice of a site (slice fraction < 1), a gang of g GPUs on SKU k with
  fewer GPUs G_k in the slice than g (it fits the site, not the slice) runs on G_k GPUs for
  d g / G_k: as wide as the slice allows, its H100-hours unchanged. Without it, the few big
  gangs of a trace (Philly: 3 of 128 GPUs, 6 of 64, 67 of 32), which carry much of its work,
  would never fit a 256-GPU slice and count as demand the site cannot serve.

Properties: (P1) every stream's H100-hours sum to T (to float rounding), whatever T is.
Before the trim of (J4), T <= sum < T + h_{i_N} <= T + max_i h_i: within one job's hours, so
within 1 % when T >= 100 max_i h_i; the trim makes it exact for any T at the cost of one
shortened job per stream (for T < max_i h_i the stream may be that one job). (P2) The same
inputs and seed give the same stream; each stream's random generator is seeded by (seed,
site, quarter, workload, team), so adding a team or workload changes no other stream.

Gangs (as ``simulations.queue.gang_of``): a job of g GPUs on SKU k with n_k GPUs per node is
w = max(1, ceil(g / n_k)) workers, w raised until it divides g, of g / w GPUs each, topology
ANY. A worker asks for the node's CPU and memory in proportion to its GPUs:
floor(cpu_k * (g / w) / n_k) and floor(mem_k * (g / w) / n_k), so that a node's workers fit
it exactly. A gang larger than the fleet's GPUs of its SKU is kept: it never fits, and the
replay reports it as such (``JobStream.oversized`` counts them).

Job sizes (:func:`load_job_sizes`, read at run time from ``../shared/traces``, never copied):
``philly`` (default): Microsoft's Philly cluster, 2017 (``philly/philly.csv``, 82,247 jobs,
as published with petuum/adaptdl's OSDI'21 artifact; derived from the Microsoft Philly trace,
CC BY 4.0): ``num_gpus`` and ``duration`` (s). ``alibaba2023``: Alibaba's GPU trace v2023
(``alibaba-gpu-v2023/openb_pod_list_default.csv``; cite the FGD paper, USENIX ATC'23): pods
with ``num_gpu >= 1`` (a pod sharing one GPU, ``gpu_milli < 1000``, counts as one whole GPU),
duration = ``deletion_time`` - ``scheduled_time`` (``creation_time`` for pods never
scheduled); the trace ends while many pods still run, so long durations are cut at its end.
``{csv: PATH}``: a file of one's own with columns ``num_gpus,duration_s``. Rows with a zero
duration (or, for an Alibaba pod, no deletion time) carry no work and are dropped
(``JobSizes.dropped`` counts them).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from planner.inputs import Scenario
from scheduler.core.model import Job, Topology, WorkerRequest
from simulations.plan_sim.fleet import SiteFleet, SkuPool
from simulations.plan_sim.settings import CsvSizes, JobSizesSpec, SimulationSettings
from simulations.traces.alibaba import load_pods
from simulations.traces.csvrows import cell_float, cell_int, read_rows
from simulations.traces.errors import TraceError
from simulations.traces.jobs import MAX_GPUS

DEFAULT_TRACES_DIR = (
    Path(__file__).resolve().parents[3] / "shared" / "traces"
)  # <repo>/../shared/traces
PHILLY_FILE = Path("philly") / "philly.csv"
ALIBABA_FILE = Path("alibaba-gpu-v2023") / "openb_pod_list_default.csv"
CSV_COLUMNS = ("num_gpus", "duration_s")
DEFAULT_CHECKPOINT_INTERVAL_S = 1800.0
_BATCH_SLACK = 1.1  # draw this many times the expected count at once (then more if short)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class JobSizesError(ValueError):
    """A job-size source that cannot be read (a missing trace, an unknown name)."""


@dataclass(frozen=True, slots=True, eq=False)
class JobSizes:
    """An empirical joint distribution of (GPUs, H100 duration in seconds): one row per
    trace job, arrays read-only."""

    name: str  # philly, alibaba2023 or csv
    source: str  # the file read
    num_gpus: IntArray
    duration_s: FloatArray
    dropped: int = 0  # rows left out: no (or a zero) duration

    def __post_init__(self) -> None:
        if (
            self.num_gpus.shape != self.duration_s.shape
            or self.num_gpus.ndim != 1
            or not len(self.num_gpus)
        ):
            raise ValueError(
                f"job sizes {self.name}: need equal, non-empty 1-d arrays of GPUs and durations"
            )
        if (self.num_gpus < 1).any() or not (
            np.isfinite(self.duration_s) & (self.duration_s > 0)
        ).all():
            raise ValueError(
                f"job sizes {self.name}: GPUs must be >= 1 and durations finite and > 0"
            )
        for a in (self.num_gpus, self.duration_s):
            a.setflags(write=False)

    def __len__(self) -> int:
        return len(self.num_gpus)

    @classmethod
    def of(
        cls, pairs: Sequence[tuple[int, float]], name: str = "given", source: str = ""
    ) -> JobSizes:
        """From (GPUs, duration s) pairs (tests, experiments)."""
        return cls(
            name,
            source,
            np.array([g for g, _ in pairs], dtype=np.int64),
            np.array([d for _, d in pairs], dtype=np.float64),
        )


_CACHE: dict[tuple[str, str, int, int], JobSizes] = {}


def load_job_sizes(
    spec: JobSizesSpec = "philly",
    traces_dir: str | Path | None = None,
    relative_to: str | Path | None = None,
) -> JobSizes:
    """The job sizes ``spec`` names (``SimulationSettings.job_sizes``): a trace under
    ``traces_dir`` (default ``<repo>/../shared/traces``) or ``{csv: PATH}`` (a relative PATH
    is taken from ``relative_to``, e.g. the scenario file's folder). A file is read once
    per process (cached by path, size and modification time). Raises
    :class:`JobSizesError` for a missing file, ``TraceError`` (file:line, column, value)
    for a malformed row."""
    base = Path(traces_dir) if traces_dir is not None else DEFAULT_TRACES_DIR
    if isinstance(spec, CsvSizes):
        name, path = "csv", Path(spec.csv)
        if not path.is_absolute() and relative_to is not None:
            path = Path(relative_to) / path
    elif spec == "philly":
        name, path = spec, base / PHILLY_FILE
    elif spec == "alibaba2023":
        name, path = spec, base / ALIBABA_FILE
    else:
        raise JobSizesError(
            f"job sizes {spec!r} are not allowed (philly, alibaba2023 or {{csv: PATH}})"
        )
    if not path.is_file():
        if name == "csv":
            how = (
                "fix simulation.job_sizes.csv (a relative path is read from the scenario's folder)"
            )
        else:
            how = (
                f"the public traces are read from traces_dir (default {DEFAULT_TRACES_DIR}, see its README.md): "
                "pass traces_dir=DIR holding them, or set simulation.job_sizes to {csv: PATH} with columns "
                + ",".join(CSV_COLUMNS)
            )
        raise JobSizesError(f"job sizes {name}: {path} does not exist; {how}")
    st = path.stat()
    key = (name, str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        reader = {"philly": _read_philly, "alibaba2023": _read_alibaba, "csv": _read_csv}[name]
        _CACHE[key] = reader(path)
    return _CACHE[key]


def _sizes(name: str, path: Path, gpus: list[int], durations: list[float]) -> JobSizes:
    g, d = np.array(gpus, dtype=np.int64), np.array(durations, dtype=np.float64)
    keep = d > 0
    if not keep.any():
        raise JobSizesError(f"job sizes {name}: {path} has no job with GPUs and a duration > 0")
    return JobSizes(name, str(path), g[keep], d[keep], int((~keep).sum()))


def _read_philly(path: Path) -> JobSizes:
    gpus: list[int] = []
    durations: list[float] = []
    for line, row in read_rows(path, ("duration", "num_gpus")):
        gpus.append(cell_int(path, line, row, "num_gpus", 1, MAX_GPUS))
        durations.append(cell_float(path, line, row, "duration", 0.0))
    return _sizes("philly", path, gpus, durations)


def _read_alibaba(path: Path) -> JobSizes:
    gpus: list[int] = []
    durations: list[float] = []
    for pod in (p for p in load_pods(path) if p.num_gpu >= 1):
        began = pod.scheduled_time if pod.scheduled_time >= 0 else pod.creation_time
        gpus.append(pod.num_gpu)
        # no deletion or start time: no duration (0), dropped and counted like a zero one
        known = pod.deletion_time >= 0 and began >= 0
        durations.append(float(max(0, pod.deletion_time - began)) if known else 0.0)
    return _sizes("alibaba2023", path, gpus, durations)


def _read_csv(path: Path) -> JobSizes:
    gpus: list[int] = []
    durations: list[float] = []
    for line, row in read_rows(path, CSV_COLUMNS):
        gpus.append(cell_int(path, line, row, "num_gpus", 1, MAX_GPUS))
        d = cell_float(path, line, row, "duration_s", 0.0)
        if not math.isfinite(d):
            raise TraceError(
                str(path), line, "duration_s", row["duration_s"].strip(), "a finite number >= 0"
            )
        durations.append(d)
    return _sizes("csv", path, gpus, durations)


@dataclass(frozen=True, slots=True)
class Team:
    """``share`` of a workload's hours is submitted by ``name`` at ``priority``."""

    name: str
    workload: str
    share: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class StreamTotal:
    """One (workload, team) stream of a :class:`JobStream`."""

    workload: str
    team: str
    priority: int
    target_h100_hours: float  # T of (J1)
    h100_hours: float  # what its jobs carry (T, property (P1))
    jobs: int
    overshoot_h100_hours: float  # before the trim of (J4): sum - T, in [0, that job's hours)
    rate_per_h: float  # lambda of (J6), arrivals per hour


@dataclass(frozen=True, slots=True)
class JobStream:
    """The jobs of one site and window, sorted by ``submitted_at_s`` (ties: workload, team,
    arrival), named ``f"{site}-{quarter_label}-{i:06d}"`` in that order."""

    site: str
    quarter_label: str
    start_s: float
    length_s: float
    jobs: tuple[Job, ...]
    streams: tuple[StreamTotal, ...]
    oversized: int  # jobs whose gang has more GPUs than the fleet has of their SKU
    eff_vs_h100: Mapping[str, float] = field(default_factory=dict, hash=False)  # SKU -> eff
    shrunk: int = 0  # gangs of a slice narrowed to their SKU's GPUs in it (J7)

    @property
    def h100_hours(self) -> float:
        return math.fsum(s.h100_hours for s in self.streams)

    def job_h100_hours(self, job: Job) -> float:
        """H100-hours of one job: GPUs x run time x eff of its SKU / 3600."""
        run_s = job.estimated_duration_s or 0.0
        return (
            job.num_workers
            * job.worker.gpus
            * run_s
            * self.eff_vs_h100[job.worker.gpu_models[0]]
            / 3600.0
        )


def gang_shape(num_gpus: int, gpus_per_node: int) -> tuple[int, int]:
    """(workers, GPUs per worker) of a gang, as ``simulations.queue.gang_of``: the fewest
    workers of at most a node's GPUs each, raised until they split the GPUs evenly."""
    workers = max(1, math.ceil(num_gpus / gpus_per_node))
    while num_gpus % workers:
        workers += 1
    return workers, num_gpus // workers


def generate_jobs(
    *,
    site: str,
    quarter_label: str,
    hours_h100: Mapping[str, float],
    start_s: float,
    length_s: float,
    pools: Sequence[SkuPool],
    data_region: Mapping[str, str],
    allowed_regions: Mapping[str, Sequence[str]],
    sizes: JobSizes,
    teams: Sequence[Team] = (),
    seed: int = 0,
    slice_fraction: float = 1.0,
    max_duration_h: float | None = None,
    checkpoint_interval_s: float | None = DEFAULT_CHECKPOINT_INTERVAL_S,
) -> JobStream:
    """The jobs of (J1)-(J6) (module docstring) for ``site`` in the window [start_s, start_s
    + length_s): ``hours_h100`` per workload (before the slice fraction), the fleet's SKUs
    ``pools``, each workload's ``data_region`` (its home site's region) and
    ``allowed_regions`` (``worker.regions``; empty: any), ``teams`` splitting workloads'
    hours (a workload without teams is one team named after it, priority 0). ValueError for
    a negative or non-finite target, a workload without regions, teams whose shares do not
    sum to 1, or a positive target with no GPUs in ``pools``."""
    if not (math.isfinite(start_s) and math.isfinite(length_s) and length_s > 0):
        raise ValueError(
            f"window: start {start_s} s, length {length_s} s (a finite start and a length > 0)"
        )
    if not (math.isfinite(slice_fraction) and 0 < slice_fraction <= 1):
        raise ValueError(f"slice_fraction {slice_fraction} is not allowed (0 < f <= 1)")
    if max_duration_h is not None and not (math.isfinite(max_duration_h) and max_duration_h > 0):
        raise ValueError(
            f"max_duration_h {max_duration_h} is not allowed (a finite number > 0, or None)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed {seed!r} is not allowed (an integer >= 0)")
    streams = _streams(hours_h100, teams, slice_fraction, data_region, allowed_regions)
    live = [p for p in pools if p.gpus > 0]
    if streams and not live:
        raise ValueError(
            f"site {site}: demand of {', '.join(sorted(hours_h100))} but no GPUs in the fleet"
        )
    cap = np.array([p.h100_capacity for p in live], dtype=np.float64)
    p_sku = _sku_odds(cap, np.array([p.gpus for p in live], dtype=np.int64), sizes.num_gpus)
    # (J2): per SKU (rows of the arrays) and trace row (columns), capped H100 durations
    duration = np.repeat(sizes.duration_s[None, :], max(1, len(live)), axis=0)
    if max_duration_h is not None:
        effs_live = np.array([p.eff_vs_h100 for p in live] or [1.0], dtype=np.float64)
        duration = np.minimum(duration, max_duration_h * 3600.0 * effs_live[:, None])
    hours = sizes.num_gpus[None, :] * duration / 3600.0
    arrivals: list[_Arrival] = []
    totals: list[StreamTotal] = []
    for team, target in streams:
        rng = np.random.default_rng(
            _seed_words(seed, site, quarter_label, team.workload, team.name)
        )
        drawn, total = _stream(rng, team, target, sizes, duration, hours, p_sku, start_s, length_s)
        arrivals += drawn
        totals.append(total)
    arrivals.sort(key=lambda r: r[:4])
    jobs, oversized, shrunk = _jobs(
        site, quarter_label, arrivals, live, data_region, allowed_regions, checkpoint_interval_s,
        shrink=slice_fraction < 1.0,
    )  # fmt: skip
    effs = {p.sku: p.eff_vs_h100 for p in live}
    return JobStream(
        site, quarter_label, float(start_s), float(length_s), jobs, tuple(totals), oversized, effs,
        shrunk,
    )  # fmt: skip


# one arrival: (time, workload, team, index in its stream, GPUs, H100 duration s,
# SKU index, priority); the first four are the sort key
_Arrival = tuple[float, str, str, int, int, float, int, int]


def _stream(
    rng: np.random.Generator,
    team: Team,
    target: float,
    sizes: JobSizes,
    duration: FloatArray,
    hours: FloatArray,
    p_sku: FloatArray,
    start_s: float,
    length_s: float,
) -> tuple[list[_Arrival], StreamTotal]:
    """One stream, (J3)-(J6); ``duration`` and ``hours`` per SKU and trace row after the cap
    (J2)."""
    rows, sku, last_h, overshoot = _draw_count(rng, hours, p_sku, target)  # (J3)-(J5)
    n = len(rows)
    gpus, dur = sizes.num_gpus[rows], duration[sku, rows].copy()
    dur[-1] = last_h * 3600.0 / gpus[-1]  # the trim of (J4)
    when = start_s + length_s * np.sort(rng.random(n))  # (J6)
    drawn = [
        (
            float(when[m]),
            team.workload,
            team.name,
            m,
            int(gpus[m]),
            float(dur[m]),
            int(sku[m]),
            team.priority,
        )
        for m in range(n)
    ]
    carried = math.fsum(gpus * dur / 3600.0)
    rate = target / (length_s / 3600.0) / _mean_hours(hours, p_sku)  # lambda of (J6), per hour
    return drawn, StreamTotal(
        team.workload, team.name, team.priority, target, carried, n, overshoot, rate
    )


def _jobs(
    site: str,
    quarter_label: str,
    arrivals: Sequence[_Arrival],
    pools: Sequence[SkuPool],
    data_region: Mapping[str, str],
    allowed_regions: Mapping[str, Sequence[str]],
    checkpoint_interval_s: float | None,
    shrink: bool = False,
) -> tuple[tuple[Job, ...], int, int]:
    """Core jobs of sorted arrivals (gangs and CPU/memory as in the module docstring), how
    many have more GPUs than the fleet has of their SKU, and (``shrink``: the fleet is a
    slice of a site) how many such gangs were narrowed to their SKU's GPUs in the slice."""
    jobs: list[Job] = []
    shapes: dict[tuple[int, int, str], tuple[WorkerRequest, int]] = {}
    oversized = shrunk = 0
    for i, (when_s, workload, team, _, g, dur_s, k, priority) in enumerate(arrivals):
        pool = pools[k]
        if shrink and g > pool.gpus:  # (J7): as wide as the slice allows, as long as needed
            dur_s, g = dur_s * g / pool.gpus, pool.gpus
            shrunk += 1
        key = (k, g, workload)
        if key not in shapes:
            n_workers, per = gang_shape(g, pool.gpus_per_node)
            req = WorkerRequest(
                cpu_milli=pool.cpu_milli_per_node * per // pool.gpus_per_node,
                memory_mib=pool.memory_mib_per_node * per // pool.gpus_per_node,
                gpus=per,
                gpu_models=(pool.sku,),
                regions=tuple(allowed_regions[workload]),
            )
            shapes[key] = (req, n_workers)
        req, n_workers = shapes[key]
        oversized += g > pool.gpus
        jobs.append(
            Job(
                f"{site}-{quarter_label}-{i:06d}",
                req,
                num_workers=n_workers,
                team=team,
                priority=priority,
                submitted_at_s=when_s,
                topology=Topology.ANY,
                estimated_duration_s=dur_s / pool.eff_vs_h100,  # (J5)
                checkpoint_interval_s=checkpoint_interval_s,
                data_region=data_region[workload],
            )
        )
    return tuple(jobs), oversized, shrunk


def _streams(
    hours_h100: Mapping[str, float],
    teams: Sequence[Team],
    slice_fraction: float,
    data_region: Mapping[str, str],
    allowed_regions: Mapping[str, Sequence[str]],
) -> list[tuple[Team, float]]:
    """(team, target T of (J1)) per stream with a positive target, by workload then team."""
    by_workload: dict[str, list[Team]] = {}
    for t in teams:
        by_workload.setdefault(t.workload, []).append(t)
    for w, ts in by_workload.items():
        total = math.fsum(t.share for t in ts)
        if abs(total - 1.0) > 1e-6 or any(not 0 < t.share <= 1 for t in ts):
            raise ValueError(
                f"teams of workload {w}: shares {[t.share for t in ts]} (each in (0, 1], summing to 1)"
            )
        if len({t.name for t in ts}) < len(ts):
            raise ValueError(f"teams of workload {w}: a team is listed twice")
    out: list[tuple[Team, float]] = []
    for w in sorted(hours_h100):
        e = hours_h100[w]
        if isinstance(e, bool) or not isinstance(e, int | float) or not math.isfinite(e) or e < 0:
            raise ValueError(
                f"hours of workload {w}: {e!r} is not allowed (a finite number of H100-hours >= 0)"
            )
        if w not in data_region or w not in allowed_regions:
            raise ValueError(f"workload {w}: no data region or allowed regions given")
        for t in sorted(by_workload.get(w, [Team(w, w, 1.0)]), key=lambda t: t.name):
            target = slice_fraction * t.share * float(e)
            if target > 0:
                out.append((t, target))
    return out


def _seed_words(seed: int, *names: str) -> list[int]:
    """Entropy of one stream's generator: the seed and CRC-32s of its names (stable across
    processes, unlike ``hash``)."""
    return [seed, *(zlib.crc32(n.encode()) for n in names)]


def _sku_odds(cap: FloatArray, gpus: IntArray, num_gpus: IntArray) -> FloatArray:
    """(J5): per SKU (rows) and trace row (columns), the chance that a job of that row runs
    on that SKU: in proportion to the SKUs' H100-equivalent capacity among those with at
    least the gang's GPUs (all SKUs when none has: the job never fits)."""
    if not len(cap):
        return np.zeros((0, len(num_gpus)), dtype=np.float64)
    fits = gpus[:, None] >= num_gpus[None, :]
    fits[:, ~fits.any(axis=0)] = True
    odds = cap[:, None] * fits
    return odds / odds.sum(axis=0, keepdims=True)  # type: ignore[no-any-return]


def _mean_hours(hours: FloatArray, p_sku: FloatArray) -> float:
    """Expected H100-hours of one drawn job: trace rows uniform, SKUs by ``p_sku``."""
    return float((p_sku * hours).sum(axis=0).mean())


def _draw_count(
    rng: np.random.Generator, hours: FloatArray, p_sku: FloatArray, target: float
) -> tuple[IntArray, IntArray, float, float]:
    """Rows and their SKUs drawn until their hours reach ``target`` ((J3)-(J5)): the rows,
    the SKUs, the last one's trimmed hours, and the overshoot before the trim."""
    mean = _mean_hours(hours, p_sku)
    expected = target / mean
    parts: list[IntArray] = []
    skus: list[IntArray] = []
    done = 0.0
    while True:
        batch = int(expected * _BATCH_SLACK) + 16
        idx = rng.integers(0, hours.shape[1], size=batch)
        cdf = np.cumsum(p_sku[:, idx], axis=0)
        sku = np.minimum((rng.random(batch)[None, :] >= cdf).sum(axis=0), len(p_sku) - 1)
        cum = done + np.cumsum(hours[sku, idx])
        k = int(np.searchsorted(cum, target, side="left"))  # first with cum >= target
        if k < batch:
            parts.append(idx[: k + 1])
            skus.append(sku[: k + 1])
            before = float(cum[k - 1]) if k else done
            return (
                np.concatenate(parts),
                np.concatenate(skus),
                target - before,
                float(cum[k]) - target,
            )
        parts.append(idx)
        skus.append(sku)
        done = float(cum[-1])
        expected = (target - done) / mean


def site_jobs(
    scenario: Scenario,
    fleet: SiteFleet,
    hours_h100: Mapping[str, float],
    start_s: float,
    length_s: float,
    sizes: JobSizes,
    settings: SimulationSettings | None = None,
    seed: int = 0,
) -> JobStream:
    """:func:`generate_jobs` for a :class:`SiteFleet` of the scenario: data regions from the
    workloads' home sites, allowed regions from theirs (any region when the scenario relaxes
    residency), teams, duration cap and checkpoint interval from ``settings``, the demand
    scaled by the fleet's ``capacity_fraction`` (so a slice runs at the site's utilisation).
    ValueError when a workload with demand here may not run in the site's region."""
    settings = settings or SimulationSettings()
    known = {w.name: w for w in scenario.workloads}
    regions: dict[str, tuple[str, ...]] = {}
    data: dict[str, str] = {}
    for name, e in hours_h100.items():
        if name not in known:
            raise ValueError(f"workload {name!r} is not a workload of scenario {scenario.name!r}")
        w = known[name]
        regions[name] = () if scenario.relax_residency else tuple(w.allowed_regions)
        data[name] = scenario.site(w.home_site).region
        if e > 0 and regions[name] and fleet.region not in regions[name]:
            raise ValueError(
                f"workload {name}: {e:g} H100-hours at site {fleet.site} (region {fleet.region}), "
                f"but it may run only in {', '.join(regions[name])}"
            )
    teams = tuple(Team(t.name, t.workload, t.share, settings.priority(t)) for t in settings.teams)
    return generate_jobs(
        site=fleet.site,
        quarter_label=scenario.horizon.labels[fleet.t],
        hours_h100=hours_h100,
        start_s=start_s,
        length_s=length_s,
        pools=fleet.pools,
        data_region=data,
        allowed_regions=regions,
        sizes=sizes,
        teams=teams,
        seed=seed,
        slice_fraction=fleet.capacity_fraction,
        max_duration_h=settings.max_duration_h,
        checkpoint_interval_s=settings.checkpoint_interval_s,
    )
