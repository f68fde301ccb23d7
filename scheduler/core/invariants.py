"""Invariant checker: recomputes every allocation from the committed placements and compares.

Returns a list of violations (empty when all hold) so tests and the live service can assert on it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scheduler.core.model import Job, Placement
from scheduler.core.placement.fleet import Fleet


def check(fleet: Fleet, placements: Mapping[str, Placement], jobs: Mapping[str, Job]) -> list[str]:
    errors: list[str] = []
    cpu = fleet.cpu_cap.copy()
    mem = fleet.mem_cap.copy()
    gpu = fleet.gpu_cap.copy()
    for job_id in sorted(placements):
        p = placements[job_id]
        job = jobs.get(job_id)
        if job is None:
            errors.append(f"placement for unknown job {job_id}")
            continue
        if len(p.workers) != job.num_workers:
            errors.append(
                f"job {job_id}: {len(p.workers)} of {job.num_workers} workers placed (gang broken)"
            )
        for w in p.workers:
            if job.worker.regions and not fleet.in_regions(job.worker.regions)[w.node_index]:
                errors.append(
                    f"job {job_id}: worker on {w.node} outside its regions {job.worker.regions}"
                )
            cpu[w.node_index] -= w.cpu_milli
            mem[w.node_index] -= w.memory_mib
            if len(w.gpu_indices) != job.worker.gpus or len(set(w.gpu_indices)) != len(
                w.gpu_indices
            ):
                errors.append(
                    f"job {job_id}: worker on {w.node} has GPUs {w.gpu_indices}, wants {job.worker.gpus}"
                )
            for g in w.gpu_indices:
                if not fleet.gpu_exists[w.node_index, g]:
                    errors.append(f"job {job_id}: GPU {g} does not exist on {w.node}")
                gpu[w.node_index, g] -= w.gpu_milli
            if job.worker.gpu_models and w.gpu_indices:
                allowed = {fleet.model_id.get(m, -1) for m in job.worker.gpu_models}
                for g in w.gpu_indices:
                    if int(fleet.gpu_model[w.node_index, g]) not in allowed:
                        errors.append(
                            f"job {job_id}: GPU {g} on {w.node} is not one of {job.worker.gpu_models}"
                        )
        if len({w.node for w in p.workers}) > 1 and job.topology.value in (
            "same_node",
            "same_nvlink",
        ):
            errors.append(f"job {job_id}: {job.topology.value} gang spread over several nodes")
    for name, mine, theirs in (
        ("cpu", cpu, fleet.cpu_free),
        ("memory", mem, fleet.mem_free),
        ("gpu", gpu, fleet.gpu_free),
    ):
        if (mine < 0).any():
            bad = int(np.flatnonzero((mine < 0).reshape(len(mine), -1).any(axis=1))[0])
            errors.append(f"{name} over-allocated on node {fleet.names[bad]}")
        if not np.array_equal(mine, theirs):
            bad = int(np.flatnonzero((mine != theirs).reshape(len(mine), -1).any(axis=1))[0])
            errors.append(f"{name} free on node {fleet.names[bad]} disagrees with the placements")
    return errors
