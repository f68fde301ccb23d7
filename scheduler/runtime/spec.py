"""The job spec: what a team submits (YAML file, HTTP JSON body), validated into ``JobSpec``.

One pydantic model is the single definition of the format: it validates submissions, it turns
into the core's ``Job`` (:func:`to_job`), and it generates the JSON Schema that editors and
the docs use (``python -m scheduler.runtime.spec > examples/jobspec.schema.json``).

Every rejection is data: :class:`~scheduler.runtime.views.SpecRejected` carries one error per
problem, each with ``loc`` (the field path, e.g. ``("workers",)``), ``msg`` (the rule broken
and what is allowed), ``input`` (the bad value) and ``source`` (where the spec came from). A
misspelt field is an error that names it; nothing the user wrote is dropped silently (YAML
duplicate keys are rejected too, since a YAML loader would keep only the last one).

Units: CPUs are cores (``cpus_per_worker: 0.5``), memory is GiB, times are seconds. The core
counts CPU in milli-cores and memory in MiB; :func:`to_job` converts.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from scheduler.core.model import MILLI_PER_GPU, Job, Topology, WorkerRequest
from scheduler.runtime.views import SpecRejected

__all__ = [
    "DNS_LABEL_PATTERN",
    "ENTRYPOINT_PATTERN",
    "RESERVED_CONFIG_KEY",
    "JobSpec",
    "json_schema",
    "json_schema_text",
    "load_spec_file",
    "parse_spec",
    "to_job",
]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_RULE = (
    "must be a DNS label: 1 to 63 characters of a-z, 0-9 and '-', "
    "starting and ending with a letter or digit"
)
ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
ENTRYPOINT_RULE = (
    "must be 'package.module:function' (a dotted module path importable on the workers, "
    "a colon, then the name of the training-loop function)"
)
# The service adds ``config["gpuyard"]`` (job id, control dir, chosen GPUs) for the loop.
RESERVED_CONFIG_KEY = "gpuyard"
MIB_PER_GIB = 1024

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
GpuModel = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class _CrossFieldProblems(ValueError):
    """Raised by the model validator with one ``(field, msg, input)`` per broken cross-field
    rule; :func:`parse_spec` turns each into an error located at its field."""

    def __init__(self, problems: list[tuple[str, str, Any]]) -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg, _ in problems))
        self.problems = problems


class JobSpec(BaseModel):
    """A training job: a gang of identical workers running one Ray Train loop."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="gpuyard job spec")

    name: DnsLabel = Field(description="job name; " + DNS_LABEL_RULE)
    team: DnsLabel | None = Field(
        None,
        description="owning team (" + DNS_LABEL_RULE + "); the API fills it from the "
        "caller's token, and rejects a spec naming another team",
    )
    priority: int = Field(0, strict=True, description="higher runs first; may preempt lower")
    priority_class: str | None = Field(
        None,
        min_length=1,
        max_length=63,
        description="a named priority class from the service config (sets the priority)",
    )
    workers: int = Field(strict=True, ge=1, description="number of workers in the gang")
    gpus_per_worker: int = Field(
        1, strict=True, ge=0, description="whole GPUs per worker (1 when sharing a GPU)"
    )
    gpu_milli: int = Field(
        MILLI_PER_GPU,
        strict=True,
        ge=1,
        le=MILLI_PER_GPU,
        description="thousandths of each GPU a worker takes; below 1000 the worker shares "
        "one GPU with others and gpus_per_worker must be 1",
    )
    cpus_per_worker: float = Field(1.0, strict=True, gt=0, description="CPU cores per worker")
    memory_gib_per_worker: float = Field(
        4.0, strict=True, gt=0, description="host memory per worker, GiB"
    )
    gpu_models: list[GpuModel] = Field(
        default_factory=list,
        description="allowed GPU models, e.g. ['H100', 'A100']; empty means any",
    )
    min_gpu_memory_gib: float = Field(
        0.0, strict=True, ge=0, description="least memory of each GPU, GiB"
    )
    topology: Topology = Field(
        Topology.ANY, description="where the workers must land relative to each other"
    )
    entrypoint: str = Field(
        pattern=ENTRYPOINT_PATTERN,
        description="the training loop, 'package.module:function', imported on the workers",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="free-form settings passed to the loop as its config (key 'gpuyard' "
        "is reserved for the service)",
        json_schema_extra={"not": {"required": [RESERVED_CONFIG_KEY]}},
    )
    checkpoint_interval_s: float | None = Field(
        None, strict=True, gt=0, description="how often the loop checkpoints, seconds"
    )
    max_runtime_s: float | None = Field(
        None, strict=True, gt=0, description="the job is stopped after this long, seconds"
    )
    estimated_duration_s: float | None = Field(
        None, strict=True, gt=0, description="the submitter's runtime estimate, seconds"
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> JobSpec:
        problems = _cross_field_problems(self)
        if problems:
            raise _CrossFieldProblems(problems)
        return self


def _cross_field_problems(spec: JobSpec) -> list[tuple[str, str, Any]]:
    """Rules between fields, each reported at the field the user most likely has to change."""
    problems: list[tuple[str, str, Any]] = []
    gpus = spec.gpus_per_worker
    if spec.gpu_milli < MILLI_PER_GPU and gpus != 1:
        problems.append(
            (
                "gpus_per_worker",
                f"a worker sharing a GPU (gpu_milli={spec.gpu_milli} < 1000) takes exactly "
                f"one GPU: gpus_per_worker must be 1, or gpu_milli 1000",
                gpus,
            )
        )
    if (
        spec.gpu_milli < MILLI_PER_GPU
        and spec.workers > 1
        and spec.topology in (Topology.SAME_NODE, Topology.SAME_NVLINK)
    ):
        problems.append(
            (
                "topology",
                f"workers sharing GPUs (gpu_milli={spec.gpu_milli}) cannot ask for "
                f"{spec.topology.value}; allowed: 'any' or 'same_rack'",
                spec.topology.value,
            )
        )
    if gpus == 0:
        if spec.gpu_models:
            problems.append(
                (
                    "gpu_models",
                    "set with gpus_per_worker 0; drop it or ask for GPUs",
                    spec.gpu_models,
                )
            )
        if spec.min_gpu_memory_gib > 0:
            problems.append(
                (
                    "min_gpu_memory_gib",
                    "set with gpus_per_worker 0; drop it or ask for GPUs",
                    spec.min_gpu_memory_gib,
                )
            )
        if spec.topology is Topology.SAME_NVLINK:
            problems.append(
                (
                    "topology",
                    "same_nvlink needs GPUs (gpus_per_worker is 0); allowed without GPUs: "
                    "'any', 'same_node' or 'same_rack'",
                    spec.topology.value,
                )
            )
    duplicates = sorted({m for m in spec.gpu_models if spec.gpu_models.count(m) > 1})
    if duplicates:
        problems.append(
            ("gpu_models", f"lists {', '.join(duplicates)} more than once", spec.gpu_models)
        )
    if round(spec.cpus_per_worker * 1000) < 1:
        problems.append(
            ("cpus_per_worker", "must be at least 0.001 (one milli-core)", spec.cpus_per_worker)
        )
    if round(spec.memory_gib_per_worker * MIB_PER_GIB) < 1:
        problems.append(
            (
                "memory_gib_per_worker",
                "must be at least 1 MiB (0.0009765625 GiB)",
                spec.memory_gib_per_worker,
            )
        )
    if RESERVED_CONFIG_KEY in spec.config:
        problems.append(
            (
                "config",
                f"key '{RESERVED_CONFIG_KEY}' is reserved: the service passes the run's "
                "context under it",
                spec.config[RESERVED_CONFIG_KEY],
            )
        )
    if (
        spec.estimated_duration_s is not None
        and spec.max_runtime_s is not None
        and spec.estimated_duration_s > spec.max_runtime_s
    ):
        problems.append(
            (
                "estimated_duration_s",
                f"exceeds max_runtime_s ({spec.max_runtime_s:g} s): the job would be "
                "stopped before it is expected to finish",
                spec.estimated_duration_s,
            )
        )
    return problems


# --- parsing ---------------------------------------------------------------------------------


def _message(error: Any) -> str:
    """Pydantic's message, reworded where it does not say what is allowed."""
    kind: str = error["type"]
    loc: tuple[str | int, ...] = tuple(error["loc"])
    field = loc[0] if loc else None
    if kind == "extra_forbidden":
        allowed = list(JobSpec.model_fields)
        guess = difflib.get_close_matches(str(field), allowed, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"unknown field '{field}'{hint}; allowed fields: {', '.join(allowed)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch" and field in ("name", "team"):
        return DNS_LABEL_RULE
    if kind == "string_pattern_mismatch" and field == "entrypoint":
        return ENTRYPOINT_RULE
    return str(error["msg"])


def _json_safe(value: Any) -> Any:
    """The bad input as JSON can carry it (the API returns errors as JSON)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _errors(exc: ValidationError, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _CrossFieldProblems):
            for field, msg, value in cause.problems:
                out.append(
                    {"loc": (field,), "msg": msg, "input": _json_safe(value), "source": source}
                )
            continue
        out.append(
            {
                "loc": tuple(error["loc"]),
                "msg": _message(error),
                "input": _json_safe(error["input"]),
                "source": source,
            }
        )
    return out


def parse_spec(data: dict[str, Any], source: str) -> JobSpec:
    """Validate a submitted spec. ``source`` says where it came from (a file path, "api") and
    is recorded in each error. Raises :class:`SpecRejected` listing every problem found."""
    if not isinstance(data, dict):
        raise SpecRejected(
            [
                {
                    "loc": (),
                    "msg": f"a job spec must be a mapping of fields, got {type(data).__name__}",
                    "input": _json_safe(data),
                    "source": source,
                }
            ]
        )
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecRejected(_errors(exc, source)) from None


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """Keys given twice in any mapping (a YAML loader silently keeps the last)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                found.append(
                    {
                        "loc": (*path, name),
                        "msg": f"key '{name}' is given more than once (line {key.start_mark.line + 1})",
                        "input": name,
                        "line": key.start_mark.line + 1,
                    }
                )
            seen.add(name)
            found.extend(_duplicate_keys(value, (*path, name)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, (*path, i)))
    return found


def _line_of(root: yaml.Node, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the field at ``loc`` (its key for mapping entries), or of the closest
    enclosing node that exists."""
    node = root
    line: int | None = root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if str(k.value) == str(part)]
            if not match:
                return line
            key, node = match[-1]
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_spec_file(path: str | Path) -> JobSpec:
    """Read and validate a YAML job spec. Every error names the file, and the line where the
    YAML parser knows it (syntax errors; fields present in the file)."""
    where = str(path)

    def reject(
        msg: str, line: int | None, loc: tuple[str | int, ...] = (), value: Any = None
    ) -> SpecRejected:
        at = f"{where}, line {line}" if line is not None else where
        return SpecRejected(
            [{"loc": loc, "msg": f"{msg} (in {at})", "input": value, "source": where, "line": line}]
        )

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise reject(f"cannot read the job spec: {exc}", None) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise reject(f"invalid YAML: {problem}", line) from None
    if root is None:
        raise reject("the file is empty; expected a mapping of job spec fields", None)
    if not isinstance(data, dict):
        raise reject(
            f"a job spec must be a mapping of fields, got {type(data).__name__}",
            root.start_mark.line + 1,
            value=_json_safe(data),
        )
    duplicates = _duplicate_keys(root, ())
    if duplicates:
        raise SpecRejected(
            [{**d, "msg": f"{d['msg']} (in {where})", "source": where} for d in duplicates]
        )
    try:
        return parse_spec(data, where)
    except SpecRejected as exc:
        errors = []
        for e in exc.errors:
            line = _line_of(root, tuple(e["loc"]))
            at = f"{where}, line {line}" if line is not None else where
            errors.append({**e, "msg": f"{e['msg']} (in {at})", "line": line})
        raise SpecRejected(errors) from None


# --- into the core -------------------------------------------------------------------------


def to_job(spec: JobSpec, job_id: str, submitted_at_s: float, priority: int | None = None) -> Job:
    """The core's view of ``spec``. ``priority`` overrides ``spec.priority`` (the caller
    resolves ``priority_class`` from the service config). The spec must have a team (the API
    sets it from the caller's token: ``spec.model_copy(update={"team": team})``).

    CPU cores become milli-cores and GiB become MiB (both rounded to the nearest unit)."""
    if spec.team is None:
        raise ValueError(f"job {job_id}: the spec has no team (the API sets it from the token)")
    worker = WorkerRequest(
        cpu_milli=round(spec.cpus_per_worker * 1000),
        memory_mib=round(spec.memory_gib_per_worker * MIB_PER_GIB),
        gpus=spec.gpus_per_worker,
        gpu_milli=spec.gpu_milli,
        gpu_models=tuple(spec.gpu_models),
        min_gpu_memory_mib=round(spec.min_gpu_memory_gib * MIB_PER_GIB),
    )
    return Job(
        job_id=job_id,
        worker=worker,
        num_workers=spec.workers,
        team=spec.team,
        priority=spec.priority if priority is None else priority,
        submitted_at_s=submitted_at_s,
        topology=spec.topology,
        estimated_duration_s=spec.estimated_duration_s,
        checkpoint_interval_s=spec.checkpoint_interval_s,
    )


# --- JSON Schema ---------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a job spec, with the cross-field rules that JSON Schema
    can say (the rest are checked by :func:`parse_spec` only)."""
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["allOf"] = [
        {
            "description": "a worker sharing a GPU (gpu_milli < 1000) takes exactly one GPU",
            "if": {
                "properties": {"gpu_milli": {"exclusiveMaximum": MILLI_PER_GPU}},
                "required": ["gpu_milli"],
            },
            "then": {"properties": {"gpus_per_worker": {"const": 1}}},
        }
    ]
    return schema


def json_schema_text() -> str:
    """The schema as written to ``examples/jobspec.schema.json`` (stable key order)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(json_schema_text())
