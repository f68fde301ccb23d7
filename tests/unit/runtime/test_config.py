"""The fleet and service-config files: exact nodes, and errors naming file, line, field, value
and rule (``file:line: field.path: msg (got value)``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.files.document import InputRejected
from scheduler.runtime.config import (
    ConfigFileError,
    NodeSpec,
    TeamGrant,
    load_config,
    load_fleet,
    parse_fleet,
)

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
            "nodes[0].count: Input should be greater than or equal to 1 (got 0)\n"
            "fleet.yaml: nodes[0].gpus: Input should be greater than or equal to 0 (got -1)",
        ),
        ({"name": "x", "gpus": True}, "nodes[0].gpus: Input should be a valid integer (got True)"),
        (
            {"name": "x", "memory_gib": 0.5},
            "nodes[0].memory_gib: Input should be greater than or equal to 1 (got 0.5)",
        ),
        (
            {"name": "x", "gpu": 4},
            "nodes[0].gpu: unknown field 'gpu' in nodes[0] (did you mean 'gpus'?); allowed "
            "fields: name, count, gpus, gpu_model, gpu_memory_gib, cpus, memory_gib, "
            "nvlink_domains, labels, region (got 4)",
        ),
        (
            {"name": "x", "gpus": 10**30},
            "nodes[0].gpus: Input should be less than or equal to 64 (got "
            "1000000000000000000000000000000)",
        ),
        ({"name": ""}, "nodes[0].name: String should have at least 1 character (got '')"),
        (
            {"name": "x", "labels": {"rack": 7}},
            "nodes[0].labels.rack: Input should be a valid string; quote it in YAML (got 7)",
        ),
    ],
)
def test_bad_nodes_are_named(node: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigFileError) as bad:
        parse_fleet({"nodes": [node]}, F)
    assert str(bad.value) == f"fleet.yaml: {message}"


def test_duplicate_names_are_refused_also_after_counting() -> None:
    with pytest.raises(ConfigFileError) as bad:
        parse_fleet({"nodes": [{"name": "a"}, {"name": "a"}]}, F)
    assert str(bad.value) == (
        "fleet.yaml: nodes[1].name: node name 'a' is already given by nodes[0]; node names "
        "must be unique (got 'a')"
    )
    with pytest.raises(ConfigFileError) as bad:
        parse_fleet({"nodes": [{"name": "h", "count": 2}, {"name": "h-1"}]}, F)
    assert bad.value.errors[0]["loc"] == ("nodes", 1, "name")
    assert "node name 'h-1' is already given by nodes[0]" in str(bad.value)


def test_a_fleet_beyond_the_schedulers_size_is_refused() -> None:
    with pytest.raises(ConfigFileError) as bad:
        parse_fleet({"nodes": [{"name": "h", "count": 2000, "gpus": 64}]}, F)
    assert str(bad.value) == (
        "fleet.yaml: document: the fleet has 2000 nodes and 128000 GPUs; at most 100000 nodes "
        "and 100000 GPUs"
    )


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN"])
def test_a_non_finite_size_in_a_fleet_file_names_file_line_and_field(
    tmp_path: Path, value: str
) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text(f"nodes:\n  - name: a\n    gpus: 4\n    memory_gib: {value}\n")
    with pytest.raises(ConfigFileError) as bad:
        load_fleet(f)
    shown = {".nan": "nan", ".NaN": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert str(bad.value) == (
        f"{f}:4: nodes[0].memory_gib: Input should be a finite number (not NaN or infinite) "
        f"(got {shown})"
    )
    (error,) = bad.value.errors
    assert (error["loc"], error["line"], error["source"]) == (("nodes", 0, "memory_gib"), 4, str(f))


@pytest.mark.parametrize(
    ("name", "text", "line", "key"),
    [
        ("fleet", "nodes:\n  - name: a\n    gpus: 4\n    gpus: 8\n", 4, "nodes[0].gpus"),
        ("config", "api_port: 8000\nqueue: fifo\napi_port: 9000\n", 3, "api_port"),
    ],
)
def test_a_key_given_twice_is_refused_with_both_lines(
    tmp_path: Path, name: str, text: str, line: int, key: str
) -> None:
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    with pytest.raises(ConfigFileError) as bad:
        load_fleet(f) if name == "fleet" else load_config(f)
    first = 3 if name == "fleet" else 1
    leaf = key.rsplit(".", 1)[-1]
    assert str(bad.value) == (
        f"{f}:{line}: {key}: key '{leaf}' is given more than once (first on line {first}); "
        f"give each key once (got '{leaf}')"
    )
    assert isinstance(bad.value, InputRejected) and bad.value.errors[0]["type"] == "duplicate_key"


def test_config_paths_resolve_against_the_file_and_types_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "service.yaml"
    cfg.write_text("quotas: quotas.yaml\napi_port: 9000\n")
    got = load_config(cfg, state_dir="/tmp/x")
    assert (got.quotas, got.api_port, got.state_dir) == (
        str(tmp_path / "quotas.yaml"),
        9000,
        "/tmp/x",
    )
    cfg.write_text("queue: fifo\napi_port: '9000'\n")
    with pytest.raises(ConfigFileError) as bad:
        load_config(cfg)
    assert str(bad.value) == f"{cfg}:2: api_port: Input should be a valid integer (got '9000')"


def test_team_grants_are_read_and_checked(tmp_path: Path) -> None:
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
        (
            "teams: {perception: {max_priority: high}}",
            "teams.perception.max_priority: Input should be a valid integer (got 'high')",
        ),
        (
            "teams: {perception: {priority: 3}}",
            "teams.perception.priority: unknown field 'priority' in teams.perception (did you "
            "mean 'max_priority'?); allowed fields: priority_classes, max_priority (got 3)",
        ),
        (
            "teams: {perception: {priority_classes: production}}",
            "teams.perception.priority_classes: Input should be a valid list (got 'production')",
        ),
        (
            "teams: {perception: 5}",
            "teams.perception: Input should be a mapping with fields priority_classes, "
            "max_priority (got 5)",
        ),
        ("aging_s: -1", "aging_s: Input should be greater than 0 (got -1)"),
        ("snapshot_every: 0", "snapshot_every: Input should be greater than or equal to 1 (got 0)"),
        ("loop_period_s: -5", "loop_period_s: Input should be greater than 0 (got -5)"),
        ("loop_period_s: 0", "loop_period_s: Input should be greater than 0 (got 0)"),
        (
            "stop_grace_s: .nan",
            "stop_grace_s: Input should be a finite number (not NaN or infinite) (got nan)",
        ),
        (
            "stop_grace_s: -1",
            "stop_grace_s: Input should be greater than or equal to 0 (got -1)",
        ),
        (
            "telemetry_period_s: .inf",
            "telemetry_period_s: Input should be a finite number (not NaN or infinite) (got inf)",
        ),
        (
            "queue: lifo",
            "queue: unknown queue order; known: fifo, priority, sjf, las, drf (got 'lifo')",
        ),
        (
            "packing: tightest",
            "packing: unknown packing policy; known: random, dot_product, gpu_clustering, "
            "gpu_packing, best_fit, fgd, topology, frag_pack (got 'tightest')",
        ),
        (
            "backfill: always",
            "backfill: Input should be 'none', 'greedy' or 'easy' (got 'always')",
        ),
        ("api_port: 70000", "api_port: Input should be less than or equal to 65535 (got 70000)"),
        (
            "teams:\n  1: {}",
            "teams.1: Input should be a valid string; quote it in YAML (got 1)",
        ),
    ],
)
def test_bad_team_grants_and_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "service.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigFileError) as e:
        load_config(f)
    line = text.count("\n") + 1
    assert str(e.value) == f"{f}:{line}: {message}"


def test_an_unknown_setting_lists_the_allowed_ones(tmp_path: Path) -> None:
    f = tmp_path / "service.yaml"
    f.write_text("queue: fifo\nloop_period: 1\n")
    with pytest.raises(ConfigFileError) as e:
        load_config(f)
    assert str(e.value).startswith(
        f"{f}:2: loop_period: unknown field 'loop_period' (did you mean 'loop_period_s'?); "
        "allowed fields: packing, queue, backfill,"
    )


def test_an_empty_config_is_the_defaults_and_a_bad_override_is_named(tmp_path: Path) -> None:
    f = tmp_path / "service.yaml"
    f.write_text("# nothing set\n")
    assert load_config(f).loop_period_s == 0.5
    with pytest.raises(ConfigFileError) as e:
        load_config(None, backfill="sometimes")
    assert str(e.value) == (
        "<service config>: backfill: Input should be 'none', 'greedy' or 'easy' (got 'sometimes')"
    )


def test_a_granted_class_must_exist(tmp_path: Path) -> None:
    f = tmp_path / "service.yaml"
    f.write_text("teams: {perception: {priority_classes: [urgent]}}\n")
    with pytest.raises(ConfigFileError) as e:
        load_config(f).scheduler_config()
    assert str(e.value) == (
        f"{f}:1: teams.perception.priority_classes: must be a class of the priority-class file "
        "(none configured) (got 'urgent')"
    )
