"""Exact JSON round trip of the core's events, actions and placements (for the journal).

Every value encodes to a plain ``dict`` with a ``"kind"`` field naming its class and one key
per dataclass field; ``decode_*(encode_*(x)) == x`` for every value the core can hold. The
dicts hold only ``str``, ``int``, ``float``, ``bool``, ``None``, lists and dicts, so
``json.dumps(d, allow_nan=False)`` always succeeds and ``json.loads`` gives the dict back.

Numbers: an ``int`` stays an ``int`` and a finite ``float`` stays that exact ``float`` (JSON's
shortest repr round-trips every finite double). A non-finite float (``inf``, ``-inf``,
``nan``) is not valid JSON, so it is written as the string ``"inf"``, ``"-inf"`` or ``"nan"``
(``nan`` round-trips as ``nan``, which, being ``nan``, never compares equal). numpy scalars
are written as the Python number of the same value.

Decoding is strict: a missing field, a field of the wrong type, an unknown enum value or an
unknown ``kind`` raises ``ValueError`` naming the kind and the field. The kinds are the class
names (``"JobSubmitted"``, ``"Launch"``...): renaming a core class is a journal format change.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from scheduler.core.actions import Action, Launch, Preempt, Reject, Release
from scheduler.core.events import (
    Event,
    GpuHealthChanged,
    GpuTelemetry,
    JobCancelled,
    JobFinished,
    JobInterrupted,
    JobSubmitted,
    NodeCordoned,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
    Tick,
)
from scheduler.core.model import Job, Placement, Topology, WorkerPlacement, WorkerRequest
from scheduler.core.verdict import Code

JsonDict = dict[str, Any]

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


# ------------------------------------------------------------------ scalars out
def _num(x: float) -> float | int | str:
    """A float-typed field: ints stay ints, finite floats stay floats, the rest are strings."""
    if isinstance(x, bool):
        raise TypeError(f"expected a number, got bool {x!r}")
    if isinstance(x, int):
        return x
    if isinstance(x, numbers.Integral):  # numpy integer
        return int(x)
    f = float(x)
    if math.isfinite(f):
        return f
    if math.isnan(f):
        return "nan"
    return "inf" if f > 0 else "-inf"


def _opt_num(x: float | None) -> float | int | str | None:
    return None if x is None else _num(x)


def _int(x: int) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"expected an int, got {type(x).__name__} {x!r}")
    return int(x)


# ------------------------------------------------------------------- scalars in
class _Fields:
    """Typed, strict access to the fields of one encoded value (errors name kind and field)."""

    def __init__(self, d: Mapping[str, Any], kind: str) -> None:
        self._d = d
        self.kind = kind

    def _raw(self, key: str) -> Any:
        try:
            return self._d[key]
        except KeyError:
            raise ValueError(f"{self.kind}: missing field {key!r}") from None

    def _bad(self, key: str, want: str, got: Any) -> ValueError:
        return ValueError(f"{self.kind}.{key}: expected {want}, got {got!r}")

    def text(self, key: str) -> str:
        v = self._raw(key)
        if not isinstance(v, str):
            raise self._bad(key, "a string", v)
        return v

    def integer(self, key: str) -> int:
        return self._as_int(key, self._raw(key))

    def _as_int(self, key: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(key, "an int", v)
        return v

    def boolean(self, key: str) -> bool:
        v = self._raw(key)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false", v)
        return v

    def number(self, key: str) -> float:
        v = self._raw(key)
        if isinstance(v, bool):
            raise self._bad(key, "a number", v)
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, str) and v in _NON_FINITE:
            return _NON_FINITE[v]
        raise self._bad(key, 'a number, "inf", "-inf" or "nan"', v)

    def opt_number(self, key: str) -> float | None:
        return None if self._raw(key) is None else self.number(key)

    def items(self, key: str) -> list[Any]:
        v = self._raw(key)
        if not isinstance(v, list):
            raise self._bad(key, "a list", v)
        return v

    def integers(self, key: str) -> tuple[int, ...]:
        return tuple(self._as_int(key, v) for v in self.items(key))

    def texts(self, key: str) -> tuple[str, ...]:
        out = self.items(key)
        for v in out:
            if not isinstance(v, str):
                raise self._bad(key, "a list of strings", out)
        return tuple(out)

    def obj(self, key: str) -> Mapping[str, Any]:
        v = self._raw(key)
        if not isinstance(v, dict):
            raise self._bad(key, "an object", v)
        return v

    def topology(self, key: str) -> Topology:
        v = self.text(key)
        try:
            return Topology(v)
        except ValueError:
            allowed = ", ".join(t.value for t in Topology)
            raise self._bad(key, f"one of {allowed}", v) from None

    def code(self, key: str) -> Code:
        v = self.text(key)
        try:
            return Code(v)
        except ValueError:
            allowed = ", ".join(c.value for c in Code)
            raise self._bad(key, f"one of {allowed}", v) from None


def _fields(d: Mapping[str, Any], expected: str | None = None) -> _Fields:
    if not isinstance(d, Mapping):
        raise ValueError(f"expected an encoded object (a dict with 'kind'), got {d!r}")
    kind = d.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"encoded value has no string 'kind' field: {d!r}")
    if expected is not None and kind != expected:
        raise ValueError(f"expected kind {expected!r}, got {kind!r}")
    return _Fields(d, kind)


# ------------------------------------------------------------- model values
def _encode_worker_request(w: WorkerRequest) -> JsonDict:
    return {
        "kind": "WorkerRequest",
        "cpu_milli": _int(w.cpu_milli),
        "memory_mib": _int(w.memory_mib),
        "gpus": _int(w.gpus),
        "gpu_milli": _int(w.gpu_milli),
        "gpu_models": list(w.gpu_models),
        "min_gpu_memory_mib": _int(w.min_gpu_memory_mib),
    }


def _decode_worker_request(d: Mapping[str, Any]) -> WorkerRequest:
    f = _fields(d, "WorkerRequest")
    return WorkerRequest(
        cpu_milli=f.integer("cpu_milli"),
        memory_mib=f.integer("memory_mib"),
        gpus=f.integer("gpus"),
        gpu_milli=f.integer("gpu_milli"),
        gpu_models=f.texts("gpu_models"),
        min_gpu_memory_mib=f.integer("min_gpu_memory_mib"),
    )


def encode_job(job: Job) -> JsonDict:
    """A core ``Job`` (with its ``WorkerRequest`` and ``Topology``) as a JSON-ready dict."""
    return {
        "kind": "Job",
        "job_id": job.job_id,
        "worker": _encode_worker_request(job.worker),
        "num_workers": _int(job.num_workers),
        "team": job.team,
        "priority": _int(job.priority),
        "submitted_at_s": _num(job.submitted_at_s),
        "topology": job.topology.value,
        "estimated_duration_s": _opt_num(job.estimated_duration_s),
        "checkpoint_interval_s": _opt_num(job.checkpoint_interval_s),
    }


def decode_job(d: Mapping[str, Any]) -> Job:
    """Inverse of ``encode_job``; raises ``ValueError`` on a malformed dict."""
    f = _fields(d, "Job")
    return Job(
        job_id=f.text("job_id"),
        worker=_decode_worker_request(f.obj("worker")),
        num_workers=f.integer("num_workers"),
        team=f.text("team"),
        priority=f.integer("priority"),
        submitted_at_s=f.number("submitted_at_s"),
        topology=f.topology("topology"),
        estimated_duration_s=f.opt_number("estimated_duration_s"),
        checkpoint_interval_s=f.opt_number("checkpoint_interval_s"),
    )


def _encode_worker_placement(w: WorkerPlacement) -> JsonDict:
    return {
        "kind": "WorkerPlacement",
        "node": w.node,
        "node_index": _int(w.node_index),
        "gpu_indices": [_int(g) for g in w.gpu_indices],
        "gpu_milli": _int(w.gpu_milli),
        "cpu_milli": _int(w.cpu_milli),
        "memory_mib": _int(w.memory_mib),
    }


def _decode_worker_placement(d: Mapping[str, Any]) -> WorkerPlacement:
    f = _fields(d, "WorkerPlacement")
    return WorkerPlacement(
        node=f.text("node"),
        node_index=f.integer("node_index"),
        gpu_indices=f.integers("gpu_indices"),
        gpu_milli=f.integer("gpu_milli"),
        cpu_milli=f.integer("cpu_milli"),
        memory_mib=f.integer("memory_mib"),
    )


def encode_placement(p: Placement) -> JsonDict:
    """A gang ``Placement`` (workers in rank order) as a JSON-ready dict."""
    return {
        "kind": "Placement",
        "job_id": p.job_id,
        "workers": [_encode_worker_placement(w) for w in p.workers],
    }


def decode_placement(d: Mapping[str, Any]) -> Placement:
    """Inverse of ``encode_placement``; raises ``ValueError`` on a malformed dict."""
    f = _fields(d, "Placement")
    workers = []
    for w in f.items("workers"):
        if not isinstance(w, dict):
            raise ValueError(f"Placement.workers: expected objects, got {w!r}")
        workers.append(_decode_worker_placement(w))
    return Placement(job_id=f.text("job_id"), workers=tuple(workers))


# ------------------------------------------------------------------- events
def encode_event(ev: Event) -> JsonDict:
    """A core event as a JSON-ready dict whose ``kind`` is the event's class name."""
    kind = type(ev).__name__
    base: JsonDict = {"kind": kind, "now_s": _num(ev.now_s)}
    if isinstance(ev, JobSubmitted):
        return {**base, "job": encode_job(ev.job), "cause": ev.cause}
    if isinstance(ev, (JobFinished, JobCancelled, JobInterrupted)):
        return {**base, "job_id": ev.job_id, "cause": ev.cause}
    if isinstance(ev, (NodeCordoned, NodeUncordoned, NodeLost, NodeJoined)):
        return {**base, "node": ev.node, "cause": ev.cause}
    if isinstance(ev, GpuHealthChanged):
        return {
            **base,
            "node": ev.node,
            "gpu_index": _int(ev.gpu_index),
            "healthy": bool(ev.healthy),
            "cause": ev.cause,
        }
    if isinstance(ev, GpuTelemetry):
        return {
            **base,
            "node": ev.node,
            "gpu_index": _int(ev.gpu_index),
            "memory_used_mib": _int(ev.memory_used_mib),
            "memory_total_mib": _int(ev.memory_total_mib),
            "utilization_pct": _num(ev.utilization_pct),
            "temperature_c": _num(ev.temperature_c),
            "power_w": _num(ev.power_w),
            "ecc_uncorrected": _int(ev.ecc_uncorrected),
            "xids": [_int(x) for x in ev.xids],
            "cause": ev.cause,
        }
    if isinstance(ev, Tick):
        return {**base, "cause": ev.cause}
    raise ValueError(f"cannot encode unknown event kind {kind!r}: {ev!r}")


