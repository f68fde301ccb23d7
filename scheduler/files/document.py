"""The one validation layer for every input file (scenario, fleet, service config, quotas,
priority classes, tokens, Kubernetes settings, simulation settings, job specs).

A file is read by :func:`read_document`, which rejects what a plain YAML loader would let
through silently (a key given twice keeps only the last; a syntax error loses its line), and
validated by a pydantic model (:class:`FileModel`: strict types, no extra fields, finite
numbers). Every problem becomes one error of :class:`InputRejected`, in the job spec's format
(:class:`~scheduler.runtime.views.SpecRejected`): ``loc`` (the field path, e.g.
``("nodes", 2, "memory_gib")``), ``msg`` (the rule broken and what is allowed), ``input``
(the bad value), ``source`` (the file) and ``line`` (1-based, where the file has the field)::

    fleet.yaml:7: nodes[2].memory_gib: Input should be a finite number (got nan)

Checks a model cannot make alone (a team the workload does not know, a region the fleet does
not have) use :func:`reject`, which finds the field's line the same way; a rule across the
fields of one model raises :class:`CrossField` from a model validator, naming the field at
fault. Each error also has a ``type``: pydantic's error type (``greater_than_equal``,
``extra_forbidden``...), ``yaml`` (syntax), ``duplicate_key``, ``unreadable`` or
``cross_field`` (a rule across fields or files, which a JSON Schema cannot say).
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

__all__ = [
    "CrossField",
    "Document",
    "FileModel",
    "InputRejected",
    "Loc",
    "dotted",
    "line_of",
    "load",
    "read_document",
    "reject",
    "validate",
]


class FileModel(BaseModel):
    """Base of every input file's model: strict types (``"4"`` is not a number, ``true`` is
    not an integer; an integer is a float), unknown fields rejected, NaN and infinities
    rejected, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def dotted(loc: Sequence[str | int]) -> str:
    """``("nodes", 2, "memory_gib")`` as ``nodes[2].memory_gib``; ``()`` as ``document``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class InputRejected(ValueError):
    """An input file (or document) is invalid. ``errors`` holds one dict per problem with
    ``loc``, ``msg``, ``input``, ``source`` and ``line`` (None where the file has no line
    for it); the message has one line per problem: ``file:line: field: msg (got value)``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("\n".join(self.line(e) for e in errors))

    @staticmethod
    def line(e: Mapping[str, Any]) -> str:
        at = str(e.get("source", "<input>"))
        if e.get("line") is not None:
            at += f":{e['line']}"
        got = f" (got {_shown(e['input'])})" if "input" in e else ""
        return f"{at}: {dotted(e['loc'])}: {e['msg']}{got}"

    @property
    def first(self) -> dict[str, Any]:
        return self.errors[0]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML (or JSON) document, with its node tree for line numbers."""

    data: Any
    source: str
    root: yaml.Node | None = None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):  # NaN and infinities stay numbers (shown as nan, inf)
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    except RecursionError:  # a value nested deeper than repr() goes
        return f"<{type(value).__name__} nested too deeply>"
    return value


def _key_name(key: yaml.Node) -> str:
    """A mapping key as the loader sees it, as text: ``NO`` and ``false`` are both ``False``,
    ``0x10`` is ``16`` (the raw text for a key that is not a plain scalar)."""
    if isinstance(key, yaml.ScalarNode):
        try:
            value = yaml.constructor.SafeConstructor().construct_object(key, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError):
            return str(key.value)
        return str(value)
    return str(key.value)


def _duplicates(node: yaml.Node, path: Loc, source: str) -> list[dict[str, Any]]:
    """Keys given twice in any mapping (a YAML loader silently keeps the last)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = _key_name(key)
            line = key.start_mark.line + 1
            if name in first:
                found.append(
                    {
                        "loc": (*path, name),
                        "msg": f"key '{key.value}' is given more than once (first on line "
                        f"{first[name]}); give each key once",
                        "input": str(key.value),
                        "source": source,
                        "line": line,
                        "type": "duplicate_key",
                    }
                )
            else:
                first[name] = line
            found.extend(_duplicates(value, (*path, name), source))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_duplicates(item, (*path, i), source))
    return found


