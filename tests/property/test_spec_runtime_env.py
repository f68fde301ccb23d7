"""What the job spec accepts as a runtime_env, Ray accepts: for generated valid runtime_envs
``parse_spec`` takes the spec and Ray's own constructor, ``ray.runtime_env.RuntimeEnv``,
takes :func:`ray_runtime_env` of it; and a bad environment variable name is always rejected
at the variable's own loc.

Ray's RuntimeEnv checks that a local working_dir / py_modules path exists
(``parse_path`` in ray/_private/runtime_env/packaging.py) and reads a requirements file given
as a string, so the generated runtime_envs use URIs and requirement lists only: local paths
never reach Ray from the service (:func:`reject_local_paths`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from scheduler.runtime.runtime_env import (
    ENV_VAR_NAME_PATTERN,
    PACKAGE_EXTENSIONS,
    RESERVED_ENV_PREFIX,
)
from scheduler.runtime.spec import local_paths, parse_spec, ray_runtime_env
from scheduler.runtime.views import SpecRejected

RuntimeEnv = pytest.importorskip("ray.runtime_env").RuntimeEnv

NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
names = st.text(NAME_CHARS, min_size=1, max_size=12)
hosts = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=1, max_size=3
).map(".".join)
dirs = st.lists(names, max_size=3).map(lambda parts: "".join(p + "/" for p in parts))
queries = st.sampled_from(["", "?token=abc", "?v=1&x=2#frag"])
plain_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
one_line = st.text(
    st.characters(blacklist_categories=("Cs", "Zl", "Zp"), blacklist_characters="\x00\n\r"),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip())


@st.composite
def package_uri(draw: st.DrawFn, field: str) -> str:
    ext = draw(st.sampled_from(PACKAGE_EXTENSIONS[field]))
    name = draw(names) + ext
    scheme = draw(st.sampled_from(["gcs", "s3", "gs", "https", "http", "file"]))
    if scheme == "gcs":
        return f"gcs://{name}"
    if scheme == "file":
        return f"file:///{draw(dirs)}{name}"
    host = draw(hosts) if scheme in ("https", "http") else draw(names)
    return f"{scheme}://{host}/{draw(dirs)}{name}{draw(queries)}"


requirements = st.lists(
    st.builds(
        lambda n, v: n + v,
        names,
        st.sampled_from(["", "==1.0", ">=2,<3", "[extra]", " @ https://h/p.whl"]),
    ),
    max_size=4,
)
env_var_names = st.from_regex(ENV_VAR_NAME_PATTERN, fullmatch=True).filter(
    lambda s: not s.startswith(RESERVED_ENV_PREFIX) and len(s) <= 256
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


pip_st = st.one_of(
    requirements,
    st.fixed_dictionaries(
        {"packages": requirements},
        optional={
            "pip_check": st.booleans(),
            "pip_version": st.sampled_from(["==24.0", "<25", "==22.0.2;python_version>'3.8'"]),
            "pip_install_options": st.lists(st.sampled_from(["--no-cache-dir", "-q"])),
        },
    ),
)
uv_st = st.one_of(
    requirements,
    st.fixed_dictionaries(
        {"packages": requirements},
        optional={
            "uv_check": st.booleans(),
            "uv_version": st.sampled_from(["==0.4.0", ">=0.5"]),
            "uv_pip_install_options": st.lists(st.sampled_from(["--no-cache", "-q"])),
        },
    ),
)
config_st = st.fixed_dictionaries(
    {},
    optional={
        "setup_timeout_seconds": st.one_of(st.just(-1), st.integers(1, 10**6)),
        "eager_install": st.booleans(),
    },
)
image_st = st.sampled_from(
    [
        "rayproject/ray:2.60.0-py311-gpu",
        "ubuntu",
        "registry.example.com:5000/team/train:v1",
        "ghcr.io/org/img@sha256:" + "0" * 64,
    ]
)


@st.composite
def runtime_env_st(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["env_vars"] = draw(st.dictionaries(env_var_names, plain_text, max_size=4))
    if draw(st.booleans()):
        fields["config"] = draw(config_st)
    if draw(st.integers(0, 3)) == 0:
        fields["image_uri"] = draw(image_st)
        return fields  # Ray allows only env_vars and config beside image_uri
    if draw(st.booleans()):
        fields["working_dir"] = draw(package_uri("working_dir"))
    if draw(st.booleans()):
        fields["py_modules"] = draw(st.lists(package_uri("py_modules"), max_size=3))
    installer = draw(st.sampled_from(["none", "pip", "uv"]))
    if installer == "pip":
        fields["pip"] = draw(pip_st)
    elif installer == "uv":
        fields["uv"] = draw(uv_st)
    if draw(st.booleans()):
        fields["excludes"] = draw(st.lists(one_line, max_size=3))
    return fields


def spec_with(runtime_env: dict[str, Any]) -> dict[str, Any]:
    return {"name": "prop", "workers": 1, "command": "python train.py", "runtime_env": runtime_env}


@settings(max_examples=300, deadline=None)
@given(runtime_env=runtime_env_st())
def test_what_the_spec_accepts_ray_accepts(runtime_env: dict[str, Any]) -> None:
    spec = parse_spec(spec_with(runtime_env), "property")
    ray_form = ray_runtime_env(spec)
    note(f"ray form: {ray_form}")
    assert local_paths(spec) == []
    assert set(ray_form) == set(runtime_env)
    RuntimeEnv(**ray_form)  # raises on anything Ray does not take


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["gcs", "s3", "gs", "https", "http", "file", "ftp", "c"]),
    rest=st.text("abz019._-/?#:", max_size=24),
    ext=st.sampled_from(["", ".zip", ".whl", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".ZIP"]),
    field=st.sampled_from(["working_dir", "py_modules"]),
)
def test_every_package_uri_the_spec_accepts_ray_accepts(
    scheme: str, rest: str, ext: str, field: str
) -> None:
    uri = f"{scheme}://{rest}{ext}"
    value: Any = uri if field == "working_dir" else [uri]
    try:
        spec = parse_spec(spec_with({field: value}), "property")
    except SpecRejected as exc:
        assert all(e["loc"][:2] == ("runtime_env", field) for e in exc.errors)
        return
    RuntimeEnv(**ray_runtime_env(spec))


bad_names = st.one_of(
    st.text(max_size=12).filter(lambda s: re.fullmatch(ENV_VAR_NAME_PATTERN, s) is None),
    st.from_regex(ENV_VAR_NAME_PATTERN, fullmatch=True).map(lambda s: RESERVED_ENV_PREFIX + s),
)


@settings(max_examples=300, deadline=None)
@given(
    bad=bad_names,
    good=st.dictionaries(env_var_names, plain_text, max_size=3),
)
def test_a_bad_env_var_name_is_rejected_at_its_loc(bad: str, good: dict[str, str]) -> None:
    env_vars = {**good, bad: "x"}
    with pytest.raises(SpecRejected) as info:
        parse_spec(spec_with({"env_vars": env_vars}), "property")
    (error,) = info.value.errors
    assert error["loc"] == ("runtime_env", "env_vars", bad)
    assert error["input"] == bad