def _job_submitted(f: _Fields) -> Event:
    return JobSubmitted(f.number("now_s"), decode_job(f.obj("job")), f.text("cause"))


def _gpu_health_changed(f: _Fields) -> Event:
    return GpuHealthChanged(
        f.number("now_s"),
        f.text("node"),
        f.integer("gpu_index"),
        f.boolean("healthy"),
        f.text("cause"),
    )


def _gpu_telemetry(f: _Fields) -> Event:
    return GpuTelemetry(
        now_s=f.number("now_s"),
        node=f.text("node"),
        gpu_index=f.integer("gpu_index"),
        memory_used_mib=f.integer("memory_used_mib"),
        memory_total_mib=f.integer("memory_total_mib"),
        utilization_pct=f.number("utilization_pct"),
        temperature_c=f.number("temperature_c"),
        power_w=f.number("power_w"),
        ecc_uncorrected=f.integer("ecc_uncorrected"),
        xids=f.integers("xids"),
        cause=f.text("cause"),
    )


_EVENT_DECODERS: dict[str, Callable[[_Fields], Event]] = {
    "JobSubmitted": _job_submitted,
    "JobFinished": lambda f: JobFinished(f.number("now_s"), f.text("job_id"), f.text("cause")),
    "JobCancelled": lambda f: JobCancelled(f.number("now_s"), f.text("job_id"), f.text("cause")),
    "JobInterrupted": lambda f: JobInterrupted(
        f.number("now_s"), f.text("job_id"), f.text("cause")
    ),
    "NodeCordoned": lambda f: NodeCordoned(f.number("now_s"), f.text("node"), f.text("cause")),
    "NodeUncordoned": lambda f: NodeUncordoned(f.number("now_s"), f.text("node"), f.text("cause")),
    "NodeLost": lambda f: NodeLost(f.number("now_s"), f.text("node"), f.text("cause")),
    "NodeJoined": lambda f: NodeJoined(f.number("now_s"), f.text("node"), f.text("cause")),
    "GpuHealthChanged": _gpu_health_changed,
    "GpuTelemetry": _gpu_telemetry,
    "Tick": lambda f: Tick(f.number("now_s"), f.text("cause")),
}
EVENT_KINDS: tuple[str, ...] = tuple(_EVENT_DECODERS)


