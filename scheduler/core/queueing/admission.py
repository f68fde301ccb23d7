"""Quota admission: which GPU models a job may use now under its team's quotas, and what a
placement charges. Returns verdicts as data (never-fits, wait for quota).

:class:`QuotaAdmission` (the ``quota`` admission policy, the default) admits within nominal
quota plus what the team may borrow from its cohort, as Kueue does; ``nominal``
(``scheduler/policies/admission_nominal.py``) never borrows. Both are written over one
headroom and one ceiling function, so they differ only in those.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

from scheduler.core.model import Job, Placement
from scheduler.core.policy import FleetView
from scheduler.core.queueing.quota import ANY_MODEL, QuotaBook
from scheduler.core.verdict import Code, Verdict


def placement_models(fleet: FleetView, placement: Placement) -> dict[str, int]:
    """Milli-GPU a placement takes, per GPU model."""
    out: dict[str, int] = {}
    for w in placement.workers:
        for g in w.gpu_indices:
            model = fleet.model_names[int(fleet.gpu_model[w.node_index, g])]
            out[model] = out.get(model, 0) + w.gpu_milli
    return out


def candidate_models(fleet: FleetView, job: Job) -> tuple[str, ...]:
    wanted = job.worker.gpu_models
    return tuple(m for m in fleet.model_names if not wanted or m in wanted)


Limit = Callable[[str, str], float]  # (team, key) -> milli-GPU


def never_under_quota(
    book: QuotaBook, fleet: FleetView, job: Job, ceiling: Limit | None = None
) -> str | None:
    """A reason if the team's quotas can never admit the job, else None. ``ceiling``: the
    most a team may ever hold under a key (default: nominal plus all it could borrow)."""
    ceiling = ceiling or book.ceiling
    if not book.knows(job.team):
        return f"team {job.team!r} has no quota (teams with quota: {', '.join(sorted(book.teams))})"
    if job.worker.gpus == 0:
        return None
    need = job.total_gpu_milli
    most = ceiling(job.team, ANY_MODEL)
    if need > most:
        how = "even borrowing" if ceiling == book.ceiling else "without borrowing"
        return (
            f"needs {need / 1000:g} GPUs; team {job.team!r} can hold at most {most / 1000:g} {how}"
        )
    ok = [
        m
        for m in candidate_models(fleet, job)
        if book.allows_model(job.team, m) and need <= ceiling(job.team, m)
    ]
    if not ok:
        return f"no GPU model the job accepts is within team {job.team!r}'s quotas (quota keys: {', '.join(book.keys_of(job.team))})"
    return None


def admit(
    book: QuotaBook, fleet: FleetView, job: Job, headroom: Limit | None = None
) -> tuple[Job | None, Verdict | None]:
    """The job restricted to the GPU models its team may use right now, or a WAIT_QUOTA verdict.

    The whole gang must fit the headroom of one model (and of the team's total), so a placement
    within the returned models never exceeds a quota, whichever of them the packer picks.
    ``headroom``: what a team may still take under a key (default: borrowing included)."""
    if not book.knows(job.team):
        # a team the quotas no longer name (they changed while its jobs waited) starts
        # nothing, as a new submission of it would be refused
        return None, Verdict(
            Code.WAIT_QUOTA,
            f"team {job.team!r} has no quota (teams with quota: {', '.join(sorted(book.teams))})",
        )
    if job.worker.gpus == 0:
        return job, None
    borrowing = headroom is None
    # the answer depends on the team, the models the job accepts, its size and the book;
    # many pending jobs share all four, so it is kept until the book next changes
    key = (job.team, job.worker.gpu_models, job.total_gpu_milli, borrowing, id(fleet.model_names))
    known = book.answers.get(key)
    if known is None:
        known = book.answers[key] = _admit(book, fleet, job, headroom)
    models, verdict = known
    if models is None:
        assert isinstance(verdict, Verdict)
        return None, verdict
    if not models:
        return job, None
    worker = dataclasses.replace(job.worker, gpu_models=models)
    return dataclasses.replace(job, worker=worker), None


def _admit(
    book: QuotaBook, fleet: FleetView, job: Job, headroom: Limit | None
) -> tuple[tuple[str, ...] | None, Verdict | None]:
    """:func:`admit`'s answer: (None, the verdict), ((), None) for the job as it is, or the
    models it is restricted to."""
    borrowing = headroom is None
    room_of = headroom or book.headroom
    need = job.total_gpu_milli
    total = room_of(job.team, ANY_MODEL)
    models = [
        m
        for m in candidate_models(fleet, job)
        if book.allows_model(job.team, m) and room_of(job.team, m) >= need
    ]
    if total < need or not models:
        room = min(
            total,
            max((room_of(job.team, m) for m in candidate_models(fleet, job)), default=0.0),
        )
        shown = "unlimited" if math.isinf(room) else f"{room / 1000:g}"
        how = "borrowing included" if borrowing else "no borrowing"
        return None, Verdict(
            Code.WAIT_QUOTA,
            f"team {job.team!r} quota: needs {need / 1000:g} GPUs, {shown} available now ({how})",
        )
    if tuple(models) == candidate_models(fleet, job):
        return (), None
    return tuple(models), None


def within_nominal(book: QuotaBook, job: Job) -> bool:
    """Would the team stay within its nominal quota (not borrow) with this job added, on its
    total and on at least one model it may use? Only such a job may reclaim lent capacity."""
    need = job.total_gpu_milli

    def fits(key: str) -> bool:
        q = book.quota.get((job.team, key))
        return q is None or book.used.get((job.team, key), 0) + need <= q.nominal_gpus * 1000

    named = [k for k in book.keys_of(job.team) if k != ANY_MODEL]
    return fits(ANY_MODEL) and (
        not named
        or any(fits(k) for k in named if k in job.worker.gpu_models or not job.worker.gpu_models)
    )


class QuotaAdmission:
    """The ``quota`` admission policy: nominal quota plus what the team may borrow from its
    cohort (Kueue's ClusterQueue semantics, ``quota.py``)."""

    name: ClassVar[str] = "quota"

    def never(self, job: Job, book: QuotaBook, fleet: FleetView) -> str | None:
        return never_under_quota(book, fleet, job)

    def admit(
        self, job: Job, book: QuotaBook, fleet: FleetView
    ) -> tuple[Job | None, Verdict | None]:
        return admit(book, fleet, job)

    def may_reclaim(self, job: Job, book: QuotaBook) -> bool:
        return within_nominal(book, job)
