"""One GPU sampler per worker node of a local Ray cluster: pinned, simulated, fault-injectable."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scheduler.runtime.telemetry import NodeSample, sampler_name, start_sampler, uniform_gpus

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[str]]:
    """A head with no GPUs and two workers with 4 fake GPUs each; yields the workers' node ids."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "CUDA_VISIBLE_DEVICES")}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # every process the same (ray-2.60 note, §6)
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)  # num_gpus above its length is refused (§5)
    store = 80 * 1024 * 1024
    c = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 1,
            "num_gpus": 0,
            "include_dashboard": False,
            "object_store_memory": store,
        },
    )
    try:
        workers = [c.add_node(num_cpus=1, num_gpus=4, object_store_memory=store) for _ in range(2)]
        c.wait_for_nodes()
        c.connect(namespace="gpuyard")  # type: ignore[no-untyped-call]
        yield [w.node_id for w in workers]
    finally:
        ray.shutdown()
        c.shutdown()  # type: ignore[no-untyped-call]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_each_sampler_runs_on_its_node_and_faults_round_trip(cluster: list[str]) -> None:
    import ray

    samplers = {
        f"w{i}": start_sampler(f"w{i}", node_id, uniform_gpus(4))
        for i, node_id in enumerate(cluster)
    }
    where: list[str] = ray.get([s.node_id.remote() for s in samplers.values()])
    assert where == cluster  # each on the node it was pinned to
    assert ray.get([s.gpu_count.remote() for s in samplers.values()]) == [4, 4]
    assert ray.get_actor(sampler_name("w1"), namespace="gpuyard") is not None

    ray.get(samplers["w1"].inject.remote("xid", 3, 79))
    first: list[NodeSample] = ray.get([s.read.remote() for s in samplers.values()])
    assert [s.node for s in first] == ["w0", "w1"]
    assert [[g.xids for g in s.gpus] for s in first] == [[(), (), (), ()], [(), (), (), (79,)]]
    again: NodeSample = ray.get(samplers["w1"].read.remote())
    assert all(g.xids == () for g in again.gpus)  # drained
    stats = ray.get(samplers["w1"].stats.remote())
    assert stats.samples == 2 and stats.mean_s > 0.0
