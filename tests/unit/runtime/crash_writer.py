"""Helper of the journal's crash test: submit jobs forever, printing each accepted id.

Run as ``python -m tests.unit.runtime.crash_writer JOURNAL_PATH``. A line is printed (and
flushed) only after ``Journal.submit`` has returned, i.e. after the commit: every id it
prints must survive a ``kill -9`` at any moment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scheduler.core.events import JobSubmitted
from scheduler.core.model import Job, WorkerRequest
from scheduler.runtime.journal import Journal


def main(path: Path, most: int = 1_000_000) -> None:
    journal = Journal(path)
    for i in range(most):
        job_id = f"job-{journal.next_job_number():06d}"
        now_s = 1_764_000_000.0 + i * 0.001
        job = Job(job_id, WorkerRequest(1000, 1024, 1), team="crash", submitted_at_s=now_s)
        journal.submit(
            job_id,
            "crash",
            f"loop {i}",
            {"name": f"loop {i}", "gpus": 1, "i": i},
            now_s,
            f"key-{job_id}",
            JobSubmitted(now_s, job),
        )
        sys.stdout.write(job_id + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
