"""Exact JSON round trip of the core's events, actions, placements (for the journal) and
snapshots (``scheduler.core.snapshot``, for restarts).

Format: a dataclass value is a ``dict``: ``"kind"`` (its class name, e.g. ``"Launch"``), then
one key per field in field order, valued by the field's type: ``str``, ``bool``, ``int`` as
themselves; ``float`` as an ``int`` if it is one, else the exact finite float, else ``"inf"``,
``"-inf"`` or ``"nan"``; ``X | None`` as ``null`` or ``X``; ``tuple[T, ...]`` and fixed
``tuple[A, B]`` as a list; a ``StrEnum`` (``Topology``, ``Code``) as its value; a nested
dataclass (``Job``, ``Placement``...) as its own such dict. numpy scalars encode as Python
ones. ``json.dumps(d, allow_nan=False)`` always works and ``decode_*(json.loads(...)) == x``.
Renaming a class or field changes the format.

Nothing here is per class: the codec reads ``dataclasses.fields`` and ``get_type_hints`` of the
``Event`` and ``Action`` unions' members, so a new member needs no change here (a field of
another type fails at import). Decoding is strict: a missing field (except one with a default:
an older gpuyard wrote none), an extra field, a wrong type, an unknown enum value or ``kind`` raises ``ValueError`` naming kind and field (encoding: TypeError).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import numpy as np

from scheduler.core.actions import Action
from scheduler.core.events import Event
from scheduler.core.model import Job, Placement
from scheduler.core.snapshot import FORMAT as SNAPSHOT_FORMAT
from scheduler.core.snapshot import CoreSnapshot

JsonDict = dict[str, Any]
_Fn = Callable[[Any, str], Any]  # (value, "Kind.field") -> JSON value, or back
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_BOOLS = (bool, np.bool_)


def _bad(where: str, want: str, got: Any) -> ValueError:
    return ValueError(f"{where}: expected {want}, got {got!r}")


def _wrong(where: str, want: str, got: Any) -> TypeError:
    return TypeError(f"{where}: cannot encode {type(got).__name__} {got!r} as {want}")


# ------------------------------------------------------------------ scalars
_WANT = {str: "a string", bool: "true or false", int: "an int", float: "a number"}
_ACCEPT = {str: (str,), bool: _BOOLS, int: (numbers.Integral,), float: (numbers.Real,)}


def _scalar_codec(tp: type) -> tuple[_Fn, _Fn]:
    """``str``, ``bool``, ``int``, ``float``: numpy scalars encode as Python ones, no bool is
    an int or float, a float field keeps an int as an int and writes non-finite as strings."""
    want = _WANT[tp] + (', "inf", "-inf" or "nan"' if tp is float else "")

    def enc(x: Any, where: str) -> Any:
        if not isinstance(x, _ACCEPT[tp]) or (tp is not bool and isinstance(x, _BOOLS)):
            raise _wrong(where, tp.__name__, x)
        if tp is float and not isinstance(x, numbers.Integral):
            f = float(x)
            return f if math.isfinite(f) else "nan" if math.isnan(f) else "inf" if f > 0 else "-inf"
        return (int if tp is float else tp)(x)

    def dec(v: Any, where: str) -> Any:
        if tp is float and isinstance(v, str) and v in _NON_FINITE:
            return _NON_FINITE[v]
        if type(v) is tp or (tp is float and type(v) is int):
            return v
        raise _bad(where, want, v)

    return enc, dec


# ---------------------------------------------------------------- compound
def _codec(tp: Any) -> tuple[_Fn, _Fn]:
    """The (encode, decode) pair of one annotated field type; ``TypeError`` if unsupported."""
    if tp in _WANT:
        return _scalar_codec(tp)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _enum_codec(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _shape(tp).encode, _shape(tp).decode
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_codec(*_codec(args[0]))
    if origin is tuple and args and Ellipsis not in args:
        return _fixed_tuple_codec([_codec(a) for a in args])
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        enc, dec = _codec(next(a for a in args if a is not type(None)))
        return (
            lambda x, where: None if x is None else enc(x, where),
            lambda v, where: None if v is None else dec(v, where),
        )
    raise TypeError(f"codec: unsupported field type {tp!r}")


def _enum_codec(tp: type[StrEnum]) -> tuple[_Fn, _Fn]:
    values = [m.value for m in tp]

    def enc(x: Any, where: str) -> str:
        if not isinstance(x, tp):
            raise _wrong(where, tp.__name__, x)
        return x.value

    def dec(v: Any, where: str) -> StrEnum:
        if isinstance(v, str) and v in values:
            return tp(v)
        raise _bad(where, f"one of {', '.join(values)}", v)

    return enc, dec


def _tuple_codec(enc: _Fn, dec: _Fn) -> tuple[_Fn, _Fn]:
    def enc_all(xs: Any, where: str) -> list[Any]:
        if not isinstance(xs, tuple):
            raise _wrong(where, "a tuple", xs)
        return [enc(x, f"{where}[{i}]") for i, x in enumerate(xs)]

    def dec_all(vs: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(vs, list):
            raise _bad(where, "a list", vs)
        return tuple(dec(v, f"{where}[{i}]") for i, v in enumerate(vs))

    return enc_all, dec_all


def _fixed_tuple_codec(items: list[tuple[_Fn, _Fn]]) -> tuple[_Fn, _Fn]:
    """``tuple[A, B]`` (e.g. a node's ``(key, value)`` labels): a list of exactly that many."""
    n = len(items)

    def enc_all(xs: Any, where: str) -> list[Any]:
        if not isinstance(xs, tuple) or len(xs) != n:
            raise _wrong(where, f"a tuple of {n}", xs)
        return [
            enc(x, f"{where}[{i}]") for i, (x, (enc, _)) in enumerate(zip(xs, items, strict=True))
        ]

    def dec_all(vs: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(vs, list) or len(vs) != n:
            raise _bad(where, f"a list of {n}", vs)
        return tuple(
            dec(v, f"{where}[{i}]") for i, (v, (_, dec)) in enumerate(zip(vs, items, strict=True))
        )

    return enc_all, dec_all


def _kind_of(d: Any, where: str = "") -> str:
    if not isinstance(d, Mapping):
        raise _bad(where or "encoded value", "an object (a dict with 'kind')", d)
    if not isinstance(kind := d.get("kind"), str):
        raise ValueError(f"encoded value has no string 'kind' field: {d!r}")
    return kind


class _Shape:
    """The codec of one dataclass, read from its fields and their annotations."""

    def __init__(self, cls: type) -> None:
        self.cls, self.kind = cls, cls.__name__
        hints = typing.get_type_hints(cls)
        self.fields = {f.name: _codec(hints[f.name]) for f in dataclasses.fields(cls)}
        # a field added later with a default may be missing from what older gpuyards wrote
        self.optional = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }

    def encode(self, x: Any, where: str = "") -> JsonDict:
        if type(x) is not self.cls:
            raise _wrong(where or self.kind, self.kind, x)
        out = {n: enc(getattr(x, n), f"{self.kind}.{n}") for n, (enc, _) in self.fields.items()}
        return {"kind": self.kind, **out}

    def decode(self, d: Any, where: str = "") -> Any:
        if (kind := _kind_of(d, where)) != self.kind:
            raise ValueError(f"expected kind {self.kind!r}, got {kind!r}")
        if missing := [n for n in self.fields if n not in d and n not in self.optional]:
            raise ValueError(f"{self.kind}: missing field {missing[0]!r}")
        if extra := [key for key in d if key != "kind" and key not in self.fields]:
            raise ValueError(f"{self.kind}: unexpected field {extra[0]!r}")
        values = {n: dec(d[n], f"{self.kind}.{n}") for n, (_, dec) in self.fields.items() if n in d}
        try:
            return self.cls(**values)
        except ValueError as e:  # the class's own checks (__post_init__)
            raise ValueError(f"{self.kind}: {e}") from e


_shape = functools.cache(_Shape)  # one codec per class


def _registry(union: Any) -> dict[str, _Shape]:
    return {cls.__name__: _shape(cls) for cls in typing.get_args(union)}


def _encode_in(shapes: dict[str, _Shape], what: str, x: Any) -> JsonDict:
    if (shape := shapes.get(type(x).__name__)) is None:
        raise ValueError(f"cannot encode unknown {what} kind {type(x).__name__!r}: {x!r}")
    return shape.encode(x)


def _decode_in(shapes: dict[str, _Shape], what: str, d: Any) -> Any:
    if (kind := _kind_of(d)) not in shapes:
        raise ValueError(f"unknown {what} kind {kind!r} (known: {', '.join(shapes)})")
    return shapes[kind].decode(d)


_EVENTS, _ACTIONS = _registry(Event), _registry(Action)
_shape(CoreSnapshot)  # an unsupported field type fails at import, as for events
EVENT_KINDS: tuple[str, ...] = tuple(_EVENTS)
ACTION_KINDS: tuple[str, ...] = tuple(_ACTIONS)


# ------------------------------------------------------------------ public
def encode_event(ev: Event) -> JsonDict:
    """A core event as a JSON-ready dict whose ``kind`` is the event's class name."""
    return _encode_in(_EVENTS, "event", ev)


def decode_event(d: Mapping[str, Any]) -> Event:
    """Inverse of ``encode_event``; an unknown ``kind`` raises ``ValueError`` naming it."""
    return typing.cast(Event, _decode_in(_EVENTS, "event", d))


def encode_action(a: Action) -> JsonDict:
    """A core action as a JSON-ready dict whose ``kind`` is the action's class name."""
    return _encode_in(_ACTIONS, "action", a)


def decode_action(d: Mapping[str, Any]) -> Action:
    """Inverse of ``encode_action``; an unknown ``kind`` raises ``ValueError`` naming it."""
    return typing.cast(Action, _decode_in(_ACTIONS, "action", d))


def encode_job(job: Job) -> JsonDict:
    """A core ``Job`` (with its ``WorkerRequest`` and ``Topology``) as a JSON-ready dict."""
    return _shape(Job).encode(job)


def decode_job(d: Mapping[str, Any]) -> Job:
    """Inverse of ``encode_job``; raises ``ValueError`` on a malformed dict."""
    return typing.cast(Job, _shape(Job).decode(d))


def encode_placement(p: Placement) -> JsonDict:
    """A gang ``Placement`` (workers in rank order) as a JSON-ready dict."""
    return _shape(Placement).encode(p)


def decode_placement(d: Mapping[str, Any]) -> Placement:
    """Inverse of ``encode_placement``; raises ``ValueError`` on a malformed dict."""
    return typing.cast(Placement, _shape(Placement).decode(d))


def encode_snapshot(s: CoreSnapshot) -> JsonDict:
    """A core snapshot (``scheduler.core.snapshot``) as a JSON-ready dict, kind
    ``"CoreSnapshot"``; every nested fact is encoded by the rules above."""
    return _shape(CoreSnapshot).encode(s)


def decode_snapshot(d: Mapping[str, Any]) -> CoreSnapshot:
    """Inverse of ``encode_snapshot``; raises ``ValueError`` on a malformed dict or a snapshot
    format this build does not read (``snapshot.FORMAT``)."""
    if isinstance(d, Mapping) and d.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(
            f"CoreSnapshot.format: this build reads format {SNAPSHOT_FORMAT}, "
            f"got {d.get('format')!r}"
        )
    return typing.cast(CoreSnapshot, _shape(CoreSnapshot).decode(d))


def event_job_id(ev: Event) -> str | None:
    """The job an event is about (its ``job`` or ``job_id``), or None (node, GPU, tick)."""
    job = getattr(ev, "job", None)
    job_id = job.job_id if isinstance(job, Job) else getattr(ev, "job_id", None)
    return job_id if isinstance(job_id, str) else None
