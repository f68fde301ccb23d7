"""Quota admission: which GPU models a job may use now under its team's quotas, and what a
placement charges. Returns verdicts as data (never-fits, wait for quota)."""

from __future__ import annotations

import dataclasses
import math

from scheduler.core.model import Job, Placement
from scheduler.core.placement.fleet import Fleet
from scheduler.core.queueing.quota import ANY_MODEL, QuotaBook
from scheduler.core.verdict import Code, Verdict


def placement_models(fleet: Fleet, placement: Placement) -> dict[str, int]:
    """Milli-GPU a placement takes, per GPU model."""
    out: dict[str, int] = {}
    for w in placement.workers:
        for g in w.gpu_indices:
            model = fleet.model_names[int(fleet.gpu_model[w.node_index, g])]
            out[model] = out.get(model, 0) + w.gpu_milli
    return out


def candidate_models(fleet: Fleet, job: Job) -> tuple[str, ...]:
    wanted = job.worker.gpu_models
    return tuple(m for m in fleet.model_names if not wanted or m in wanted)


def never_under_quota(book: QuotaBook, fleet: Fleet, job: Job) -> str | None:
    """A reason if the team's quotas can never admit the job, else None."""
    if not book.knows(job.team):
        return f"team {job.team!r} has no quota (teams with quota: {', '.join(sorted(book.teams))})"
    if job.worker.gpus == 0:
        return None
    need = job.total_gpu_milli
    if need > book.ceiling(job.team, ANY_MODEL):
        return f"needs {need / 1000:g} GPUs; team {job.team!r} can hold at most {book.ceiling(job.team, ANY_MODEL) / 1000:g} even borrowing"
    ok = [
        m
        for m in candidate_models(fleet, job)
        if book.allows_model(job.team, m) and need <= book.ceiling(job.team, m)
    ]
    if not ok:
        return f"no GPU model the job accepts is within team {job.team!r}'s quotas (quota keys: {', '.join(book.keys_of(job.team))})"
    return None


def admit(book: QuotaBook, fleet: Fleet, job: Job) -> tuple[Job | None, Verdict | None]:
    """The job restricted to the GPU models its team may use right now, or a WAIT_QUOTA verdict.

    The whole gang must fit the headroom of one model (and of the team's total), so a placement
    within the returned models never exceeds a quota, whichever of them the packer picks."""
    if job.worker.gpus == 0:
        return job, None
    need = job.total_gpu_milli
    total = book.headroom(job.team, ANY_MODEL)
    models = [
        m
        for m in candidate_models(fleet, job)
        if book.allows_model(job.team, m) and book.headroom(job.team, m) >= need
    ]
    if total < need or not models:
        room = min(
            total,
            max((book.headroom(job.team, m) for m in candidate_models(fleet, job)), default=0.0),
        )
        shown = "unlimited" if math.isinf(room) else f"{room / 1000:g}"
        return None, Verdict(
            Code.WAIT_QUOTA,
            f"team {job.team!r} quota: needs {need / 1000:g} GPUs, {shown} available now (borrowing included)",
        )
    if tuple(models) == candidate_models(fleet, job):
        return job, None
    worker = dataclasses.replace(job.worker, gpu_models=tuple(models))
    return dataclasses.replace(job, worker=worker), None


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
