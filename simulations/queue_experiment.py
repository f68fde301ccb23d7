"""Queue replays over several policies and their outputs: jobs.csv, summary.csv, jct_cdf.png."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scheduler.policies.registry import QUEUE, lookup
from simulations.queue import QueueOptions, QueueRun, QueueSummary, replay_queue, summarize
from simulations.traces.jobs import TraceJob

JOB_COLUMNS = (
    "policy",
    "job_id",
    "team",
    "num_gpus",
    "submit_s",
    "start_s",
    "end_s",
    "preemptions",
)
SUMMARY_COLUMNS = (
    "policy", "jobs", "avg_jct_s", "p50_jct_s", "p95_jct_s", "p99_jct_s", "avg_wait_s", "p95_wait_s",
    "makespan_s", "gpu_util_pct", "jain_fairness", "preemptions", "lost_gpu_h", "wall_s",
)  # fmt: skip


def parse_queue_policies(spec: str) -> list[str]:
    names = (
        list(QUEUE) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    )
    for n in names or [""]:
        lookup(QUEUE, "queue policy", n)
    return names


def run_queue_grid(
    jobs: Sequence[TraceJob],
    gpus: int,
    gpus_per_node: int,
    policies: Sequence[str],
    options: QueueOptions,
    progress: Callable[[QueueRun], None] | None = None,
) -> list[QueueRun]:
    runs = []
    for policy in policies:
        run = replay_queue(jobs, gpus, gpus_per_node, policy, options.backfill, options)
        runs.append(run)
        if progress:
            progress(run)
    return runs


def _num(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.1f}"


def write_queue_outputs(runs: Sequence[QueueRun], out: Path) -> list[QueueSummary]:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "jobs.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(JOB_COLUMNS)
        for run in runs:
            for r in run.records:
                w.writerow(
                    [
                        run.policy,
                        r.job_id,
                        r.team,
                        r.num_gpus,
                        _num(r.submit_s),
                        _num(r.start_s),
                        _num(r.end_s),
                        r.preemptions,
                    ]
                )
    summaries = [summarize(run) for run in runs]
    with (out / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SUMMARY_COLUMNS)
        for s in summaries:
            w.writerow(
                [s.policy, s.jobs, f"{s.avg_jct_s:.1f}", f"{s.p50_jct_s:.1f}", f"{s.p95_jct_s:.1f}", f"{s.p99_jct_s:.1f}",
                 f"{s.avg_wait_s:.1f}", f"{s.p95_wait_s:.1f}", f"{s.makespan_s:.1f}", f"{s.gpu_util_pct:.2f}",
                 f"{s.jain_fairness:.4f}", s.preemptions, f"{s.lost_gpu_h:.2f}", f"{s.wall_s:.3f}"]
            )  # fmt: skip
    plot_jct_cdf(runs, out / "jct_cdf.png")
    return summaries


def plot_jct_cdf(runs: Sequence[QueueRun], path: Path) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for run in runs:
        jct = np.sort([r.end_s - r.submit_s for r in run.records if not math.isnan(r.start_s)])
        if len(jct):
            ax.plot(
                np.maximum(jct, 1.0),
                np.arange(1, len(jct) + 1) / len(jct),
                label=f"{run.policy} (avg {jct.mean() / 3600:.1f} h)",
            )
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (s)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(f"JCT CDF on {runs[0].gpus} GPUs" if runs else "JCT CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
