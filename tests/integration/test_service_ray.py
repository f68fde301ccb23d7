"""The live service end to end on a local multi-node Ray cluster with simulated GPUs: real
Ray Train runs of the example job, checkpoints, a node removed mid-run, an injected XID,
``kill -9`` of the scheduler actor, and the HTTP API (Ray Serve) refusing what it must."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from scheduler.runtime.auth import Principal  # noqa: E402
from scheduler.runtime.config import (  # noqa: E402
    ServiceConfig,
    load_fleet,
    parse_fleet,
)

pytestmark = pytest.mark.ray

FLEET = {
    "nodes": [
        {"name": f"node-{x}", "gpus": 4, "gpu_model": "H100", "gpu_memory_gib": 80, "cpus": 8,
         "memory_gib": 32, "labels": {"rack": f"r{i % 2}", "zone": "z0"}}
        for i, x in enumerate("abc")
    ]
}  # fmt: skip
TEAMS = ("perception", "planning", "mapping")
OPS = Principal("ops", None, True)  # the tests call the scheduler actor as an admin


def job(
    name: str, team: str, workers: int = 1, gpus: int = 1, epochs: int = 3, **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name, "team": team, "workers": workers, "gpus_per_worker": gpus,
        "cpus_per_worker": 1, "memory_gib_per_worker": 2,
        "entrypoint": "examples.driving_policy:train_loop",
        "config": {"epochs": epochs, "batch_size": 16, "samples": 64, "image_size": 32,
                   "step_sleep_s": extra.pop("sleep", 0.0)},
    }  # fmt: skip
    spec.update(extra)
    return spec


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    c = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 4, "num_gpus": 0, "labels": {"role": "head"},
            "include_dashboard": False, "object_store_memory": 100 * 1024**2,
            "_system_config": {"health_check_period_ms": 500, "health_check_timeout_ms": 500,
                               "health_check_failure_threshold": 3},
        },
    )  # fmt: skip
    nodes = {}
    for spec in parse_fleet(FLEET, Path("test")):
        labels = {**dict(spec.labels), "gpuyard.io/node": spec.name}
        nodes[spec.name] = c.add_node(num_cpus=8, num_gpus=4, labels=labels,
                                      object_store_memory=80 * 1024**2)  # fmt: skip
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="gpuyard", log_to_driver=False)
    state = tmp_path_factory.mktemp("gpuyard")
    quotas = state / "quotas.yaml"
    quotas.write_text(
        "quotas:\n"
        + "".join(
            f"  - {{team: {t}, gpu_model: H100, nominal_gpus: 4, borrowing_limit_gpus: 0}}\n"
            for t in TEAMS
        )
    )
    yield c, nodes, state, quotas
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def scheduler(cluster: Any) -> Any:
    from scheduler.runtime.ray_service import start_scheduler

    _, _, state, quotas = cluster
    cfg = ServiceConfig(
        state_dir=str(state), quotas=str(quotas), loop_period_s=0.3, telemetry_period_s=1.0,
        stop_grace_s=30.0, backfill="easy", preemption=False,
    )  # fmt: skip
    return start_scheduler(cfg, parse_fleet(FLEET, Path("test")), simulated=True)


def wait_for(pred: Any, timeout_s: float, what: str) -> Any:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def run_dir(state: Path, team: str, job_id: str) -> Path:
    """Where the job's run keeps its checkpoints: ``<storage>/<team>/<job id>-<journal id>``."""
    from scheduler.runtime.journal import Journal

    journal = Journal(state / "journal.db")
    try:
        return state / "runs" / team / f"{job_id}-{journal.instance_id()}"
    finally:
        journal.close()


def registered_checkpoints(run_dir: Path) -> int:
    """Checkpoints Ray Train has registered for the run (its checkpoint manager's snapshot):
    a ``checkpoint_*`` folder appears before the controller registers it, and a run killed in
    between resumes without it."""
    import json

    try:
        doc = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return 0
    return len(doc.get("checkpoint_results", []))


