"""The long random run (``long_run.py``): short seeded streams under hypothesis, one stream of
a million events (marked ``long``; ``make test`` runs it: about 2 minutes on 2 cores), the
core bug the run found (now fixed), and the checker's own teeth (it fails on forged states and
actions)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config import SchedulerConfig, build_core
from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
from scheduler.core.events import Event, JobSubmitted, NodeCordoned, NodeLost
from scheduler.core.model import (
    Gpu,
    Job,
    Node,
    Placement,
    Topology,
    WorkerPlacement,
    WorkerRequest,
)
from scheduler.core.outcomes import PreemptReason
from scheduler.core.queueing.quota import ANY_MODEL, Quota, QuotaConfig
from scheduler.core.state import ClusterState
from scheduler.policies.registry import PACKING, QUEUE
from tests.property.long_run import FLEET, Churn, Model, Violation, adopt, check_state, run

ROOT = Path(__file__).resolve().parents[2]
MILLION = 1_000_000
PREFIX = 50_000  # rerun in another process for determinism (the whole run twice is too slow)
EVERY_POLICY = Churn(packings=tuple(PACKING), queues=tuple(QUEUE))  # the slow ones too


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_short_streams_keep_every_invariant_and_repeat_exactly(seed: int) -> None:
    """2,000 events in four segments (so three restores under new quotas, classes and
    policies, every packing policy among them), the state checked every 100 events."""
    first = run(seed, 2000, segment_events=500, check_every=100, churn=EVERY_POLICY)
    assert first.violation is None, first.violation
    again = run(seed, 2000, segment_events=500, check_every=100, churn=EVERY_POLICY)
    assert again.digest == first.digest, f"seed {seed}: the same events gave other actions"


@pytest.mark.long
def test_a_million_random_events() -> None:
    """1,000,000 events in ten segments; the model checks every call, the state is checked
    every 1,000 events; determinism on the first 50,000 events, rerun in a fresh process under
    another ``PYTHONHASHSEED`` (set iteration order must not leak into the actions)."""
    seed = 20_260_101
    # run()'s defaults (segments of 100,000 events, checks every 1,000), as the rerun's
    res = run(seed, MILLION, prefix_events=PREFIX)
    assert res.violation is None, res.violation
    assert res.events >= MILLION and res.segments == 10
    s = res.stats
    for topology in Topology:  # every shape was placed, single and gang
        assert s[f"launch {topology.value} xFalse"] > 100
        assert s[f"launch {topology.value} xTrue"] > 100
    for reason in ("priority", "quota_reclaim", "drain", "node_lost"):
        assert s[f"preempt {reason}"] > 50, reason
    assert s["telemetry drain"] > 100 and s["reject duplicate"] > 100
    assert s["launch borrowing"] > 100 and s["launch after preempting"] > 100
    assert res.max_pending < 100, "the queue must stay bounded"
    env = {**os.environ, "PYTHONHASHSEED": "4242", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.property.long_run", str(seed), str(PREFIX), str(PREFIX)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    digest, verdict, *_ = out.stdout.split()
    assert verdict == "ok"
    assert digest == res.prefix_digest, "the same events gave other actions in another process"


# ----------------------------------------------------------------------- a core bug
# The bug the random run found (fixed): after a config change (snapshot restored under new
# quotas) dropped a team from the quotas, that team's pending jobs were admitted with no limit
# at all (admission.admit read a missing quota as unlimited), while a new submission of the
# team was refused as "team has no quota".


def test_a_team_dropped_from_the_quotas_starts_nothing_more() -> None:
    """The minimal reproduction: team b holds its 4 GPUs and waits with 4 more; the quotas
    are changed to name team a only; the next cycle starts b's waiting job (8 GPUs, no quota)
    though a new submission of b is refused."""
    nodes = (Node("n0", 64_000, 262_144, tuple(Gpu("H100", 81_920) for _ in range(8))),)
    both = QuotaConfig((Quota("a", ANY_MODEL, 8.0), Quota("b", ANY_MODEL, 4.0)))
    core = build_core(SchedulerConfig(quotas=both), nodes)
    four = WorkerRequest(1000, 1024, 4)
    core.handle(
        JobSubmitted(0.0, Job("b1", four, team="b")), JobSubmitted(0.0, Job("b2", four, team="b"))
    )
    assert sorted(core.running) == ["b1"] and core.pending == ("b2",)
    only_a = QuotaConfig((Quota("a", ANY_MODEL, 8.0),))
    core = adopt(core, SchedulerConfig(quotas=only_a))
    actions = core.handle(JobSubmitted(1.0, Job("b3", four, team="b")))
    assert [a.job_id for a in actions if isinstance(a, Reject)] == ["b3"]  # b submits nothing
    assert "b2" not in core.running, actions  # ... nor starts what it had queued
    assert core.verdict_of("b2").reason == "team 'b' has no quota (teams with quota: a)"


def test_short_streams_that_drop_teams_from_the_quotas() -> None:
    """The random run found it too (seed 2: at event 2016, the first launch of a dropped
    team's job after the restore at event 2000); any other violation fails outright."""
    res = run(2, 4000, segment_events=2000, churn=Churn(drop_teams=0.2))
    if res.violation is not None and "has no quota" not in res.violation:
        pytest.fail(res.violation)
    assert res.violation is None, res.violation


# ----------------------------------------------------------------- the checker can fail
def _busy_core() -> ClusterState:
    """A core running a 2-worker same-node gang on an H100 node and a GPU-sharing job, under
    a quota for team ``ads``."""
    quotas = QuotaConfig((Quota("ads", ANY_MODEL, 16.0),))
    core = build_core(SchedulerConfig(quotas=quotas), FLEET)
    gang = Job(
        "gang",
        WorkerRequest(1000, 1024, 2, gpu_models=("H100",)),
        num_workers=2,
        team="ads",
        topology=Topology.SAME_NODE,
    )
    share = Job("share", WorkerRequest(500, 512, 1, 250), team="ads")
    core.handle(JobSubmitted(0.0, gang), JobSubmitted(0.0, share))
    assert sorted(core.running) == ["gang", "share"]
    assert check_state(core, FLEET) == []
    return core


def test_check_state_catches_over_allocation() -> None:
    core = _busy_core()
    twin = dataclasses.replace(core.jobs["gang"], job_id="twin")
    core.jobs["twin"] = twin
    core.running["twin"] = dataclasses.replace(core.running["gang"], job_id="twin")
    errors = check_state(core, FLEET)
    assert any("over-allocated" in e for e in errors), errors


def test_check_state_catches_a_broken_gang_a_wrong_request_and_quota_drift() -> None:
    core = _busy_core()
    p = core.running["gang"]
    core.running["gang"] = Placement("gang", p.workers[:1])
    w = core.running["share"].workers[0]
    core.running["share"] = Placement("share", (dataclasses.replace(w, gpu_milli=100),))
    errors = check_state(core, FLEET)
    assert any("gang broken" in e for e in errors), errors
    assert any("the job asks" in e for e in errors), errors
    assert any("quota use" in e for e in errors), errors


def test_check_state_catches_a_job_left_on_a_lost_node() -> None:
    core = _busy_core()
    node = core.running["gang"].workers[0].node
    core.off[node] = {"lost"}
    errors = check_state(core, FLEET)
    assert any(f"runs on {node}" in e for e in errors), errors


def _launch(job_id: str, node: str, gpus: tuple[int, ...], milli: int = 1000) -> Launch:
    """A forged launch of one worker (1 CPU, 1 GiB) on ``node``'s ``gpus``."""
    index = [n.name for n in FLEET].index(node)
    worker = WorkerPlacement(node, index, gpus, milli, 1000, 1024)
    return Launch(job_id, Placement(job_id, (worker,)), 1.0, "forged")


def _model_after(job: Job, *events: Event) -> Model:
    model = Model(FLEET)
    model.replay([JobSubmitted(0.0, job)], [])
    if events:
        model.replay(list(events), [])
    return model


JOB = Job("j1", WorkerRequest(1000, 1024, 1))


@pytest.mark.parametrize(
    ("events", "actions", "what"),
    [
        ([NodeCordoned(1.0, "h100-0")], [_launch("j1", "h100-0", (0,))], "cordon"),
        ([], [_launch("j1", "a100-1", (3,))], "unhealthy"),  # GPU 3 of a100-1 starts sick
        ([], [_launch("j1", "h100-0", (0, 1))], "wants 1"),
        ([], [_launch("j1", "cpu-0", (0,))], "does not exist"),
        ([], [_launch("j2", "h100-0", (0,))], "not pending"),
        ([], [Release("j1", 1.0, "forged")], "unexpected action"),
    ],
)
def test_the_model_refuses_forged_actions(
    events: list[Event], actions: list[Action], what: str
) -> None:
    model = _model_after(JOB)
    with pytest.raises(Violation, match=what):
        model.replay(events, actions)


def test_the_model_refuses_a_double_booked_gpu_and_a_missing_evacuation() -> None:
    model = _model_after(JOB)
    model.replay([JobSubmitted(1.0, dataclasses.replace(JOB, job_id="j2"))], [])
    model.replay([NodeCordoned(1.0, "cpu-1")], [_launch("j1", "h100-0", (0,))])
    with pytest.raises(Violation, match="over-allocated"):
        model.replay([NodeCordoned(1.0, "cpu-1")], [_launch("j2", "h100-0", (0,))])
    model = _model_after(JOB)
    model.replay([NodeCordoned(1.0, "cpu-1")], [_launch("j1", "h100-0", (0,))])
    with pytest.raises(Violation, match="evacuating h100-0"):
        model.replay([NodeLost(2.0, "h100-0")], [])
    model = _model_after(JOB)
    model.replay([NodeCordoned(1.0, "cpu-1")], [_launch("j1", "h100-0", (0,))])
    model.replay(
        [NodeLost(2.0, "h100-0")], [Preempt("j1", 2.0, "x", 0.0, 0.0, PreemptReason.NODE_LOST)]
    )
    assert "j1" in model.pending


def test_the_model_refuses_a_launch_past_the_quota() -> None:
    model = _model_after(JOB)
    model.sched = SchedulerConfig(quotas=QuotaConfig((Quota("default", ANY_MODEL, 0.0, 0.0),)))
    with pytest.raises(Violation, match="nominal"):
        model.replay([NodeCordoned(1.0, "cpu-1")], [_launch("j1", "h100-0", (0,))])


def test_the_run_reports_a_core_that_loses_a_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """A core that forgets to say it released a job fails the run, naming seed and event."""
    real = ClusterState.handle

    def lossy(self: ClusterState, *events: Event) -> list[Action]:
        return [a for a in real(self, *events) if not isinstance(a, Release)]

    monkeypatch.setattr(ClusterState, "handle", lossy)
    res = run(7, 2000, segment_events=1000)
    assert res.violation is not None and res.violation.startswith("seed 7 event ")
    assert "expected Release" in res.violation
