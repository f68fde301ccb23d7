"""``fifo``: first submitted, first considered (job id breaks ties)."""

from __future__ import annotations

from typing import ClassVar

from scheduler.core.model import Job
from scheduler.core.queueing.queues import JobKey, QueueOrderBase


class FifoOrder(QueueOrderBase):
    name: ClassVar[str] = "fifo"

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        return (job.submitted_at_s, job.job_id)
