"""Every packing policy on every synthetic mix (``simulations.synthetic``) with the published
FGD protocol (``simulations.packing.replay``: arrivals only, sorted by name then shuffled by
the seed, inflated to 130 % of the fleet's GPUs, a pod that fits nowhere fails).

For each (mix, seed) the mix is generated with that seed, and every policy replays it with
that seed; ``mixes.csv`` has one row per (mix, policy, seed), ``summary.csv`` one row per mix.
Runs go to worker processes when asked; the figures are identical either way.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scheduler.core.model import Node
from scheduler.core.placement.fragmentation import TypicalShapes
from simulations.packing import bin_curve, replay, typical_shapes
from simulations.synthetic import Mix, MixSpec, families, generate
from simulations.traces.alibaba import TracePod

MIXES_COLUMNS = (
    "mix",
    "policy",
    "seed",
    "unallocated_pct_at_100",
    "unallocated_pct_at_130",
    "wall_s",
)
FGD_PAPER = ("random", "dot_product", "gpu_clustering", "gpu_packing", "best_fit", "fgd")


@dataclass(frozen=True, slots=True)
class MixRun:
    mix: str
    policy: str
    seed: int
    unallocated_pct_at_100: float  # NaN where no arrival came near 100 %
    unallocated_pct_at_130: float
    wall_s: float
    pods: int
    failed: int


@dataclass(frozen=True, slots=True)
class MixSummary:
    """One mix: each policy's median unallocated % at arrived 100 %, the best of the FGD
    paper's six policies among those run, and fgd's and frag_pack's gaps to it (points)."""

    mix: str
    seeds: int
    medians: dict[str, float]
    best_of_six: str  # '' when none of the six ran
    best_of_six_pct: float
    fgd_gap: float
    frag_pack_gap: float


def parse_mixes(spec: str, known: Sequence[MixSpec] | None = None) -> list[MixSpec]:
    """``all`` or a comma-separated list of family names (unknown names are an error)."""
    pool = list(known) if known is not None else families()
    by = {s.name: s for s in pool}
    if spec.strip() == "all":
        return pool
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError(f"--mixes: no mix given; known: {', '.join(by)}")
    for n in names:
        if n not in by:
            raise ValueError(f"--mixes: unknown mix {n!r}; known: {', '.join(by)}")
    return [by[n] for n in names]


_CACHE: dict[tuple[MixSpec, int], tuple[Mix, TypicalShapes]] = {}
_CACHED = 4  # tasks come in (mix, seed) order: a process needs only the last few mixes


def _mix(spec: MixSpec, seed: int) -> tuple[Mix, TypicalShapes]:
    key = (spec, seed)
    if key not in _CACHE:
        while len(_CACHE) >= _CACHED:
            del _CACHE[next(iter(_CACHE))]
        mix = generate(replace(spec, seed=seed))
        _CACHE[key] = (mix, typical_shapes(mix.pods))
    return _CACHE[key]


def _run(task: tuple[MixSpec, int, str, float]) -> MixRun:
    spec, seed, policy, inflate = task
    mix, typical = _mix(spec, seed)
    t = replay(mix.nodes, mix.pods, policy, seed, inflate, typical)
    c = bin_curve(t)
    return MixRun(
        spec.name,
        policy,
        seed,
        c.unallocated_at(100),
        c.unallocated_at(130),
        t.wall_s,
        t.pods,
        t.failed,
    )


def run_mixes(
    specs: Sequence[MixSpec],
    policies: Sequence[str],
    seeds: Sequence[int],
    inflate: float = 1.3,
    jobs: int = 1,
    progress: Callable[[MixRun], None] | None = None,
) -> list[MixRun]:
    """Replay every (mix, seed, policy); results come back in that order."""
    tasks = [(s, seed, p, inflate) for s in specs for seed in seeds for p in policies]
    results: list[MixRun] = []
    if jobs <= 1:
        for task in tasks:
            results.append(_run(task))
            if progress:
                progress(results[-1])
        _CACHE.clear()
        return results
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        for r in ex.map(_run, tasks):
            results.append(r)
            if progress:
                progress(r)
    return results


def _median(xs: Sequence[float]) -> float:
    ok = [x for x in xs if not math.isnan(x)]
    return float(np.median(ok)) if ok else math.nan


