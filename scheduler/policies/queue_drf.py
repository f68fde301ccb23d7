"""``drf``: dominant resource fairness across teams (Ghodsi et al., NSDI'11).

The team whose dominant share (the largest of its GPU, CPU and memory shares of the fleet,
counting what it runs now) is lowest goes next; inside a team, priority then FIFO. The share is
recomputed each time one of the team's jobs starts, so a cycle interleaves teams.
"""

from __future__ import annotations

from typing import ClassVar

from scheduler.core.model import Job
from scheduler.core.queueing.queues import FleetTotals, JobKey, QueueOrderBase, TeamUsage


class DrfOrder(QueueOrderBase):
    name: ClassVar[str] = "drf"
    uses_team_key: ClassVar[bool] = True

    def job_key(self, job: Job, attained_gpu_s: float) -> JobKey:
        return (-job.priority, job.submitted_at_s, job.job_id)

    def team_key(self, team: str, usage: TeamUsage, totals: FleetTotals) -> float:
        shares = [
            usage.gpu_milli / totals.gpu_milli if totals.gpu_milli else 0.0,
            usage.cpu_milli / totals.cpu_milli if totals.cpu_milli else 0.0,
            usage.memory_mib / totals.memory_mib if totals.memory_mib else 0.0,
        ]
        return max(shares)
