"""The job spec: what a team submits (YAML file, HTTP JSON body), validated into ``JobSpec``.

One pydantic model is the single definition of the format: it validates submissions, it turns
into the core's ``Job`` (:func:`to_job`), and it generates the JSON Schema that editors and
the docs use (``python -m scheduler.runtime.spec > examples/jobspec.schema.json``).

Two kinds of job (:attr:`JobSpec.kind`):

* ``entrypoint: package.module:function`` (kind ``"train"``): a Ray Train loop, run once per
  worker of the gang with the spec's ``config``;
* ``command: "python train.py --lr 3e-4"`` (kind ``"script"``): a shell command run as a Ray
  job; it takes its settings on its command line and from ``runtime_env.env_vars``.

Exactly one of the two is given. Either kind may carry a ``runtime_env`` with Ray's own field
names and rules (:class:`~scheduler.runtime.runtime_env.RuntimeEnvSpec`, in
:mod:`scheduler.runtime.runtime_env`: ``working_dir``, ``py_modules``, ``pip``, ``uv``,
``env_vars``, ``config``, ``image_uri``, ``excludes``); :func:`ray_runtime_env` gives it in
the form Ray takes. ``working_dir`` and ``py_modules`` hold a local path or a URI; the model
checks their syntax only (it never touches the file system). A local path means nothing to the
cluster: the CLI and SDK upload it (:func:`local_paths` says what to upload) and submit the
``gcs://`` URI Ray gives back (:func:`package_uris`); the API refuses a spec that still names
local files (:func:`reject_local_paths`).

Every rejection is data: :class:`~scheduler.runtime.views.SpecRejected` carries one error per
problem, each with ``loc`` (the field path, e.g. ``("workers",)`` or
``("runtime_env", "env_vars", "GPUYARD_X")``), ``msg`` (the rule broken and what is allowed),
``input`` (the bad value) and ``source`` (where the spec came from). A misspelt field is an
error that names it; nothing the user wrote is dropped silently (YAML duplicate keys are
rejected too, since a YAML loader would keep only the last one).

Data residency: ``data_region`` names where the job's training data lives. The service
checks it against its residency rules (:mod:`scheduler.runtime.residency`) and
:func:`to_job` gives the core job that ``data_region`` and the rule's node regions as
``worker.regions``, the only nodes the core may place it on.

Units: CPUs are cores (``cpus_per_worker: 0.5``), memory is GiB, times are seconds. The core
counts CPU in milli-cores and memory in MiB; :func:`to_job` converts.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from scheduler.core.model import MILLI_PER_GPU, REGION_LABEL, Job, Topology, WorkerRequest
from scheduler.files.document import InputRejected, line_of, read_document
from scheduler.runtime.residency import REGION_PATTERN, REGION_RULE
from scheduler.runtime.runtime_env import (
    ENV_VAR_NAME_RULE,
    IMAGE_URI_RULE,
    RAY_FIELDS_NOT_OFFERED,
    SHAPE_TAGS,
    CrossFieldProblems,
    Loc,
    PipSpec,
    RuntimeEnvConfigSpec,
    RuntimeEnvSpec,
    UvSpec,
    gcs_package_uris,
    local_entries,
    to_ray,
)
from scheduler.runtime.views import SpecRejected

__all__ = [
    "COMMAND_PATTERN",
    "DNS_LABEL_PATTERN",
    "ENTRYPOINT_PATTERN",
    "RESERVED_CONFIG_KEY",
    "JobSpec",
    "json_schema",
    "json_schema_text",
    "load_spec_file",
    "local_paths",
    "package_uris",
    "parse_spec",
    "ray_runtime_env",
    "reject_local_paths",
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
# Not blank (one character that is not white space), and no NUL anywhere.
COMMAND_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
COMMAND_MAX_CHARS = 10_000
COMMAND_RULE = (
    "must be a shell command run as a Ray job, e.g. 'python train.py --lr 3e-4': "
    f"1 to {COMMAND_MAX_CHARS} characters, not blank, without NUL characters"
)
KIND_MISSING = (
    "give entrypoint (a Ray Train loop 'module:function') or command (a script run as a Ray job)"
)
# The service adds ``config["gpuyard"]`` (job id, control dir, chosen GPUs) for the loop.
RESERVED_CONFIG_KEY = "gpuyard"
MIB_PER_GIB = 1024

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
GpuModel = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Region = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=REGION_PATTERN)]
Command = Annotated[
    str, StringConstraints(min_length=1, max_length=COMMAND_MAX_CHARS, pattern=COMMAND_PATTERN)
]


MAX_CPUS = 1_000_000.0  # CPU cores of one worker
MAX_GIB = 1_000_000_000.0  # GiB of one worker's memory or of one GPU's (an exbibyte)
MAX_WORKERS = 1_000_000  # workers of one gang


class JobSpec(BaseModel):
    """A job: a gang of identical workers running one Ray Train loop (``entrypoint``), or a
    shell command run as a Ray job (``command``) on the gang's resources."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, title="gpuyard job spec"
    )

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
    workers: int = Field(
        strict=True, ge=1, le=MAX_WORKERS, description="number of workers in the gang"
    )
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
    # upper bounds far above any machine, so that milli-cores and MiB stay finite integers
    cpus_per_worker: float = Field(
        1.0, strict=True, gt=0, le=MAX_CPUS, description="CPU cores per worker"
    )
    memory_gib_per_worker: float = Field(
        4.0, strict=True, gt=0, le=MAX_GIB, description="host memory per worker, GiB"
    )
    gpu_models: list[GpuModel] = Field(
        default_factory=list,
        description="allowed GPU models, e.g. ['H100', 'A100']; empty means any",
    )
    min_gpu_memory_gib: float = Field(
        0.0, strict=True, ge=0, le=MAX_GIB, description="least memory of each GPU, GiB"
    )
    topology: Topology = Field(
        Topology.ANY, description="where the workers must land relative to each other"
    )
    data_region: Region | None = Field(
        None,
        description="where the job's training data lives, e.g. CN: the job runs only on "
        f"nodes (label {REGION_LABEL}) of the regions the service's residency rule for it "
        "allows (by default that region itself); the service rejects a region it has no "
        "rule for",
    )
    entrypoint: str | None = Field(
        None,
        pattern=ENTRYPOINT_PATTERN,
        description="the training loop, 'package.module:function', imported on the workers "
        "(give this or command)",
    )
    command: Command | None = Field(
        None,
        description="a shell command run as a Ray job, e.g. 'python train.py --lr 3e-4' "
        "(give this or entrypoint)",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="free-form settings passed to the loop as its config (key 'gpuyard' "
        "is reserved for the service); entrypoint jobs only",
        json_schema_extra={"not": {"required": [RESERVED_CONFIG_KEY]}},
    )
    runtime_env: RuntimeEnvSpec | None = Field(
        None, description="the Ray runtime environment (Ray's field names and rules)"
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
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=253)],
        Annotated[str, StringConstraints(max_length=4096, strict=True)],
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="free-form string labels (Ray's job metadata: ray job submit "
        "--metadata-json), shown back with the job; not used for scheduling",
    )

    @property
    def kind(self) -> Literal["train", "script"]:
        """``"train"`` for a Ray Train loop (``entrypoint``), ``"script"`` for a command."""
        return "train" if self.entrypoint is not None else "script"

    @model_validator(mode="after")
    def _cross_field_rules(self) -> JobSpec:
        problems = _cross_field_problems(self)
        if problems:
            raise CrossFieldProblems(problems)
        return self


