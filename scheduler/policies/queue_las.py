"""``las``: Tiresias's discretised two-dimensional LAS (Gu et al., NSDI'19, section 3.2).

Needs no duration. A job's *attained service* is GPUs x seconds: the GPUs it holds times the
time it has run ("two-dimensional": a wide job ages as fast as its width), summed over its runs
since its last starvation promotion. The order, as the paper's scheduler and its simulator
(SymbioticLab/Tiresias ``simulator/``, commit 959f9b0: ``dlas_sim_jobs(gputime=True)``, i.e.
``run_sim.py --schedule=dlas-gpu``) run it:

1. **Two levels, one threshold: 3,250 GPU-seconds.** Level 0 holds jobs below it, level 1 the
   rest: the paper's multi-level feedback queue with K = 2 (section 3.2 leaves K and the
   thresholds to the operator and reports two queues working well). 3,250 is the simulator's
   first queue limit (``jobs.py``, ``_TFJobs.queue_limit[0]``; GPU-seconds under
   ``dlas-gpu``, plain seconds under ``dlas``). The simulator's own default runs three queues
   (``num_queue = 3``, ``queue_limit = [3250, 7200, ...]``): pass
   :data:`SIMULATOR_THRESHOLDS_GPU_S` for that; its README's two-queue example uses 3,600.
2. **Inside a level: first come, first served, fit-first.** A job that does not fit does not
   hold back the jobs behind it, at any level (the simulator scans every queue and starts each
   job that fits), so this order is ``fit_first`` and scans so even under
   ``backfill="none"``; under ``backfill="easy"`` the core's reservations still apply. Ties
   break on submission time, then job id. A running job never yields to a waiting job of its
   own level, save the case in point 4.
3. **Preemption** (the core's ``preemption`` switch; Tiresias always preempts): a waiting job
   of level 0 stops running jobs of level 1 when that lets it start. The core's ``reclaim.py``
   picks the victims, the cheapest in lost work first, where Tiresias takes the GPUs of the
   lower-level jobs latest in its scan.
4. **Demotion of a running job at the crossing.** The moment a running job's attained service
   reaches the threshold it is in level 1; the core asks its driver to wake it then
   (``ClusterState.next_wake_s``: a ``Tick`` at the crossing; the simulator's "job jump"
   event), so a waiting level-0 job preempts it at that instant, not at the next arrival or
   finish. Just demoted, it also ranks below the jobs already waiting in level 1 (the
   simulator appends it to the end of that queue): one of them that then fits takes its place.
5. **Starvation promotion (PROMOTEKNOB)**, off by default as in the simulator's ``dlas-gpu``
   (``solve_starvation=0``; ``--schedule=dlas-gpu-N`` runs it with knob N, N in 0.5, 1, 2, 4,
   8, 10, 100, 1000). With ``promote_knob=k``: a requeued level-1 job that has waited ``k``
   times as long as it ran, both counted since its last promotion (waits from its first
   requeue on, as the simulator's ``last_pending_time``), goes back to level 0 with its
   attained service counted afresh (``executed_time = 0``); the core wakes up at the due time
   as for a demotion. A job that never ran is in level 0 and is never promoted: a wide job can
   wait long under the fit-first scan, as in Tiresias.

Known differences from the simulator: the victims (point 3); inside level 1 waiting jobs go by
submission, where the simulator's list puts the one that ran last first; a promoted job takes
its submission place in level 0, where the simulator appends it at the end; preempted work is
lost back to the job's last checkpoint (``checkpoint_interval_s``; none: the whole run), where
the simulator resumes every job where it stopped; times are exact, where the simulator rounds
them to whole seconds and wakes a multi-GPU job for its demotion late
(``ceil((limit - executed_s) / gpus)``, for ``limit / gpus - executed_s``).

**Tiresias's 60-job trace** (``../shared/traces/tiresias/60_job.csv``) on 2 nodes x 4 GPUs
(``gpuyard simulate queue --gpus 8 --gpus-per-node 4``; ``tests/unit/test_tiresias.py``):

* ``fifo`` (strict order): average JCT 1,556.5 s. Tiresias's ``fifo``: 1,556.5 s.
* ``las --preemption``: 725.1 s, 0.47 x FIFO, with no preemption, no demotion and no promotion:
  no job of the trace reaches 3,250 GPU-seconds (the most is 2,440: 8 GPUs x 305 s). Tiresias's
  own ``dlas-gpu`` gives 715.3 s (0.46 x), also without a preemption or a demotion, as do its
  ``dlas`` and ``dlas-gpu-1/2/4/8`` and its fit-first FIFO ``fjf``: the whole gain over FIFO
  is the fit-first scan (point 2). The 10 s between us is placement: the simulator's
  ``--scheme=count`` takes any free GPUs, our gangs whole GPUs of one node per worker; with
  one-GPU workers placed anywhere (``QueueOptions(one_gpu_workers=True)``) every job starts and
  ends exactly as in Tiresias's run (715.3 s).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from scheduler.core.model import Job
from scheduler.core.queueing.queues import FloatArray, IntArray, JobKey, QueueOrderBase

DEFAULT_THRESHOLDS_GPU_S = (3_250.0,)  # two levels (Tiresias, see the module docstring)
SIMULATOR_THRESHOLDS_GPU_S = (3_250.0, 7_200.0)  # the simulator's dlas-gpu: three queues


class LasOrder(QueueOrderBase):
    name: ClassVar[str] = "las"
    uses_rank_class: ClassVar[bool] = True
    fit_first: ClassVar[bool] = True

    def __init__(
        self,
        thresholds_gpu_s: Sequence[float] = DEFAULT_THRESHOLDS_GPU_S,
        promote_knob: float | None = None,
    ) -> None:
        if list(thresholds_gpu_s) != sorted(thresholds_gpu_s) or any(
            t <= 0 for t in thresholds_gpu_s
        ):
            raise ValueError(
                f"LAS thresholds must be positive and increasing, got {list(thresholds_gpu_s)}"
            )
        if promote_knob is not None and not (promote_knob > 0 and math.isfinite(promote_knob)):
            raise ValueError(f"promote_knob must be a number > 0 or None (off), got {promote_knob}")
        self.thresholds = tuple(thresholds_gpu_s)
        self.promote_knob = promote_knob
        self.promotes = promote_knob is not None

    def level(self, attained_gpu_s: float) -> int:
        return bisect.bisect_right(self.thresholds, attained_gpu_s)

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        return (self.level(attained_gpu_s), job.submitted_at_s, job.job_id)

    def rank_class(self, attained_gpu_s: float) -> int:
        """With preemption on, a waiting job of a lower level preempts running jobs of higher
        levels (Tiresias: long-running jobs yield to new ones)."""
        return self.level(attained_gpu_s)

    def rank_classes(self, attained_gpu_s: FloatArray) -> IntArray:
        levels = np.searchsorted(np.array(self.thresholds), attained_gpu_s, side="right")
        return levels.astype(np.int64)

    def next_rank_change_gpu_s(self, attained_gpu_s: float) -> float:
        i = self.level(attained_gpu_s)
        return self.thresholds[i] if i < len(self.thresholds) else math.inf

    def promote_after_s(self, ran_s: float) -> float:
        return math.inf if self.promote_knob is None else self.promote_knob * ran_s
