"""``sjf``: shortest estimated job first (GPU-time: estimated duration x GPUs), then FIFO.

Jobs without an estimate go after every job with one. Uses estimates only; in simulation the
estimate is the trace's duration (a perfect oracle, the upper bound of what SJF can do).
"""

from __future__ import annotations

import math
from typing import ClassVar

from scheduler.core.model import MILLI_PER_GPU, Job
from scheduler.core.queueing.queues import JobKey, QueueOrderBase


class SjfOrder(QueueOrderBase):
    name: ClassVar[str] = "sjf"

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        est = job.estimated_duration_s
        gpu_s = math.inf if est is None else est * max(job.total_gpu_milli, 1) / MILLI_PER_GPU
        return (gpu_s, job.submitted_at_s, job.job_id)
