"""Data residency end to end on a local Ray cluster with simulated GPUs: a US node and a CN
node (the fleet's ``region`` mirrored onto the Ray nodes as the label ``gpuyard.io/region``);
a job whose data lives in CN waits for the busy CN node while the US node is idle, and runs
on the CN node once the first job has finished."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from scheduler.core.model import REGION_LABEL  # noqa: E402
from scheduler.runtime.config import ServiceConfig, parse_fleet  # noqa: E402
from tests.integration.test_service_ray import OPS, get, job, wait_for  # noqa: E402

pytestmark = pytest.mark.ray

FLEET = {
    "nodes": [
        {"name": "us-0", "gpus": 1, "gpu_model": "H100", "cpus": 2, "memory_gib": 8,
         "region": "US"},
        {"name": "cn-0", "gpus": 1, "gpu_model": "H100", "cpus": 2, "memory_gib": 8,
         "region": "CN"},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from scheduler.runtime.ray_service import NODE_LABEL, start_scheduler

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    fleet = parse_fleet(FLEET, Path("test"))
    c = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 4, "num_gpus": 0, "labels": {"role": "head"},
                        "include_dashboard": False, "object_store_memory": 100 * 1024**2},
    )  # fmt: skip
    for spec in fleet:  # the fleet's labels become Ray node labels, as `gpuyard up` does
        c.add_node(num_cpus=2, num_gpus=spec.gpus, object_store_memory=80 * 1024**2,
                   labels={**dict(spec.labels), NODE_LABEL: spec.name})  # fmt: skip
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="gpuyard", log_to_driver=False)
    cfg = ServiceConfig(
        state_dir=str(tmp_path_factory.mktemp("gpuyard")), loop_period_s=0.3,
        telemetry_period_s=1.0, stop_grace_s=30.0, preemption=False,
        residency=(("CN", ("CN",)), ("US", ("US",))),
    )  # fmt: skip
    yield start_scheduler(cfg, fleet, simulated=True)
    ray.shutdown()
    c.shutdown()


def test_a_cn_job_waits_for_the_cn_node_and_never_uses_the_idle_us_node(scheduler: Any) -> None:
    regions = {
        n["Labels"].get("gpuyard.io/node"): n["Labels"].get(REGION_LABEL)
        for n in ray.nodes()
        if n["Alive"]
    }
    assert {k: v for k, v in regions.items() if k} == {"us-0": "US", "cn-0": "CN"}
    cn_a = job("cn-a", "vision", epochs=1, data_region="CN")
    first = ray.get(scheduler.submit.remote(OPS, cn_a, None))
    assert (first.state, [p.node for p in first.placement]) == ("RUNNING", ["cn-0"])
    cn_b = job("cn-b", "vision", epochs=1, data_region="CN")
    second = ray.get(scheduler.submit.remote(OPS, cn_b, None))
    assert (second.state, second.code, second.data_region) == ("PENDING", "WAIT_CAPACITY", "CN")
    assert second.reason == ("needs 1 GPUs for 1 worker(s); 0 usable GPUs free in region CN")
    us = next(n for n in ray.get(scheduler.nodes.remote()) if n.name == "us-0")
    assert us.alive and us.schedulable and sum(g.allocated_milli for g in us.gpus) == 0

    def second_job() -> Any:
        view = get(scheduler, second.job_id)
        assert all(p.node == "cn-0" for p in view.placement), view.placement  # never on US
        return view

    wait_for(lambda: get(scheduler, first.job_id).state == "SUCCEEDED", 120, "cn-a to finish")
    ran = wait_for(lambda: (v := second_job()).state == "RUNNING" and v, 60, "cn-b to start")
    assert [p.node for p in ran.placement] == ["cn-0"]
    # the run is pinned to the CN node's Ray node; its loop checks where it runs
    done = wait_for(lambda: (v := second_job()).state == "SUCCEEDED" and v, 120, "cn-b to finish")
    assert done.attempts == 1 and done.preemptions == 0
