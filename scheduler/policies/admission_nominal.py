"""``nominal``: hard quotas. A team runs within its nominal quota and never borrows what the
rest of its cohort leaves unused (Slurm's ``GrpTRES`` limits behave so; Kueue's
ClusterQueue does so with ``borrowingLimit: 0``). Idle quota stays idle, but a team's share
never depends on how busy the others are, and nothing it runs is ever reclaimed."""

from __future__ import annotations

from typing import ClassVar

from scheduler.core.model import Job
from scheduler.core.policy import FleetView
from scheduler.core.queueing.admission import admit, never_under_quota
from scheduler.core.queueing.quota import QuotaBook
from scheduler.core.verdict import Verdict


class NominalAdmission:
    name: ClassVar[str] = "nominal"

    def never(self, job: Job, book: QuotaBook, fleet: FleetView) -> str | None:
        return never_under_quota(book, fleet, job, ceiling=book.nominal_ceiling)

    def admit(
        self, job: Job, book: QuotaBook, fleet: FleetView
    ) -> tuple[Job | None, Verdict | None]:
        return admit(book, fleet, job, headroom=book.nominal_headroom)

    def may_reclaim(self, job: Job, book: QuotaBook) -> bool:
        return False  # nobody borrows, so there is nothing to take back
