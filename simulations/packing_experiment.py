"""A grid of packing replays (policies x seeds) and its outputs: curves.csv, summary.csv and
curves.png. Runs in parallel worker processes when asked; results are identical either way."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scheduler.core.model import Node
from scheduler.core.placement.fragmentation import TypicalShapes
from scheduler.policies.registry import PACKING, UnknownPolicy, lookup
from simulations.packing import Curve, bin_curve, replay, typical_shapes
from simulations.traces.alibaba import TracePod, load_nodes, load_pods

CURVE_COLUMNS = (
    "policy",
    "seed",
    "arrived_pct",
    "allocated_pct",
    "unallocated_pct",
    "frag_amount_pct",
    "frag_ratio_pct",
)
SUMMARY_COLUMNS = ("policy", "seed", "unallocated_pct_at_100", "unallocated_pct_at_130", "wall_s")


@dataclass(frozen=True, slots=True)
class RunResult:
    curve: Curve
    wall_s: float
    pods: int
    failed: int


def parse_policies(spec: str) -> list[str]:
    """``all`` or a comma-separated list of registered names (unknown names are an error)."""
    if spec.strip() == "all":
        return list(PACKING)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UnknownPolicy(f"no policy given; known: {', '.join(PACKING)}")
    for n in names:
        lookup(PACKING, "packing policy", n)
    return names


def parse_seeds(spec: str) -> list[int]:
    """``42-51``, ``42,43`` or ``42``."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(
                f"--seeds: {spec!r} is not a seed list (allowed: '42-51', '42,43', '42')"
            ) from None
    if not out:
        raise ValueError(f"--seeds: {spec!r} names no seed")
    return out


_WORKER: dict[str, object] = {}


def _init(
    nodes: Sequence[Node], pods: Sequence[TracePod], typical: TypicalShapes, inflate: float
) -> None:
    _WORKER.update(nodes=nodes, pods=pods, typical=typical, inflate=inflate)


def _run(task: tuple[str, int]) -> RunResult:
    policy, seed = task
    t = replay(
        _WORKER["nodes"],  # type: ignore[arg-type]
        _WORKER["pods"],  # type: ignore[arg-type]
        policy,
        seed,
        float(_WORKER["inflate"]),  # type: ignore[arg-type]
        _WORKER["typical"],  # type: ignore[arg-type]
    )
    return RunResult(bin_curve(t), t.wall_s, t.pods, t.failed)


def run_grid(
    nodes_csv: str | Path,
    pods_csv: str | Path,
    policies: Sequence[str],
    seeds: Sequence[int],
    inflate: float = 1.3,
    jobs: int = 1,
    progress: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Replay every (policy, seed); results come back in (policy, seed) order."""
    nodes = load_nodes(nodes_csv)
    pods = load_pods(pods_csv)
    typical = typical_shapes(pods)
    tasks = [(p, s) for p in policies for s in seeds]
    results: list[RunResult] = []
    if jobs <= 1:
        _init(nodes, pods, typical, inflate)
        for task in tasks:
            r = _run(task)
            results.append(r)
            if progress:
                progress(r)
        return results
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init, initargs=(nodes, pods, typical, inflate)
    ) as ex:
        for r in ex.map(_run, tasks):
            results.append(r)
            if progress:
                progress(r)
    return results


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.2f}"


def write_outputs(results: Sequence[RunResult], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "curves.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CURVE_COLUMNS)
        for r in results:
            c = r.curve
            un = c.unallocated_pct
            for k in c.arrived_pct:
                w.writerow(
                    [
                        c.policy,
                        c.seed,
                        int(k),
                        _fmt(c.allocated_pct[k]),
                        _fmt(un[k]),
                        _fmt(c.frag_amount_pct[k]),
                        _fmt(c.frag_ratio_pct[k]),
                    ]
                )
    with (out / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SUMMARY_COLUMNS)
        for r in results:
            w.writerow(
                [
                    r.curve.policy,
                    r.curve.seed,
                    _fmt(r.curve.unallocated_at(100)),
                    _fmt(r.curve.unallocated_at(130)),
                    f"{r.wall_s:.3f}",
                ]
            )
    plot_curves(results, out / "curves.png")


def medians(results: Sequence[RunResult]) -> dict[str, tuple[float, float, float]]:
    """Per policy: median unallocated % at arrived 100 and 130, and median wall seconds."""
    by: dict[str, list[RunResult]] = {}
    for r in results:
        by.setdefault(r.curve.policy, []).append(r)
    return {
        p: (
            float(np.median([r.curve.unallocated_at(100) for r in rs])),
            float(np.median([r.curve.unallocated_at(130) for r in rs])),
            float(np.median([r.wall_s for r in rs])),
        )
        for p, rs in by.items()
    }


def plot_curves(results: Sequence[RunResult], path: Path) -> None:
    """Median unallocated GPU % against arrived workload %, one line per policy (the paper's
    Figure 7 style)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    by: dict[str, list[Curve]] = {}
    for r in results:
        by.setdefault(r.curve.policy, []).append(r.curve)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for policy, curves in by.items():
        with warnings.catch_warnings():  # bins no arrival reached are NaN in every seed
            warnings.simplefilter("ignore", RuntimeWarning)
            un = np.nanmedian(np.vstack([c.unallocated_pct for c in curves]), axis=0)
        ax.plot(curves[0].arrived_pct, un, label=f"{policy} ({un[100]:.2f} @100%)")
    ax.set_xlim(80, 130)
    ax.set_ylim(0, 25)
    ax.axvline(100, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("arrived workload (% of cluster GPU capacity)")
    ax.set_ylabel("unallocated GPU (%)")
    ax.set_title(f"median over {len(next(iter(by.values())))} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
