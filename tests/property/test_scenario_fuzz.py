"""Fuzzing the planner's scenario loader (``planner.schema``).

* documents generated from the scenario's JSON Schema: the model accepts every one (the
  published schema and the loader agree), and the loader returns a Scenario or a
  ScenarioError whose every problem names a field of the document;
* malformed documents (a random part of a real scenario replaced by random YAML-ish data:
  NaN, infinities, integers of hundreds of digits, wrong types, deep nesting; keys
  deleted; whole random documents): only ScenarioError, every problem naming a field that
  is in the document or a missing required one;
* malformed files (lines of ``china-dc.yaml`` deleted, repeated, swapped, cut, characters
  inserted): only ScenarioError, every line it names is in the file;
* one field of a real scenario file mutated (wrong type, NaN, .inf, huge, negative, an
  unknown key beside it, the key given twice): rejected naming exactly that field, with its
  line;
* loading the same file twice gives equal Scenarios.

``GPUYARD_FUZZ_EXAMPLES`` multiplies the number of cases (default 1); the counts are
printed (``file fuzz: scenario N cases, 0 crashes``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.inputs import Scenario
from planner.schema import ScenarioError, ScenarioFile, load_scenario, parse_scenario
from scheduler.files.document import line_of
from tests.property.file_strategies import exists, names_a_field

ROOT = Path(__file__).parents[2]
DEFAULT = ROOT / "simulations" / "scenarios" / "china-dc.yaml"
SCENARIOS = [DEFAULT, *sorted((ROOT / "tests" / "data" / "planner").glob("**/*.yaml"))]
SCALE = max(1, int(os.environ.get("GPUYARD_FUZZ_EXAMPLES", "1")))
PUBLISHED = ROOT / "examples" / "schemas" / "scenario.schema.json"
SCHEMA = json.loads(PUBLISHED.read_text())  # what editors validate against
CASES: Counter[str] = Counter()


def _settings(n: int) -> settings:
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- what a rejection must say -----------------------------------------------------------------


def _load(doc: Any, source: str = "fuzz.yaml") -> Scenario | ScenarioError:
    """The loader's answer: a Scenario or a ScenarioError (anything else fails the test)."""
    CASES["cases"] += 1
    try:
        return parse_scenario(doc, source)
    except ScenarioError as e:
        assert e.errors, "a ScenarioError lists its problems"
        return e
    except Exception:
        CASES["crashes"] += 1
        raise


# --- documents from the published JSON Schema --------------------------------------------------


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


_ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=5,
)