def _kind_problems(entrypoint: Any, command: Any, config: Any) -> list[tuple[str | Loc, str, Any]]:
    """Exactly one of entrypoint / command; config only for a loop. Takes raw values too, so
    that :func:`parse_spec` reports these beside other fields' errors."""
    if entrypoint is None and command is None:
        return [("entrypoint", KIND_MISSING, None)]
    problems: list[tuple[str | Loc, str, Any]] = []
    if entrypoint is not None and command is not None:
        problems.append(
            (
                "command",
                "only one of entrypoint and command is allowed: entrypoint runs a Ray Train "
                "loop, command runs a script as a Ray job",
                command,
            )
        )
    elif command is not None and isinstance(config, dict) and config:
        problems.append(
            (
                "config",
                "config is for entrypoint loops: a script gets its arguments on its command "
                "line (and from runtime_env.env_vars)",
                config,
            )
        )
    return problems


def _cross_field_problems(spec: JobSpec) -> list[tuple[str | Loc, str, Any]]:
    """Rules between fields, each reported at the field the user most likely has to change."""
    problems = _kind_problems(spec.entrypoint, spec.command, spec.config)
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


def _model_at(loc: Loc) -> type[BaseModel]:
    """The model whose field list an unknown field at ``loc`` is checked against."""
    if len(loc) >= 2 and loc[0] == "runtime_env":
        inner: dict[str | int, type[BaseModel]] = {
            "config": RuntimeEnvConfigSpec,
            "pip": PipSpec,
            "uv": UvSpec,
        }
        return inner.get(loc[1], RuntimeEnvSpec) if len(loc) >= 3 else RuntimeEnvSpec
    return JobSpec


