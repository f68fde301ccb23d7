"""Builders: Node objects as the Kubernetes API serves them."""

from __future__ import annotations

from typing import Any


def gpu_node(
    name: str,
    product: str = "NVIDIA-H100-80GB-HBM3",
    count: int = 8,
    memory_mib: int = 81559,
    zone: str = "zone-a",
    rack: str | None = "r1",
    cpu: str = "192",
    memory: str = "2113422164Ki",
    **extra_labels: str,
) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.memory": str(memory_mib),
        "topology.kubernetes.io/zone": zone,
        **extra_labels,
    }
    if rack is not None:
        labels["gpuyard.io/rack"] = rack
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(count)},
            "capacity": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(count)},
        },
    }


def cpu_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi"}},
    }


def node_view(
    name: str,
    bad: dict[int, list[str]] | None = None,
    alive: bool = True,
    off: list[str] | None = None,
    gpus: int = 8,
) -> dict[str, Any]:
    """A NodeView as GET /v1/nodes returns it; ``bad`` maps a GPU index to its reasons."""
    bad = bad or {}
    return {
        "name": name, "ray_node_id": "ab" * 28, "alive": alive, "schedulable": not bad,
        "off_reasons": off or [], "labels": {}, "simulated": False,
        "gpus": [
            {"index": g, "model": "H100", "memory_total_mib": 81559,
             "healthy": g not in bad, "why_unhealthy": bad.get(g, [])}
            for g in range(gpus)
        ],
    }  # fmt: skip
