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

from scheduler.core.placement.fragmentation import TypicalShapes
from simulations.packing import bin_curve, replay, typical_shapes
from simulations.synthetic import Mix, MixSpec, families, generate

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
