from pathlib import Path

import pytest

from scheduler.runtime.config import NodeSpec, parse_fleet
from scheduler.runtime.k8s.inventory import (
    Skipped,
    fleet_document,
    fleet_from_nodes,
    model_name,
    quantity,
)
from scheduler.runtime.k8s.settings import (
    InventorySettings,
    K8sSettingsError,
    PodSize,
    parse_k8s_settings,
)
from tests.unit.k8s.nodes import cpu_node, gpu_node


def test_model_names_from_gfd_products() -> None:
    assert model_name("NVIDIA-H100-80GB-HBM3", {}) == "H100"
    assert model_name("NVIDIA-H20", {}) == "H20"
    assert model_name("NVIDIA-A100-SXM4-80GB", {}) == "A100"
    assert model_name("NVIDIA-L40S", {}) == "L40S"
    assert model_name("NVIDIA-H100-80GB-HBM3-SHARED", {}) == "H100"  # time-slicing suffix
    assert model_name("NVIDIA-H100-NVL", {"NVIDIA-H100-NVL": "H100NVL"}) == "H100NVL"
    assert model_name("Weird-Board", {}) == "Weird-Board"


def test_quantities() -> None:
    assert quantity("500m") == 0.5
    assert quantity("96") == 96
    assert quantity("2Gi") == 2 * 2**30
    assert quantity("1G") == 10**9
    assert quantity("2113422164Ki") == 2113422164 * 1024
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity("12Xi")


def test_fleet_from_gfd_labels_uses_worker_pod_size_and_topology() -> None:
    settings = InventorySettings(worker_pod={"H100": PodSize(96, 900)}, nvlink_domains={"H20": 2})
    nodes = [
        gpu_node("gpu-b", zone="zone-b", rack="r7"),
        gpu_node("gpu-a"),
        gpu_node(
            "h20-0", product="NVIDIA-H20", memory_mib=97871, rack=None, cpu="128", memory="1Ti"
        ),
        cpu_node("cpu-0"),
        gpu_node("bad", count=0),
    ]
    specs, skipped = fleet_from_nodes(nodes, settings)
    assert specs == [
        NodeSpec(
            "gpu-a", 8, "H100", 81559, 96, 900 * 1024, 1, (("rack", "r1"), ("zone", "zone-a"))
        ),
        NodeSpec(
            "gpu-b", 8, "H100", 81559, 96, 900 * 1024, 1, (("rack", "r7"), ("zone", "zone-b"))
        ),
        NodeSpec("h20-0", 8, "H20", 97871, 128, 1024 * 1024, 2, (("zone", "zone-a"),)),
    ]
    assert skipped == [
        Skipped("bad", "nvidia.com/gpu.count=0 and nvidia.com/gpu.memory=81559 must be >= 1"),
        Skipped(
            "cpu-0",
            "no GPU Feature Discovery label nvidia.com/gpu.product, "
            "nvidia.com/gpu.count, nvidia.com/gpu.memory",
        ),
    ]


def test_fleet_document_round_trips_through_the_fleet_file_parser() -> None:
    specs, _ = fleet_from_nodes(
        [gpu_node("gpu-a"), gpu_node("h20-0", product="NVIDIA-H20", memory_mib=97871)],
        InventorySettings(),
    )
    assert parse_fleet(fleet_document(specs), Path("<k8s>")) == specs


def test_settings_errors_name_the_key_and_what_is_allowed(tmp_path: Path) -> None:
    p = tmp_path / "k8s.yaml"
    s = parse_k8s_settings({"remediation": {"max_cordoned_share": 0.5, "healthy_checks": 2}}, p)
    assert s.remediation.max_cordoned_share == 0.5 and s.remediation.healthy_checks == 2
    with pytest.raises(
        K8sSettingsError,
        match=r"remediation.max_cordoned_share: .* less than or equal to 1 \(got 1.5\)",
    ):
        parse_k8s_settings({"remediation": {"max_cordoned_share": 1.5}}, p)
    with pytest.raises(
        K8sSettingsError, match=r"remediation.trigger_reasons\[1\]: .*\(got 'fan'\)"
    ):
        parse_k8s_settings({"remediation": {"trigger_reasons": ["xid", "fan"]}}, p)
    with pytest.raises(K8sSettingsError, match=r"inventory.rack: unknown field 'rack' .*allowed"):
        parse_k8s_settings({"inventory": {"rack": "x"}}, p)
    with pytest.raises(
        K8sSettingsError, match=r"inventory.worker_pod.H100.memory_gib: required field is missing"
    ):
        parse_k8s_settings({"inventory": {"worker_pod": {"H100": {"cpus": 4}}}}, p)
