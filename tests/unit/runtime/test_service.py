"""The scheduler service's shell logic with a fake launcher and cluster (no Ray): launches,
cancels, max runtime, failures, lost nodes, GPUs held by stopping runs, and restarts from
the journal (re-attach, requeue a vanished run, never launch twice)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scheduler.runtime.config import ServiceConfig, parse_fleet
from scheduler.runtime.executor import RunRequest
from scheduler.runtime.journal import Journal
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.views import JobState, SpecRejected

FLEET = parse_fleet(
    {"nodes": [{"name": "a", "gpus": 2, "cpus": 8}, {"name": "b", "gpus": 2, "cpus": 8}]},
    Path("test"),
)


@dataclass
class FakeRun:
    name: str
    req: RunRequest | None = None
    state: str = "idle"
    alive: bool = True
    stop_asked: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    def end(self, state: str, **metrics: float) -> None:
        self.state, self.metrics = state, dict(metrics)


class FakeLauncher:
    def __init__(self) -> None:
        self.runs: dict[str, FakeRun] = {}

    def prepare(self) -> tuple[str, Any]:
        name = f"runner-{len(self.runs)}"
        self.runs[name] = FakeRun(name)
        return name, self.runs[name]

    def run(self, handle: FakeRun, req: RunRequest) -> None:
        handle.req, handle.state = req, "running"

    def find(self, runner: str) -> Any | None:
        run = self.runs.get(runner)
        return run if run is not None and run.alive else None

    def status(self, handles: Any) -> list[dict[str, Any] | None]:
        return [
            {
                "state": h.state,
                "detail": "boom" if h.state == "failed" else "",
                "metrics": h.metrics,
            }
            if h.alive
            else None
            for h in handles
        ]

    def stop(self, handle: FakeRun, why: str = "") -> None:
        handle.stop_asked = True

    def kill(self, handle: FakeRun) -> None:
        handle.alive = False

    def of(self, job_id: str) -> list[FakeRun]:
        return [r for r in self.runs.values() if r.req is not None and r.req.job_id == job_id]


class FakeCluster:
    def __init__(self) -> None:
        self.alive = {n.name for n in FLEET}
        self.load: list[tuple[str, bool]] = []

    def node_ids(self) -> dict[str, str]:
        return {n: f"id-{n}" for n in sorted(self.alive)}

    def telemetry(self) -> list[Any]:
        return []

    def head_node_id(self) -> str:
        return "id-head"

    def show_load(self, placement: Any, busy: bool) -> None:
        self.load.append((placement.job_id, busy))


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def spec(name: str, gpus: int = 1, workers: int = 1, **extra: Any) -> dict[str, Any]:
    return {"name": name, "team": "perception", "workers": workers, "gpus_per_worker": gpus,
            "entrypoint": "examples.driving_policy:train_loop", **extra}  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> tuple[FakeLauncher, FakeCluster, Clock, ServiceConfig]:
    cfg = ServiceConfig(state_dir=str(tmp_path), stop_grace_s=30.0, preemption=False)
    return FakeLauncher(), FakeCluster(), Clock(), cfg


def service(world: tuple[FakeLauncher, FakeCluster, Clock, ServiceConfig]) -> SchedulerService:
    launcher, cluster, clock, cfg = world
    svc = SchedulerService(cfg, FLEET, launcher, cluster, simulated=True, clock=clock)
    svc.step()  # learns the Ray node ids
    return svc


def test_a_launch_runs_pinned_to_the_chosen_nodes_and_success_is_recorded(world: Any) -> None:
    launcher, _, clock, cfg = world
    svc = service(world)
    job = svc.submit(spec("j", gpus=1, workers=2))
    # the answer is the committed decision; the run is started right after it
    assert job.state is JobState.RUNNING and job.attempts == 0
    assert svc.get_job(job.job_id).attempts == 1
    (run,) = launcher.of(job.job_id)
    assert run.req is not None
    assert [w.ray_node_id for w in run.req.workers] == [f"id-{p.node}" for p in job.placement]
    assert run.req.gpus_per_worker == 1.0 and run.req.simulated_gpus
    assert run.req.storage_path == str(Path(cfg.state_dir) / "runs")
    run.end("succeeded", loss=0.5)
    clock.t += 5
    svc.step()
    assert world[1].load == [(job.job_id, True), (job.job_id, False)]
    done = svc.get_job(job.job_id)
    assert (done.state, done.reason, done.metrics) == (
        JobState.SUCCEEDED,
        "finished",
        {"loss": 0.5},
    )
    with Journal(Path(cfg.state_dir) / "journal.db") as journal:
        assert [(r.attempt, r.outcome) for r in journal.runs(job.job_id)] == [(1, "succeeded")]


def test_the_runner_of_an_ended_run_is_killed_once_its_end_is_journaled(world: Any) -> None:
    launcher, _, clock, _ = world
    svc = service(world)
    a, b = svc.submit(spec("a")), svc.submit(spec("b"))
    (run_a,), (run_b,) = launcher.of(a.job_id), launcher.of(b.job_id)
    run_a.end("succeeded", loss=0.1)
    clock.t += 1
    svc.step()  # the end is journaled; the runner is killed on the next step's effects
    assert svc.get_job(a.job_id).state is JobState.SUCCEEDED
    svc.step()
    assert (run_a.alive, run_b.alive) == (False, True)  # the running one is left alone
    assert svc.get_job(a.job_id).metrics == {"loss": 0.1}  # kept from the end, not the runner
    idle = [r for r in launcher.runs.values() if r.req is None]
    assert all(r.alive for r in idle)  # the runner kept ready for the next launch too


def test_a_failed_run_fails_the_job_with_the_runner_s_reason(world: Any) -> None:
    launcher, *_ = world
    svc = service(world)
    job = svc.submit(spec("j"))
    launcher.of(job.job_id)[0].end("failed")
    svc.step()
    assert (svc.get_job(job.job_id).state, svc.get_job(job.job_id).reason) == (
        JobState.FAILED,
        "failed: boom",
    )


def test_cancel_frees_the_core_at_once_but_the_gpus_wait_for_the_run_to_stop(world: Any) -> None:
    launcher, *_ = world
    svc = service(world)
    big = svc.submit(spec("big", gpus=2, workers=2))  # all 4 GPUs
    waiting = svc.submit(spec("next", gpus=2, workers=2))
    assert waiting.state is JobState.PENDING
    assert svc.cancel(big.job_id).state is JobState.CANCELLED
    (run,) = launcher.of(big.job_id)
    assert run.stop_asked
    # the core placed `next` on the freed GPUs, but its run waits for `big` to let go
    assert svc.get_job(waiting.job_id).state is JobState.RUNNING
    assert launcher.of(waiting.job_id) == []
    svc.step()
    assert launcher.of(waiting.job_id) == []
    run.end("stopped")
    svc.step()
    assert len(launcher.of(waiting.job_id)) == 1
    pending = svc.submit(spec("p", gpus=2))
    assert svc.cancel(pending.job_id).state is JobState.CANCELLED


def test_a_run_past_max_runtime_is_stopped_and_the_job_fails(world: Any) -> None:
    launcher, _, clock, _ = world
    svc = service(world)
    job = svc.submit(spec("j", max_runtime_s=60))
    (run,) = launcher.of(job.job_id)
    clock.t += 61
    svc.step()
    assert run.stop_asked
    run.end("stopped")
    svc.step()
    done = svc.get_job(job.job_id)
    assert (done.state, done.reason) == (JobState.FAILED, "failed: ran past max_runtime_s=60")


def test_a_lost_node_s_run_is_killed_and_the_job_relaunched_elsewhere(world: Any) -> None:
    launcher, cluster, clock, _ = world
    svc = service(world)
    job = svc.submit(spec("j", gpus=2))
    node = job.placement[0].node
    (first,) = launcher.of(job.job_id)
    cluster.alive.discard(node)
    clock.t += 1
    svc.step()  # NodeLost -> Preempt: killed at once (its workers are gone), relaunch waits
    assert not first.alive
    svc.step()  # the dead runner is seen gone: the deferred launch goes
    moved = svc.get_job(job.job_id)
    assert (moved.state, moved.attempts, moved.preemptions) == (JobState.RUNNING, 2, 1)
    assert moved.placement[0].node != node
    assert launcher.of(job.job_id)[1].req.attempt == 2  # type: ignore[union-attr]
    assert next(n for n in svc.nodes() if n.name == node).off_reasons == ["lost"]


def test_a_restart_re_attaches_live_runs_requeues_vanished_ones_and_launches_nothing_twice(
    world: Any,
) -> None:
    launcher, _, clock, cfg = world
    svc = service(world)
    alive = svc.submit(spec("alive", gpus=2))
    gone = svc.submit(spec("gone", gpus=2))
    queued = svc.submit(spec("queued", gpus=2))
    before = {v.job_id: v.state for v in svc.list_jobs()}
    svc.close()
    launcher.of(gone.job_id)[0].alive = False  # its runner died with the service
    clock.t += 10
    again = service(world)
    after = {v.job_id: v.state for v in again.list_jobs()}
    assert after == before
    assert len(launcher.of(alive.job_id)) == 1  # re-attached, not launched again
    assert again.get_job(alive.job_id).attempts == 1
    # the vanished run was requeued and, its GPUs being free, relaunched as attempt 2
    assert [r.req.attempt for r in launcher.of(gone.job_id)] == [1, 2]  # type: ignore[union-attr]
    assert again.get_job(queued.job_id).state is JobState.PENDING
    with Journal(Path(cfg.state_dir) / "journal.db") as journal:
        assert [(r.attempt, r.outcome) for r in journal.runs(gone.job_id)] == [
            (1, "lost"),
            (2, None),
        ]


def test_a_runner_that_never_got_its_run_is_dropped_and_the_job_requeued(world: Any) -> None:
    launcher, _, _, _ = world
    svc = service(world)
    orig_run = launcher.run
    launcher.run = lambda handle, req: None  # type: ignore[method-assign]  # crash before run
    job = svc.submit(spec("j"))
    svc.close()
    launcher.run = orig_run  # type: ignore[method-assign]
    idle = next(r for r in launcher.runs.values() if r.state == "idle" and r.alive)
    again = service(world)
    assert not idle.alive
    assert again.get_job(job.job_id).attempts == 2
    assert len(launcher.of(job.job_id)) == 1  # only the new attempt ever ran


def test_bad_specs_are_refused_naming_the_field(world: Any) -> None:
    svc = service(world)
    with pytest.raises(SpecRejected) as bad:
        svc.submit(spec("j", workers=0))
    assert [e["loc"] for e in bad.value.errors] == [("workers",)]
    with pytest.raises(SpecRejected) as cls:
        svc.submit(spec("k", priority_class="production"))
    assert cls.value.errors[0]["loc"] == ["priority_class"]
    assert svc.list_jobs() == []


def test_an_idempotency_key_returns_the_first_job(world: Any) -> None:
    svc = service(world)
    first = svc.submit(spec("j"), idempotency_key="abc")
    second = svc.submit(spec("j"), idempotency_key="abc")
    assert second.job_id == first.job_id and len(svc.list_jobs()) == 1


def test_after_a_restart_a_stopping_run_still_holds_its_gpus(world: Any) -> None:
    launcher, *_ = world
    svc = service(world)
    big = svc.submit(spec("big", gpus=2, workers=2))
    nxt = svc.submit(spec("next", gpus=2, workers=2))
    svc.cancel(big.job_id)  # the core gives the GPUs to `next`; `big` is still stopping
    svc.close()
    again = service(world)
    (old,) = launcher.of(big.job_id)
    assert old.alive and launcher.of(nxt.job_id) == []  # not started on GPUs still in use
    old.end("stopped")
    again.step()
    assert len(launcher.of(nxt.job_id)) == 1


def test_a_priority_class_sets_the_job_s_priority(world: Any, tmp_path: Path) -> None:
    launcher, cluster, clock, cfg = world
    classes = tmp_path / "classes.yaml"
    classes.write_text("classes: {production: 1000, research: 100}\ndefault: research\n")
    cfg = ServiceConfig(state_dir=cfg.state_dir, priority_classes=str(classes))
    svc = SchedulerService(cfg, FLEET, launcher, cluster, simulated=True, clock=clock)
    svc.step()
    assert svc.submit(spec("p", priority_class="production")).priority == 1000
    assert svc.submit(spec("r")).priority == 100
    with pytest.raises(SpecRejected) as unknown:
        svc.submit(spec("x", priority_class="urgent"))
    assert unknown.value.errors[0]["loc"] == ["priority_class"]
    assert "known: production (1000), research (100)" in unknown.value.errors[0]["msg"]
