"""The service a team can trust, with the shell's ports faked (no Ray): team isolation and
audit, priority grants, group commit, journal failures (a real full tmpfs, a lock held by
another process), telemetry checked before the journal, operator controls, restart from a
snapshot with a changed fleet and quotas, and fencing of runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from scheduler.runtime.auth import Principal
from scheduler.runtime.config import ServiceConfig, TeamGrant, parse_fleet
from scheduler.runtime.control import MemoryKV, RunChannel
from scheduler.runtime.journal import Journal
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.telemetry import GpuReading, NodeSample
from scheduler.runtime.views import (
    Conflict,
    Forbidden,
    JobState,
    NodeOp,
    Unavailable,
    UnknownNode,
)
from tests.unit.runtime.test_service import FLEET, Clock, FakeCluster, FakeLauncher, spec

PERCEPTION = Principal("perception", "perception", False)
PLANNING = Principal("planning", "planning", False)
OPS = Principal("ops", None, True)
H100 = "NVIDIA H100 80GB HBM3"


def make(
    tmp_path: Path, fleet: Any = FLEET, **cfg: Any
) -> tuple[SchedulerService, FakeLauncher, FakeCluster, Clock]:
    launcher, cluster, clock = FakeLauncher(), FakeCluster(), Clock()
    cluster.alive = {n.name for n in fleet}
    settings = {"state_dir": str(tmp_path / "state"), "stop_grace_s": 30.0, **cfg}
    svc = SchedulerService(ServiceConfig(**settings), fleet, launcher, cluster, True, clock)
    svc.step()
    return svc, launcher, cluster, clock


def restart(
    svc: SchedulerService, launcher: FakeLauncher, cluster: FakeCluster, clock: Clock,
    fleet: Any = FLEET, **cfg: Any,
) -> SchedulerService:  # fmt: skip
    svc.close()
    settings = {"state_dir": str(svc.cfg.state_dir), "stop_grace_s": 30.0, **cfg}
    again = SchedulerService(ServiceConfig(**settings), fleet, launcher, cluster, True, clock)
    again.step()
    return again


# ------------------------------------------------------------------ isolation
def test_idempotency_keys_are_scoped_to_the_callers_team(tmp_path: Path) -> None:
    svc, *_ = make(tmp_path)
    a = svc.submit(spec("a"), "key-1", PERCEPTION)
    b = svc.submit({**spec("b"), "team": "planning"}, "key-1", PLANNING)
    assert a.job_id != b.job_id and (a.team, b.team) == ("perception", "planning")
    assert svc.submit(spec("a"), "key-1", PERCEPTION).job_id == a.job_id  # a retry
    with pytest.raises(Conflict) as other:
        svc.submit(spec("a", gpus=2), "key-1", PERCEPTION)
    assert str(other.value) == (
        f"Idempotency-Key 'key-1' of team 'perception' was used for {a.job_id} with another "
        "body; send a new key for a new job"
    )
    assert [j.job_id for j in svc.list_jobs()] == [a.job_id, b.job_id]


def test_priority_is_authorised_by_the_teams_grant(tmp_path: Path) -> None:
    svc, *_ = make(tmp_path, teams=(TeamGrant("perception", max_priority=10),))
    assert svc.submit(spec("ok", priority=10), who=PERCEPTION).priority == 10
    with pytest.raises(Forbidden) as high:
        svc.submit(spec("x", priority=1099511627776), who=PERCEPTION)
    assert high.value.field == "priority"
    assert high.value.message.startswith(
        "priority: 1099511627776 is above the highest priority team 'perception' may use (10)"
    )
    with pytest.raises(Forbidden):  # a team the config does not list: priority 0 only
        svc.submit({**spec("y", priority=1), "team": "planning"}, who=PLANNING)
    assert svc.submit(spec("admin", priority=1099511627776), who=OPS).priority == 1099511627776
    audit = [(a.principal, a.action, a.outcome) for a in svc.audit()]
    assert audit == [
        ("perception", "submit", "ok"),
        ("perception", "submit", "403"),
        ("planning", "submit", "403"),
        ("ops", "submit", "ok"),
    ]


def test_priority_classes_a_team_may_name(tmp_path: Path) -> None:
    classes = tmp_path / "classes.yaml"
    classes.write_text(
        "classes: {production: 1000, research: 100, spot: 0}\ndefault: research\n"
        "teams: {planning: spot}\n"
    )
    svc, *_ = make(
        tmp_path, priority_classes=str(classes),
        teams=(TeamGrant("perception", priority_classes=("production",)),),
    )  # fmt: skip
    assert svc.submit(spec("p", priority_class="production"), who=PERCEPTION).priority == 1000
    assert svc.submit({**spec("d"), "team": "planning"}, who=PLANNING).priority == 0
    with pytest.raises(Forbidden) as no:
        svc.submit({**spec("q", priority_class="production"), "team": "planning"}, who=PLANNING)
    assert no.value.message.startswith(
        "priority_class: team 'planning' may not use class 'production' (it may use: spot)"
    )


def test_a_team_at_its_own_priority_never_preempts_another_team(tmp_path: Path) -> None:
    svc, _, _, clock = make(
        tmp_path, preemption=True, teams=(TeamGrant("planning", max_priority=5),)
    )
    mine = svc.submit(spec("mine", gpus=2, workers=2), who=PERCEPTION)  # the whole fleet
    clock.t += 60  # jobs started this very instant are spared (reclaim.py)
    theirs = svc.submit({**spec("theirs", gpus=2), "team": "planning"}, who=PLANNING)
    assert svc.get_job(mine.job_id).state is JobState.RUNNING  # equal priority: it waits
    assert svc.get_job(theirs.job_id).state is JobState.PENDING
    urgent = svc.submit({**spec("urgent", gpus=2, priority=5), "team": "planning"}, who=PLANNING)
    assert svc.get_job(mine.job_id).state is JobState.PENDING  # its grant allows this one
    assert svc.get_job(mine.job_id).preemptions == 1
    assert svc.get_job(urgent.job_id).state is JobState.RUNNING


def test_cross_team_cancel_is_refused_and_audited(tmp_path: Path) -> None:
    svc, *_ = make(tmp_path)
    job = svc.submit(spec("a"), who=PERCEPTION)
    with pytest.raises(Forbidden):
        svc.cancel(job.job_id, PLANNING)
    assert svc.get_job(job.job_id).state is JobState.RUNNING
    assert svc.cancel(job.job_id, PERCEPTION).state is JobState.CANCELLED
    assert [(a.principal, a.action, a.target, a.outcome) for a in svc.audit()][1:] == [
        ("planning", "cancel", job.job_id, "403"),
        ("perception", "cancel", job.job_id, "ok"),
    ]
    assert [a.principal for a in svc.audit(team="planning")] == ["planning"]


# --------------------------------------------------------------- group commit
def test_submissions_arriving_together_are_one_batch_and_one_cycle(tmp_path: Path) -> None:
    from scheduler.runtime.driver import Submit

    svc, *_ = make(tmp_path)
    cycles = svc.core.cycles
    inputs = [Submit(PERCEPTION, spec(f"j{i}"), None) for i in range(20)]
    for inp in inputs:
        svc.inbox.put(inp)
    svc._pump()
    views = [inp.reply.wait(1) for inp in inputs]
    assert svc.core.cycles == cycles + 1  # one core cycle served all twenty
    assert [v.job_id for v in views] == [f"job-{i:06d}" for i in range(1, 21)]
    assert [v.state for v in views].count(JobState.RUNNING) == 4  # 4 GPUs in the fleet
    with Journal(Path(svc.cfg.state_dir) / "journal.db") as j:
        assert len(j.submissions()) == 20


def test_threaded_service_answers_concurrent_submissions(tmp_path: Path) -> None:
    svc, *_ = make(tmp_path, loop_period_s=0.05)
    svc.start()
    out: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(10):
            view = svc.submit(spec(f"c{k}-{i}"), f"c{k}-{i}", PERCEPTION)
            with lock:
                out.append(view.job_id)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(out) == [f"job-{i:06d}" for i in range(1, 81)]
    assert svc.errors == []
    svc.close()


# -------------------------------------------------------------- journal faults
@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_answers_503_loses_nothing_and_recovers(small_disk: Path) -> None:
    launcher, cluster, clock = FakeLauncher(), FakeCluster(), Clock()
    cfg = ServiceConfig(state_dir=str(small_disk / "state"), stop_grace_s=30.0)
    svc = SchedulerService(cfg, FLEET, launcher, cluster, True, clock)
    svc.step()
    accepted = [svc.submit(spec(f"ok{i}", gpus=2, workers=2)).job_id for i in range(3)]
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    refused = 0
    for i in range(200):
        try:
            svc.submit(spec(f"big-spec-{i}", gpus=2, workers=2, config={"pad": "x" * 4000}))
        except Unavailable as e:
            assert "disk full" in e.reason
            refused += 1
            break
    assert refused == 1
    # nothing half-applied: the core holds exactly what the journal holds
    listed = [j.job_id for j in svc.list_jobs()]
    assert accepted == listed[:3]
    assert set(svc.core.jobs) == set(listed)
    filler.unlink()
    late = svc.submit(spec("late", gpus=2, workers=2))
    assert late.state is JobState.PENDING
    svc.close()
    again = SchedulerService(cfg, FLEET, launcher, cluster, True, clock)
    assert [j.job_id for j in again.list_jobs()] == [*listed, late.job_id]
    again.close()


def test_a_lock_held_by_another_process_answers_503_then_recovers(tmp_path: Path) -> None:
    svc, *_ = make(tmp_path)
    svc.journal._conn.execute("PRAGMA busy_timeout = 200")  # type: ignore[union-attr]
    db = Path(svc.cfg.state_dir) / "journal.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(30)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Unavailable) as locked:
            svc.submit(spec("a"))
        assert "locked" in locked.value.reason
        assert svc.list_jobs() == [] and svc.core.jobs == {}
    finally:
        holder.kill()
        holder.wait()
    assert svc.submit(spec("a")).state is JobState.RUNNING


# ------------------------------------------------------------------ telemetry
def reading(index: int, **kw: Any) -> GpuReading:
    base: dict[str, Any] = dict(
        index=index, model=H100, memory_total_mib=81_559, memory_used_mib=0,
        utilization_pct=0.0, temperature_c=40.0, power_w=70.0, ecc_uncorrected=0,
        nvlink_active=None, xids=(),
    )  # fmt: skip
    return GpuReading(**{**base, **kw})


def test_telemetry_that_contradicts_the_fleet_is_refused_before_the_journal(
    tmp_path: Path,
) -> None:
    svc, _, cluster, clock = make(tmp_path, telemetry_period_s=0.001)
    with Journal(Path(svc.cfg.state_dir) / "journal.db") as j:
        before = j.last_seq()
    bad = [
        NodeSample("ghost", 1.0, (reading(0),), True),  # not in the fleet
        NodeSample("a", 1.0, (reading(0), reading(1), reading(2)), True),  # 'a' has 2 GPUs
        NodeSample("b", 1.0, (reading(0, temperature_c=float("nan")), reading(1)), True),
    ]
    cluster.telemetry = lambda: bad  # type: ignore[method-assign]
    clock.t += 1
    svc.step()
    with Journal(Path(svc.cfg.state_dir) / "journal.db") as j:
        assert j.last_seq() == before  # nothing journaled
    text = svc.metrics_text()
    for reason in ("unknown_node", "extra_gpu", "not_finite"):
        assert f'gpuyard_telemetry_refused_total{{reason="{reason}"}} 1.0' in text
    # a good sample still goes in, and a later restart has nothing to choke on
    cluster.telemetry = lambda: [NodeSample("a", 2.0, (reading(0), reading(1)), True)]  # type: ignore[method-assign]
    clock.t += 1
    svc.step()
    with Journal(Path(svc.cfg.state_dir) / "journal.db") as j:
        assert j.last_seq() == before + 2  # one batch, an event per GPU


# ----------------------------------------------------------- operator controls
def test_cordon_drain_uncordon(tmp_path: Path) -> None:
    svc, launcher, _, clock = make(tmp_path)
    job = svc.submit(spec("j", gpus=2))
    node = job.placement[0].node
    other = "b" if node == "a" else "a"
    with pytest.raises(Forbidden):
        svc.node_op(node, NodeOp.CORDON, PERCEPTION)
    with pytest.raises(UnknownNode):
        svc.node_op("nope", NodeOp.CORDON, OPS)
    view = svc.node_op(other, NodeOp.CORDON, OPS)
    assert (view.schedulable, view.off_reasons) == (False, ["cordon"])
    assert view.off[0].since_s == clock.t and view.off[0].cause == "cordon by ops"
    clock.t += 5
    view = svc.node_op(node, NodeOp.DRAIN, OPS)
    assert view.off_reasons == ["drain"]
    (run,) = launcher.of(job.job_id)
    assert run.stop_asked  # checkpoint and move
    run.end("stopped")
    svc.step()
    assert svc.get_job(job.job_id).state is JobState.PENDING  # nowhere to go: both off
    svc.node_op(other, NodeOp.UNCORDON, OPS)
    svc.step()
    moved = svc.get_job(job.job_id)
    assert moved.state is JobState.RUNNING and moved.placement[0].node == other
    assert [(a.action, a.target, a.outcome) for a in svc.audit() if a.action != "submit"] == [
        ("cordon", node, "403"),
        ("cordon", other, "ok"),
        ("drain", node, "ok"),
        ("uncordon", other, "ok"),
    ]


def test_uncordon_clears_gpu_marks_and_resets_the_ecc_baseline(tmp_path: Path) -> None:
    svc, _, cluster, clock = make(tmp_path, telemetry_period_s=0.001)
    samples = [NodeSample("a", 1.0, (reading(0, ecc_uncorrected=3), reading(1)), True)]
    cluster.telemetry = lambda: samples  # type: ignore[method-assign]
    clock.t += 1
    svc.step()
    view = next(n for n in svc.nodes() if n.name == "a")
    assert view.off_reasons == ["drain"] and view.gpus[0].why_unhealthy == ["ecc"]
    svc.node_op("a", NodeOp.UNCORDON, OPS)
    view = next(n for n in svc.nodes() if n.name == "a")
    assert view.schedulable and view.gpus[0].healthy
    samples[0] = NodeSample("a", 2.0, (reading(0, ecc_uncorrected=0), reading(1)), True)
    clock.t += 1
    svc.step()  # the GPU was reset: its count went back to 0, no new error
    assert next(n for n in svc.nodes() if n.name == "a").schedulable
    samples[0] = NodeSample("a", 3.0, (reading(0, ecc_uncorrected=1), reading(1)), True)
    clock.t += 1
    svc.step()  # one new error after the reset drains it again (below the old maximum 3)
    assert next(n for n in svc.nodes() if n.name == "a").off_reasons == ["drain"]


# --------------------------------------------------------------------- restart
def test_restart_with_a_node_added_one_removed_and_a_changed_quota(tmp_path: Path) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text("quotas:\n  - {team: perception, gpu_model: '*', nominal_gpus: 4}\n")
    svc, launcher, cluster, clock = make(tmp_path, quotas=str(quotas))
    on_a = svc.submit(spec("on-a", gpus=2))
    on_b = svc.submit(spec("on-b", gpus=2))
    where = {on_a.placement[0].node: on_a.job_id, on_b.placement[0].node: on_b.job_id}
    moved_job = where["b"]
    stays = where["a"]
    quotas.write_text("quotas:\n  - {team: perception, gpu_model: '*', nominal_gpus: 8}\n")
    fleet2 = parse_fleet(
        {"nodes": [{"name": "a", "gpus": 2, "cpus": 8}, {"name": "c", "gpus": 2, "cpus": 8}]},
        Path("test"),
    )
    cluster.alive = {"a", "c"}
    clock.t += 10
    again = restart(svc, launcher, cluster, clock, fleet2, quotas=str(quotas))
    assert again.get_job(stays).state is JobState.RUNNING
    assert again.get_job(stays).placement[0].node == "a"
    assert again.get_job(stays).attempts == 1  # re-attached, never relaunched
    # the removed node's job is requeued and placed on the new node; its old run is asked
    # to checkpoint and stop, and the new attempt waits for it (never two at once)
    (old,) = launcher.of(moved_job)
    assert old.stop_asked
    moved = again.get_job(moved_job)
    assert (moved.state, moved.placement[0].node, moved.preemptions) == (JobState.RUNNING, "c", 1)
    old.end("stopped")
    again.step()
    assert [r.req.attempt for r in launcher.of(moved_job)] == [1, 2]  # type: ignore[union-attr]
    assert launcher.of(moved_job)[1].req.workers[0].node == "c"  # type: ignore[union-attr]
    assert [n.name for n in again.nodes()] == ["a", "c"]
    assert again.core.quota is not None
    # every accepted job is there once with its team, priority and spec
    assert [(j.job_id, j.team, j.spec) for j in again.list_jobs()] == [
        (on_a.job_id, "perception", on_a.spec), (on_b.job_id, "perception", on_b.spec),
    ]  # fmt: skip


def test_restart_after_many_snapshots_compacts_and_keeps_every_job(tmp_path: Path) -> None:
    svc, launcher, cluster, clock = make(tmp_path, snapshot_every=5)
    ids = []
    for i in range(30):
        clock.t += 1
        ids.append(svc.submit(spec(f"j{i}")).job_id)
    with Journal(Path(svc.cfg.state_dir) / "journal.db") as j:
        assert j.compacted_seq() > 0 and len(j.snapshots()) == 2
    again = restart(svc, launcher, cluster, clock, snapshot_every=5)
    assert [j.job_id for j in again.list_jobs()] == ids
    assert sum(j.state is JobState.RUNNING for j in again.list_jobs()) == 4
    assert all(len(launcher.of(i)) <= 1 for i in ids)  # nothing launched twice


def test_journal_verify_replays_to_the_recorded_actions(tmp_path: Path) -> None:
    from scheduler.runtime.recovery import verify

    svc, *_ = make(tmp_path, snapshot_every=4)
    for i in range(10):
        svc.submit(spec(f"j{i}"))
    svc.close()
    with Journal(Path(svc.cfg.state_dir) / "journal.db") as j:
        verdict = verify(j)
    assert verdict.mismatches == () and verdict.batches > 0


# ---------------------------------------------------------------------- fencing
def test_an_unreachable_runner_is_killed_before_its_job_is_relaunched(tmp_path: Path) -> None:
    svc, launcher, _, clock = make(tmp_path)
    job = svc.submit(spec("j"))
    (first,) = launcher.of(job.job_id)
    killed_before: list[bool] = []
    orig_status, orig_prepare = launcher.status, launcher.prepare

    def hung(handles: Any) -> list[dict[str, Any] | None]:
        return [
            None if h is first else s for h, s in zip(handles, orig_status(handles), strict=True)
        ]

    def prepare() -> tuple[str, Any]:
        killed_before.append(not first.alive)
        return orig_prepare()

    launcher.status = hung  # type: ignore[method-assign]
    launcher.prepare = prepare  # type: ignore[method-assign]
    clock.t += 1
    svc.step()
    assert not first.alive and killed_before == [True]
    again = svc.get_job(job.job_id)
    assert (again.state, again.attempts) == (JobState.RUNNING, 2)
    run = svc.runs.settings.run_name(job.job_id)
    assert RunChannel(run, 1).superseded() and not RunChannel(run, 2).superseded()


def test_a_stale_runner_cannot_report_for_a_newer_attempt(tmp_path: Path) -> None:
    from scheduler.runtime.driver import Observed
    from scheduler.runtime.runs import RunReport

    svc, *_ = make(tmp_path)
    job = svc.submit(spec("j"))
    svc.inbox.put(Observed([RunReport(job.job_id, 7, {"state": "succeeded", "attempt": 7})]))
    svc._pump()
    assert svc.get_job(job.job_id).state is JobState.RUNNING


def test_the_training_helpers_refuse_to_checkpoint_a_superseded_attempt(
    memory_kv: MemoryKV,
) -> None:
    from scheduler import train

    ctx = train.context(
        {"gpuyard": {"job_id": "job-1", "run_name": "job-1-abc", "attempt": 1,
                     "gpu_indices": [[0]], "simulated_gpus": True}},
        world_rank=0, world_size=1, check_placement=False,
    )  # fmt: skip
    RunChannel("job-1-abc", 1).begin()
    assert not train.superseded(ctx) and not train.stop_requested(ctx)
    RunChannel("job-1-abc", 1).ask_stop("preempt: a higher priority job")
    assert train.stop_requested(ctx)
    RunChannel("job-1-abc", 2).begin()
    assert train.superseded(ctx) and train.stop_requested(ctx)
    with pytest.raises(train.Superseded):
        train.report(ctx, {"loss": 1.0}, {"w": 1})
    assert RunChannel("job-1-abc", 1).metrics() == {}
    assert memory_kv.get("run/job-1-abc/attempt") == b"2"


def test_gpuyard_journal_verify_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scheduler.cli import main

    assert main(["journal", "verify", "--state-dir", str(tmp_path / "none")]) == 2
    assert "no journal there" in capsys.readouterr().err
    svc, *_ = make(tmp_path)
    svc.submit(spec("j"))
    svc.close()
    assert main(["journal", "verify", "--state-dir", svc.cfg.state_dir]) == 0
    said = " ".join(capsys.readouterr().out.split())  # the console wraps long paths
    assert "replay to exactly the recorded actions" in said
