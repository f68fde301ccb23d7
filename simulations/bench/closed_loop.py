"""Benchmark section 4b: the default China scenario through ``gpuyard plan --verify``.

``python -m simulations.bench.closed_loop`` prints the Markdown section;
``simulations/bench/report.py`` embeds ``loop_section()`` in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from planner.schema import load_scenario
from planner.solve import SolveOptions
from simulations.plan_sim.settings import SimulationSettings
from simulations.plan_sim.verify import ITERATIONS_COLUMNS, verify

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "china-dc.yaml"
TARGET_S = 300.0


def _h(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def loop_section(workers: int = 2, time_limit_s: float = 30.0) -> str:
    sc = load_scenario(SCENARIO)
    settings = SimulationSettings.from_mapping(
        sc.simulation, sc.source, [w.name for w in sc.workloads], [k.name for k in sc.skus]
    )
    t0 = time.perf_counter()
    v = verify(sc, SolveOptions(time_limit_s=time_limit_s), settings, (0,), None, workers)
    wall = time.perf_counter() - t0
    first, kept = v.iterations[0], v.iterations[-1]
    slo = v.slo
    lines = [
        "## 4b. Plan, then prove it: `gpuyard plan --verify` on the default China scenario",
        "",
        f"`{SCENARIO.relative_to(SCENARIO.parents[2])}`: SLO wait P95 <= {slo.wait_p95_hours:g} h and "
        f"unserved <= {slo.max_unserved_fraction:g} per site-quarter, at most {slo.iterations} plans. "
        f"Replays: {settings.job_sizes} job sizes, {settings.queue}+{settings.backfill}, "
        f"{settings.warmup_weeks:g} warm-up + {settings.weeks_per_quarter:g} measured weeks per site-quarter, "
        f"each GPU model's pool at a site sliced to {settings.max_gpus_per_site} GPUs, {workers} replays at a time; HiGHS "
        f"{time_limit_s:g} s per plan. Reproduce: `gpuyard plan {SCENARIO.relative_to(SCENARIO.parents[2])} "
        f"--verify --out DIR --workers {workers} --time-limit {time_limit_s:g}` (then `DIR/verify/iterations.csv`).",
        "",
        "| " + " | ".join(ITERATIONS_COLUMNS) + " |",
        "|" + "---|" * len(ITERATIONS_COLUMNS),
        *("| " + " | ".join(str(x) for x in it.row()) + " |" for it in v.iterations),
        "",
        f"* wall time: {wall:.0f} s for {len(v.iterations)} plan(s) and "
        f"{sum(len(it.sim.sites) for it in v.iterations)} site-quarter replays (target <= {TARGET_S:.0f} s: "
        f"{'met' if wall <= TARGET_S else 'not met'})",
        f"* the GPU-hours plan (iteration 0): worst wait P95 {_h(first.worst_wait_p95_h)} h, "
        f"{len(first.failed)} site-quarter(s) missing the SLO; the kept plan: worst wait P95 "
        f"{_h(kept.worst_wait_p95_h)} h, {len(kept.failed)} missing",
        f"* GPUs bought: {first.gpus_bought:,} by the GPU-hours plan, {kept.gpus_bought:,} by the kept one "
        f"({kept.gpus_bought - first.gpus_bought:+,}; NPV ${(first.outcome.objective or 0) / 1e9:.2f} B -> "
        f"${(kept.outcome.objective or 0) / 1e9:.2f} B)"
        + (
            ": the size of the error a GPU-hours-only plan makes here"
            if v.slo_met
            else f": what the GPU-hours plan misses where the SLO can be met; the other {len(kept.failed)} "
            "site-quarters cannot meet it within the scenario's limits (below)"
            if len(kept.bound) == len(kept.failed)
            else ": not the size of the GPU-hours plan's error, since the SLO is not met where it "
            "could be (the iteration limit came first)"
        ),
        f"* verdict: {v.verdict}",
    ]
    for r, why in kept.bound[:8]:
        lines.append(f"  * {r.site} {r.quarter}: {why}")
    if len(kept.bound) > 8:
        lines.append(f"  * ... and {len(kept.bound) - 8} more site-quarters bound by the scenario")
    other = [r for r in kept.failed if r not in {b for b, _ in kept.bound}]
    for r in other[:8]:
        lines.append(
            f"  * {r.site} {r.quarter}: still missing (wait P95 {_h(r.wait_p95_h)} h, unserved "
            f"{r.unserved_fraction:.3f}, derate {kept.derate.get((r.site, r.t), 1.0):.2f})"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.bench.closed_loop")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--time-limit", type=float, default=30.0)
    a = p.parse_args(argv)
    print(loop_section(a.workers, a.time_limit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