def get(actor: Any, job_id: str) -> Any:
    return ray.get(actor.get_job.remote(job_id))


def test_three_teams_quotas_and_packing_hold_and_a_job_trains_and_checkpoints(
    cluster: Any, scheduler: Any
) -> None:
    _, _, state, _ = cluster
    a = ray.get(scheduler.submit.remote(OPS, job("p1", "perception", workers=2, gpus=2), None))
    b = ray.get(scheduler.submit.remote(OPS, job("p2", "perception", workers=1, gpus=1), None))
    c = ray.get(
        scheduler.submit.remote(OPS, job("m1", "mapping", workers=1, gpus=2, epochs=2), None)
    )
    # perception's quota is 4 H100s: p1 takes all of it, p2 waits for quota
    assert get(scheduler, a.job_id).state == "RUNNING"
    pending = get(scheduler, b.job_id)
    assert pending.state == "PENDING" and pending.code == "WAIT_QUOTA"
    assert pending.queue_position == 1
    assert get(scheduler, c.job_id).state == "RUNNING"
    # best_fit packs p1 (2 x 2 GPUs) and m1 (2 GPUs) onto as few nodes as possible
    used = {p.node for j in (a, c) for p in get(scheduler, j.job_id).placement}
    assert len(used) <= 2
    done = wait_for(
        lambda: get(scheduler, a.job_id).state == "SUCCEEDED" and get(scheduler, a.job_id),
        180,
        "p1",
    )
    assert done.metrics["epoch"] == 2.0 and done.attempts == 1
    ckpts = sorted(run_dir(state, a.team, a.job_id).glob("checkpoint_*"))
    assert ckpts, "the run left checkpoints in its storage path"
    # the quota freed: p2 runs and finishes
    wait_for(lambda: get(scheduler, b.job_id).state == "SUCCEEDED", 180, "p2 after p1")
    wait_for(lambda: get(scheduler, c.job_id).state == "SUCCEEDED", 120, "m1")
    nodes = ray.get(scheduler.nodes.remote())
    assert all(n.simulated and n.alive for n in nodes)
    assert {g.model for n in nodes for g in n.gpus} == {"NVIDIA H100 80GB HBM3"}  # as NVML names it


def test_a_removed_node_s_job_resumes_from_its_checkpoint_on_another_node(
    cluster: Any, scheduler: Any
) -> None:
    c, nodes, state, _ = cluster
    j = ray.get(
        scheduler.submit.remote(
            OPS, job("long", "planning", workers=1, gpus=2, epochs=8, sleep=0.1), None
        )
    )
    first = get(scheduler, j.job_id)
    node = first.placement[0].node
    runs = run_dir(state, j.team, j.job_id)
    wait_for(lambda: registered_checkpoints(runs) >= 2, 120, "two checkpoints")
    c.remove_node(nodes[node], allow_graceful=False)
    moved = wait_for(
        lambda: (v := get(scheduler, j.job_id)).attempts == 2 and v.state == "RUNNING" and v,
        90,
        "relaunch",
    )
    assert moved.preemptions == 1 and moved.placement[0].node != node
    done = wait_for(
        lambda: (v := get(scheduler, j.job_id)).state == "SUCCEEDED" and v, 180, "finish"
    )
    assert done.metrics["epoch"] == 7.0
    assert done.metrics["start_epoch"] >= 1.0  # resumed from a checkpoint, not from scratch
    lost = next(n for n in ray.get(scheduler.nodes.remote()) if n.name == node)
    assert not lost.alive and "lost" in lost.off_reasons


