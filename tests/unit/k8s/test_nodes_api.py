"""The Kubernetes client code against the stand-in API server (tests/k8s_apiserver.py):
the exact requests sent (list, watch, get, patch with its content type, events)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from scheduler.cli import main
from scheduler.runtime.k8s.nodes import NodeClient, api_client
from scheduler.runtime.k8s.remediation import Cordon
from scheduler.runtime.k8s.remediator import NodeCache, Remediator
from scheduler.runtime.k8s.settings import K8sSettings, RemediationSettings
from tests.k8s_apiserver import MERGE, STRATEGIC, FakeApiServer
from tests.unit.k8s.nodes import cpu_node, gpu_node, node_view

TOKEN = "sa-token"
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    other_taint = {"key": "dedicated", "value": "training", "effect": "NoSchedule"}
    nodes = [gpu_node(f"gpu-{i}") for i in range(4)] + [cpu_node("cpu-0")]
    nodes[1]["spec"]["taints"] = [other_taint]
    with FakeApiServer(nodes, token=TOKEN) as s:
        yield s


def client_for(server: FakeApiServer, clock: Clock) -> NodeClient:
    return NodeClient(api_client(server.url, TOKEN), "gpuyard", instance="head-0", clock=clock)


def test_list_sends_the_selector_and_reads_the_json(server: FakeApiServer) -> None:
    nodes, rv = client_for(server, Clock()).list_nodes("nvidia.com/gpu.present=true")
    assert [n["metadata"]["name"] for n in nodes] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    assert rv == "105"
    (req,) = server.calls("GET", "/api/v1/nodes")
    assert req.query == {"labelSelector": "nvidia.com/gpu.present=true"}


def test_a_wrong_token_is_refused(server: FakeApiServer) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as e:
        NodeClient(api_client(server.url, "wrong"), "gpuyard").list_nodes()
    assert e.value.status == 401


def test_inventory_command_prints_the_fleet_file(
    server: FakeApiServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "scheduler.runtime.k8s.nodes.api_client",
        lambda host=None, token=None: api_client(host, TOKEN),
    )
    assert main(["k8s", "inventory", "--server", server.url]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert [n["name"] for n in doc["nodes"]] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    assert doc["nodes"][0] == {
        "name": "gpu-0",
        "gpus": 8,
        "gpu_model": "H100",
        "gpu_memory_gib": 81559 / 1024,
        "cpus": 192,
        "memory_gib": (2113422164 * 1024 // 2**20) / 1024,
        "nvlink_domains": 1,
        "labels": {"rack": "r1", "zone": "zone-a"},
    }


def test_watch_streams_changes_and_relists_after_410(server: FakeApiServer) -> None:
    cache = NodeCache(client_for(server, Clock()), "nvidia.com/gpu.present=true")
    cache.sync()
    changed = server.node("gpu-0")
    changed["metadata"]["labels"]["gpuyard.io/rack"] = "r9"
    server.put_node(changed)
    server.delete_node("gpu-3")
    server.put_node(cpu_node("cpu-1"))  # not selected: not streamed
    assert cache.watch(timeout_s=1) == 2
    assert cache.nodes["gpu-0"]["metadata"]["labels"]["gpuyard.io/rack"] == "r9"
    assert sorted(cache.nodes) == ["gpu-0", "gpu-1", "gpu-2"]
    watch_req = server.calls("GET", "/api/v1/nodes")[-1]
    assert watch_req.query["watch"] in ("true", "True")
    assert watch_req.query["resourceVersion"] == "105"
    assert watch_req.query["allowWatchBookmarks"] in ("true", "True")
    # a change made while the watch is open arrives on the open stream
    later = server.node("gpu-1")
    later["metadata"]["labels"]["note"] = "x"
    threading.Timer(0.2, server.put_node, (later,)).start()
    assert cache.watch(timeout_s=2) == 1
    assert cache.nodes["gpu-1"]["metadata"]["labels"]["note"] == "x"
    # history compacted: the watch gets ERROR 410 and the cache lists again
    server.compact()
    server.put_node(gpu_node("gpu-7"))
    relists = cache.relists
    cache.resource_version = "101"
    cache.watch(timeout_s=1)
    assert cache.relists == relists + 1 and "gpu-7" in cache.nodes


def remediator(
    server: FakeApiServer, views: list[dict[str, Any]], clock: Clock, **policy: Any
) -> Remediator:
    settings = K8sSettings(
        remediation=RemediationSettings(
            max_cordoned_share=0.25,
            min_cordon_allowed=1,
            healthy_checks=2,
            healthy_for_s=30,
            **policy,
        )
    )
    return Remediator(client_for(server, clock), lambda: views, settings, clock=clock)


def test_cordon_taint_event_then_give_back_with_hysteresis(server: FakeApiServer) -> None:
    clock = Clock()
    views = [node_view(f"gpu-{i}") for i in range(4)]
    views[1] = node_view("gpu-1", {3: ["xid 79"]})
    rem = remediator(server, views, clock)
    assert rem.check() == [Cordon("gpu-1", "GPU 3: xid 79")]

    (patch,) = server.calls("PATCH", "/api/v1/nodes/")
    assert patch.path == "/api/v1/nodes/gpu-1" and patch.content_type == MERGE
    assert patch.body == {
        "metadata": {
            "resourceVersion": "102",
            "annotations": {
                "gpuyard.io/cordoned-by": "gpuyard",
                "gpuyard.io/cordon-reason": "GPU 3: xid 79",
                "gpuyard.io/cordoned-at": "2026-09-21T14:13:20Z",
            },
        },
        "spec": {
            "unschedulable": True,
            "taints": [
                {"key": "dedicated", "value": "training", "effect": "NoSchedule"},
                {
                    "key": "gpuyard.io/gpu-unhealthy",
                    "value": "GPU-3-xid-79",
                    "effect": "NoSchedule",
                },
            ],
        },
    }
    node = server.node("gpu-1")
    assert node["spec"]["unschedulable"] is True
    (post,) = server.calls("POST", "/api/v1/namespaces/gpuyard/events")
    ev = post.body
    assert ev["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": "gpu-1",
        "uid": "uid-gpu-1",
        "resourceVersion": "106",
    }
    assert (ev["reason"], ev["type"], ev["action"], ev["message"], ev["count"]) == (
        "GpuUnhealthy",
        "Warning",
        "Cordon",
        "GPU 3: xid 79",
        1,
    )
    assert ev["metadata"]["namespace"] == "gpuyard" and ev["metadata"]["name"].startswith(
        "gpu-1.gpuyard."
    )
    assert ev["source"] == {"component": "gpuyard-remediator"}
    assert (ev["reportingComponent"], ev["reportingInstance"]) == (
        "gpuyard.io/gpuyard-remediator",
        "head-0",
    )
    assert ev["firstTimestamp"].startswith("2026-09-21T14:13:20")

    # healthy again: two checks spanning 30 s, then given back
    views[1] = node_view("gpu-1")
    clock.t += 10
    assert rem.check() == []
    clock.t += 20
    assert rem.check() == []  # 2 checks, but only 20 s
    clock.t += 10
    (give_back,) = rem.check()
    assert give_back.reason == "GPUs healthy for 3 checks over 30 s"
    patch = server.calls("PATCH", "/api/v1/nodes/")[-1]
    assert patch.content_type == MERGE
    assert patch.body == {
        "metadata": {
            "resourceVersion": "106",
            "annotations": {
                "gpuyard.io/cordoned-by": None,
                "gpuyard.io/cordon-reason": None,
                "gpuyard.io/cordoned-at": None,
            },
        },
        "spec": {
            "unschedulable": None,
            "taints": [{"key": "dedicated", "value": "training", "effect": "NoSchedule"}],
        },
    }
    node = server.node("gpu-1")
    assert "unschedulable" not in node["spec"]
    assert not node["metadata"].get("annotations")
    assert node["spec"]["taints"] == [
        {"key": "dedicated", "value": "training", "effect": "NoSchedule"}
    ]
    ev = server.calls("POST", "/api/v1/namespaces/gpuyard/events")[-1].body
    assert (ev["reason"], ev["type"], ev["action"]) == ("GpuHealthy", "Normal", "Uncordon")


def test_limit_refusal_is_an_event_and_a_conflict_is_retried(server: FakeApiServer) -> None:
    clock = Clock()
    views = [node_view(f"gpu-{i}", {0: ["ecc"]}) for i in range(4)]
    rem = remediator(server, views, clock)
    actions = rem.check()
    assert [type(a).__name__ for a in actions] == ["Cordon", "Refuse", "Refuse", "Refuse"]
    events = [r.body for r in server.calls("POST", "/api/v1/namespaces/gpuyard/events")]
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [
        ("GpuUnhealthy", "gpu-0"),
        ("RemediationLimited", "gpu-1"),
        ("RemediationLimited", "gpu-2"),
        ("RemediationLimited", "gpu-3"),
    ]
    assert events[1]["message"] == (
        "not cordoned although GPU 0: ecc: 1 of 4 GPU nodes are "
        "already cordoned by gpuyard, the limit is 1"
    )
    assert [
        n for n in ("gpu-1", "gpu-2", "gpu-3") if server.node(n)["spec"].get("unschedulable")
    ] == []

    # someone writes gpu-0 between our read and our patch: 409, read again, patch again
    nodes = rem.client
    first = True

    def make(node: dict[str, Any]) -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            edited = server.node("gpu-0")
            edited["metadata"].setdefault("labels", {})["touched"] = "yes"
            server.put_node(edited)
        return {
            "metadata": {
                "resourceVersion": node["metadata"]["resourceVersion"],
                "labels": {"mine": "1"},
            }
        }

    before = len(server.calls("PATCH", "/api/v1/nodes/gpu-0"))
    got = nodes._patch("gpu-0", make)
    assert len(server.calls("PATCH", "/api/v1/nodes/gpu-0")) == before + 2
    assert (
        got["metadata"]["labels"]["touched"] == "yes" and got["metadata"]["labels"]["mine"] == "1"
    )


def test_a_repeated_event_is_patched_not_duplicated(server: FakeApiServer) -> None:
    nodes = client_for(server, Clock())
    nodes.apply(Cordon("gpu-2", "GPU 1: xid 48"))
    nodes.apply(Cordon("gpu-2", "GPU 1: xid 48"))
    assert len(server.calls("POST", "/api/v1/namespaces/gpuyard/events")) == 1
    (patch,) = server.calls("PATCH", "/api/v1/namespaces/gpuyard/events/")
    assert patch.content_type == STRATEGIC
    assert patch.body == {"count": 2, "lastTimestamp": "2026-09-21T14:13:20Z"}
    (stored,) = server.events.values()
    assert stored["count"] == 2
