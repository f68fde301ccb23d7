"""The JSON Schemas of gpuyard's input files, generated from their models (one registry).

``python -m scheduler.files.schemas`` writes each to ``examples/schemas/<name>.schema.json``
(the job spec's to ``examples/jobspec.schema.json``, where it has always been); a test fails
when a written schema is stale. Editors validate a file against one with a modeline, e.g.
for the yaml-language-server (VS Code's YAML extension, Neovim, Helix)::

    # yaml-language-server: $schema=../schemas/fleet.schema.json

A schema says what one field may hold (types, ranges, enumerations, patterns, required and
unknown fields); a rule across fields or files (a team the workload does not know, node names
unique over the fleet) is the loader's alone, and the loader's errors name it.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "examples" / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True)
class Entry:
    """One input file's schema: ``source`` is ``"module:Model"`` (a pydantic model) or
    ``"module:function"`` (returning the schema), imported when the schema is made."""

    source: str
    title: str
    description: str
    path: Path | None = None  # default: examples/schemas/<name>.schema.json


# name -> its schema; a new input file adds one line here
SCHEMAS: dict[str, Entry] = {
    "fleet": Entry("scheduler.runtime.config:FleetFile", "gpuyard fleet file", "Which nodes and GPUs the service runs on (gpuyard up --fleet)."),
    "service-config": Entry("scheduler.runtime.config:ConfigFile", "gpuyard service config", "Policies, files, ports, periods and data residency of the service (gpuyard up --config)."),
    "quotas": Entry("scheduler.files.quota_file:QuotaFile", "gpuyard quota file", "Nominal, borrowing and lending GPU quotas per team and GPU model, and cohorts."),
    "priority-classes": Entry("scheduler.files.priority_file:PriorityFile", "gpuyard priority classes", "Named priority classes, the default class and each team's default class."),
    "tokens": Entry("scheduler.runtime.auth:TokenDocument", "gpuyard API tokens", "Per-team and admin bearer tokens of the HTTP API, as SHA-256 hashes or environment variables."),
    "k8s-settings": Entry("scheduler.runtime.k8s.settings:K8sSettingsFile", "gpuyard Kubernetes settings", "How the fleet is read from Kubernetes nodes and when GPU nodes are cordoned (k8s.yaml)."),
    "scenario": Entry("planner.schema:ScenarioFile", "gpuyard planner scenario", "A capacity-planning scenario for gpuyard plan: horizon, economics, GPU SKUs, sites and workloads (planner/README.md)."),
    "jobspec": Entry("scheduler.runtime.spec:json_schema", "gpuyard job spec", "A training job: a Ray Train loop or a script, its gang, resources and runtime_env.", ROOT / "examples" / "jobspec.schema.json"),
}  # fmt: skip


def schema_id(name: str) -> str:
    return f"urn:gpuyard:schema:{name}"


def path_of(name: str) -> Path:
    entry = SCHEMAS[name]
    return entry.path or FOLDER / f"{name}.schema.json"


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the input file ``name``."""
    entry = SCHEMAS[name]
    module, attr = entry.source.split(":")
    made = getattr(importlib.import_module(module), attr)
    described = {
        "$schema": DRAFT,
        "$id": schema_id(name),
        "title": entry.title,
        "description": entry.description,
    }
    if isinstance(made, type) and issubclass(made, BaseModel):
        return {**made.model_json_schema(), **described}
    fn: Callable[[], dict[str, Any]] = made  # a schema of its own making: its words win
    return {**described, **fn()}


def schema_text(name: str) -> str:
    """The schema as written to its file (stable key order)."""
    return json.dumps(schema(name), indent=2, sort_keys=True) + "\n"


def write_all() -> list[Path]:
    """Write every schema to its file; the paths written."""
    written = []
    for name in SCHEMAS:
        path = path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(schema_text(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        sys.stdout.write(f"wrote {p.relative_to(ROOT)}\n")
