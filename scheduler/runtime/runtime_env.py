"""The job's Ray runtime environment (``runtime_env`` of a job spec), validated into
``RuntimeEnvSpec``.

It takes Ray's own field names (``working_dir``, ``py_modules``, ``pip``, ``uv``,
``env_vars``, ``config``, ``image_uri``, ``excludes``) and checks, before anything reaches
Ray, the rules Ray 2.60 applies when it takes a runtime_env:

* ``pip`` / ``uv`` shapes (a list of requirements, a requirements-file path, or a mapping):
  ``parse_and_validate_pip`` / ``parse_and_validate_uv`` in
  ray/_private/runtime_env/validation.py (for ``uv``, Ray takes only a list as
  ``packages``);
* the archive formats a ``working_dir`` / ``py_modules`` URI may name:
  ``RUNTIME_ENV_PACKAGE_EXTENSIONS`` in ray/_common/runtime_env_package.py, checked by
  ``validate_uri`` in ray/_private/runtime_env/validation.py;
* the URI schemes (a subset of ray/_common/runtime_env_uri.py);
* ``config``: ``RuntimeEnvConfig`` in ray/runtime_env/runtime_env.py
  (``setup_timeout_seconds`` > 0 or -1);
* between fields, ``RuntimeEnv.__init__`` in ray/runtime_env/runtime_env.py: not both ``pip``
  and ``uv``; ``image_uri`` only beside ``env_vars`` and ``config``
  (``ImageURIPlugin.get_compatible_keys`` in ray/_private/runtime_env/image_uri.py).

gpuyard adds rules of its own, among them: environment variable names are names
(``GPUYARD_*`` is reserved for the service) and values are strings, text fields are not blank
and hold no NUL, a ``gcs://`` URI names a package only, ``image_uri`` is a container image
reference. Ray fields gpuyard does not offer are listed with what to use instead
(:data:`RAY_FIELDS_NOT_OFFERED`).

Local or URI: as Ray decides (``is_path`` in ray/_private/path_utils.py), a ``working_dir`` or
``py_modules`` entry without a URI scheme is a local path; a string given as ``pip`` / ``uv``
(or ``pip.packages``) is a local requirements file. Syntax is checked only: nothing here
touches the file system. The cluster cannot read local paths, so :func:`local_entries` names
them (the CLI and SDK upload them; the API refuses them), and :func:`gcs_package_uris` names
the ``gcs://`` packages, which must already be on the cluster. :func:`to_ray` gives the
environment in the form Ray takes.

Validation errors are pydantic's; :mod:`scheduler.runtime.spec` turns them into the job
spec's errors (a rule broken between fields is a :class:`CrossFieldProblems`, located at the
field named).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "ENV_VAR_NAME_PATTERN",
    "ENV_VAR_NAME_RULE",
    "IMAGE_URI_COMPATIBLE",
    "IMAGE_URI_PATTERN",
    "IMAGE_URI_RULE",
    "LOCAL_PATH_RULE",
    "PACKAGE_EXTENSIONS",
    "RAY_FIELDS_NOT_OFFERED",
    "REQUIREMENTS_FILE_RULE",
    "RESERVED_ENV_PREFIX",
    "SHAPE_TAGS",
    "URI_SCHEMES",
    "CrossFieldProblems",
    "Loc",
    "PipSpec",
    "RuntimeEnvConfigSpec",
    "RuntimeEnvSpec",
    "UvSpec",
    "gcs_package_uris",
    "local_entries",
    "to_ray",
]

Loc = tuple[str | int, ...]

ENV_VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_VAR_NAME_RULE = (
    "an environment variable name is letters, digits and '_', not starting with a digit "
    "(" + ENV_VAR_NAME_PATTERN + ")"
)
# The service sets GPUYARD_* variables (job id, control dir) in the job's environment.
RESERVED_ENV_PREFIX = "GPUYARD_"

# URI schemes gpuyard takes for working_dir / py_modules (Ray's, in
# ray/_common/runtime_env_uri.py, also has azure, abfss and local). gcs:// is a package
# already uploaded to the cluster (what `ray job submit --working-dir` and the SDK upload).
URI_SCHEMES = ("gcs", "s3", "gs", "https", "http", "file")
URI_SCHEMES_TEXT = "gcs://, s3://, gs://, https://, http:// or file://"
# The archive formats Ray 2.60 unpacks for each field, for every URI including gcs://
# (RUNTIME_ENV_PACKAGE_EXTENSIONS in ray/_common/runtime_env_package.py, checked by
# validate_uri in ray/_private/runtime_env/validation.py).
PACKAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "working_dir": (".zip", ".tar.gz", ".tgz", ".tar.xz"),
    "py_modules": (".zip", ".whl", ".tar.gz", ".tgz", ".tar.xz"),
}
PATH_MAX_CHARS = 4096
LOCAL_PATH_RULE = (
    "a local path cannot be read by the cluster: upload it first (gpuyard submit "
    "--working-dir DIR, the SDK's Client.submit(..., working_dir=...), or `ray job submit "
    "--working-dir`), or give a remote URI (gcs://, s3://, https://...zip)"
)
REQUIREMENTS_FILE_RULE = (
    "a local requirements file cannot be read by the cluster: list the requirements "
    "themselves (the CLI and SDK read the file for you)"
)

# A container image reference as Docker/Podman take it: [registry[:port]/]name[:tag][@digest]
# (the grammar of github.com/distribution/reference, without IPv6 registries).
_IMAGE_ALNUM = "[a-z0-9]+"
_IMAGE_COMPONENT = f"{_IMAGE_ALNUM}(?:(?:[._]|__|-+){_IMAGE_ALNUM})*"
_IMAGE_HOST_PART = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IMAGE_HOST = rf"{_IMAGE_HOST_PART}(?:\.{_IMAGE_HOST_PART})*(?::[0-9]+)?"
_IMAGE_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_IMAGE_DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_URI_PATTERN = (
    f"^(?:{_IMAGE_HOST}/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    f"(?::{_IMAGE_TAG})?(?:@{_IMAGE_DIGEST})?$"
)
IMAGE_URI_RULE = (
    "must be a container image reference, [registry[:port]/]name[:tag][@digest], e.g. "
    "'rayproject/ray:2.60.0-py311-gpu' or 'registry.example.com:5000/team/train@sha256:<hex>'"
)
# Ray 2.60 (RuntimeEnv.__init__ in ray/runtime_env/runtime_env.py, with
# ImageURIPlugin.get_compatible_keys in ray/_private/runtime_env/image_uri.py) lets image_uri
# stand only beside these fields: the workers run inside the image, so code and packages
# must be in it.
IMAGE_URI_COMPATIBLE = ("image_uri", "env_vars", "config")

# Ray runtime_env fields that gpuyard does not offer, with what to use instead.
RAY_FIELDS_NOT_OFFERED = {
    "conda": "use pip or uv",
    "container": "use image_uri",
    "py_executable": "the service chooses the interpreter (use image_uri for another one)",
    "java_jars": "gpuyard runs Python jobs",
    "worker_process_setup_hook": "import your setup code from the entrypoint or the script",
    "nsight": "not offered",
    "rocprof_sys": "not offered",
}


class CrossFieldProblems(ValueError):
    """Raised by a model validator with one ``(field, msg, input)`` per broken cross-field
    rule (``field`` a name or a path inside that model);
    :func:`scheduler.runtime.spec.parse_spec` turns each into an error located at its field."""

    def __init__(self, problems: list[tuple[str | Loc, str, Any]]) -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg, _ in problems))
        self.problems = problems


def _custom(kind: str, msg: str) -> PydanticCustomError:
    # Braces would be read as placeholders of the message template.
    return PydanticCustomError(kind, msg.replace("{", "(").replace("}", ")"))


def _plain_text(what: str, value: str, *, newlines: bool = True) -> str:
    if not value.strip():
        raise _custom("gpuyard_blank", f"{what} must not be blank")
    if "\x00" in value:
        raise _custom("gpuyard_nul", f"{what} must not contain NUL characters")
    if not newlines and ("\n" in value or "\r" in value):
        raise _custom("gpuyard_newline", f"{what} must be one line (give one entry per item)")
    return value


def _is_local_path(value: str) -> bool:
    """Ray's rule (``is_path`` in ray/_private/path_utils.py): a string without a URI
    scheme is a local path."""
    try:
        return not urlsplit(value).scheme
    except ValueError:
        return False


def _is_gcs_uri(value: str) -> bool:
    try:
        return urlsplit(value).scheme == "gcs"
    except ValueError:
        return False


def _has_extension(name: str, extensions: tuple[str, ...]) -> bool:
    return any(name.endswith(ext) and len(name) > len(ext) for ext in extensions)


def _package(field: str) -> AfterValidator:
    """Validator of a working_dir / py_modules entry: a local path, or a URI with an allowed
    scheme naming an archive Ray can unpack."""
    extensions = PACKAGE_EXTENSIONS[field]
    formats = ", ".join(extensions[:-1]) + " or " + extensions[-1]

    def check(value: str) -> str:
        _plain_text(field, value)
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise _custom("gpuyard_uri", f"{field} is not a valid URI ({exc})") from None
        scheme = parts.scheme
        if not scheme:
            return value  # a local path: its existence is checked where it is read
        if scheme not in URI_SCHEMES:
            raise _custom(
                "gpuyard_uri_scheme",
                f"URI scheme '{scheme}://' is not taken for {field}: give a local path or a URI "
                f"with {URI_SCHEMES_TEXT}",
            )
        if scheme == "gcs":
            if parts.path or parts.query or parts.fragment or not parts.netloc:
                raise _custom(
                    "gpuyard_gcs_uri",
                    "a gcs:// URI names a package already uploaded to the cluster, e.g. "
                    "gcs://_ray_pkg_0123abcd.zip (no path after the package name)",
                )
            name = parts.netloc
        else:
            if scheme != "file" and not parts.netloc:
                raise _custom(
                    "gpuyard_uri",
                    f"the {scheme}:// URI needs a host or bucket, e.g. {scheme}://bucket/pkg.zip",
                )
            name = (parts.netloc + parts.path).rsplit("/", 1)[-1]
        if not _has_extension(name, extensions):
            raise _custom(
                "gpuyard_uri_archive",
                f"a {field} URI must name an archive Ray unpacks: it must end in {formats}",
            )
        return value

    return AfterValidator(check)


def _requirement(value: str) -> str:
    return _plain_text("a requirement", value, newlines=False)


def _requirements_file(value: str) -> str:
    _plain_text("a requirements file", value, newlines=False)
    if "://" in value:
        raise _custom(
            "gpuyard_requirements_file",
            "a string here is a local requirements-file path and Ray does not fetch URIs "
            "for it: list the requirements instead",
        )
    return value


def _text(what: str) -> AfterValidator:
    return AfterValidator(lambda value: _plain_text(what, value, newlines=False))


def _env_var_name(name: str) -> str:
    if name.startswith(RESERVED_ENV_PREFIX):
        raise _custom(
            "gpuyard_reserved_env",
            f"environment variable '{name}' is reserved: names starting with "
            f"{RESERVED_ENV_PREFIX} are set by the service",
        )
    return name


def _env_var_value(value: str) -> str:
    if "\x00" in value:
        raise _custom("gpuyard_nul", "an environment variable value must not contain NUL")
    return value


def _setup_timeout(seconds: int) -> int:
    if seconds <= 0 and seconds != -1:
        raise _custom(
            "gpuyard_setup_timeout",
            "must be a whole number of seconds greater than 0, or -1 for no timeout",
        )
    return seconds


Requirement = Annotated[
    str, StringConstraints(min_length=1, max_length=PATH_MAX_CHARS), AfterValidator(_requirement)
]
RequirementsFile = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PATH_MAX_CHARS),
    AfterValidator(_requirements_file),
]
WorkingDir = Annotated[
    str, StringConstraints(min_length=1, max_length=PATH_MAX_CHARS), _package("working_dir")
]
PyModule = Annotated[
    str, StringConstraints(min_length=1, max_length=PATH_MAX_CHARS), _package("py_modules")
]
InstallOption = Annotated[str, StringConstraints(min_length=1), _text("an install option")]
Version = Annotated[str, StringConstraints(min_length=1, max_length=256), _text("a version")]
EnvVarName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=ENV_VAR_NAME_PATTERN),
    AfterValidator(_env_var_name),
]
EnvVarValue = Annotated[StrictStr, AfterValidator(_env_var_value)]
ExcludePattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PATH_MAX_CHARS),
    _text("an excludes pattern"),
]
ImageUri = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=IMAGE_URI_PATTERN)
]

# Tags of the shapes pip / uv / pip.packages take; pydantic puts the tag in an error's loc,
# the job spec's errors (``_clean_loc`` in scheduler/runtime/spec.py) take it out again.
SHAPE_TAGS = ("list", "file", "mapping")


def _shape(value: Any) -> str | None:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "file"
    if isinstance(value, dict | BaseModel):
        return "mapping"
    return None


class PipSpec(BaseModel):
    """The mapping form of ``runtime_env.pip`` (Ray's ``parse_and_validate_pip``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="pip (mapping form)")

    packages: Annotated[
        Annotated[list[Requirement], Tag("list")] | Annotated[RequirementsFile, Tag("file")],
        Discriminator(
            _shape,
            custom_error_type="gpuyard_pip_packages",
            custom_error_message="must be a list of requirement strings (or a local "
            "requirements-file path)",
        ),
    ] = Field(description="requirement strings, e.g. ['torch==2.4.0', 'numpy<2']")
    pip_check: StrictBool = Field(False, description="run `pip check` after installing")
    pip_version: Version | None = Field(
        None, description="pip's version specifier, e.g. '==24.0' (Ray prepends 'pip')"
    )
    pip_install_options: list[InstallOption] | None = Field(
        None, description="options for `pip install`, e.g. ['--no-cache-dir']"
    )


class UvSpec(BaseModel):
    """The mapping form of ``runtime_env.uv`` (Ray's ``parse_and_validate_uv``; unlike pip,
    Ray 2.60 takes only a list for ``packages`` here)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="uv (mapping form)")

    packages: list[Requirement] = Field(
        description="requirement strings, e.g. ['torch==2.4.0', 'numpy<2']"
    )
    uv_check: StrictBool = Field(False, description="run `uv pip check` after installing")
    uv_version: Version | None = Field(None, description="uv's version specifier, e.g. '==0.4.0'")
    uv_pip_install_options: list[InstallOption] | None = Field(
        None, description="options for `uv pip install` (Ray's default: ['--no-cache'])"
    )


_PIP_SHAPES = (
    "a list of requirement strings, a local requirements-file path, or a mapping with "
    "packages, pip_check, pip_version and pip_install_options"
)
_UV_SHAPES = (
    "a list of requirement strings, a local requirements-file path, or a mapping with "
    "packages, uv_check, uv_version and uv_pip_install_options"
)
Pip = Annotated[
    Annotated[list[Requirement], Tag("list")]
    | Annotated[RequirementsFile, Tag("file")]
    | Annotated[PipSpec, Tag("mapping")],
    Discriminator(
        _shape, custom_error_type="gpuyard_pip", custom_error_message="must be " + _PIP_SHAPES
    ),
]
Uv = Annotated[
    Annotated[list[Requirement], Tag("list")]
    | Annotated[RequirementsFile, Tag("file")]
    | Annotated[UvSpec, Tag("mapping")],
    Discriminator(
        _shape, custom_error_type="gpuyard_uv", custom_error_message="must be " + _UV_SHAPES
    ),
]


class RuntimeEnvConfigSpec(BaseModel):
    """``runtime_env.config``: Ray's ``RuntimeEnvConfig`` (only the fields given are passed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="runtime_env config")

    setup_timeout_seconds: Annotated[StrictInt, AfterValidator(_setup_timeout)] | None = Field(
        None,
        description="how long Ray may take to set the environment up, seconds (> 0), or -1 "
        "for no limit; Ray's default is 600",
    )
    eager_install: StrictBool | None = Field(
        None,
        description="install the environment when the job starts, before workers are "
        "leased; Ray's default is true",
    )


class RuntimeEnvSpec(BaseModel):
    """The job's Ray runtime environment, with Ray's field names and rules."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="runtime_env",
        json_schema_extra={
            "allOf": [
                {
                    "description": "pip and uv cannot both be given",
                    "not": {
                        "required": ["pip", "uv"],
                        "properties": {
                            "pip": {"not": {"type": "null"}},
                            "uv": {"not": {"type": "null"}},
                        },
                    },
                },
                {
                    "description": "image_uri stands only beside env_vars and config",
                    "if": {
                        "required": ["image_uri"],
                        "properties": {"image_uri": {"type": "string"}},
                    },
                    "then": {"propertyNames": {"enum": list(IMAGE_URI_COMPATIBLE)}},
                },
            ]
        },
    )

    working_dir: WorkingDir | None = Field(
        None,
        description="the job's files: a local directory (uploaded by the CLI / SDK) or a "
        f"URI ({URI_SCHEMES_TEXT}) of a .zip, .tar.gz, .tgz or .tar.xz archive",
    )
    py_modules: list[PyModule] | None = Field(
        None,
        description="Python packages put on the workers' path: local directories or URIs "
        "of .zip, .whl, .tar.gz, .tgz or .tar.xz archives",
    )
    pip: Pip | None = Field(None, description="packages installed with pip: " + _PIP_SHAPES)
    uv: Uv | None = Field(None, description="packages installed with uv: " + _UV_SHAPES)
    env_vars: dict[EnvVarName, EnvVarValue] | None = Field(
        None,
        description="environment variables (string values); names starting with "
        f"{RESERVED_ENV_PREFIX} are reserved for the service",
        json_schema_extra={
            "propertyNames": {
                "pattern": ENV_VAR_NAME_PATTERN,
                "not": {"pattern": "^" + RESERVED_ENV_PREFIX},
            }
        },
    )
    config: RuntimeEnvConfigSpec | None = Field(
        None, description="Ray's RuntimeEnvConfig: setup_timeout_seconds, eager_install"
    )
    image_uri: ImageUri | None = Field(
        None,
        description="container image the workers run in (then only env_vars and config may "
        "be given beside it)",
    )
    excludes: list[ExcludePattern] | None = Field(
        None,
        description="gitignore-style patterns of files left out when a local working_dir "
        "or py_modules directory is uploaded",
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RuntimeEnvSpec:
        problems = _runtime_env_problems(self)
        if problems:
            raise CrossFieldProblems(problems)
        return self


def _runtime_env_problems(env: RuntimeEnvSpec) -> list[tuple[str | Loc, str, Any]]:
    """Ray's rules between runtime_env fields (RuntimeEnv.__init__ in
    ray/runtime_env/runtime_env.py)."""
    problems: list[tuple[str | Loc, str, Any]] = []
    if env.pip is not None and env.uv is not None:
        problems.append(
            (
                "uv",
                "pip and uv cannot both be given (Ray installs a job's packages with one of "
                "pip, uv or conda): keep one of them",
                env.uv,
            )
        )
    if env.image_uri is not None:
        for field in type(env).model_fields:
            value = getattr(env, field)
            if field not in IMAGE_URI_COMPATIBLE and value is not None:
                problems.append(
                    (
                        field,
                        "cannot be combined with image_uri: Ray runs the workers inside the "
                        "image and allows beside image_uri only env_vars and config; put the "
                        "code and packages into the image",
                        value,
                    )
                )
    return problems


# --- for Ray -------------------------------------------------------------------------------


def _installer(value: list[str] | str | PipSpec | UvSpec) -> list[str] | str | dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return list(value) if isinstance(value, list) else value


def to_ray(env: RuntimeEnvSpec) -> dict[str, Any]:
    """``env`` as Ray takes it (``ray.runtime_env.RuntimeEnv(**...)``, the ``runtime_env`` of
    ``ray job submit``): only the fields given, Ray's names; pip / uv as a list, a
    requirements-file path or Ray's mapping; ``excludes`` kept. Local paths are passed as they
    are (see :func:`local_entries`)."""
    out: dict[str, Any] = {}
    if env.working_dir is not None:
        out["working_dir"] = env.working_dir
    if env.py_modules is not None:
        out["py_modules"] = list(env.py_modules)
    if env.pip is not None:
        out["pip"] = _installer(env.pip)
    if env.uv is not None:
        out["uv"] = _installer(env.uv)
    if env.env_vars is not None:
        out["env_vars"] = dict(env.env_vars)
    if env.config is not None:
        out["config"] = env.config.model_dump(exclude_none=True)
    if env.image_uri is not None:
        out["image_uri"] = env.image_uri
    if env.excludes is not None:
        out["excludes"] = list(env.excludes)
    return out


def local_entries(env: RuntimeEnvSpec) -> list[tuple[Loc, str, str]]:
    """``(loc, value, rule)`` of every field naming a local file, ``loc`` inside the
    runtime_env, in field order: ``working_dir``, each ``py_modules`` entry, and a
    requirements file given as ``pip`` / ``uv`` (or ``pip.packages``). The cluster cannot read
    these; the rule says what to do instead."""
    found: list[tuple[Loc, str, str]] = []
    if env.working_dir is not None and _is_local_path(env.working_dir):
        found.append((("working_dir",), env.working_dir, LOCAL_PATH_RULE))
    for i, module in enumerate(env.py_modules or []):
        if _is_local_path(module):
            found.append((("py_modules", i), module, LOCAL_PATH_RULE))
    for field in ("pip", "uv"):
        value = getattr(env, field)
        if isinstance(value, str):
            found.append(((field,), value, REQUIREMENTS_FILE_RULE))
        elif isinstance(value, PipSpec) and isinstance(value.packages, str):
            found.append(((field, "packages"), value.packages, REQUIREMENTS_FILE_RULE))
    return found


def gcs_package_uris(env: RuntimeEnvSpec) -> list[str]:
    """The ``gcs://`` URIs in ``working_dir`` and ``py_modules`` (packages that must already be
    on the cluster), in field order."""
    candidates = [env.working_dir, *(env.py_modules or [])]
    return [uri for uri in candidates if uri is not None and _is_gcs_uri(uri)]
