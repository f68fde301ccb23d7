"""The job spec's two kinds (entrypoint / command) and its Ray runtime_env: every rule, at the
exact field path, and the helpers the API, CLI and SDK use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler.runtime.runtime_env import PipSpec, RuntimeEnvSpec
from scheduler.runtime.spec import (
    JobSpec,
    json_schema,
    load_spec_file,
    local_paths,
    package_uris,
    parse_spec,
    ray_runtime_env,
    reject_local_paths,
    to_job,
)
from scheduler.runtime.views import SpecRejected

UPLOAD = "a local path cannot be read by the cluster: upload it first"
IMAGE_ONLY = "cannot be combined with image_uri"


def script(**fields: Any) -> dict[str, Any]:
    return {"name": "lane-net", "workers": 2, "command": "python train.py --lr 3e-4", **fields}


def env(**runtime_env: Any) -> dict[str, Any]:
    return script(runtime_env=runtime_env)


def rejected(data: Any) -> list[dict[str, Any]]:
    with pytest.raises(SpecRejected) as info:
        parse_spec(data, "api")
    return info.value.errors


def only_error(data: Any) -> dict[str, Any]:
    errors = rejected(data)
    assert len(errors) == 1, errors
    return errors[0]


# --- the two kinds -------------------------------------------------------------------------


def test_a_command_is_a_script_job_and_an_entrypoint_a_train_job() -> None:
    spec = parse_spec(script(team="mapping"), "api")
    assert (spec.kind, spec.command, spec.entrypoint) == (
        "script",
        "python train.py --lr 3e-4",
        None,
    )
    assert to_job(spec, "j-1", 0.0).num_workers == 2
    loop = parse_spec({"name": "a", "workers": 1, "entrypoint": "pkg.mod:loop"}, "api")
    assert (loop.kind, loop.command) == ("train", None)


def test_a_multi_line_command_is_kept_as_written() -> None:
    command = "set -e\ncd src && python train.py \\\n  --epochs 3\n"
    assert parse_spec(script(command=command), "api").command == command


def test_neither_entrypoint_nor_command() -> None:
    error = only_error({"name": "a", "workers": 1})
    assert error["loc"] == ("entrypoint",)
    assert error["msg"] == (
        "give entrypoint (a Ray Train loop 'module:function') or command "
        "(a script run as a Ray job)"
    )
    assert error["input"] is None


def test_explicit_nulls_count_as_not_given() -> None:
    error = only_error({"name": "a", "workers": 1, "entrypoint": None, "command": None})
    assert error["loc"] == ("entrypoint",)
    assert parse_spec(script(entrypoint=None), "api").kind == "script"


def test_both_entrypoint_and_command() -> None:
    error = only_error(script(entrypoint="pkg.mod:loop"))
    assert error["loc"] == ("command",)
    assert "only one of entrypoint and command is allowed" in error["msg"]
    assert error["input"] == "python train.py --lr 3e-4"


def test_a_script_takes_no_config() -> None:
    error = only_error(script(config={"lr": 3e-4}))
    assert error["loc"] == ("config",)
    assert "a script gets its arguments on its command line (and from" in error["msg"]
    assert error["input"] == {"lr": 3e-4}
    assert parse_spec(script(config={}), "api").config == {}


def test_the_kind_is_reported_beside_other_fields_errors() -> None:
    errors = rejected({"name": "a", "workers": 0})
    assert [e["loc"] for e in errors] == [("workers",), ("entrypoint",)]
    errors = rejected(script(workers=0, entrypoint="pkg.mod:loop", config={"a": 1}))
    assert [e["loc"] for e in errors] == [("workers",), ("command",)]
    errors = rejected(script(workers=0, config={"a": 1}))
    assert [e["loc"] for e in errors] == [("workers",), ("config",)]


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("", "at least 1 character"),
        ("   \n\t", "not blank, without NUL characters"),
        ("python\x00 train.py", "not blank, without NUL characters"),
        ("x" * 10_001, "at most 10000 characters"),
        (["python", "train.py"], "valid string"),
    ],
)
def test_an_invalid_command(command: Any, says: str) -> None:
    error = only_error(script(command=command))
    assert error["loc"] == ("command",)
    assert says in error["msg"]
    assert parse_spec(script(command="x" * 10_000), "api").command == "x" * 10_000


# --- runtime_env: working_dir and py_modules -----------------------------------------------


@pytest.mark.parametrize(
    "working_dir",
    [
        ".",
        "src/train",
        "/home/me/project",
        "my_dir:with-colon",  # no URI scheme ('_' is not a scheme character): a path
        "gcs://_ray_pkg_0123abcd.zip",
        "s3://bucket/jobs/lane.zip",
        "s3://bucket.zip",
        "gs://bucket/lane.tar.gz",
        "https://example.com/pkgs/lane.tgz?token=abc",
        "http://example.com/lane.tar.xz",
        "file:///mnt/shared/lane.zip",
    ],
)
def test_a_valid_working_dir(working_dir: str) -> None:
    spec = parse_spec(env(working_dir=working_dir), "api")
    assert ray_runtime_env(spec) == {"working_dir": working_dir}


@pytest.mark.parametrize(
    ("working_dir", "says"),
    [
        ("", "at least 1 character"),
        ("  ", "working_dir must not be blank"),
        ("src\x00", "working_dir must not contain NUL"),
        ("ftp://example.com/lane.zip", "URI scheme 'ftp://' is not taken for working_dir"),
        ("C:/work/lane", "URI scheme 'c://' is not taken"),
        ("gcs://_ray_pkg_0123abcd", "must end in .zip, .tar.gz, .tgz or .tar.xz"),
        ("gcs://bucket/lane.zip", "a gcs:// URI names a package already uploaded"),
        ("https://example.com/lane.whl", "must end in .zip, .tar.gz, .tgz or .tar.xz"),
        ("https://example.com/lane", "a working_dir URI must name an archive"),
        ("https://example.com/.zip", "a working_dir URI must name an archive"),
        ("https://example.com/lane.ZIP", "a working_dir URI must name an archive"),
        ("s3:///lane.zip", "the s3:// URI needs a host or bucket"),
        ("http://[::1/lane.zip", "working_dir is not a valid URI"),
        (3, "valid string"),
    ],
)
def test_an_invalid_working_dir(working_dir: Any, says: str) -> None:
    error = only_error(env(working_dir=working_dir))
    assert error["loc"] == ("runtime_env", "working_dir")
    assert says in error["msg"]
    assert error["input"] == working_dir


def test_each_py_module_is_checked_at_its_index() -> None:
    errors = rejected(
        env(py_modules=["lib", "gcs://lane-1.0-py3-none-any.whl", "s3://b/m.rar", "ftp://h/m.zip"])
    )
    assert [(e["loc"], e["input"]) for e in errors] == [
        (("runtime_env", "py_modules", 2), "s3://b/m.rar"),
        (("runtime_env", "py_modules", 3), "ftp://h/m.zip"),
    ]
    assert "must end in .zip, .whl, .tar.gz, .tgz or .tar.xz" in errors[0]["msg"]
    error = only_error(env(py_modules="lib"))
    assert (error["loc"], error["msg"]) == (
        ("runtime_env", "py_modules"),
        "Input should be a valid list",
    )


# --- runtime_env: pip and uv ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pip", "ray"),
    [
        (["torch==2.4.0", "numpy<2"], ["torch==2.4.0", "numpy<2"]),
        ("requirements.txt", "requirements.txt"),
        ({"packages": ["torch"]}, {"packages": ["torch"], "pip_check": False}),
        (
            {
                "packages": ["torch"],
                "pip_check": True,
                "pip_version": "==24.0",
                "pip_install_options": ["--no-cache-dir"],
            },
            {
                "packages": ["torch"],
                "pip_check": True,
                "pip_version": "==24.0",
                "pip_install_options": ["--no-cache-dir"],
            },
        ),
        ({"packages": "requirements.txt"}, {"packages": "requirements.txt", "pip_check": False}),
    ],
)
def test_the_shapes_of_pip(pip: Any, ray: Any) -> None:
    assert ray_runtime_env(parse_spec(env(pip=pip), "api")) == {"pip": ray}


@pytest.mark.parametrize(
    ("uv", "ray"),
    [
        (["torch==2.4.0"], ["torch==2.4.0"]),
        ("requirements.txt", "requirements.txt"),
        ({"packages": ["torch"]}, {"packages": ["torch"], "uv_check": False}),
        (
            {
                "packages": ["torch"],
                "uv_check": True,
                "uv_version": "==0.4.0",
                "uv_pip_install_options": ["--no-cache"],
            },
            {
                "packages": ["torch"],
                "uv_check": True,
                "uv_version": "==0.4.0",
                "uv_pip_install_options": ["--no-cache"],
            },
        ),
    ],
)
def test_the_shapes_of_uv(uv: Any, ray: Any) -> None:
    assert ray_runtime_env(parse_spec(env(uv=uv), "api")) == {"uv": ray}


@pytest.mark.parametrize(
    ("field", "value", "loc", "says"),
    [
        ("pip", 3, ("runtime_env", "pip"), "a list of requirement strings, a local"),
        ("pip", {"packages": ["a"], "pip_chek": True}, ("runtime_env", "pip", "pip_chek"), ""),
        ("pip", {"pip_check": True}, ("runtime_env", "pip", "packages"), "required field"),
        ("pip", {"packages": 3}, ("runtime_env", "pip", "packages"), "a list of requirement"),
        ("pip", {"packages": ["a"], "pip_check": "yes"}, ("runtime_env", "pip", "pip_check"), ""),
        ("pip", {"packages": ["a"], "pip_check": 1}, ("runtime_env", "pip", "pip_check"), ""),
        ("pip", {"packages": ["a"], "pip_version": 24}, ("runtime_env", "pip", "pip_version"), ""),
        (
            "pip",
            {"packages": ["a"], "pip_install_options": "-q"},
            ("runtime_env", "pip", "pip_install_options"),
            "valid list",
        ),
        ("pip", ["torch", 2], ("runtime_env", "pip", 1), "valid string"),
        ("pip", ["torch\nnumpy"], ("runtime_env", "pip", 0), "a requirement must be one line"),
        ("pip", ["  "], ("runtime_env", "pip", 0), "a requirement must not be blank"),
        ("pip", "https://h/requirements.txt", ("runtime_env", "pip"), "does not fetch URIs"),
        ("uv", {"packages": "requirements.txt"}, ("runtime_env", "uv", "packages"), "uv: req"),
        ("uv", {"packages": ["a"], "pip_check": True}, ("runtime_env", "uv", "pip_check"), ""),
        ("uv", True, ("runtime_env", "uv"), "uv_check, uv_version and uv_pip_install_options"),
    ],
)
def test_an_invalid_pip_or_uv(field: str, value: Any, loc: tuple[Any, ...], says: str) -> None:
    error = only_error(env(**{field: value}))
    assert error["loc"] == loc
    assert says in error["msg"]


def test_an_unknown_pip_field_is_named_with_a_suggestion() -> None:
    error = only_error(env(pip={"packages": ["a"], "pip_chek": True}))
    assert error["msg"] == (
        "unknown field 'pip_chek' in runtime_env.pip (did you mean 'pip_check'?); "
        "allowed fields: packages, pip_check, pip_version, pip_install_options"
    )
    error = only_error(env(uv={"packages": ["a"], "pip_check": True}))
    assert "did you mean 'uv_check'?" in error["msg"]
    assert "allowed fields: packages, uv_check, uv_version, uv_pip_install_options" in error["msg"]


def test_bools_are_strict() -> None:
    error = only_error(env(pip={"packages": ["a"], "pip_check": "yes"}))
    assert error["msg"] == "Input should be a valid boolean"


def test_pip_and_uv_are_exclusive() -> None:
    error = only_error(env(pip=["torch"], uv=["numpy"]))
    assert error["loc"] == ("runtime_env", "uv")
    assert "pip and uv cannot both be given" in error["msg"]
    assert error["input"] == ["numpy"]
    error = only_error(env(pip={"packages": ["torch"]}, uv={"packages": ["numpy"]}))
    assert error["input"] == {"packages": ["numpy"], "uv_check": False}


# --- runtime_env: env_vars -----------------------------------------------------------------


def test_env_vars_pass_through() -> None:
    spec = parse_spec(env(env_vars={"OMP_NUM_THREADS": "8", "_X1": "", "lr": "3e-4"}), "api")
    assert ray_runtime_env(spec) == {"env_vars": {"OMP_NUM_THREADS": "8", "_X1": "", "lr": "3e-4"}}


@pytest.mark.parametrize("name", ["1ABC", "MY-VAR", "A B", "Ä", "", "A=B", "X.Y"])
def test_an_invalid_env_var_name_is_named(name: str) -> None:
    error = only_error(env(env_vars={"OK": "1", name: "x"}))
    assert error["loc"] == ("runtime_env", "env_vars", name)
    assert error["input"] == name
    assert "letters, digits and '_'" in error["msg"] or "at least 1 character" in error["msg"]


def test_gpuyard_env_vars_are_reserved() -> None:
    error = only_error(env(env_vars={"GPUYARD_JOB_ID": "x"}))
    assert error["loc"] == ("runtime_env", "env_vars", "GPUYARD_JOB_ID")
    assert "environment variable 'GPUYARD_JOB_ID' is reserved" in error["msg"]
    assert parse_spec(env(env_vars={"GPUYARD": "x", "MY_GPUYARD_X": "y"}), "api")


@pytest.mark.parametrize(("value", "says"), [(8, 'OMP: "8"'), (True, 'OMP: "true"'), (["a"], "")])
def test_an_env_var_value_must_be_a_string(value: Any, says: str) -> None:
    error = only_error(env(env_vars={"OMP": value}))
    assert error["loc"] == ("runtime_env", "env_vars", "OMP")
    assert "environment variable values must be strings" in error["msg"]
    assert says in error["msg"]


def test_every_env_var_problem_is_reported_at_once() -> None:
    errors = rejected(env(env_vars={"GPUYARD_X": "1", "1A": "2", "B": 3, "C": "a\x00b"}))
    assert [e["loc"][-1] for e in errors] == ["GPUYARD_X", "1A", "B", "C"]
    assert "must not contain NUL" in errors[3]["msg"]


def test_env_vars_must_be_a_mapping() -> None:
    error = only_error(env(env_vars=["A=1"]))
    assert error["loc"] == ("runtime_env", "env_vars")
    assert "valid dictionary" in error["msg"]


# --- runtime_env: config, image_uri, excludes, unknown fields ------------------------------


def test_config_passes_only_the_fields_given() -> None:
    spec = parse_spec(env(config={"setup_timeout_seconds": -1}), "api")
    assert ray_runtime_env(spec) == {"config": {"setup_timeout_seconds": -1}}
    spec = parse_spec(env(config={"setup_timeout_seconds": 900, "eager_install": False}), "api")
    assert ray_runtime_env(spec) == {
        "config": {"setup_timeout_seconds": 900, "eager_install": False}
    }


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        ({"setup_timeout_seconds": 0}, "setup_timeout_seconds", "greater than 0, or -1"),
        ({"setup_timeout_seconds": -2}, "setup_timeout_seconds", "greater than 0, or -1"),
        ({"setup_timeout_seconds": 1.5}, "setup_timeout_seconds", "valid integer"),
        ({"setup_timeout_seconds": True}, "setup_timeout_seconds", "valid integer"),
        ({"setup_timeout_seconds": "600"}, "setup_timeout_seconds", "valid integer"),
        ({"eager_install": "yes"}, "eager_install", "valid boolean"),
        ({"log_files": []}, "log_files", "allowed fields: setup_timeout_seconds, eager_install"),
        ({"setup_timeout": 5}, "setup_timeout", "did you mean 'setup_timeout_seconds'?"),
    ],
)
def test_an_invalid_config(config: dict[str, Any], field: str, says: str) -> None:
    error = only_error(env(config=config))
    assert error["loc"] == ("runtime_env", "config", field)
    assert says in error["msg"]


@pytest.mark.parametrize(
    "image",
    [
        "rayproject/ray:2.60.0-py311-gpu",
        "ubuntu",
        "registry.example.com:5000/team/train:v1",
        "localhost/lane_net__x:latest",
        "ghcr.io/org/img@sha256:" + "a" * 64,
    ],
)
def test_a_valid_image_uri(image: str) -> None:
    spec = parse_spec(
        env(image_uri=image, env_vars={"A": "b"}, config={"eager_install": True}), "api"
    )
    assert ray_runtime_env(spec) == {
        "env_vars": {"A": "b"},
        "config": {"eager_install": True},
        "image_uri": image,
    }


@pytest.mark.parametrize(
    "image", ["Ray/Project", "ray project", "ray:", "docker://ray", "ray@sha256:abc", "-ray"]
)
def test_an_invalid_image_uri(image: str) -> None:
    error = only_error(env(image_uri=image))
    assert error["loc"] == ("runtime_env", "image_uri")
    assert error["msg"].startswith("must be a container image reference")


def test_image_uri_stands_only_beside_env_vars_and_config() -> None:
    errors = rejected(
        env(
            image_uri="rayproject/ray:2.60.0",
            working_dir="gcs://_ray_pkg_a.zip",
            py_modules=["gcs://m.whl"],
            pip=["torch"],
            excludes=[],
            env_vars={"A": "b"},
        )
    )
    assert [e["loc"] for e in errors] == [
        ("runtime_env", "working_dir"),
        ("runtime_env", "py_modules"),
        ("runtime_env", "pip"),
        ("runtime_env", "excludes"),
    ]
    assert all(IMAGE_ONLY in e["msg"] and "only env_vars and config" in e["msg"] for e in errors)
    error = only_error(env(image_uri="ubuntu", uv={"packages": ["a"]}))
    assert (error["loc"], error["input"]) == (
        ("runtime_env", "uv"),
        {"packages": ["a"], "uv_check": False},
    )


def test_excludes_are_kept() -> None:
    spec = parse_spec(env(working_dir=".", excludes=["*.ckpt", "data/"]), "api")
    assert ray_runtime_env(spec) == {"working_dir": ".", "excludes": ["*.ckpt", "data/"]}
    error = only_error(env(excludes="*.ckpt"))
    assert (error["loc"], error["msg"]) == (
        ("runtime_env", "excludes"),
        "Input should be a valid list",
    )
    error = only_error(env(excludes=["ok", ""]))
    assert error["loc"] == ("runtime_env", "excludes", 1)


def test_an_unknown_runtime_env_field_is_named_with_a_suggestion() -> None:
    error = only_error(env(workdir="."))
    assert error["loc"] == ("runtime_env", "workdir")
    assert error["msg"] == (
        "unknown field 'workdir' in runtime_env (did you mean 'working_dir'?); allowed "
        "fields: working_dir, py_modules, pip, uv, env_vars, config, image_uri, excludes"
    )


def test_a_ray_field_gpuyard_does_not_offer() -> None:
    error = only_error(env(conda={"dependencies": ["torch"]}))
    assert error["loc"] == ("runtime_env", "conda")
    assert "'conda' is not offered by gpuyard (use pip or uv)" in error["msg"]
    assert "allowed fields: working_dir, py_modules" in error["msg"]


def test_runtime_env_must_be_a_mapping() -> None:
    error = only_error(script(runtime_env=["pip"]))
    assert error["loc"] == ("runtime_env",)
    assert parse_spec(script(runtime_env=None), "api").runtime_env is None
    assert ray_runtime_env(parse_spec(script(runtime_env={}), "api")) == {}


def test_a_runtime_env_suits_a_train_job_too() -> None:
    spec = parse_spec(
        {
            "name": "a",
            "workers": 1,
            "entrypoint": "pkg.mod:loop",
            "config": {"epochs": 2},
            "runtime_env": {"env_vars": {"A": "1"}},
        },
        "api",
    )
    assert (spec.kind, ray_runtime_env(spec)) == ("train", {"env_vars": {"A": "1"}})


def test_the_runtime_env_is_immutable() -> None:
    spec = parse_spec(env(pip={"packages": ["a"]}), "api")
    assert isinstance(spec.runtime_env, RuntimeEnvSpec)
    assert isinstance(spec.runtime_env.pip, PipSpec)
    with pytest.raises(ValueError, match="frozen"):
        spec.runtime_env.image_uri = "ubuntu"  # type: ignore[misc]


def test_errors_are_json() -> None:
    errors = rejected(env(pip={"packages": ["a"]}, uv={"packages": ["b"]}, image_uri="x"))
    json.dumps(errors)


# --- the full Ray form and the local files -------------------------------------------------

FULL = {
    "working_dir": "./src",
    "py_modules": ["gcs://lane-1.0-py3-none-any.whl", "libs/common", "s3://b/m.zip"],
    "pip": {"packages": "requirements.txt", "pip_check": True},
    "env_vars": {"OMP_NUM_THREADS": "8"},
    "config": {"setup_timeout_seconds": 1200, "eager_install": False},
    "excludes": ["*.ckpt"],
}


def test_ray_runtime_env_exactly() -> None:
    assert ray_runtime_env(parse_spec(env(**FULL), "api")) == {
        "working_dir": "./src",
        "py_modules": ["gcs://lane-1.0-py3-none-any.whl", "libs/common", "s3://b/m.zip"],
        "pip": {"packages": "requirements.txt", "pip_check": True},
        "env_vars": {"OMP_NUM_THREADS": "8"},
        "config": {"setup_timeout_seconds": 1200, "eager_install": False},
        "excludes": ["*.ckpt"],
    }
    assert ray_runtime_env(parse_spec(script(), "api")) == {}


def test_local_paths_and_package_uris_exactly() -> None:
    spec = parse_spec(env(**FULL), "api")
    assert local_paths(spec) == [
        (("runtime_env", "working_dir"), "./src"),
        (("runtime_env", "py_modules", 1), "libs/common"),
        (("runtime_env", "pip", "packages"), "requirements.txt"),
    ]
    assert package_uris(spec) == ["gcs://lane-1.0-py3-none-any.whl"]
    spec = parse_spec(env(working_dir="gcs://_ray_pkg_ab.zip", uv="reqs/dev.txt"), "api")
    assert local_paths(spec) == [(("runtime_env", "uv"), "reqs/dev.txt")]
    assert package_uris(spec) == ["gcs://_ray_pkg_ab.zip"]
    spec = parse_spec(env(pip=["torch"], working_dir="https://h/a.zip"), "api")
    assert (local_paths(spec), package_uris(spec)) == ([], [])
    assert (
        local_paths(parse_spec(script(), "api")),
        package_uris(parse_spec(script(), "api")),
    ) == (
        [],
        [],
    )


def test_reject_local_paths_names_each_one() -> None:
    spec = parse_spec(env(**FULL), "job j-1")
    with pytest.raises(SpecRejected) as info:
        reject_local_paths(spec, "request body")
    errors = info.value.errors
    assert [(e["loc"], e["input"], e["source"]) for e in errors] == [
        (("runtime_env", "working_dir"), "./src", "request body"),
        (("runtime_env", "py_modules", 1), "libs/common", "request body"),
        (("runtime_env", "pip", "packages"), "requirements.txt", "request body"),
    ]
    assert errors[0]["msg"] == (
        "a local path cannot be read by the cluster: upload it first (gpuyard submit "
        "--working-dir DIR, the SDK's Client.submit(..., working_dir=...), or `ray job submit "
        "--working-dir`), or give a remote URI (gcs://, s3://, https://...zip)"
    )
    assert errors[1]["msg"].startswith(UPLOAD)
    assert (
        "list the requirements themselves (the CLI and SDK read the file for you)"
        in (errors[2]["msg"])
    )


def test_reject_local_paths_passes_a_spec_without_local_files() -> None:
    spec = parse_spec(env(working_dir="gcs://_ray_pkg_ab.zip", pip=["torch"]), "api")
    assert reject_local_paths(spec, "api") is None
    assert reject_local_paths(parse_spec(script(), "api"), "api") is None


# --- files ---------------------------------------------------------------------------------


def file_errors(tmp_path: Path, text: str) -> tuple[Path, list[dict[str, Any]]]:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(SpecRejected) as info:
        load_spec_file(path)
    return path, info.value.errors


def test_a_bad_runtime_env_field_in_a_file_names_the_file_and_the_line(tmp_path: Path) -> None:
    path, (error,) = file_errors(
        tmp_path,
        "name: lane-net\n"
        "workers: 2\n"
        "command: python train.py\n"
        "runtime_env:\n"
        "  working_dir: gcs://_ray_pkg_ab.zip\n"
        "  pip:\n"
        "    packages: [torch]\n"
        "    pip_chek: true\n",
    )
    assert error["loc"] == ("runtime_env", "pip", "pip_chek")
    assert error["line"] == 8
    assert error["source"] == str(path)
    assert error["msg"].endswith(f"(in {path}, line 8)")
    assert "did you mean 'pip_check'?" in error["msg"]


def test_a_bad_env_var_in_a_file_has_its_line(tmp_path: Path) -> None:
    path, errors = file_errors(
        tmp_path,
        "name: lane-net\n"
        "workers: 2\n"
        "command: python train.py\n"
        "runtime_env:\n"
        "  env_vars:\n"
        "    OMP_NUM_THREADS: 8\n"
        "    GPUYARD_JOB: x\n",
    )
    assert [(e["loc"], e["line"]) for e in errors] == [
        (("runtime_env", "env_vars", "OMP_NUM_THREADS"), 6),
        (("runtime_env", "env_vars", "GPUYARD_JOB"), 7),
    ]
    assert all(str(path) in e["msg"] for e in errors)


def test_a_cross_field_runtime_env_error_in_a_file_has_its_line(tmp_path: Path) -> None:
    _, (error,) = file_errors(
        tmp_path,
        "name: a\nworkers: 1\ncommand: x\nruntime_env:\n  pip: [a]\n  uv: [b]\n",
    )
    assert (error["loc"], error["line"]) == (("runtime_env", "uv"), 6)


def test_a_script_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: lane-net\nteam: perception\nworkers: 1\ncommand: |\n  python train.py --lr 3e-4\n"
        "runtime_env:\n  working_dir: gcs://_ray_pkg_ab.zip\n  pip: [torch]\n"
    )
    spec = load_spec_file(path)
    assert (spec.kind, spec.command) == ("script", "python train.py --lr 3e-4\n")
    assert ray_runtime_env(spec) == {"working_dir": "gcs://_ray_pkg_ab.zip", "pip": ["torch"]}


# --- schema --------------------------------------------------------------------------------


def test_the_schema_says_both_kinds_and_the_runtime_env() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())

    def valid(data: dict[str, Any]) -> bool:
        return validator.is_valid(data)

    assert valid(script())
    assert valid({"name": "a", "workers": 1, "entrypoint": "pkg.mod:loop", "config": {"a": 1}})
    assert not valid({"name": "a", "workers": 1})
    assert not valid(script(entrypoint="pkg.mod:loop"))
    assert not valid(script(config={"a": 1}))
    assert valid(env(**FULL))
    assert not valid(env(pip=["a"], uv=["b"]))
    assert not valid(env(image_uri="ubuntu", pip=["a"]))
    assert valid(env(image_uri="ubuntu", env_vars={"A": "b"}))
    assert not valid(env(env_vars={"GPUYARD_X": "1"}))
    assert not valid(env(env_vars={"1A": "1"}))
    assert not valid(env(workdir="."))
    assert set(json_schema()["properties"]) == set(JobSpec.model_fields)
