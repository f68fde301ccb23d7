"""The four policy kinds: chosen by name, read-only views, and the two policies beside the
core's defaults (``nominal`` admission, ``newest`` preemption). Also: the core's modules
import each other without a cycle."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Launch, Preempt, Reject
from scheduler.core.events import JobSubmitted
from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import Fleet, IntArray
from scheduler.core.placement.packing import FloatArray, PackingBase
from scheduler.core.policy import FleetView
from scheduler.core.queueing.quota import Quota, QuotaConfig
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.core.verdict import Code
from scheduler.policies.registry import (
    ADMISSION,
    PREEMPTION,
    UnknownPolicy,
    make_admission,
    make_preemption,
    make_queue,
)
from tests.builders import make_job, make_node

CORE = Path(__file__).resolve().parents[2] / "scheduler" / "core"

TWO_TEAMS = QuotaConfig(
    (Quota("a", "*", 4), Quota("b", "*", 4)),
    (("a", "c1"), ("b", "c1")),
)


def test_registries_name_every_kind_and_refuse_unknown_names() -> None:
    assert sorted(ADMISSION) == ["nominal", "quota"]
    assert sorted(PREEMPTION) == ["cheapest", "newest"]
    assert make_admission("nominal").name == "nominal"
    assert make_preemption("newest", 3).name == "newest"
    with pytest.raises(
        UnknownPolicy, match="unknown admission policy 'kueue'; known: quota, nominal"
    ):
        make_admission("kueue")
    with pytest.raises(ValueError, match="unknown preemption policy 'oldest'"):
        SchedulerConfig(preemption_policy="oldest")


def test_a_stored_config_with_fail_fast_false_still_loads_and_true_says_where_it_went() -> None:
    assert SchedulerConfig.model_validate({"fail_fast": False}) == SchedulerConfig()
    with pytest.raises(ValueError, match="packing replay"):
        SchedulerConfig.model_validate({"fail_fast": True})


def _two_team_core(admission: str) -> ClusterState:
    config = SchedulerConfig(
        packing="best_fit", queue="fifo", backfill="greedy", preemption=False,
        quotas=TWO_TEAMS, admission=admission,
    )  # fmt: skip
    return build_core(config, [make_node("n", gpus=8)])


def test_quota_admission_borrows_idle_quota_and_nominal_does_not() -> None:
    for admission, second in (("quota", Launch), ("nominal", None)):
        core = _two_team_core(admission)
        first = core.handle(JobSubmitted(0, make_job("a1", gpus=4, team="a")))
        assert [type(x) for x in first] == [Launch]
        acts = core.handle(JobSubmitted(1, make_job("a2", gpus=4, team="a")))
        if second is None:
            assert acts == []
            verdict = core.verdict_of("a2")
            assert verdict.code is Code.WAIT_QUOTA
            assert verdict.reason == "team 'a' quota: needs 4 GPUs, 0 available now (no borrowing)"
        else:
            assert [type(x) for x in acts] == [second]


def test_nominal_admission_refuses_at_submission_what_exceeds_the_nominal_quota() -> None:
    core = _two_team_core("nominal")
    acts = core.handle(JobSubmitted(0, make_job("big", gpus=8, team="a")))
    assert len(acts) == 1 and isinstance(acts[0], Reject) and acts[0].code is Code.NEVER
    assert acts[0].reason == "needs 8 GPUs; team 'a' can hold at most 4 without borrowing"
    borrowing = _two_team_core("quota")
    assert isinstance(
        borrowing.handle(JobSubmitted(0, make_job("big", gpus=8, team="a")))[0], Launch
    )


@pytest.mark.parametrize(("policy", "victim"), [("cheapest", "old"), ("newest", "new")])
def test_preemption_policies_differ_only_in_which_victim_goes_first(
    policy: str, victim: str
) -> None:
    config = SchedulerConfig(
        packing="best_fit", queue="priority", backfill="greedy", preemption=True,
        preemption_policy=policy,
    )  # fmt: skip
    core = build_core(config, [make_node("n", gpus=2)])
    # "old" started first but checkpointed 10 s ago (loses 10 GPU-s); "new" never checkpoints
    old = dataclasses.replace(make_job("old", priority=0), checkpoint_interval_s=90.0)
    core.handle(JobSubmitted(0, old))
    core.handle(JobSubmitted(10, make_job("new", priority=0)))
    acts = core.handle(JobSubmitted(100, make_job("urgent", priority=10)))
    assert [(type(x).__name__, x.job_id) for x in acts] == [
        ("Preempt", victim),
        ("Launch", "urgent"),
    ]
    assert isinstance(acts[0], Preempt)
    assert acts[0].lost_gpu_s == (10.0 if victim == "old" else 90.0)


class _Scribbler(PackingBase):
    """A packing policy that tries to change the fleet while scoring."""

    name: ClassVar[str] = "scribbler"

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        fleet.gpu_free[nodes] = 0
        return np.zeros(len(nodes))


def test_packing_policies_see_the_fleet_read_only() -> None:
    core = ClusterState([make_node("n", gpus=2)], _Scribbler(), CoreConfig(), make_queue("fifo"))
    with pytest.raises(ValueError, match="read-only"):
        core.handle(JobSubmitted(0, make_job("j")))
    assert core.fleet.gpu_free.sum() == 2000  # nothing was written


def test_the_read_only_view_follows_the_fleet() -> None:
    fleet = Fleet([make_node("n", gpus=2)])
    fleet.take(0, (1,), 1000, 1000, 1024)
    view = fleet.view
    assert view.gpu_free.tolist() == [[1000, 0]] and not view.gpu_free.flags.writeable
    assert np.shares_memory(view.gpu_free, fleet.gpu_free)
    mask = view.eligible_gpus(WorkerRequest(1000, 1024, 1))
    assert not mask.flags.writeable


def _core_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in sorted(CORE.rglob("*.py")):
        rel = f.relative_to(CORE.parents[1]).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                deps |= {m for m in mods if m.startswith("scheduler.core")}
        graph[name] = deps
    return {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}


def test_the_core_imports_without_a_cycle() -> None:
    graph = _core_imports()
    assert "scheduler.core.cycle" in graph["scheduler.core.state"]
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            assert state.get(d) != 1, " -> ".join([*path, m, d])
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
