"""``las``: discretised least attained service (Tiresias, Gu et al., NSDI'19, section 4.1).

Needs no duration: a job's *attained service* is the GPU-seconds it has received. Jobs sit in
queue levels by attained service (thresholds in GPU-seconds; Tiresias uses a few levels with
exponentially spaced thresholds); a lower level goes first, FIFO inside a level. A job that
never ran is at level 0; a job requeued after running carries its attained service with it.
With preemption on, a waiting job may preempt running jobs of a higher level.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from scheduler.core.model import Job
from scheduler.core.queueing import FloatArray, IntArray, JobKey, QueueOrder

DEFAULT_THRESHOLDS_GPU_S = (3_600.0, 36_000.0, 360_000.0)


class LasOrder(QueueOrder):
    name: ClassVar[str] = "las"
    uses_rank_class: ClassVar[bool] = True

    def __init__(self, thresholds_gpu_s: Sequence[float] = DEFAULT_THRESHOLDS_GPU_S) -> None:
        if list(thresholds_gpu_s) != sorted(thresholds_gpu_s) or any(
            t <= 0 for t in thresholds_gpu_s
        ):
            raise ValueError(
                f"LAS thresholds must be positive and increasing, got {list(thresholds_gpu_s)}"
            )
        self.thresholds = tuple(thresholds_gpu_s)

    def level(self, attained_gpu_s: float) -> int:
        return bisect.bisect_right(self.thresholds, attained_gpu_s)

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        return (self.level(attained_gpu_s), job.submitted_at_s, job.job_id)

    def rank_class(self, attained_gpu_s: float) -> int:
        """With preemption on, a job in a lower level preempts running jobs in higher levels
        (Tiresias's demotion: long-running jobs yield to new ones)."""
        return self.level(attained_gpu_s)

    def rank_classes(self, attained_gpu_s: FloatArray) -> IntArray:
        levels = np.searchsorted(np.array(self.thresholds), attained_gpu_s, side="right")
        return levels.astype(np.int64)