def decode_event(d: Mapping[str, Any]) -> Event:
    """Inverse of ``encode_event``; an unknown ``kind`` raises ``ValueError`` naming it."""
    f = _fields(d)
    decoder = _EVENT_DECODERS.get(f.kind)
    if decoder is None:
        raise ValueError(f"unknown event kind {f.kind!r} (known: {', '.join(EVENT_KINDS)})")
    return decoder(f)


# ------------------------------------------------------------------ actions
def encode_action(a: Action) -> JsonDict:
    """A core action as a JSON-ready dict whose ``kind`` is the action's class name."""
    kind = type(a).__name__
    if isinstance(a, Launch):
        return {
            "kind": kind,
            "job_id": a.job_id,
            "placement": encode_placement(a.placement),
            "now_s": _num(a.now_s),
            "cause": a.cause,
        }
    if isinstance(a, Reject):
        return {
            "kind": kind,
            "job_id": a.job_id,
            "code": a.code.value,
            "reason": a.reason,
            "now_s": _num(a.now_s),
            "cause": a.cause,
        }
    if isinstance(a, Release):
        return {"kind": kind, "job_id": a.job_id, "now_s": _num(a.now_s), "cause": a.cause}
    if isinstance(a, Preempt):
        return {
            "kind": kind,
            "job_id": a.job_id,
            "now_s": _num(a.now_s),
            "cause": a.cause,
            "resume_from_s": _num(a.resume_from_s),
            "lost_gpu_s": _num(a.lost_gpu_s),
        }
    raise ValueError(f"cannot encode unknown action kind {kind!r}: {a!r}")


