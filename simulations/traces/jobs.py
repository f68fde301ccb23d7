"""Loaders for job traces with durations: Microsoft Philly (``philly.csv``) and Tiresias
(``60_job.csv`` style: ``job_id, num_gpu, submit_time, ..., duration``).

Both give :class:`TraceJob` rows with submit time in seconds from the trace's first submission.
A malformed row stops the load with ``file:line``, the column, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from simulations.traces.csvrows import cell_float, cell_int, read_rows
from simulations.traces.errors import TraceError

PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
TIRESIAS_COLUMNS = ("job_id", "num_gpu", "submit_time", "duration")
MAX_GPUS = 4096


@dataclass(frozen=True, slots=True)
class TraceJob:
    job_id: str
    team: str
    num_gpus: int
    submit_s: float
    duration_s: float


def load_philly(path: str | Path) -> list[TraceJob]:
    """Philly rows: ``timestamp`` (UTC, ``YYYY-MM-DD HH:MM:SS``) is the submit time, ``duration``
    seconds, ``num_gpus`` the gang size, ``cluster`` (a virtual cluster) the team. Jobs are
    numbered by file line; rows are returned sorted by (submit time, line)."""
    p = Path(path)
    raw: list[tuple[datetime, int, str, int, float]] = []
    for line, row in read_rows(p, PHILLY_COLUMNS):
        ts = row["timestamp"].strip()
        try:
            when = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise TraceError(
                str(p), line, "timestamp", ts, "a time as YYYY-MM-DD HH:MM:SS"
            ) from None
        duration = cell_float(p, line, row, "duration", 0.0)
        gpus = cell_int(p, line, row, "num_gpus", 1, MAX_GPUS)
        team = row["cluster"].strip()
        if not team:
            raise TraceError(str(p), line, "cluster", team, "a non-empty virtual cluster name")
        raw.append((when, line, team, gpus, duration))
    if not raw:
        return []
    t0 = min(r[0] for r in raw)
    jobs = [
        TraceJob(f"philly-{line:06d}", team, gpus, (when - t0).total_seconds(), duration)
        for when, line, team, gpus, duration in raw
    ]
    jobs.sort(key=lambda j: (j.submit_s, j.job_id))
    return jobs


def load_tiresias(path: str | Path, team: str = "default") -> list[TraceJob]:
    """Tiresias rows (``num_gpu``, ``submit_time`` seconds, ``duration`` seconds); one team."""
    p = Path(path)
    jobs: list[TraceJob] = []
    seen: set[str] = set()
    for line, row in read_rows(p, TIRESIAS_COLUMNS):
        job_id = row["job_id"].strip()
        if not job_id or job_id in seen:
            raise TraceError(str(p), line, "job_id", job_id, "a non-empty job id not used before")
        seen.add(job_id)
        jobs.append(
            TraceJob(
                f"tiresias-{job_id}",
                team,
                cell_int(p, line, row, "num_gpu", 1, MAX_GPUS),
                cell_float(p, line, row, "submit_time", 0.0),
                cell_float(p, line, row, "duration", 0.0),
            )
        )
    if jobs:
        t0 = min(j.submit_s for j in jobs)
        jobs = [TraceJob(j.job_id, j.team, j.num_gpus, j.submit_s - t0, j.duration_s) for j in jobs]
    jobs.sort(key=lambda j: (j.submit_s, j.job_id))
    return jobs


def load_jobs(path: str | Path) -> list[TraceJob]:
    """Philly or Tiresias, told apart by the header."""
    p = Path(path)
    with p.open() as fh:
        header = fh.readline().strip().split(",")
    if all(c in header for c in PHILLY_COLUMNS):
        return load_philly(p)
    if all(c in header for c in TIRESIAS_COLUMNS):
        return load_tiresias(p)
    raise TraceError(
        str(p),
        1,
        "*",
        ",".join(header),
        f"a Philly header ({', '.join(PHILLY_COLUMNS)}) or a Tiresias header ({', '.join(TIRESIAS_COLUMNS)})",
    )
