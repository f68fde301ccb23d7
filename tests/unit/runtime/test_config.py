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


def test_team_grants_are_read_and_checked(tmp_path: Path) -> None:
    from scheduler.runtime.config import TeamGrant

    classes = tmp_path / "classes.yaml"
    classes.write_text("classes: {production: 1000, research: 100}\n")
    f = tmp_path / "service.yaml"
    f.write_text(
        "priority_classes: classes.yaml\naging_s: 600\nfair_share_half_life_s: 3600\n"
        "teams:\n  perception: {max_priority: 10, priority_classes: [production]}\n"
    )
    cfg = load_config(f)
    assert cfg.teams == (TeamGrant("perception", ("production",), 10),)
    assert cfg.grant("mapping") == TeamGrant("mapping")  # unlisted: default class, priority 0
    sched = cfg.scheduler_config()
    assert (sched.aging_s, sched.fair_share_half_life_s) == (600, 3600)
    assert (
        sched.priority_classes is not None and sched.priority_classes.values["production"] == 1000
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teams: {perception: {max_priority: high}}", "teams.perception.max_priority: 'high'"),
        ("teams: {perception: {priority: 3}}", "teams.perception.priority: 3"),
        (
            "teams: {perception: {priority_classes: production}}",
            "teams.perception.priority_classes: 'production'",
        ),
        ("teams: {perception: 5}", "teams.perception: 5"),
        ("aging_s: -1", "aging_s: -1"),
        ("snapshot_every: 0", "snapshot_every: 0"),
    ],
)
def test_bad_team_grants_and_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "service.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigFileError) as e:
        load_config(f)
    assert message in str(e.value)


def test_a_granted_class_must_exist(tmp_path: Path) -> None:
    f = tmp_path / "service.yaml"
    f.write_text("teams: {perception: {priority_classes: [urgent]}}\n")
    with pytest.raises(ConfigFileError) as e:
        load_config(f).scheduler_config()
    assert "teams.perception.priority_classes: 'urgent'" in str(e.value)
    assert "none configured" in str(e.value)
