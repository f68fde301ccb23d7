"""The fleet and service-config files: exact nodes, and errors naming file, field and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.runtime.config import ConfigFileError, NodeSpec, load_config, parse_fleet

F = Path("fleet.yaml")


def test_a_counted_entry_expands_to_numbered_nodes_with_sizes_in_mib() -> None:
    doc = {"nodes": [{"name": "h", "count": 2, "gpus": 8, "gpu_memory_gib": 80, "cpus": 16,
                      "memory_gib": 64, "nvlink_domains": 2, "labels": {"rack": "r1"}}]}  # fmt: skip
    assert parse_fleet(doc, F) == [
        NodeSpec(f"h-{k}", 8, "H100", 81_920, 16, 65_536, 2, (("rack", "r1"),)) for k in range(2)
    ]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"name": "x", "count": 0, "gpus": -1},
            "nodes[0].count: 0 is not allowed (an integer >= 1)",
        ),
        ({"name": "x", "gpus": True}, "nodes[0].gpus: True is not allowed (an integer >= 0)"),
        (
            {"name": "x", "memory_gib": 0.5},
            "nodes[0].memory_gib: 0.5 is not allowed (a number >= 1)",
        ),
        (
            {"name": "x", "gpu": 4},
            "nodes[0].gpu: 4 is not allowed (one of count, cpus, gpu_memory_gib",
        ),
    ],
)
def test_bad_nodes_are_named(node: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigFileError) as bad:
        parse_fleet({"nodes": [node]}, F)
    assert str(bad.value).startswith(f"fleet.yaml: {message}")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigFileError, match="unique node names"):
        parse_fleet({"nodes": [{"name": "a"}, {"name": "a"}]}, F)


def test_config_paths_resolve_against_the_file_and_types_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "service.yaml"
    cfg.write_text("quotas: quotas.yaml\napi_port: 9000\n")
    got = load_config(cfg, state_dir="/tmp/x")
    assert (got.quotas, got.api_port, got.state_dir) == (
        str(tmp_path / "quotas.yaml"),
        9000,
        "/tmp/x",
    )
    cfg.write_text("api_port: '9000'\n")
    with pytest.raises(ConfigFileError, match=r"api_port: '9000' is not allowed \(int\)"):
        load_config(cfg)