def test_an_injected_xid_drains_the_node_and_no_new_work_lands_there(
    cluster: Any, scheduler: Any
) -> None:
    alive = [n.name for n in ray.get(scheduler.nodes.remote()) if n.alive and n.schedulable]
    j = ray.get(
        scheduler.submit.remote(
            OPS, job("drained", "mapping", workers=1, gpus=1, epochs=8, sleep=0.1), None
        )
    )
    node = get(scheduler, j.job_id).placement[0].node
    assert node in alive
    wait_for(lambda: get(scheduler, j.job_id).metrics.get("epoch", -1) >= 1, 120, "progress")
    ray.get(scheduler.inject.remote(node, "xid", 0, 79))
    moved = wait_for(
        lambda: (v := get(scheduler, j.job_id)).attempts == 2 and v.state == "RUNNING" and v,
        90,
        "drain",
    )
    assert moved.placement[0].node != node
    view = next(n for n in ray.get(scheduler.nodes.remote()) if n.name == node)
    assert not view.schedulable and view.off_reasons == ["drain"]
    assert view.gpus[0].why_unhealthy == ["xid 79"]
    k = ray.get(
        scheduler.submit.remote(OPS, job("after", "perception", workers=1, gpus=1, epochs=1), None)
    )
    assert get(scheduler, k.job_id).placement[0].node != node
    wait_for(lambda: get(scheduler, j.job_id).state == "SUCCEEDED", 180, "drained job finishes")
    wait_for(lambda: get(scheduler, k.job_id).state == "SUCCEEDED", 120, "new job finishes")


def test_kill_minus_9_of_the_scheduler_loses_nothing_and_launches_nothing_twice(
    cluster: Any, scheduler: Any
) -> None:
    from scheduler.runtime.journal import Journal

    _, _, state, _ = cluster
    run = ray.get(
        scheduler.submit.remote(
            OPS, job("survivor", "perception", workers=1, gpus=4, epochs=6, sleep=0.1), None
        )
    )
    queued = ray.get(
        scheduler.submit.remote(OPS, job("queued", "perception", workers=1, gpus=2, epochs=1), None)
    )
    assert get(scheduler, queued.job_id).state == "PENDING"
    wait_for(lambda: get(scheduler, run.job_id).metrics.get("epoch", -1) >= 0, 120, "first epoch")
    before = {v.job_id: v.state for v in ray.get(scheduler.list_jobs.remote(None, None))}
    pid = ray.get(scheduler.pid.remote())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _pid_after_restart(scheduler, pid), 60, "the actor to restart")
    after = {v.job_id: v.state for v in ray.get(scheduler.list_jobs.remote(None, None))}
    assert after == before  # nothing lost, same states
    assert get(scheduler, run.job_id).attempts == 1  # re-attached, not launched again
    wait_for(lambda: get(scheduler, run.job_id).state == "SUCCEEDED", 180, "survivor")
    wait_for(lambda: get(scheduler, queued.job_id).state == "SUCCEEDED", 120, "queued")
    journal = Journal(state / "journal.db")
    attempts = [r.attempt for r in journal.runs(run.job_id)]
    journal.close()
    assert attempts == [1]


def _pid_after_restart(actor: Any, old: int) -> bool:
    try:
        return bool(ray.get(actor.pid.remote(), timeout=5) != old)
    except Exception:
        return False