def _unknown_field(loc: Loc) -> str:
    field = str(loc[-1])
    model = _model_at(loc)
    allowed = list(model.model_fields)
    where = " in " + ".".join(map(str, loc[:-1])) if len(loc) > 1 else ""
    if model is RuntimeEnvSpec and field in RAY_FIELDS_NOT_OFFERED:
        return (
            f"runtime_env field '{field}' is not offered by gpuyard "
            f"({RAY_FIELDS_NOT_OFFERED[field]}); allowed fields: {', '.join(allowed)}"
        )
    guess = difflib.get_close_matches(field, allowed, n=1)
    hint = f" (did you mean '{guess[0]}'?)" if guess else ""
    return f"unknown field '{field}'{where}{hint}; allowed fields: {', '.join(allowed)}"


def _message(error: Any, loc: Loc) -> str:
    """Pydantic's message, reworded where it does not say what is allowed. ``loc`` is the
    error's location as reported (:func:`_clean_loc`)."""
    kind: str = error["type"]
    field = loc[0] if loc else None
    in_env_vars = loc[:2] == ("runtime_env", "env_vars") and len(loc) == 3
    if kind == "extra_forbidden" and loc:
        return _unknown_field(loc)
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch" and field in ("name", "team"):
        return DNS_LABEL_RULE
    if kind == "string_pattern_mismatch" and field == "entrypoint":
        return ENTRYPOINT_RULE
    if kind == "string_pattern_mismatch" and field == "command":
        return COMMAND_RULE
    if kind == "string_pattern_mismatch" and field == "data_region":
        return REGION_RULE
    if kind == "string_pattern_mismatch" and loc == ("runtime_env", "image_uri"):
        return IMAGE_URI_RULE
    if in_env_vars and tuple(error["loc"])[-1] == "[key]":
        if kind == "string_pattern_mismatch":
            return ENV_VAR_NAME_RULE
        if kind == "string_type":
            return f"{ENV_VAR_NAME_RULE}; got {type(error['input']).__name__}"
    if in_env_vars and kind == "string_type":
        value = error["input"]
        msg = f"environment variable values must be strings (got {type(value).__name__})"
        if isinstance(value, bool | int | float):
            msg += f': quote it, e.g. {loc[2]}: "{json.dumps(value)}"'
        return msg
    if loc == ("runtime_env", "uv", "packages") and kind == "list_type":
        return (
            "must be a list of requirement strings (Ray takes a requirements file for uv "
            "only as the whole field: uv: requirements.txt)"
        )
    return str(error["msg"])


def _clean_loc(loc: Loc) -> Loc:
    """The location as the user wrote it: without pydantic's tags of union shapes
    (``("runtime_env", "pip", "mapping", "pip_check")``) and of dict keys (``"[key]"``)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if part in SHAPE_TAGS and i > 0 and loc[i - 1] in ("pip", "uv", "packages"):
            continue
        if part == "[key]" and i == len(loc) - 1:
            continue
        out.append(part)
    return tuple(out)


def _json_safe(value: Any) -> Any:
    """The bad input as JSON can carry it (the API returns errors as JSON)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _problem_errors(
    at: Loc, problems: list[tuple[str | Loc, str, Any]], source: str
) -> list[dict[str, Any]]:
    return [
        {
            "loc": (*at, *((field,) if isinstance(field, str) else field)),
            "msg": msg,
            "input": _json_safe(value),
            "source": source,
        }
        for field, msg, value in problems
    ]