def summarize(runs: Sequence[MixRun]) -> list[MixSummary]:
    """Per mix, in first-seen order."""
    by: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, set[int]] = {}
    for r in runs:
        by.setdefault(r.mix, {}).setdefault(r.policy, []).append(r.unallocated_pct_at_100)
        seeds.setdefault(r.mix, set()).add(r.seed)
    out = []
    for mix, per in by.items():
        med = {p: _median(xs) for p, xs in per.items()}
        six = [p for p in FGD_PAPER if p in med and not math.isnan(med[p])]
        best = min(six, key=lambda p: med[p]) if six else ""  # ties: the paper's order
        ref = med[best] if best else math.nan
        out.append(
            MixSummary(
                mix,
                len(seeds[mix]),
                med,
                best,
                ref,
                med.get("fgd", math.nan) - ref,
                med.get("frag_pack", math.nan) - ref,
            )
        )
    return out


def summary_columns(policies: Sequence[str]) -> tuple[str, ...]:
    return (
        "mix",
        "seeds",
        *(f"{p}_at_100" for p in policies),
        "best_of_six",
        "best_of_six_at_100",
        "fgd_gap",
        "frag_pack_gap",
    )


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.2f}"


def write_mixes_outputs(runs: Sequence[MixRun], out: Path) -> list[MixSummary]:
    """``out/mixes.csv`` (rows by mix, policy, seed) and ``out/summary.csv`` (one per mix)."""
    out.mkdir(parents=True, exist_ok=True)
    mixes = list(dict.fromkeys(r.mix for r in runs))
    policies = list(dict.fromkeys(r.policy for r in runs))
    ordered = sorted(runs, key=lambda r: (mixes.index(r.mix), policies.index(r.policy), r.seed))
    with (out / "mixes.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(MIXES_COLUMNS)
        for r in ordered:
            w.writerow(
                [
                    r.mix,
                    r.policy,
                    r.seed,
                    _fmt(r.unallocated_pct_at_100),
                    _fmt(r.unallocated_pct_at_130),
                    f"{r.wall_s:.3f}",
                ]
            )
    summaries = summarize(runs)
    with (out / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(summary_columns(policies))
        for s in summaries:
            w.writerow(
                [
                    s.mix,
                    s.seeds,
                    *(_fmt(s.medians.get(p, math.nan)) for p in policies),
                    s.best_of_six,
                    _fmt(s.best_of_six_pct),
                    _fmt(s.fgd_gap),
                    _fmt(s.frag_pack_gap),
                ]
            )
    return summaries


# --------------------------------------------------------------------------------------------
# One policy against the best of the FGD paper's six, on every workload: the 24 Alibaba pod
# lists (17 with published results, 7 without), the named families and drawn mixes.
#   python -m simulations.mixes_experiment --policy frag_pack --out out/robust
# --------------------------------------------------------------------------------------------

ALIBABA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
PUBLISHED_TRACES = (
    "default", "cpu050", "cpu100", "cpu200", "cpu250", "gpushare40", "gpushare60",
    "gpushare80", "gpushare100", "gpuspec10", "gpuspec20", "gpuspec25", "gpuspec33",
    "multigpu20", "multigpu30", "multigpu40", "multigpu50",
)  # fmt: skip
UNPUBLISHED_TRACES = ("cpu0", "cpu037", "cpu072", "cpu235", "cpu300", "gpushare20", "gpuspec05")
PAPER_NAMES = {
    "Random": "random",
    "DotProd": "dot_product",
    "GpuClustering": "gpu_clustering",
    "GpuPacking": "gpu_packing",
    "BestFit": "best_fit",
    "FGD": "fgd",
}
RUN_COLUMNS = ("group", "workload", "policy", "seed", "u100", "u130", "wall_s", "pods", "failed")
COMPARE_COLUMNS = (
    "group",
    "workload",
    "seeds",
    "ours",
    "ours_at_100",
    "best_of_six",
    "best_of_six_at_100",
    "gap",
    "fgd_at_100",
    "published_best",
    "published_best_at_100",
    "published_fgd_at_100",
)


@dataclass(frozen=True, slots=True)
class Workload:
    """A trace (``group='alibaba'``: ``name`` is the pod list's suffix) or a mix spec (the
    mix is generated with each replay seed, as in :func:`run_mixes`)."""

    group: str  # 'alibaba', 'family' (tuned on), 'drawnN' (drawn with seed N)
    name: str
    spec: MixSpec | None = None


def workloads(
    traces: Sequence[str], mixes: Sequence[MixSpec], drawn: Sequence[tuple[int, int]]
) -> list[Workload]:
    """Alibaba pod lists, named families, and ``(draw seed, count)`` drawn specs."""
    from simulations.synthetic import drawn_families

    out = [Workload("alibaba", t) for t in traces]
    out += [Workload("family", s.name, s) for s in mixes]
    for seed, count in drawn:
        out += [Workload(f"drawn{seed}", s.name, s) for s in drawn_families(seed, count)]
    return out


_LOADED: dict[tuple[str, str, int], tuple[list[Node], list[TracePod], TypicalShapes]] = {}


def _load(
    w: Workload, seed: int, traces_dir: Path
) -> tuple[list[Node], list[TracePod], TypicalShapes]:
    from simulations.traces.alibaba import load_nodes, load_pods

    key = (w.group, w.name, seed if w.spec is not None else 0)
    if key not in _LOADED:
        _LOADED.clear()
        if w.spec is None:
            d = traces_dir / "alibaba-gpu-v2023"
            nodes = load_nodes(d / "openb_node_list_gpu_node.csv")
            pods = load_pods(d / f"openb_pod_list_{w.name}.csv")
        else:
            mix = generate(replace(w.spec, seed=seed))
            nodes, pods = list(mix.nodes), list(mix.pods)
        _LOADED[key] = (nodes, pods, typical_shapes(pods))
    return _LOADED[key]


def published_medians(traces_dir: Path) -> dict[str, dict[str, float]]:
    """Per trace suffix: the FGD authors' median unallocated % at arrived 100, by our names."""
    path = traces_dir / "fgd-published" / "unallocated_gpu_pct_median.csv"
    out: dict[str, dict[str, float]] = {}
    if not path.exists():
        return out
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["arrived_pct"] == "100" and row["policy"] in PAPER_NAMES:
                trace = row["workload"].removeprefix("openb_pod_list_")
                out.setdefault(trace, {})[PAPER_NAMES[row["policy"]]] = float(
                    row["unallocated_gpu_pct_median"]
                )
    return out


def compare(
    wls: Sequence[Workload],
    ours: str,
    seeds_for: Callable[[Workload], Sequence[int]],
    cache: Path,
    traces_dir: Path = ALIBABA_DIR,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, str]]:
    """Replay ``ours`` and the six on every workload and seed (rows already in ``cache``, a
    CSV of :data:`RUN_COLUMNS`, are reused; new rows are appended), then one comparison row
    per workload (:data:`COMPARE_COLUMNS`)."""
    done: dict[tuple[str, str, int], float] = {}
    if cache.exists():
        with cache.open() as fh:
            for r in csv.DictReader(fh):
                done[(r["workload"], r["policy"], int(r["seed"]))] = float(r["u100"] or "nan")
    cache.parent.mkdir(parents=True, exist_ok=True)
    new = not cache.exists()
    policies = [ours, *(p for p in FGD_PAPER if p != ours)]
    with cache.open("a", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if new:
            w.writerow(RUN_COLUMNS)
        for wl in wls:
            for seed in seeds_for(wl):
                for p in policies:
                    if (wl.name, p, seed) in done:
                        continue
                    nodes, pods, typical = _load(wl, seed, traces_dir)
                    t = replay(nodes, pods, p, seed, 1.3, typical)
                    c = bin_curve(t)
                    u100, u130 = c.unallocated_at(100), c.unallocated_at(130)
                    done[(wl.name, p, seed)] = u100
                    w.writerow(
                        [
                            wl.group,
                            wl.name,
                            p,
                            seed,
                            _fmt(u100),
                            _fmt(u130),
                            f"{t.wall_s:.3f}",
                            t.pods,
                            t.failed,
                        ]
                    )
                    fh.flush()
                    if progress:
                        progress(f"{wl.name} {p} {seed}: {u100:.2f}")
    pub = published_medians(traces_dir)
    rows = []
    for wl in wls:
        seeds = list(seeds_for(wl))
        med = {p: _median([done[(wl.name, p, s)] for s in seeds]) for p in policies}
        best = min(FGD_PAPER, key=lambda p: med[p])  # ties: the paper's order
        pb = pub.get(wl.name, {}) if wl.spec is None else {}
        pbest = min(pb, key=lambda p: pb[p]) if pb else ""
        rows.append(
            {
                "group": wl.group,
                "workload": wl.name,
                "seeds": str(len(seeds)),
                "ours": ours,
                "ours_at_100": _fmt(med[ours]),
                "best_of_six": best,
                "best_of_six_at_100": _fmt(med[best]),
                "gap": _fmt(med[ours] - med[best]),
                "fgd_at_100": _fmt(med["fgd"]),
                "published_best": pbest,
                "published_best_at_100": _fmt(pb[pbest]) if pbest else "",
                "published_fgd_at_100": _fmt(pb["fgd"]) if "fgd" in pb else "",
            }
        )
    return rows


def tally(rows: Sequence[dict[str, str]], tolerance: float) -> dict[str, tuple[int, int, int]]:
    """Per group (and 'all'): (workloads, no worse than best-of-six + tolerance, strictly no
    worse)."""
    out: dict[str, list[int]] = {}
    for r in rows:
        gap = float(r["gap"])
        for g in (r["group"], "all"):
            t = out.setdefault(g, [0, 0, 0])
            t[0] += 1
            t[1] += gap <= tolerance + 1e-9
            t[2] += gap <= 1e-9
    return {g: (a, b, c) for g, (a, b, c) in out.items()}


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys
    import time

    from simulations.packing_experiment import parse_seeds
    from simulations.synthetic import families as all_families

    ap = argparse.ArgumentParser(
        prog="python -m simulations.mixes_experiment",
        description="one policy vs. the best of the FGD paper's six on every workload",
    )
    ap.add_argument("--policy", default="frag_pack")
    ap.add_argument("--seeds", default="42-44", help="replay seeds for the mixes")
    ap.add_argument("--trace-seeds", default="42-44", help="replay seeds for the Alibaba traces")
    ap.add_argument(
        "--traces", default="all", help="'all' (24), 'published' (17), 'none' or a list"
    )
    ap.add_argument("--mixes", default="all", help="named families: 'all', 'none' or a list")
    ap.add_argument("--drawn", default="1:12,2:12", help="SEED:COUNT[,...] drawn specs, or 'none'")
    ap.add_argument("--tolerance", type=float, default=0.05, help="points over best-of-six allowed")
    ap.add_argument("--traces-dir", default=str(ALIBABA_DIR))
    ap.add_argument("--out", default="out/robust")
    a = ap.parse_args(argv)
    if a.traces == "all":
        traces: list[str] = [*PUBLISHED_TRACES, *UNPUBLISHED_TRACES]
    elif a.traces == "published":
        traces = list(PUBLISHED_TRACES)
    elif a.traces == "none":
        traces = []
    else:
        traces = [t.strip() for t in a.traces.split(",") if t.strip()]
    mixes = [] if a.mixes == "none" else parse_mixes(a.mixes, all_families())
    drawn = (
        []
        if a.drawn == "none"
        else [(int(x.split(":")[0]), int(x.split(":")[1])) for x in a.drawn.split(",")]
    )
    mix_seeds, trace_seeds = parse_seeds(a.seeds), parse_seeds(a.trace_seeds)
    out = Path(a.out)
    t0 = time.perf_counter()
    rows = compare(
        workloads(traces, mixes, drawn),
        a.policy,
        lambda w: trace_seeds if w.spec is None else mix_seeds,
        out / "runs.csv",
        Path(a.traces_dir),
        progress=lambda s: print(s, file=sys.stderr, flush=True),
    )
    wall = time.perf_counter() - t0
    with (out / "compare.csv").open("w", newline="") as fh:
        cw = csv.DictWriter(fh, COMPARE_COLUMNS, lineterminator="\n")
        cw.writeheader()
        cw.writerows(rows)
    for r in rows:
        print(
            f"{r['group']:9s} {r['workload']:26s} {r['ours']} {r['ours_at_100']:>6s}  "
            f"best {r['best_of_six']:14s} {r['best_of_six_at_100']:>6s}  gap {r['gap']:>6s}  "
            f"fgd {r['fgd_at_100']:>6s}  published {r['published_best_at_100']:>6s}"
        )
    for g, (n, ok, strict) in tally(rows, a.tolerance).items():
        print(
            f"{g}: {n} workloads, no worse than best-of-six +{a.tolerance}: {ok}, strictly: {strict}"
        )
    print(f"wall time this invocation (cached rows reused): {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