def test_the_http_api_served_by_the_scheduler_actor_refuses_what_it_must(
    cluster: Any, scheduler: Any
) -> None:
    import requests

    from scheduler.runtime.local import dev_tokens

    _, _, state, _ = cluster
    tokens_path, tokens = dev_tokens(state, list(TEAMS))
    url = ray.get(scheduler.start_api.remote(str(tokens_path), "127.0.0.1", 18765))

    def call(method: str, path: str, token: str | None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        return requests.request(method, url + path, headers=headers, timeout=30, **kw)

    assert call("GET", "/v1/jobs", None).status_code == 401
    assert call("GET", "/v1/jobs", "wrong").status_code == 401
    r = call("POST", "/v1/jobs", tokens["mapping"], json=job("x", "perception"))
    assert r.status_code == 403
    bad = job("bad", "mapping")
    bad["workers"] = 0
    r = call("POST", "/v1/jobs", tokens["mapping"], json=bad)
    assert r.status_code == 422 and "workers" in str(r.json()["detail"])
    r = call("POST", "/v1/jobs", tokens["mapping"], json=job("ok", "mapping", epochs=1))
    assert r.status_code == 201, r.text
    mine = r.json()["job_id"]
    assert call("POST", f"/v1/jobs/{mine}/cancel", tokens["planning"]).status_code == 403
    assert call("GET", f"/v1/jobs/{mine}", tokens["planning"]).status_code == 403
    seen = {j["job_id"] for j in call("GET", "/v1/jobs", tokens["planning"]).json()["items"]}
    assert mine not in seen
    assert call("GET", f"/v1/jobs/{mine}", tokens["admin"]).json()["team"] == "mapping"
    # idempotency keys are the team's own: two teams, one key, two jobs
    key = {"Idempotency-Key": "nightly-1"}
    a = call("POST", "/v1/jobs", tokens["mapping"], json=job("k", "mapping", epochs=1),
             headers=key)  # fmt: skip
    b = call("POST", "/v1/jobs", tokens["planning"], json=job("k", "planning", epochs=1),
             headers=key)  # fmt: skip
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["job_id"] != b.json()["job_id"] and b.json()["team"] == "planning"
    again = call("POST", "/v1/jobs", tokens["mapping"], json=job("k", "mapping", epochs=1),
                 headers=key)  # fmt: skip
    assert again.json()["job_id"] == a.json()["job_id"]
    other = call("POST", "/v1/jobs", tokens["mapping"], json=job("k2", "mapping"), headers=key)
    assert other.status_code == 409 and "nightly-1" in other.json()["detail"]
    # a team cannot raise its priority over its grant (none configured: 0)
    high = call("POST", "/v1/jobs", tokens["mapping"],
                json={**job("hi", "mapping"), "priority": 1099511627776})  # fmt: skip
    assert high.status_code == 403 and high.json()["detail"].startswith("priority: ")
    # operator routes are for admins; the audit log holds who did what
    assert call("GET", "/v1/nodes", tokens["mapping"]).status_code == 403
    assert call("POST", "/v1/nodes/node-a/cordon", tokens["mapping"]).status_code == 403
    r = call("POST", "/v1/nodes/node-a/cordon", tokens["admin"])
    assert r.status_code == 200 and r.json()["off_reasons"] == ["cordon"]
    r = call("POST", "/v1/nodes/node-a/uncordon", tokens["admin"])
    assert r.status_code == 200 and r.json()["schedulable"]
    rows = call("GET", "/v1/audit", tokens["admin"], params={"limit": 10000}).json()
    got = {(a["principal"], a["action"], a["outcome"]) for a in rows}
    for want in (
        ("anonymous", "GET /v1/jobs", "401"),
        ("mapping", "submit", "403"),
        ("mapping", "GET /v1/nodes", "403"),
        ("admin", "cordon", "ok"),
        ("admin", "uncordon", "ok"),
        ("planning", f"GET /v1/jobs/{mine}", "403"),
    ):
        assert want in got, want
    assert call("GET", "/v1/audit", tokens["mapping"]).status_code == 403
    assert "gpuyard_gpus" in call("GET", "/metrics", None).text


def test_restart_with_a_node_added_one_removed_and_a_changed_quota(
    cluster: Any, scheduler: Any
) -> None:
    """Last in this module: it replaces the scheduler. The service is stopped, the fleet file
    gains node-d (a new Ray node) and loses node-c, the quota file changes; the service comes
    up on the same journal: node-d takes work, node-c's job is requeued and resumes from its
    checkpoint, and every job keeps its team, priority and spec."""
    from scheduler.runtime.journal import Journal
    from scheduler.runtime.ray_service import start_scheduler

    c, nodes, state, quotas = cluster
    for n in ray.get(scheduler.nodes.remote()):  # earlier tests cordoned or lost some nodes
        if n.alive and not n.schedulable:
            ray.get(scheduler.node_op.remote(OPS, n.name, "uncordon"))
    mover = ray.get(scheduler.submit.remote(
        OPS, job("mover", "planning", workers=1, gpus=4, epochs=30, sleep=0.1,
                 checkpoint_interval_s=1), None,
    ))  # fmt: skip
    # a whole node: it starts once the API test's jobs have finished (they are left to run:
    # a run cancelled while its Train worker group is still starting can leave that group's
    # placement group holding its GPUs in Ray; see the README, "Known gaps")
    wait_for(lambda: get(scheduler, mover.job_id).state == "RUNNING", 240, "mover runs")
    node = get(scheduler, mover.job_id).placement[0].node
    runs = run_dir(state, mover.team, mover.job_id)
    wait_for(lambda: registered_checkpoints(runs) >= 1, 120, "a checkpoint")
    before = {
        v.job_id: (v.team, v.priority, v.spec)
        for v in ray.get(scheduler.list_jobs.remote(None, None))
    }
    ray.get(scheduler.shutdown.remote())
    ray.kill(scheduler, no_restart=True)
    fleet = [n for n in FLEET["nodes"] if n["name"] != node]
    fleet.append({**FLEET["nodes"][0], "name": "node-d"})
    nodes["node-d"] = c.add_node(num_cpus=8, num_gpus=4, object_store_memory=80 * 1024**2,
                                 labels={"rack": "r0", "zone": "z0", "gpuyard.io/node": "node-d"})  # fmt: skip
    c.wait_for_nodes()
    quotas.write_text(quotas.read_text().replace("nominal_gpus: 4", "nominal_gpus: 8"))
    cfg = ServiceConfig(
        state_dir=str(state), quotas=str(quotas), loop_period_s=0.3, telemetry_period_s=1.0,
        stop_grace_s=30.0, backfill="easy", preemption=False,
    )  # fmt: skip
    again = start_scheduler(cfg, parse_fleet({"nodes": fleet}, Path("test")), simulated=True)
    after = {
        v.job_id: (v.team, v.priority, v.spec) for v in ray.get(again.list_jobs.remote(None, None))
    }
    assert after == before  # nothing lost; no job changed team, priority or spec
    assert [n.name for n in ray.get(again.nodes.remote())] == sorted(x["name"] for x in fleet)
    moved = wait_for(
        lambda: (v := get(again, mover.job_id)).attempts >= 2 and v.state == "RUNNING" and v,
        180, "the removed node's job relaunched",
    )  # fmt: skip
    assert moved.placement[0].node != node
    done = wait_for(lambda: (v := get(again, mover.job_id)).state == "SUCCEEDED" and v, 300,
                    "mover finishes")  # fmt: skip
    assert done.metrics["start_epoch"] >= 1.0  # resumed from its checkpoint
    for n in fleet:  # only the new node may take the next job
        if n["name"] != "node-d":
            ray.get(again.node_op.remote(OPS, n["name"], "cordon"))
    nxt = ray.get(again.submit.remote(OPS, job("on-d", "mapping", workers=1, gpus=4, epochs=1),
                                      None))  # fmt: skip
    placed = wait_for(lambda: (v := get(again, nxt.job_id)).state == "RUNNING" and v, 60, "on-d")
    assert placed.placement[0].node == "node-d"
    with Journal(state / "journal.db") as j:
        attempts = [r.attempt for r in j.runs(mover.job_id)]
    assert attempts == list(range(1, len(attempts) + 1))


def test_default_fleet_is_three_simulated_nodes_of_four_gpus() -> None:
    fleet = load_fleet(None)
    assert [(n.name, n.gpus) for n in fleet] == [
        ("node-h100-0", 4), ("node-h100-1", 4), ("node-h20-0", 4)
    ]  # fmt: skip
