"""Hypothesis properties of the Ray Jobs API's metadata parser: gpuyard's fields written in
either string form Ray's client allows (or split between them) read back as given; an
unknown field is refused by name; other metadata is kept; a name made from any submission
id is a DNS label."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.runtime.ray_jobs_api import (
    ALLOWED_FIELDS,
    METADATA_KEY,
    STRING_FIELDS,
    name_for,
    parse_metadata,
    submission_from_request,
)
from scheduler.runtime.spec import DNS_LABEL_PATTERN
from scheduler.runtime.views import SpecRejected

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_typed: dict[str, st.SearchStrategy[Any]] = {
    "workers": st.integers(1, 64),
    "gpus_per_worker": st.integers(0, 8),
    "gpu_milli": st.integers(1, 1000),
    "priority": st.integers(-100, 100),
    "cpus_per_worker": st.floats(0.01, 256, allow_nan=False),
    "memory_gib_per_worker": st.floats(0.01, 2048, allow_nan=False),
    "gpu_models": st.lists(st.sampled_from(["H100", "A100", "L4", "H200"]), max_size=3),
    "min_gpu_memory_gib": st.floats(0, 192, allow_nan=False),
    "checkpoint_interval_s": st.one_of(st.none(), st.floats(1, 1e6, allow_nan=False)),
    "max_runtime_s": st.one_of(st.none(), st.integers(1, 10**7)),
    "estimated_duration_s": st.one_of(st.none(), st.floats(1, 1e7, allow_nan=False)),
}


def _value(name: str) -> st.SearchStrategy[Any]:
    if name in STRING_FIELDS:
        return st.text(max_size=20)  # any text: a string field's value is taken as written
    return st.one_of(_typed[name], _json)  # the parser does not check types: the spec does


_fields = st.sets(st.sampled_from(ALLOWED_FIELDS)).flatmap(
    lambda names: st.fixed_dictionaries({n: _value(n) for n in sorted(names)})
)
_other = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k != METADATA_KEY and not k.startswith("gpuyard.")),
    st.text(max_size=10),
    max_size=3,
)


def _flat(name: str, value: Any) -> str:
    """How a user writes one field as a ``gpuyard.<field>`` string value."""
    return value if name in STRING_FIELDS else json.dumps(value)


def _encode(fields: dict[str, Any], in_object: set[str]) -> dict[str, str]:
    meta = {f"gpuyard.{k}": _flat(k, v) for k, v in fields.items() if k not in in_object}
    inner = {k: v for k, v in fields.items() if k in in_object}
    if inner:
        meta[METADATA_KEY] = json.dumps(inner)
    return meta


@settings(max_examples=300, deadline=None)
@given(fields=_fields, other=_other, data=st.data())
def test_either_string_form_round_trips(
    fields: dict[str, Any], other: dict[str, str], data: st.DataObject
) -> None:
    for in_object in (set(), set(fields), data.draw(st.sets(st.sampled_from(ALLOWED_FIELDS)))):
        parsed = parse_metadata({**_encode(fields, in_object), **other})
        assert parsed.fields == fields
        assert parsed.other == other
        for name, loc in parsed.locs.items():
            named = ".".join(map(str, loc))
            assert named == f"body.metadata.gpuyard.{name}"


@settings(max_examples=300, deadline=None)
@given(
    fields=_fields,
    unknown=st.text(min_size=1, max_size=20).filter(lambda n: n not in ALLOWED_FIELDS),
    value=_json,
    as_object=st.booleans(),
)
def test_an_unknown_field_is_refused_by_name(
    fields: dict[str, Any], unknown: str, value: Any, as_object: bool
) -> None:
    meta = _encode(fields, set(fields) if as_object else set())
    if as_object:
        meta[METADATA_KEY] = json.dumps(
            {**json.loads(meta.get(METADATA_KEY, "{}")), unknown: value}
        )
    else:
        meta[f"gpuyard.{unknown}"] = json.dumps(value)
    with pytest.raises(SpecRejected) as caught:
        parse_metadata(meta)
    [error] = caught.value.errors
    assert error["msg"].startswith(f"metadata.gpuyard.{unknown} is ")
    assert "allowed: " + ", ".join(ALLOWED_FIELDS) in error["msg"]
    assert ".".join(map(str, error["loc"])) == f"body.metadata.gpuyard.{unknown}"


@settings(max_examples=200, deadline=None)
@given(
    workers=st.integers(1, 64),
    gpus=st.integers(0, 8),
    give=st.sampled_from(["both", "workers", "gpus", "total"]),
)
def test_the_gpu_total_and_the_gang_agree(workers: int, gpus: int, give: str) -> None:
    fields = {"both": {"workers": workers, "gpus_per_worker": gpus},
              "workers": {"workers": workers}, "gpus": {"gpus_per_worker": gpus},
              "total": {}}[give]  # fmt: skip
    body = {"entrypoint": "python x.py", "metadata": _encode(fields, set()),
            "entrypoint_num_gpus": workers * gpus}  # fmt: skip
    if give == "gpus" and gpus == 0:
        with pytest.raises(SpecRejected, match="entrypoint_num_gpus"):
            submission_from_request(body)
        return
    spec = submission_from_request(body).spec
    total = spec["workers"] * spec["gpus_per_worker"]
    assert total == workers * gpus
    if give != "total":
        assert {k: spec[k] for k in fields} == fields
    body["entrypoint_num_gpus"] = workers * gpus + 1
    if give == "both":
        with pytest.raises(SpecRejected, match=r"entrypoint_num_gpus is \d+ but metadata"):
            submission_from_request(body)


@given(st.one_of(st.none(), st.text(max_size=100)))
def test_a_name_from_any_submission_id_is_a_dns_label(submission_id: str | None) -> None:
    assert re.fullmatch(DNS_LABEL_PATTERN, name_for(submission_id))
