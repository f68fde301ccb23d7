"""The job spec: parsing, errors a user can act on, conversion to the core's Job, the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler.core.model import Job, Topology, WorkerRequest
from scheduler.runtime.spec import JobSpec, json_schema_text, load_spec_file, parse_spec, to_job
from scheduler.runtime.views import SpecRejected

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def minimal(**fields: Any) -> dict[str, Any]:
    return {
        "name": "lane-net",
        "workers": 2,
        "entrypoint": "examples.driving_policy:train_loop",
        **fields,
    }


def rejected(data: Any) -> list[dict[str, Any]]:
    with pytest.raises(SpecRejected) as info:
        parse_spec(data, "api")
    return info.value.errors


def only_error(data: Any) -> dict[str, Any]:
    errors = rejected(data)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_full_spec_becomes_exactly_this_job() -> None:
    spec = parse_spec(
        minimal(
            team="perception",
            priority=7,
            workers=3,
            gpus_per_worker=2,
            cpus_per_worker=1.5,
            memory_gib_per_worker=0.5,
            gpu_models=["H100", "A100"],
            min_gpu_memory_gib=40,
            topology="same_rack",
            checkpoint_interval_s=30,
            estimated_duration_s=900.0,
            max_runtime_s=3600,
            config={"epochs": 2},
        ),
        "api",
    )
    assert to_job(spec, "j-1", 12.5) == Job(
        job_id="j-1",
        worker=WorkerRequest(
            cpu_milli=1500,
            memory_mib=512,
            gpus=2,
            gpu_milli=1000,
            gpu_models=("H100", "A100"),
            min_gpu_memory_mib=40 * 1024,
        ),
        num_workers=3,
        team="perception",
        priority=7,
        submitted_at_s=12.5,
        topology=Topology.SAME_RACK,
        estimated_duration_s=900.0,
        checkpoint_interval_s=30.0,
    )


def test_defaults_and_the_priority_override() -> None:
    spec = parse_spec(minimal(team="mapping", priority_class="batch"), "api")
    assert spec.priority_class == "batch"
    job = to_job(spec, "j-2", 0.0, priority=-5)
    assert job.priority == -5
    assert job.worker == WorkerRequest(cpu_milli=1000, memory_mib=4096, gpus=1)
    assert job.topology is Topology.ANY
    assert (job.estimated_duration_s, job.checkpoint_interval_s) == (None, None)


def test_a_shared_gpu_worker() -> None:
    spec = parse_spec(minimal(team="mapping", workers=4, gpu_milli=500), "api")
    job = to_job(spec, "j-3", 1.0)
    assert job.worker.shares_gpu
    assert (job.worker.gpus, job.worker.gpu_milli, job.total_gpu_milli) == (1, 500, 2000)


def test_to_job_needs_a_team() -> None:
    spec = parse_spec(minimal(), "api")
    with pytest.raises(ValueError, match="no team"):
        to_job(spec, "j-4", 0.0)
    assert to_job(spec.model_copy(update={"team": "ops"}), "j-4", 0.0).team == "ops"


def test_an_unknown_field_is_named_with_a_suggestion() -> None:
    error = only_error(minimal(gpu_per_worker=2))
    assert error["loc"] == ("gpu_per_worker",)
    assert error["input"] == 2
    assert "unknown field 'gpu_per_worker'" in error["msg"]
    assert "did you mean 'gpus_per_worker'?" in error["msg"]
    assert "allowed fields: name, team, priority" in error["msg"]
    assert error["source"] == "api"


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("name", "Lane_Net", "DNS label"),
        ("name", "x" * 64, "at most 63 characters"),
        ("name", "", "at least 1 character"),
        ("team", "-perception", "DNS label"),
        ("workers", 0, "greater than or equal to 1"),
        ("workers", 1.5, "valid integer"),
        ("workers", True, "valid integer"),
        ("priority", "high", "valid integer"),
        ("gpus_per_worker", -1, "greater than or equal to 0"),
        ("gpu_milli", 0, "greater than or equal to 1"),
        ("gpu_milli", 1001, "less than or equal to 1000"),
        ("cpus_per_worker", 0, "greater than 0"),
        ("memory_gib_per_worker", -4, "greater than 0"),
        ("min_gpu_memory_gib", -1, "greater than or equal to 0"),
        ("topology", "same_host", "'any', 'same_node', 'same_nvlink' or 'same_rack'"),
        ("entrypoint", "examples/driving_policy.py", "'package.module:function'"),
        ("entrypoint", "examples.driving_policy.train_loop", "'package.module:function'"),
        ("checkpoint_interval_s", 0, "greater than 0"),
        ("max_runtime_s", -1.0, "greater than 0"),
        ("estimated_duration_s", "1h", "valid number"),
        ("gpu_models", "H100", "valid list"),
        ("config", [1, 2], "valid dictionary"),
    ],
)
def test_each_invalid_field_is_named_with_what_is_allowed(
    field: str, value: Any, allowed: str
) -> None:
    error = only_error(minimal(**{field: value}))
    assert error["loc"] == (field,)
    assert error["input"] == value
    assert allowed in error["msg"]


def test_a_missing_required_field() -> None:
    data = minimal()
    del data["workers"]
    error = only_error(data)
    assert (error["loc"], error["msg"]) == (("workers",), "required field is missing")


def test_a_job_without_entrypoint_or_command() -> None:
    data = minimal()
    del data["entrypoint"]
    error = only_error(data)
    assert error["loc"] == ("entrypoint",)
    assert error["msg"] == (
        "give entrypoint (a Ray Train loop 'module:function') or command "
        "(a script run as a Ray job)"
    )


@pytest.mark.parametrize(
    ("fields", "loc", "allowed"),
    [
        ({"gpu_milli": 500, "gpus_per_worker": 2}, "gpus_per_worker", "gpus_per_worker must be 1"),
        ({"gpu_milli": 250, "gpus_per_worker": 0}, "gpus_per_worker", "gpus_per_worker must be 1"),
        ({"gpu_milli": 500, "topology": "same_node"}, "topology", "allowed: 'any' or 'same_rack'"),
        ({"gpus_per_worker": 0, "gpu_models": ["H100"]}, "gpu_models", "gpus_per_worker 0"),
        (
            {"gpus_per_worker": 0, "min_gpu_memory_gib": 8},
            "min_gpu_memory_gib",
            "gpus_per_worker 0",
        ),
        ({"gpus_per_worker": 0, "topology": "same_nvlink"}, "topology", "'any', 'same_node' or"),
        ({"gpu_models": ["H100", "A100", "H100"]}, "gpu_models", "H100 more than once"),
        ({"cpus_per_worker": 0.0001}, "cpus_per_worker", "at least 0.001"),
        ({"config": {"gpuyard": {}}}, "config", "'gpuyard' is reserved"),
        ({"estimated_duration_s": 700, "max_runtime_s": 600}, "estimated_duration_s", "600 s"),
    ],
)
def test_cross_field_rules_name_the_field(fields: dict[str, Any], loc: str, allowed: str) -> None:
    error = only_error(minimal(**fields))
    assert error["loc"] == (loc,)
    assert allowed in error["msg"]


def test_every_problem_is_reported_at_once() -> None:
    errors = rejected({"name": "A", "workers": 0, "entrypoint": "x", "colour": "red"})
    assert [e["loc"] for e in errors] == [("name",), ("workers",), ("entrypoint",), ("colour",)]


def test_a_spec_that_is_not_a_mapping() -> None:
    error = only_error(["name", "x"])
    assert error["loc"] == ()
    assert "mapping" in error["msg"]
    assert "got list" in error["msg"]


def test_the_rejection_message_lists_the_fields() -> None:
    with pytest.raises(SpecRejected, match=r"workers: Input should be greater than or equal to 1"):
        parse_spec(minimal(workers=0), "api")


def test_a_spec_is_immutable() -> None:
    spec = parse_spec(minimal(), "api")
    with pytest.raises(ValueError, match="frozen"):
        spec.workers = 3


# --- files ---------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def file_errors(path: Path) -> list[dict[str, Any]]:
    with pytest.raises(SpecRejected) as info:
        load_spec_file(path)
    return info.value.errors


def test_a_field_error_in_a_file_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: lane-net\nworkers: 2\ntopology: diagonal\nentrypoint: examples.driving_policy:train_loop\n",
    )
    (error,) = file_errors(path)
    assert error["loc"] == ("topology",)
    assert error["line"] == 3
    assert error["source"] == str(path)
    assert error["msg"].endswith(f"(in {path}, line 3)")
    assert "'any', 'same_node', 'same_nvlink' or 'same_rack'" in error["msg"]


def test_an_unknown_field_in_a_file_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: lane-net\nworkers: 2\nentrypoint: a.b:c\ngpus: 4\n")
    (error,) = file_errors(path)
    assert (error["loc"], error["line"]) == (("gpus",), 4)
    assert str(path) in error["msg"]


def test_a_missing_field_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name: lane-net\nworkers: 2\n")
    (error,) = file_errors(path)
    assert error["loc"] == ("entrypoint",)
    assert str(path) in error["msg"]


def test_a_cross_field_error_in_a_file_has_the_line_of_its_field(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: a\nworkers: 1\nentrypoint: a.b:c\ngpu_milli: 500\ngpus_per_worker: 2\n"
    )
    (error,) = file_errors(path)
    assert (error["loc"], error["line"]) == (("gpus_per_worker",), 5)


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: lane-net\nworkers: [2\nentrypoint: a.b:c\n")
    (error,) = file_errors(path)
    assert error["loc"] == ()
    assert error["msg"].startswith("invalid YAML")
    assert str(path) in error["msg"]
    assert error["line"] is not None and error["line"] >= 2


def test_duplicate_keys_are_rejected_not_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "name: lane-net\nworkers: 2\nentrypoint: a.b:c\nworkers: 4\n")
    (error,) = file_errors(path)
    assert (error["loc"], error["line"]) == (("workers",), 4)
    assert "more than once" in error["msg"]


@pytest.mark.parametrize(("text", "says"), [("", "empty"), ("- a\n- b\n", "mapping")])
def test_a_file_without_a_mapping(tmp_path: Path, text: str, says: str) -> None:
    (error,) = file_errors(write(tmp_path, text))
    assert says in error["msg"]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    (error,) = file_errors(tmp_path / "nope.yaml")
    assert "nope.yaml" in error["msg"]


# --- schema and examples -------------------------------------------------------------------


def test_the_schema_file_is_up_to_date() -> None:
    committed = (EXAMPLES / "jobspec.schema.json").read_text()
    assert committed == json_schema_text(), (
        "examples/jobspec.schema.json is stale: run "
        "`python -m scheduler.runtime.spec > examples/jobspec.schema.json`"
    )


def test_the_schema_describes_the_model() -> None:
    schema = json.loads(json_schema_text())
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["name", "workers"]
    assert [one["required"] for one in schema["oneOf"]] == [["entrypoint"], ["command"]]
    assert set(schema["properties"]) == set(JobSpec.model_fields)


EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_examples_from_three_teams() -> None:
    teams = {load_spec_file(p).team for p in EXAMPLE_SPECS}
    assert len(teams) >= 3


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_every_example_parses_and_its_config_suits_the_loop(path: Path) -> None:
    spec = load_spec_file(path)
    job = to_job(spec, path.stem, 0.0)
    assert job.num_workers == spec.workers
    assert spec.entrypoint == "examples.driving_policy:train_loop"
    from examples.driving_policy import Settings  # imports torch and Ray Train: only here

    Settings.from_config(spec.config)  # the example loop accepts the spec's config