def _from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the (pydantic-generated) JSON Schema ``node`` allows; the subset it uses."""
    node = _resolve(node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of([_from_schema(n) for n in node[key]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties")
        if props is None:
            extra = node.get("additionalProperties", True)
            values = _ANY if extra is True else _from_schema(extra)
            size = node.get("minProperties", 0)
            return st.dictionaries(st.sampled_from(["US", "CN", "base", "low"]), values,
                                   min_size=size, max_size=max(size, 2))  # fmt: skip
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {k: _from_schema(v) for k, v in props.items() if k in required},
            optional={k: _from_schema(v) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        size = node.get("minItems", 0)
        return st.lists(_from_schema(node["items"]), min_size=size, max_size=max(size, 2))
    if kind == "number":
        return st.floats(
            min_value=node.get("minimum", node.get("exclusiveMinimum")),
            max_value=node.get("maximum", node.get("exclusiveMaximum")),
            exclude_min="exclusiveMinimum" in node,
            exclude_max="exclusiveMaximum" in node,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        small = st.integers(low if low is not None else -3, (low or 0) + 10)
        return small | st.integers(low, high)
    if kind == "string":
        if "pattern" in node and node["pattern"].startswith("^"):
            return st.from_regex(node["pattern"], fullmatch=True)
        return st.sampled_from(["US", "CN", "base", "fast", "us-a", " cn-a "]) | st.text(
            min_size=node.get("minLength", 0), max_size=6
        ).filter(lambda s: bool(re.search(node.get("pattern", ""), s)))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return _ANY


@_settings(60)
@given(_from_schema(SCHEMA))
def test_documents_from_the_schema_are_models_and_load_or_name_a_field(doc: Any) -> None:
    ScenarioFile.model_validate(doc)  # the published schema and the model agree
    got = _load(doc)
    if isinstance(got, ScenarioError):
        assert all(names_a_field(doc, e) for e in got.errors), got
        CASES["schema rejected"] += 1


def _def(name: str) -> st.SearchStrategy[Any]:
    return _from_schema({"$ref": f"#/$defs/{name}"})


@_settings(60)
@given(
    st.sampled_from(["economics", "slo", "fleet"]),
    _def("EconomicsFile"),
    _def("SloFile"),
    _def("FleetFile"),
)
def test_sections_from_the_schema_in_a_real_scenario_load(
    section: str, economics: Any, slo: Any, fleet: Any
) -> None:
    doc = copy.deepcopy(_BASES[0])
    if section == "fleet":
        doc["workloads"][1]["fleet"] = fleet
    else:
        doc[section] = economics if section == "economics" else slo
    got = _load(doc)
    unserved = doc["economics"]["unserved"]
    if unserved["mode"] == "penalty" and unserved.get("penalty_usd_per_h100_hour") is None:
        assert isinstance(got, ScenarioError)  # the one rule across this section's fields
        assert [x["loc"] for x in got.errors] == [
            ("economics", "unserved", "penalty_usd_per_h100_hour")
        ]
        return
    assert isinstance(got, Scenario), got
    CASES["schema sections accepted"] += 1
    if section == "slo" and slo is not None:
        assert got.slo is not None and got.slo.wait_p95_hours == slo["wait_p95_hours"]


# --- malformed documents -----------------------------------------------------------------------

_BASES = [yaml.safe_load(p.read_text()) for p in SCENARIOS]
_FIELDS = sorted(
    {k for d in SCHEMA["$defs"].values() for k in d.get("properties", {})}
    | set(SCHEMA["properties"])
)
_WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(),  # NaN and infinities included
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 2**53 + 1]),
    st.text(max_size=12),
    st.sampled_from(["1.0e6", "1e400", "-.inf", "2027Q1", "2027Q5", "US", "CN", "base", " ", ""]),
    st.dates(),
)
_JUNK = st.recursive(
    _WEIRD,
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(_FIELDS) | st.text(max_size=6) | st.integers(), c, max_size=4
        )
    ),
    max_leaves=12,
)


def _paths(node: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield loc
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*loc, i))


@st.composite
def _malformed(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(_BASES)))
    if draw(st.integers(0, 9)) == 0:
        return draw(_JUNK)  # a whole random document
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        loc = draw(st.sampled_from(paths))
        parent = doc
        for part in loc[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[loc[-1]]
        else:
            parent[loc[-1]] = draw(_JUNK)
    return doc


@_settings(150)
@given(_malformed())
def test_malformed_documents_only_raise_scenario_errors_naming_a_field(doc: Any) -> None:
    got = _load(doc)
    if isinstance(got, ScenarioError):
        CASES["malformed rejected"] += 1
        for e in got.errors:
            assert names_a_field(doc, e), (e, got)
            assert e["line"] is None  # a parsed document has no lines


def test_deep_nesting_is_a_scenario_error() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    got = _load({"name": "x", "simulation": {"a": deep}, "notes": deep})
    assert isinstance(got, ScenarioError)


# --- malformed files ---------------------------------------------------------------------------

_TEXT = DEFAULT.read_text()
_LINES = _TEXT.splitlines(keepends=True)


@st.composite
def _mangled(draw: st.DrawFn) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "repeat", "swap", "cut", "insert"]))
        if op == "delete":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif op == "cut":
            lines = lines[:i]
        else:
            at = draw(st.integers(0, len(lines[i])))
            junk = draw(st.sampled_from([":", "-", "{", "]", "'", "\t", "&a", "*a", "!!int", " x"]))
            lines[i] = lines[i][:at] + junk + lines[i][at:]
        if not lines:
            break
    return "".join(lines)


@_settings(40)
@given(_mangled())
def test_malformed_files_only_raise_scenario_errors_with_lines_in_the_file(text: str) -> None:
    path = _tmp() / "mangled.yaml"
    path.write_text(text)
    CASES["cases"] += 1
    try:
        load_scenario(path)
    except ScenarioError as e:
        CASES["files rejected"] += 1
        n = len(text.splitlines()) + 1
        assert all(x["line"] is None or 1 <= x["line"] <= n for x in e.errors), e
        assert str(e).startswith(str(path))
        try:
            doc, root = yaml.safe_load(text), yaml.compose(text)
        except yaml.YAMLError:
            return  # a syntax error: the line checked above is all it has
        for x in e.errors:
            if x["loc"] and "given more than once" not in x["msg"]:
                assert names_a_field(doc, x), (x, e)
                if exists(doc, tuple(x["loc"])):
                    assert x["line"] == line_of(root, tuple(x["loc"])) is not None, (x, e)
    except Exception:
        CASES["crashes"] += 1
        raise


_TMP: list[Path] = []


def _tmp() -> Path:
    return _TMP[0]


@pytest.fixture(autouse=True)
def _tmp_dir(tmp_path: Path) -> Iterator[None]:
    _TMP.insert(0, tmp_path)
    yield
    _TMP.pop(0)


# --- one field mutated -------------------------------------------------------------------------


def _entries(node: yaml.Node, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """(loc, key node or None, value node, parent node) of every entry under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield ((*loc, str(k.value)), k, v, node)
            yield from _entries(v, (*loc, str(k.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            yield ((*loc, i), None, v, node)
            yield from _entries(v, (*loc, i))


_FREE_KEYS = ("vehicle_growth_per_year", "demand_growth_per_year")  # growth case -> rate


def _mutations() -> list[tuple[str, str, tuple[Any, ...], str, int]]:
    """(file, kind, field, text, line) for every field of the real scenarios."""
    out: list[tuple[str, str, tuple[Any, ...], str, int]] = []
    for path in SCENARIOS:
        text = path.read_text()
        root = yaml.compose(text)
        assert root is not None
        for loc, key, value, parent in _entries(root):
            if loc[0] == "simulation" and len(loc) > 1:
                continue  # read by the closed loop, not the planner (plan_sim validates it)
            line = (key or value).start_mark.line + 1
            if isinstance(value, yaml.ScalarNode):
                was = yaml.safe_load(text[value.start_mark.index : value.end_mark.index] or "~")
                number = isinstance(was, int | float) and not isinstance(was, bool)
                tokens = {
                    "wrong type": "[1, 2]" if isinstance(was, str) else "'12x'",
                    "nan": ".nan",
                    "inf": "-.inf" if number else ".inf",
                    "huge": "1.0e+999",
                    "negative": "-1.0e+12",
                }
                for kind, token in tokens.items():
                    mutated = text[: value.start_mark.index] + token + text[value.end_mark.index :]
                    out.append((path.name, kind, loc, mutated, line))
            if key is None:
                continue
            flow = bool(parent.flow_style)
            indent = "" if flow else "\n" + " " * key.start_mark.column
            sep = ", " if flow else indent
            at = key.start_mark.index
            if not loc[-2:-1] or loc[-2] not in _FREE_KEYS:
                extra = text[:at] + "zz_unknown: 1" + sep + text[at:]
                out.append((path.name, "unknown key", (*loc[:-1], "zz_unknown"), extra, line))
            single = value.start_mark.line == value.end_mark.line or isinstance(
                value, yaml.ScalarNode
            )
            if single and (flow or isinstance(value, yaml.ScalarNode) or value.flow_style):
                entry = text[at : value.end_mark.index]
                twice = text[:at] + entry + sep + text[at:]
                out.append((path.name, "duplicate key", loc, twice, line + (0 if flow else 1)))
    return out


MUTATIONS = _mutations()


@_settings(160)
@given(st.sampled_from(MUTATIONS))
def test_one_field_mutated_is_rejected_naming_that_field_and_line(
    case: tuple[str, str, tuple[Any, ...], str, int],
) -> None:
    name, kind, loc, text, line = case
    path = _tmp() / name
    path.write_text(text)
    CASES["cases"] += 1
    CASES[f"mutation: {kind}"] += 1
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert [(tuple(x["loc"]), x["line"]) for x in e.value.errors] == [(loc, line)], (kind, e.value)
    assert str(e.value).startswith(f"{path}:{line}: ")


def test_the_mutations_cover_every_kind_and_file() -> None:
    kinds = Counter((name, kind) for name, kind, *_ in MUTATIONS)
    for path in SCENARIOS:
        for kind in (
            "wrong type",
            "nan",
            "inf",
            "huge",
            "negative",
            "unknown key",
            "duplicate key",
        ):
            assert kinds[(path.name, kind)] >= 5, (path.name, kind)


# --- loading twice -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_loading_twice_gives_equal_scenarios(path: Path, tmp_path: Path) -> None:
    a, b = load_scenario(path), load_scenario(path)
    assert a == b and hash(a) == hash(b)
    again = tmp_path / path.name
    again.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()), sort_keys=False))
    c = load_scenario(again)
    assert c == a.__class__(**{**{f: getattr(a, f) for f in a.__dataclass_fields__},
                               "source": str(again)})  # fmt: skip


def test_zz_report_the_case_counts(fuzz_counts: dict[str, Counter[str]]) -> None:
    """Runs last in this file (one worker runs a whole file): the counts go to the summary."""
    assert CASES["crashes"] == 0 and CASES["cases"] > 0
    fuzz_counts["scenario"] = Counter(CASES)
