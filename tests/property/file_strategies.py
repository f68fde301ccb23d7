"""Shared pieces of the input-file fuzz tests (tests/property/test_file_fuzz.py and any other
loader's): documents generated from a published JSON Schema, malformed values, one-field
mutations of a valid document, and the checks a rejection must pass.

(hypothesis-jsonschema would generate from the schemas, but its last release, 0.23.1, fails
with this hypothesis, 6.170: ``'many' object has no attribute 'more'``; :func:`from_schema`
covers the subset of JSON Schema that pydantic writes.)
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from scheduler.files.document import Loc, line_of

Path_ = tuple[str | int, ...]


def fuzz_settings(n: int, scale: int = 1) -> settings:
    """``n`` cases (times ``scale``), reproducible (derandomize) and without a database."""
    return settings(
        max_examples=n * scale,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- documents from a schema -----------------------------------------------------------------

NAMES = ["a", "b", "H100", "CN", "US", "x-1", "team_a"]
_SCALAR = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(NAMES)
ANY = st.recursive(
    _SCALAR,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(NAMES), c, max_size=3),
    max_leaves=6,
)


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        node = root["$defs"][str(node["$ref"]).rsplit("/", 1)[-1]]
    return node


def from_schema(root: Mapping[str, Any], node: Mapping[str, Any] | None = None) -> Any:
    """A strategy of values that ``node`` of the (pydantic-written) schema ``root`` may
    describe; values are filtered by the schema itself, so every one is valid by it."""
    validator = jsonschema.Draft202012Validator(root)
    return _gen(root, root if node is None else node).filter(validator.is_valid)


def _gen(root: Mapping[str, Any], node: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    node = _resolve(root, node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of([_gen(root, {**n}) for n in node[key]])
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    groups = [g["oneOf"] for g in node.get("allOf", ()) if "oneOf" in g]
    if kind == "object" and groups:
        # exactly one of each group's keys (token entries: team or admin; hash or env)
        choices = st.tuples(*(st.sampled_from(range(len(g))) for g in groups))
        return choices.flatmap(lambda picked: _gen(root, _chosen(node, groups, picked)))
    if kind == "object":
        props: dict[str, Any] = dict(node.get("properties", {}))
        extra = node.get("additionalProperties", True)
        required = set(node.get("required", ()))
        fixed = st.fixed_dictionaries(
            {k: _gen(root, v) for k, v in props.items() if k in required},
            optional={k: _gen(root, v) for k, v in props.items() if k not in required},
        )
        if extra is False or not isinstance(extra, Mapping):
            return fixed
        low = node.get("minProperties", 0)
        more = st.dictionaries(
            st.sampled_from(NAMES), _gen(root, extra), min_size=low, max_size=max(low, 3)
        )
        return st.tuples(fixed, more).map(lambda fm: {**fm[1], **fm[0]})
    if kind == "array":
        low = node.get("minItems", 0)
        items = _gen(root, node.get("items", {}))
        unique = bool(node.get("uniqueItems"))
        return st.lists(items, min_size=low, max_size=max(low, 3), unique=unique)
    if kind == "number":
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        floats = st.floats(
            min_value=low,
            max_value=high,
            exclude_min="exclusiveMinimum" in node,
            exclude_max="exclusiveMaximum" in node,
            allow_nan=False,
            allow_infinity=False,
        )
        small = st.integers(math.ceil(low or 0), math.floor(min(high or 100, (low or 0) + 100)))
        return floats | small
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        near = st.integers(low if low is not None else -3, min(high or 10**6, (low or 0) + 10))
        return near | st.integers(low, high)
    if kind == "string":
        pattern = node.get("pattern")
        if pattern is not None and pattern.startswith("^"):
            return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) < 80)
        low = node.get("minLength", 0)
        return st.sampled_from(NAMES) | st.text(min_size=low, max_size=8)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY


def _chosen(
    node: Mapping[str, Any], groups: list[list[Mapping[str, Any]]], picked: tuple[int, ...]
) -> dict[str, Any]:
    """``node`` with one alternative of each ``oneOf`` group required and the others left
    out (and an ``if: required`` rule's ``then`` applied)."""
    required = set(node.get("required", ()))
    dropped: set[str] = set()
    for group, i in zip(groups, picked, strict=True):
        for j, alt in enumerate(group):
            (required if i == j else dropped).update(alt.get("required", ()))
    for rule in node.get("allOf", ()):
        if "if" in rule and set(rule["if"].get("required", ())) <= required:
            required.update(rule["then"].get("required", ()))
    props = {k: v for k, v in node.get("properties", {}).items() if k not in dropped}
    rest = {k: v for k, v in node.items() if k not in ("allOf", "properties", "required")}
    return {**rest, "properties": props, "required": sorted(required)}


# --- malformed values -------------------------------------------------------------------------

BAD_SCALARS = [
    math.nan,
    math.inf,
    -math.inf,
    10**400,
    -(10**30),
    10**20,
    -1,
    0,
    -0.5,
    True,
    False,
    None,
    "",
    " ",
    "1",
    "nan",
    "x" * 300,
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": None}},
]


def junk() -> st.SearchStrategy[Any]:
    """Values a malformed document holds: NaN, infinities, integers of hundreds of digits,
    wrong types, nested containers."""
    return st.sampled_from(BAD_SCALARS) | ANY | st.floats() | st.integers() | st.text(max_size=6)


def leaves(doc: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every path in ``doc`` (mappings and lists inside), parents before children."""
    if at:
        yield at
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaves(v, (*at, i))


def get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def replaced(doc: Any, path: Path_, value: Any) -> Any:
    """A deep copy of ``doc`` with ``value`` at ``path``."""
    out = copy.deepcopy(doc)
    if not path:
        return value
    parent = get(out, path[:-1])
    parent[path[-1]] = value
    return out


@dataclass(frozen=True)
class Mutation:
    """One field of a valid document made wrong: the document (``text`` when the mutation
    is in the YAML text: a key given twice), the field and how."""

    kind: str
    path: Path_
    doc: Any
    text: str | None = None


def _wrong_types(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return ["yes", 1]
    if isinstance(value, int | float):
        return ["12", [value], True]
    if isinstance(value, str):
        return [7, [value], {"x": value}]
    if isinstance(value, list):
        return ["x", 3]
    if isinstance(value, dict):
        return ["x", [1]]
    return [[]]


def mutations(doc: Any, schema: Mapping[str, Any]) -> Iterator[Mutation]:
    """Every one-field mutation of ``doc`` the schema refuses (NaN and infinities always:
    JSON has none; a key given twice always): wrong types, NaN, inf, a huge int, a negative,
    an unknown key beside a field, the field's key given twice."""
    validator = jsonschema.Draft202012Validator(schema)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=10_000)
    for path in leaves(doc):
        value = get(doc, path)
        tries: list[tuple[str, Any]] = [("wrong type", v) for v in _wrong_types(value)]
        if isinstance(value, int | float) and not isinstance(value, bool):
            tries += [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)]
            tries += [("huge", 10**30), ("negative", -abs(value) - 1)]
        for kind, bad in tries:
            mutated = replaced(doc, path, bad)
            finite = not (isinstance(bad, float) and not math.isfinite(bad))
            if finite and validator.is_valid(mutated):
                continue  # the schema allows it (a negative priority, a list for a list...)
            yield Mutation(kind, path, mutated)
        parent = get(doc, path[:-1])
        if isinstance(parent, dict) and isinstance(path[-1], str):
            unknown = (*path[:-1], f"{path[-1]}_typo")
            grown = copy.deepcopy(doc)
            get(grown, path[:-1])[unknown[-1]] = 1
            if not validator.is_valid(grown):
                yield Mutation("unknown key", unknown, grown)
            if not isinstance(value, dict | list):
                twice = _given_twice(text, path)
                if twice is not None:
                    yield Mutation("duplicate key", path, doc, twice)


