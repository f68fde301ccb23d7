"""What a person reads about a running job: its reason says where it runs (each node and
its GPUs) and since when, never the scheduler's internal trigger (``placed
(JobSubmitted(job-000002))``)."""

from __future__ import annotations

from typing import Any

from scheduler.core.model import Placement, WorkerPlacement
from scheduler.runtime.records import running_reason
from scheduler.runtime.views import JobState
from tests.unit.runtime.conftest import memory_kv  # noqa: F401  (autouse: no Ray)
from tests.unit.runtime.test_service import service, spec, world  # noqa: F401  (fixture)


def worker(node: str, gpus: tuple[int, ...], milli: int = 1000) -> WorkerPlacement:
    return WorkerPlacement(node, 0, gpus, milli, 1000, 1024)


def test_the_reason_names_nodes_gpus_and_the_start() -> None:
    t = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
    one = Placement("j", (worker("node-h100-0", (0, 1)), worker("node-h100-0", (2, 3))))
    assert running_reason(one, t) == "running on node-h100-0 (GPUs 0-3) since 14:13:20 UTC"
    two = Placement("j", (worker("node-h100-0", (0,)), worker("node-h100-1", (1, 3)),
                          worker("node-h100-1", (2,)), worker("node-h100-0", (6,))))  # fmt: skip
    assert running_reason(two, t + 1) == (
        "running on node-h100-0 (GPUs 0,6), node-h100-1 (GPUs 1-3) since 14:13:21 UTC"
    )
    shared = Placement("j", (worker("node-h20-0", (2,), milli=500),))
    assert (
        running_reason(shared, t) == "running on node-h20-0 (GPU 2, 0.5 of each) since 14:13:20 UTC"
    )
    cpu = Placement("j", (worker("cpu-0", ()),))
    assert running_reason(cpu, t) == "running on cpu-0 (no GPUs) since 14:13:20 UTC"


def test_a_launched_job_reads_running_on_its_gpus(world: Any) -> None:  # noqa: F811
    svc = service(world)
    job = svc.submit(spec("j", gpus=1, workers=2))
    assert job.state is JobState.RUNNING
    gpus = ",".join(str(i) for p in job.placement for i in p.gpu_indices)
    nodes = {p.node for p in job.placement}
    assert len(nodes) == 1 and gpus == "0,1"  # packed on one node of the 2 x 2-GPU fleet
    # the fake clock starts at 1000 s after the epoch: 00:16:40 UTC
    assert job.reason == f"running on {nodes.pop()} (GPUs 0-1) since 00:16:40 UTC"
    assert svc.get_job(job.job_id).reason == job.reason


def test_down_counts_the_actors_it_killed() -> None:
    from scheduler.cli.service import tidy_down

    said = ["scheduler and API stopped", "killed gpuyard-runner-b5fc6c0714da",
            "killed gpuyard-sampler-node-h20-0", "killed gpuyard-runner-3b44ee01f1ec",
            "local Ray cluster stopped"]  # fmt: skip
    assert tidy_down(said) == [
        "scheduler and API stopped",
        "killed 3 actors still running (2 runners, 1 sampler)",
        "local Ray cluster stopped",
    ]
    assert tidy_down(said[:2]) == said[:2]  # one actor: its name