def parse_text(text: str, source: str) -> Document:
    """``text`` as a document; YAML syntax errors and duplicate keys are
    :class:`InputRejected` naming ``source`` and the line."""

    def fail(msg: str, line: int | None, value: Any = None) -> InputRejected:
        e: dict[str, Any] = {"loc": (), "msg": msg, "source": source, "line": line, "type": "yaml"}
        if value is not None:
            e["input"] = value
        return InputRejected([e])

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise fail(f"invalid YAML: {problem}", line) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a timestamp out of range
        raise fail(f"invalid YAML value: {exc}", None) from None
    if root is not None:
        duplicates = _duplicates(root, (), source)
        if duplicates:
            raise InputRejected(duplicates)
    return Document(data, source, root)


def read_document(path: str | Path) -> Document:
    """The file's document (``data`` None for an empty file). An unreadable file, invalid
    UTF-8, a YAML syntax error or a duplicate key is :class:`InputRejected` naming the file
    and the line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputRejected(
            [
                {
                    "loc": (),
                    "msg": f"cannot read the file: {exc}",
                    "source": source,
                    "line": None,
                    "type": "unreadable",
                }
            ]
        ) from None
    return parse_text(text, source)


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """1-based line of the field at ``loc`` (its key, for a mapping entry), or of the closest
    enclosing node the file has; None without a node tree."""
    if root is None:
        return None
    node = root
    line: int | None = root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if _key_name(k) == str(part)]
            if not match:
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


# --- pydantic's errors in the users' words ---------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation may hold directly (``X``, ``X | None``, ``Annotated[X, ...]``)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _models_in(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _inner(annotation: Any) -> Any:
    """The item type of a list/tuple/dict annotation (through Optional and Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _inner(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for a in typing.get_args(annotation):
            if a is not type(None):
                got = _inner(a)
                if got is not None:
                    return got
        return None
    args = typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset, Sequence, Iterable) and args:
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose fields an unknown key at ``loc`` (its parent path) is one of."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, RootModel):
            current = current.model_fields["root"].annotation
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        models = _models_in(current)
        if models:
            current = models[0]
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        current = _inner(current)
        if current is None:
            return None
    models = _models_in(current)
    return models[0] if models else None


def _allowed_fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _message(model: type[BaseModel], error: Mapping[str, Any], loc: Loc) -> str:
    kind = str(error["type"])
    if kind == "extra_forbidden" and loc:
        parent = _model_at(model, loc[:-1])
        field = str(loc[-1])
        where = f" in {dotted(loc[:-1])}" if len(loc) > 1 else ""
        if parent is None:
            return f"unknown field '{field}'{where}"
        allowed = _allowed_fields(parent)
        guess = difflib.get_close_matches(field, allowed, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"unknown field '{field}'{where}{hint}; allowed fields: {', '.join(allowed)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "model_type" and (target := _model_at(model, loc)) is not None:
        return f"Input should be a mapping with fields {', '.join(_allowed_fields(target))}"
    if kind == "finite_number":
        return "Input should be a finite number (not NaN or infinite)"
    msg = str(error["msg"])
    cause = (error.get("ctx") or {}).get("error")
    if kind == "value_error" and cause is not None:
        msg = str(cause)
    value = error.get("input")
    if kind == "string_type" and (value is None or isinstance(value, bool | int | float)):
        # YAML reads NO, on, 1, 1e3 or an empty value as a boolean, a number or null
        msg += "; quote it in YAML"
    return msg


_TAGS = {"[key]"}


def _clean_loc(loc: Sequence[Any], key: Any = None) -> Loc:
    """The location as the user wrote it: without pydantic's tags of union members
    (``"function-after[...]"``, ``"list[...]"``, type names) and of dict keys. For an error
    in a dict key (``key``: the key itself), the key stands as the user wrote it (pydantic
    writes the key ``false`` as ``0``)."""
    out: list[str | int] = []
    parts = list(loc)
    if key is not None and len(parts) >= 2 and parts[-1] == "[key]":
        parts[-2] = key if isinstance(key, int) and not isinstance(key, bool) else str(key)
    for part in parts:
        if isinstance(part, bool):
            out.append(str(part))
        elif isinstance(part, int):
            out.append(part)
        elif part in _TAGS or ("[" in str(part) and str(part).endswith("]")):
            continue
        else:
            out.append(str(part))
    return tuple(out)


class CrossField(ValueError):
    """Raised by a model's validator for rules across its fields: each problem is
    ``(loc, msg, value)``, ``loc`` relative to the model (``("nodes", 3, "name")``), so the
    error names the field at fault rather than the whole model."""

    def __init__(self, problems: Sequence[tuple[Loc, str, Any]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{dotted(loc)}: {msg}" for loc, msg, _ in self.problems))


def _as_written(data: Any, loc: Loc) -> Loc:
    """``loc`` with each mapping key as the document has it, as text: pydantic writes the key
    ``false`` as ``0`` and a key ``1`` like a list index."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping):
            key = next((k for k in node if k == part and type(k) is type(part)), None)
            if key is None:
                key = next((k for k in node if k == part or str(k) == str(part)), part)
            out.append(str(key))
            node = node.get(key)
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(part)
            node = None
    return tuple(out)


def errors_of(
    model: type[BaseModel],
    exc: ValidationError,
    source: str,
    root: yaml.Node | None = None,
    data: Any = None,
) -> list[dict[str, Any]]:
    """pydantic's errors as :class:`InputRejected` errors (file lines found via ``root``;
    ``data``, the validated document, spells the keys of the locations as written)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[Loc, str]] = set()
    for error in exc.errors(include_url=False):
        raw = tuple(error["loc"])
        key = error.get("input") if raw and raw[-1] == "[key]" else None
        loc = _clean_loc(raw, key)
        if data is not None:
            loc = _as_written(data, loc)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, CrossField):
            for at, msg, value in cause.problems:
                full = (*loc, *at)
                if (full, msg) not in seen:
                    seen.add((full, msg))
                    e = {"loc": full, "msg": msg, "source": source, "line": line_of(root, full)}
                    if value is not None:
                        e["input"] = _json_safe(value)
                    out.append({**e, "type": "cross_field"})
            continue
        msg = _message(model, error, loc)
        if (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        e = {"loc": loc, "msg": msg, "source": source, "line": line_of(root, loc)}
        if error["type"] != "missing":
            e["input"] = _json_safe(error["input"])
        out.append({**e, "type": str(error["type"])})
    return out


def validate(
    model: type[M],
    doc: Document,
    *,
    context: Mapping[str, Any] | None = None,
    error: type[InputRejected] = InputRejected,
) -> M:
    """``doc.data`` as ``model``, or ``error`` listing every problem with its line. An empty
    document is validated as an empty mapping (so the missing fields are named)."""
    data = {} if doc.data is None else doc.data
    try:
        return model.model_validate(data, context=dict(context) if context else None)
    except ValidationError as exc:
        raise error(errors_of(model, exc, doc.source, doc.root, data)) from None
    except RecursionError:
        raise error(
            [
                {
                    "loc": (),
                    "msg": "the document is nested too deeply",
                    "source": doc.source,
                    "line": None,
                    "type": "too_deep",
                }
            ]
        ) from None


def load(
    path: str | Path,
    model: type[M],
    *,
    context: Mapping[str, Any] | None = None,
    error: type[InputRejected] = InputRejected,
) -> M:
    """Read ``path`` and validate it as ``model`` (:func:`read_document`, :func:`validate`)."""
    try:
        doc = read_document(path)
    except InputRejected as exc:
        raise error(exc.errors) from None
    return validate(model, doc, context=context, error=error)


def reject(
    doc: Document | str,
    loc: Loc,
    msg: str,
    value: Any = None,
    *,
    error: type[InputRejected] = InputRejected,
) -> InputRejected:
    """An ``error`` for a check made after the model (``raise reject(doc, loc, msg, value)``),
    with the line of ``loc`` when ``doc`` is a :class:`Document`."""
    source = doc.source if isinstance(doc, Document) else doc
    root = doc.root if isinstance(doc, Document) else None
    e: dict[str, Any] = {"loc": loc, "msg": msg, "source": source, "line": line_of(root, loc)}
    if value is not None:
        e["input"] = _json_safe(value)
    return error([{**e, "type": "cross_field"}])
