"""``newest``: preempt the most recently started jobs first, as Kueue orders its candidates
(``pkg/scheduler/preemption/preemption.go``, ``candidatesOrdering``: workloads of other
queues in the cohort first, then lower priority, then the most recently admitted) and as
PBS Professional picks "jobs in the lowest preemption level that have been started the most
recently". The tiers and the search are ``cheapest``'s (``scheduler/core/preemption/
reclaim.py``); only the order inside a tier differs: lent quota is taken back from the newest
borrower first, and lower-tier candidates go lowest priority first, newest first within a
priority. A newest-first order stops the job with the least service received, which needs
no estimate of checkpoints; ``cheapest`` counts the work since each job's last checkpoint and
loses less when jobs checkpoint often."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.placement.fleet import IntArray
from scheduler.core.preemption.reclaim import CheapestFirst, RunningView


class NewestFirst(CheapestFirst):
    name: ClassVar[str] = "newest"

    def order(self, view: RunningView, rows: IntArray, reclaim: bool) -> IntArray:
        idx = np.arange(len(view.ids))
        newest = -view.started_at_s[rows]
        if reclaim:
            return rows[np.lexsort((idx[rows], newest))]
        return rows[np.lexsort((idx[rows], newest, view.priority[rows]))]