def _given_twice(text: str, path: Path_) -> str | None:
    """``text`` with the line of ``path``'s key repeated (a scalar on one line)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    line = line_of(root, path)
    if line is None:
        return None
    lines = text.splitlines(keepends=True)
    this = lines[line - 1]
    key = str(path[-1])
    stripped = this.lstrip(" -")
    if not stripped.startswith((f"{key}:", f"'{key}':", f'"{key}":')):
        return None
    indent = len(this) - len(this.lstrip(" "))
    if this.lstrip(" ").startswith("- "):
        indent += 2  # the list item's first key: the next keys are indented past the dash
    copy_ = " " * indent + stripped
    return "".join([*lines[:line], copy_, *lines[line:]])


# --- what a rejection must say ----------------------------------------------------------------


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == part or str(k) == str(part):
                return True, v
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def exists(doc: Any, loc: Loc) -> bool:
    node = doc
    for part in loc:
        found, node = _child(node, part)
        if not found:
            return False
    return True


# the messages of a required field that is absent (its parent is in the document)
MISSING = ("required field is missing", "an admin entry needs a name", "give exactly one of")


def names_a_field(doc: Any, error: Mapping[str, Any]) -> bool:
    """The problem's field is in the document, or is a required one missing from it (its
    parent in the document)."""
    loc = tuple(error["loc"])
    if exists(doc, loc):
        return True
    return bool(loc) and str(error["msg"]).startswith(MISSING) and exists(doc, loc[:-1])


def line_is_right(root: yaml.Node | None, error: Mapping[str, Any]) -> bool:
    """An error whose field's key is in the file gives that key's line."""
    if root is None:
        return True
    loc = tuple(error["loc"])
    expected = line_of(root, loc)
    if not _resolves(root, loc):
        return error.get("line") is not None
    return error.get("line") == expected


def _resolves(root: yaml.Node, loc: Loc) -> bool:
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if str(k.value) == str(part)]
            if not match:
                return False
            node = match[-1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return False
            node = node.value[part]
        else:
            return False
    return True


def dump(doc: Any) -> str:
    """``doc`` as YAML (NaN as .nan, infinities as .inf, which PyYAML writes)."""
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=10_000)


def sane(text: str) -> bool:
    """Whether ``text`` reads back (a dumped key of odd characters may not)."""
    try:
        yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return False
    return not re.search(r"[\x00-\x08]", text)