def _errors(exc: ValidationError, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        loc = _clean_loc(tuple(error["loc"]))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldProblems):
            out.extend(_problem_errors(loc, cause.problems, source))
            continue
        out.append(
            {
                "loc": loc,
                "msg": _message(error, loc),
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
        errors = _errors(exc, source)
        checked = any(
            not e["loc"] and isinstance((e.get("ctx") or {}).get("error"), CrossFieldProblems)
            for e in exc.errors(include_url=False)
        )
        if not checked:
            # Other fields failed, so the model's cross-field rules did not run: still say
            # when the job has no (or two) kinds, as a missing required field would be.
            kind = _kind_problems(data.get("entrypoint"), data.get("command"), data.get("config"))
            known = {tuple(e["loc"]) for e in errors}
            errors.extend(e for e in _problem_errors((), kind, source) if e["loc"] not in known)
        raise SpecRejected(errors) from None


def load_spec_file(path: str | Path) -> JobSpec:
    """Read and validate a YAML job spec. Every error names the file, and the line where the
    YAML parser knows it (syntax errors; fields present in the file; a key given twice)."""
    where = str(path)

    def at(line: int | None) -> str:
        return f"{where}, line {line}" if line is not None else where

    try:
        doc = read_document(path)
    except InputRejected as exc:
        raise SpecRejected(
            [
                {
                    "loc": e["loc"],
                    "msg": f"{e['msg'].replace('cannot read the file', 'cannot read the job spec')}"
                    f" (in {at(e.get('line'))})",
                    "input": e.get("input"),
                    "source": where,
                    "line": e.get("line"),
                }
                for e in exc.errors
            ]
        ) from None
    if doc.root is None:
        msg = f"the file is empty; expected a mapping of job spec fields (in {where})"
        raise SpecRejected([{"loc": (), "msg": msg, "input": None, "source": where, "line": None}])
    if not isinstance(doc.data, dict):
        line = doc.root.start_mark.line + 1
        msg = f"a job spec must be a mapping of fields, got {type(doc.data).__name__}"
        raise SpecRejected(
            [
                {
                    "loc": (),
                    "msg": f"{msg} (in {at(line)})",
                    "input": _json_safe(doc.data),
                    "source": where,
                    "line": line,
                }
            ]
        )
    try:
        return parse_spec(doc.data, where)
    except SpecRejected as exc:
        errors = []
        for e in exc.errors:
            line = line_of(doc.root, tuple(e["loc"]))
            errors.append({**e, "msg": f"{e['msg']} (in {at(line)})", "line": line})
        raise SpecRejected(errors) from None


# --- into the core -------------------------------------------------------------------------


def to_job(
    spec: JobSpec,
    job_id: str,
    submitted_at_s: float,
    priority: int | None = None,
    regions: tuple[str, ...] | None = None,
) -> Job:
    """The core's view of ``spec``. ``priority`` overrides ``spec.priority`` (the caller
    resolves ``priority_class`` from the service config). The spec must have a team (the API
    sets it from the caller's token: ``spec.model_copy(update={"team": team})``).

    ``regions``: the node regions the service's residency rule allows for
    ``spec.data_region`` (``Residency.node_regions``, which also checks it); None: the
    default rule, the data region itself (no restriction for a spec without one).

    CPU cores become milli-cores and GiB become MiB (both rounded to the nearest unit)."""
    if spec.team is None:
        raise ValueError(f"job {job_id}: the spec has no team (the API sets it from the token)")
    if regions is None:
        regions = () if spec.data_region is None else (spec.data_region,)
    worker = WorkerRequest(
        cpu_milli=round(spec.cpus_per_worker * 1000),
        memory_mib=round(spec.memory_gib_per_worker * MIB_PER_GIB),
        gpus=spec.gpus_per_worker,
        gpu_milli=spec.gpu_milli,
        gpu_models=tuple(spec.gpu_models),
        min_gpu_memory_mib=round(spec.min_gpu_memory_gib * MIB_PER_GIB),
        regions=tuple(sorted(regions)),
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
        data_region=spec.data_region or "",
    )


# --- for Ray -------------------------------------------------------------------------------


def ray_runtime_env(spec: JobSpec) -> dict[str, Any]:
    """``spec.runtime_env`` as Ray takes it (``ray.runtime_env.RuntimeEnv(**...)``, the
    ``runtime_env`` of ``ray job submit``; see
    :func:`~scheduler.runtime.runtime_env.to_ray`). ``{}`` without a runtime_env. Local paths
    are passed as they are (see :func:`local_paths`)."""
    return {} if spec.runtime_env is None else to_ray(spec.runtime_env)


def _local_entries(spec: JobSpec) -> list[tuple[Loc, str, str]]:
    """``(loc, value, rule)`` of every field naming a local file: the rule says what to do."""
    if spec.runtime_env is None:
        return []
    return [
        (("runtime_env", *loc), value, rule) for loc, value, rule in local_entries(spec.runtime_env)
    ]


def local_paths(spec: JobSpec) -> list[tuple[Loc, str]]:
    """Every field whose value is a local path, with its loc, in field order: ``working_dir``,
    each ``py_modules`` entry, and a requirements file given as ``pip`` / ``uv`` (or
    ``pip.packages``). The cluster cannot read these: the CLI and SDK upload the directories
    (and read requirements files) before submitting; the API refuses them
    (:func:`reject_local_paths`)."""
    return [(loc, value) for loc, value, _ in _local_entries(spec)]


def package_uris(spec: JobSpec) -> list[str]:
    """The ``gcs://`` URIs in ``working_dir`` and ``py_modules`` (packages that must already be
    on the cluster), in field order."""
    return [] if spec.runtime_env is None else gcs_package_uris(spec.runtime_env)


def reject_local_paths(spec: JobSpec, source: str) -> None:
    """Raise :class:`SpecRejected` with one error per local path in ``spec`` (see
    :func:`local_paths`), each at its field's loc with the bad value and what to do instead;
    return when there is none."""
    errors = [
        {"loc": loc, "msg": rule, "input": value, "source": source}
        for loc, value, rule in _local_entries(spec)
    ]
    if errors:
        raise SpecRejected(errors)


# --- JSON Schema ---------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a job spec, with the cross-field rules that JSON Schema
    can say (the rest are checked by :func:`parse_spec` only)."""
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    # as in the registry of every input file's schema (scheduler/files/schemas.py)
    schema["$id"] = "urn:gpuyard:schema:jobspec"
    schema["title"] = "gpuyard job spec"
    schema["description"] = (
        "A training job: a Ray Train loop or a script, its gang, resources and runtime_env."
    )
    # entrypoint / command: a string when given (null would satisfy both ``required``s below)
    for field in ("entrypoint", "command"):
        prop = schema["properties"][field]
        (given,) = [s for s in prop.pop("anyOf") if s.get("type") != "null"]
        prop.pop("default", None)
        prop.update(given)
    schema["oneOf"] = [
        {"title": "a Ray Train loop", "required": ["entrypoint"]},
        {"title": "a script run as a Ray job", "required": ["command"]},
    ]
    schema["allOf"] = [
        {
            "description": "a worker sharing a GPU (gpu_milli < 1000) takes exactly one GPU",
            "if": {
                "properties": {"gpu_milli": {"exclusiveMaximum": MILLI_PER_GPU}},
                "required": ["gpu_milli"],
            },
            "then": {"properties": {"gpus_per_worker": {"const": 1}}},
        },
        {
            "description": "a script takes its arguments on its command line, not a config",
            "if": {"required": ["command"]},
            "then": {"properties": {"config": {"maxProperties": 0}}},
        },
    ]
    return schema


def json_schema_text() -> str:
    """The schema as written to ``examples/jobspec.schema.json`` (stable key order)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(json_schema_text())
