"""The scheduling cycle's behaviour, pinned: seeded random event streams through the core
under every switch (backfill modes, quotas, preemption, LAS, aging, topology packing), each
reduced to the sha256 of its action stream. The digests were recorded before ``ClusterState``
was split into facts and cycle (commit 13aed71) and hold after it: a change to any digest is a
change of behaviour and must say why."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Preempt
from scheduler.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeCordoned,
    NodeDrained,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
    Tick,
)
from scheduler.core.model import Gpu, Job, Node, Topology, WorkerRequest
from scheduler.core.outcomes import PreemptReason
from scheduler.core.queueing.quota import Quota, QuotaConfig

N = 300  # events per stream
MODELS = ("H800", "H20", "A100")
QUOTAS = QuotaConfig(
    (Quota("a", "*", 30), Quota("b", "*", 20), Quota("c", "H800", 10)),
    (("a", "all"), ("b", "all"), ("c", "all")),
)


def _fleet() -> list[Node]:
    nodes = []
    for i in range(12):
        g = (8, 8, 4, 2)[i % 4]
        gpus = tuple(Gpu(MODELS[i % 3], 80_000, nvlink_domain=k // 4) for k in range(g))
        nodes.append(Node(f"n{i:02d}", 16_000 * g, 64_000 * g, gpus, (("rack", f"r{i % 3}"),)))
    return nodes


def _stream(core_config: SchedulerConfig, seed: int, n: int, reasons: bool = True) -> str:
    core = build_core(core_config, _fleet())
    rng = np.random.default_rng(seed)
    out = hashlib.sha256()
    t, live, k = 0.0, list[str](), 0
    for _ in range(n):
        t += float(rng.exponential(30))
        r = rng.random()
        ev: Event
        if r < 0.62:
            g = int(rng.choice([0, 1, 2, 4, 8]))
            milli = 1000 if g != 1 or rng.random() < 0.7 else int(rng.choice([250, 500]))
            models = () if rng.random() < 0.7 else (str(rng.choice(MODELS)),)
            same_node = g >= 1 and milli == 1000 and rng.random() < 0.1
            job = Job(
                f"j{k:05d}",
                WorkerRequest(2000 * max(g, 1), 8000 * max(g, 1), g, milli, models),
                int(rng.choice([1, 1, 2, 4])),
                str(rng.choice(["a", "b", "c"])),
                int(rng.choice([0, 100, 1000])),
                t,
                Topology.SAME_NODE if same_node else Topology.ANY,
                float(rng.choice([600, 3600, 7200])) if rng.random() < 0.8 else None,
                float(rng.choice([300, 900])) if rng.random() < 0.5 else None,
            )
            k += 1
            live.append(job.job_id)
            ev = JobSubmitted(t, job)
        elif r < 0.8 and live:
            j = live.pop(int(rng.integers(len(live))))
            ev = JobFinished(t, j) if rng.random() < 0.8 else JobCancelled(t, j)
        else:
            node = f"n{int(rng.integers(12)):02d}"
            kinds = (NodeCordoned, NodeUncordoned, NodeDrained, NodeLost, NodeJoined)
            pick = int(rng.integers(6))
            ev = Tick(t) if pick == 5 else kinds[pick](t, node)
        for act in core.handle(ev):
            if isinstance(act, Preempt) and not reasons:
                act = dataclasses.replace(act, reason=PreemptReason.PRIORITY)
            out.update(repr(act).encode())
        out.update(repr((core.pending[:5], len(core.running))).encode())
    for info in core.pending_info()[:20]:
        out.update(repr(info).encode())
    return out.hexdigest()[:16]


# name -> (config, digest now, digest with every preemption reason masked: the same before
# the split). Only the quota cases changed, and only in reasons: a decision's later victims
# were labelled after its earlier victims had been stopped (a team that stopped borrowing
# half way got "priority" or "attained_service"); each now carries the tier it was chosen
# from (``quota_reclaim``).
CASES = {
    "greedy": (SchedulerConfig(backfill="greedy"), "609ba7d5e3b650e7", "6d668e9f5167f5f8"),
    "strict": (SchedulerConfig(backfill="none"), "1b2544cf5af9b069", "d2921da8dda5c8da"),
    "easy_priority_preempt": (
        SchedulerConfig(backfill="easy", preemption=True, queue="priority"),
        "4ed686c16efa8a07",
        "9e11e72272843dfb",
    ),
    "drf_quota_preempt": (
        SchedulerConfig(backfill="easy", preemption=True, quotas=QUOTAS, queue="drf"),
        "7c7611160ced39cd",
        "28b2b0367c5de868",
    ),
    "las_preempt": (
        SchedulerConfig(backfill="easy", preemption=True, queue="las"),
        "e4117c9e147ca6fb",
        "84de7e37538ec05f",
    ),
    "sjf_aging": (
        SchedulerConfig(backfill="easy", aging_s=3000.0, queue="sjf"),
        "b12eb6efb5c64165",
        "ab2cdf9ebffebbfc",
    ),
    "topology_quota": (
        SchedulerConfig(packing="topology", quotas=QUOTAS),
        "839fc0a3d79190f2",
        "977bd59e1b8912ad",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_action_stream_digest(name: str) -> None:
    config, digest, before_split = CASES[name]
    assert _stream(config, seed=7, n=N) == digest
    assert _stream(config, seed=7, n=N, reasons=False) == before_split