def _launch(f: _Fields) -> Action:
    return Launch(
        f.text("job_id"), decode_placement(f.obj("placement")), f.number("now_s"), f.text("cause")
    )


def _reject(f: _Fields) -> Action:
    return Reject(
        f.text("job_id"), f.code("code"), f.text("reason"), f.number("now_s"), f.text("cause")
    )


def _preempt(f: _Fields) -> Action:
    return Preempt(
        f.text("job_id"),
        f.number("now_s"),
        f.text("cause"),
        f.number("resume_from_s"),
        f.number("lost_gpu_s"),
    )


_ACTION_DECODERS: dict[str, Callable[[_Fields], Action]] = {
    "Launch": _launch,
    "Reject": _reject,
    "Release": lambda f: Release(f.text("job_id"), f.number("now_s"), f.text("cause")),
    "Preempt": _preempt,
}
ACTION_KINDS: tuple[str, ...] = tuple(_ACTION_DECODERS)


def decode_action(d: Mapping[str, Any]) -> Action:
    """Inverse of ``encode_action``; an unknown ``kind`` raises ``ValueError`` naming it."""
    f = _fields(d)
    decoder = _ACTION_DECODERS.get(f.kind)
    if decoder is None:
        raise ValueError(f"unknown action kind {f.kind!r} (known: {', '.join(ACTION_KINDS)})")
    return decoder(f)


def event_job_id(ev: Event) -> str | None:
    """The job an event is about, or None (node and GPU events, ticks)."""
    if isinstance(ev, JobSubmitted):
        return ev.job.job_id
    if isinstance(ev, (JobFinished, JobCancelled, JobInterrupted)):
        return ev.job_id
    return None
