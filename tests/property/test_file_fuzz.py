"""Fuzzing the scheduler's file loaders: fleet, service config, quotas, priority classes,
tokens, Kubernetes settings (scheduler/files/document.py underneath them all).

* documents generated from each published JSON Schema load, or are refused only by a
  documented rule across fields or files (``type: cross_field``), naming a field;
* malformed documents (a part of a real file replaced by NaN, infinities, integers of
  hundreds of digits, wrong types, nested junk; whole random documents) raise only the
  loader's error (no KeyError, TypeError, OverflowError, RecursionError), every problem
  naming a field of the document (or a missing required one) and its line when the file has
  the field's key;
* every one-field mutation of the repository's real files that the schema refuses (wrong
  type, NaN, inf, a huge int, a negative, an unknown key, the key given twice) is refused
  naming exactly that field;
* loading is deterministic and leaves the file as it was.

``GPUYARD_FUZZ_EXAMPLES`` multiplies the number of cases (default 1); the counts are printed
in the terminal summary (``file fuzz: fleet N cases, 0 crashes``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from scheduler.files.document import InputRejected
from scheduler.files.priority_file import PriorityFileError, load_priority_classes
from scheduler.files.quota_file import QuotaFileError, load_quotas
from scheduler.runtime.auth import TokenFileError, load_token_file
from scheduler.runtime.config import ConfigFileError, load_config, load_fleet
from scheduler.runtime.k8s.settings import K8sSettingsError, load_k8s_settings
from tests.property.file_strategies import (
    Mutation,
    dump,
    exists,
    from_schema,
    fuzz_settings,
    get,
    junk,
    leaves,
    line_is_right,
    mutations,
    names_a_field,
    replaced,
    sane,
)

ROOT = Path(__file__).resolve().parents[2]
SCALE = max(1, int(os.environ.get("GPUYARD_FUZZ_EXAMPLES", "1")))


class _AnyEnv(Mapping[str, str]):
    """An environment where every variable holds a token (token_env always resolves)."""

    def __getitem__(self, key: str) -> str:
        return f"token-of-{key}"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# loader name -> (load a path, its error, its schema, the repository's real files)
LOADERS: dict[str, tuple[Callable[[Path], object], type[InputRejected], str, list[str]]] = {
    "fleet": (load_fleet, ConfigFileError, "fleet", ["examples/config/fleet-regions.yaml"]),
    "config": (
        load_config,
        ConfigFileError,
        "service-config",
        ["k8s/base/config/service.yaml", "examples/config/residency.yaml"],
    ),
    "quotas": (load_quotas, QuotaFileError, "quotas", ["k8s/base/config/quotas.yaml"]),
    "priority": (
        load_priority_classes,
        PriorityFileError,
        "priority-classes",
        ["k8s/base/config/priority-classes.yaml"],
    ),
    "tokens": (
        lambda p: load_token_file(p, environ=_AnyEnv()),
        TokenFileError,
        "tokens",
        ["k8s/base/config/tokens.yaml"],
    ),
    "k8s": (
        load_k8s_settings,
        K8sSettingsError,
        "k8s-settings",
        ["k8s/overlays/gpu-prod/k8s.yaml", "k8s/base/config/k8s.yaml"],
    ),
}
NAMES = list(LOADERS)
SCHEMAS = {
    n: json.loads((ROOT / "examples" / "schemas" / f"{s}.schema.json").read_text())
    for n, (_, _, s, _) in LOADERS.items()
}
BASES = {
    n: [yaml.safe_load((ROOT / f).read_text()) for f in files]
    for n, (_, _, _, files) in LOADERS.items()
}


@pytest.fixture(scope="module")
def counts(fuzz_counts: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    for name in NAMES:
        fuzz_counts.setdefault(name, Counter())
    return fuzz_counts


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("file-fuzz")


def _load(
    name: str, text: str, folder: Path, counts: dict[str, Counter[str]]
) -> tuple[object | None, InputRejected | None]:
    """The loader's answer for a file of ``text``: a value or its error (anything else is
    counted as a crash and fails the test)."""
    load, error, _, _ = LOADERS[name]
    path = folder / f"{name}.yaml"
    path.write_text(text)
    counts[name]["cases"] += 1
    try:
        return load(path), None
    except error as e:
        assert e.errors, "an error lists its problems"
        for problem in e.errors:
            assert set(problem) >= {"loc", "msg", "source", "line"}, problem
            assert problem["source"] == str(path)
        return None, e
    except Exception:
        counts[name]["crashes"] += 1
        raise


def _check_rejection(doc: Any, text: str, e: InputRejected) -> None:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for problem in e.errors:
        if problem.get("type") in ("yaml", "duplicate_key", "too_deep"):
            continue
        assert names_a_field(doc, problem), (problem, doc)
        assert line_is_right(root, problem), (problem, text)


# --- documents from the published schemas -------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_documents_from_the_schema_load_or_break_only_a_cross_field_rule(
    name: str, folder: Path, counts: dict[str, Counter[str]]
) -> None:
    @fuzz_settings(40, SCALE)
    @given(from_schema(SCHEMAS[name]))
    def run(doc: Any) -> None:
        text = dump(doc)
        _, e = _load(name, text, folder, counts)
        if e is not None:
            counts[name]["cross-field refusals"] += 1
            assert all(p.get("type") == "cross_field" for p in e.errors), e.errors
            _check_rejection(doc, text, e)
        else:
            counts[name]["schema docs loaded"] += 1

    run()


# --- malformed documents ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_malformed_documents_raise_only_the_loaders_error_naming_a_field(
    name: str, folder: Path, counts: dict[str, Counter[str]]
) -> None:
    paths = {i: list(leaves(base)) for i, base in enumerate(BASES[name])}

    @fuzz_settings(40, SCALE)
    @given(st.data(), junk())
    def run(data: st.DataObject, value: Any) -> None:
        i = data.draw(st.sampled_from(sorted(paths)))
        base = BASES[name][i]
        path = data.draw(st.sampled_from([(), *paths[i]]))
        doc = replaced(base, path, value)
        text = dump(doc)
        if not sane(text):
            return
        _, e = _load(name, text, folder, counts)
        if e is not None:
            _check_rejection(doc, text, e)

    run()


@pytest.mark.parametrize("name", NAMES)
def test_deep_nesting_and_broken_yaml_are_the_loaders_error(
    name: str, folder: Path, counts: dict[str, Counter[str]]
) -> None:
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    for text in (deep, "a: [\n", "- : :\n", "\t\x00", "a: 1\n---\nb: 2\n", "*x\n"):
        _, e = _load(name, text, folder, counts)
        assert e is not None and e.errors[0]["loc"] == ()


# --- one field mutated ------------------------------------------------------------------------

MUTATIONS: dict[str, list[Mutation]] = {
    name: [m for base in BASES[name] for m in mutations(base, SCHEMAS[name])] for name in NAMES
}


def test_the_mutations_cover_every_loader_and_kind() -> None:
    for name in NAMES:
        got = {m.kind for m in MUTATIONS[name]}
        assert {"wrong type", "unknown key", "duplicate key"} <= got, (name, got)
    every = {m.kind for ms in MUTATIONS.values() for m in ms}
    assert every >= {"nan", "inf", "-inf", "huge", "negative"}


@pytest.mark.parametrize("name", NAMES)
def test_a_mutated_field_is_refused_naming_exactly_that_field(
    name: str, folder: Path, counts: dict[str, Counter[str]]
) -> None:
    wrong = []
    for m in MUTATIONS[name]:
        text = m.text if m.text is not None else dump(m.doc)
        _, e = _load(name, text, folder, counts)
        counts[name][f"mutation: {m.kind}"] += 1
        if e is None:
            wrong.append((m.kind, m.path, "accepted"))
            continue
        locs = [tuple(p["loc"]) for p in e.errors]
        if m.path not in locs or any(loc[: len(m.path)] != m.path for loc in locs):
            wrong.append((m.kind, m.path, locs))
            continue
        problem = next(p for p in e.errors if tuple(p["loc"]) == m.path)
        if m.kind == "duplicate key":
            ok = problem["type"] == "duplicate_key" and problem["line"] is not None
        else:
            ok = line_is_right(yaml.compose(text, Loader=yaml.SafeLoader), problem)
        if not ok:
            wrong.append((m.kind, m.path, problem))
    assert wrong == []


# --- deterministic, read-only ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_loading_is_deterministic_and_leaves_the_file_alone(
    name: str, counts: dict[str, Counter[str]]
) -> None:
    load, _, _, files = LOADERS[name]
    for f in files:
        path = ROOT / f
        before = (path.read_bytes(), path.stat().st_mtime_ns)
        first, second = load(path), load(path)
        counts[name]["cases"] += 2
        assert first == second
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_a_real_file_and_its_mutations_exist(counts: dict[str, Counter[str]]) -> None:
    for name in NAMES:
        for base in BASES[name]:
            assert all(exists(base, p) for p in leaves(base))
            assert get(base, ()) == base
    assert sum(c["crashes"] for c in counts.values()) == 0
