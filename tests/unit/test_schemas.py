"""The published JSON Schemas of the input files: current, described, and in agreement with
the loaders on every real input file of the repository."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scheduler.files.priority_file import load_priority_classes
from scheduler.files.quota_file import load_quotas
from scheduler.files.schemas import SCHEMAS, path_of, schema, schema_id, schema_text
from scheduler.runtime.auth import load_token_file
from scheduler.runtime.config import DEFAULT_FLEET, load_config, load_fleet
from scheduler.runtime.k8s.settings import load_k8s_settings
from scheduler.runtime.spec import load_spec_file

ROOT = Path(__file__).resolve().parents[2]
ENV = {f"GPUYARD_TOKEN_{t}": f"token-{t}" for t in ("ADMIN", "PERCEPTION", "PLANNING", "MAPPING")}

# every real input file of the repository, by its schema, and the loader that reads it
LOADERS: dict[str, Callable[[Path], object]] = {
    "fleet": load_fleet,
    "service-config": load_config,
    "quotas": load_quotas,
    "priority-classes": load_priority_classes,
    "tokens": lambda p: load_token_file(p, environ=ENV),
    "k8s-settings": load_k8s_settings,
    "jobspec": load_spec_file,
}
FILES: dict[str, list[str]] = {
    "fleet": ["examples/config/fleet-regions.yaml"],
    "service-config": [
        "examples/config/service.yaml",
        "examples/config/residency.yaml",
        "k8s/base/config/service.yaml",
        "k8s/overlays/s3-checkpoints/service.yaml",
    ],
    "quotas": ["k8s/base/config/quotas.yaml"],
    "priority-classes": ["k8s/base/config/priority-classes.yaml"],
    "tokens": ["k8s/base/config/tokens.yaml"],
    "k8s-settings": [
        "k8s/base/config/k8s.yaml",
        "k8s/overlays/gpu-prod/k8s.yaml",
        "k8s/overlays/dev-cpu/k8s.yaml",
    ],
    "jobspec": [
        "examples/perception.yaml",
        "examples/planning.yaml",
        "examples/mapping.yaml",
        "examples/script_job/job.yaml",
    ],
}
CASES = [(name, f) for name, files in FILES.items() for f in files]


def published(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path_of(name).read_text())
    return loaded


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_each_published_schema_is_current_and_described(name: str) -> None:
    assert path_of(name).read_text() == schema_text(name), (
        f"{path_of(name).relative_to(ROOT)} is stale: run `python -m scheduler.files.schemas`"
    )
    got = published(name)
    assert got["$id"] == schema_id(name) == f"urn:gpuyard:schema:{name}"
    assert got["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert got["title"].startswith("gpuyard ") and len(got["description"]) > 20
    jsonschema.Draft202012Validator.check_schema(got)


def test_the_schemas_carry_the_loaders_rules() -> None:
    fleet = schema("fleet")["$defs"]["NodeEntry"]["properties"]
    assert (fleet["gpus"]["minimum"], fleet["gpus"]["maximum"]) == (0, 64)
    assert fleet["region"]["anyOf"][0]["pattern"].startswith("^[A-Za-z0-9]")
    config = schema("service-config")["properties"]
    assert config["loop_period_s"]["exclusiveMinimum"] == 0
    assert config["stop_grace_s"]["minimum"] == 0
    assert config["queue"]["enum"] == ["fifo", "priority", "sjf", "las", "drf"]
    assert config["backfill"]["enum"] == ["none", "greedy", "easy"]
    assert schema("service-config")["additionalProperties"] is False


def test_every_real_input_file_is_listed() -> None:
    """A new fleet, config, quota, priority, token or k8s settings file in the repository
    must be added to FILES (so its schema and its loader are checked on it)."""
    listed = {f for files in FILES.values() for f in files}
    kinds = {
        "nodes": "fleet",
        "quotas": "quotas",
        "classes": "priority-classes",
        "tokens": "tokens",
        "remediation": "k8s-settings",
        "inventory": "k8s-settings",
        "loop_period_s": "service-config",
        "api_port": "service-config",
        "teams": "service-config",
    }
    found = []
    for folder in ("examples", "k8s"):
        for path in sorted((ROOT / folder).rglob("*.yaml")):
            docs = list(yaml.safe_load_all(path.read_text()))
            doc = docs[0] if len(docs) == 1 else None
            if isinstance(doc, dict) and "kind" not in doc and set(doc) & set(kinds):
                found.append(str(path.relative_to(ROOT)))
    assert sorted(set(found) - listed) == []


@pytest.mark.parametrize(("name", "file"), CASES)
def test_the_repositorys_files_satisfy_their_schema_and_load(name: str, file: str) -> None:
    path = ROOT / file
    jsonschema.validate(yaml.safe_load(path.read_text()), published(name))
    assert LOADERS[name](path) is not None


def test_the_built_in_fleet_satisfies_the_fleet_schema() -> None:
    jsonschema.validate(DEFAULT_FLEET, published("fleet"))
    assert len(load_fleet(None)) == 3


@pytest.mark.parametrize(
    ("name", "doc", "where"),
    [
        ("fleet", {"nodes": [{"name": "a", "memory_gib": 0.5}]}, ["nodes", 0, "memory_gib"]),
        ("fleet", {"nodes": [{"name": "a", "labels": {"gpuyard.io/region": "a b"}}]},
         ["nodes", 0, "labels", "gpuyard.io/region"]),
        ("service-config", {"loop_period_s": -5}, ["loop_period_s"]),
        ("service-config", {"queue": "lifo"}, ["queue"]),
        ("service-config", {"residency": {"CN": ["CN", "CN"]}}, ["residency", "CN"]),
        ("quotas", {"quotas": [{"team": "a"}]}, ["quotas", 0]),
        ("priority-classes", {"classes": {"a": 1.5}}, ["classes", "a"]),
        ("tokens", [{"team": "a", "admin": True, "token_env": "X"}], [0]),
        ("tokens", [{"team": "a", "token_sha256": "hunter2"}], [0, "token_sha256"]),
        ("k8s-settings", {"remediation": {"trigger_reasons": ["fan"]}},
         ["remediation", "trigger_reasons", 0]),
    ],
)  # fmt: skip
def test_a_schema_refuses_what_its_loader_refuses(
    name: str, doc: object, where: list[object]
) -> None:
    def paths(errors: list[jsonschema.ValidationError]) -> list[list[object]]:
        """Where each error and each error within (anyOf, oneOf) is."""
        return [p for e in errors for p in [list(e.absolute_path), *paths(list(e.context or []))]]

    errors = list(jsonschema.Draft202012Validator(published(name)).iter_errors(doc))
    assert errors and where in paths(errors), paths(errors)
