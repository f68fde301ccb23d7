"""Fuzzing the HTTP API: random and malformed requests at every route of ``make_app``.

Two generators, two worlds:

* **schemathesis** generates requests from the app's own ``/openapi.json`` (in process,
  over ASGI), valid ones and ones the schema forbids (negative mode), for every operation
  the document lists (gpuyard's ``/v1``, ``/metrics``, ``/healthz`` and Ray's Job
  Submission API under ``/api``), with a team's token, another team's, an admin's, a
  missing, unknown or malformed one, and path ids that name real jobs of either team;
* **hypothesis strategies of our own** send the submission routes what a schema never
  produces: JSON of the wrong type, ``NaN``/``Infinity``/``1e400``, integers of thousands
  of digits, deep nesting, lone surrogates and other unicode, keys given twice, truncated
  text, bytes that are not UTF-8, the wrong content type, another team's ``team``.

Each runs against the in-memory ``FakeBackend`` (the API layer alone) and against the real
``SchedulerService`` without Ray (fake launcher and cluster, a real journal, a fleet with
data-residency regions, priority classes and team grants), so the job spec's, residency's
and priority's own validation is fuzzed too.

Every response is checked: no 5xx (schemathesis ``not_a_server_error``); its status code,
content type and body are the documented ones (``status_code_conformance``,
``content_type_conformance``, ``response_schema_conformance``); schema-invalid requests are
refused (``negative_data_rejection``); every 4xx body is JSON data (no NaN) with a
``detail``, and every 422's errors name their field (``loc`` starting at ``body``,
``query``, ``path`` or ``header``); a missing or unknown token is 401; a team's token never
gets another team's job in any body, and asking for one by id is 403; the operator routes
refuse team tokens. After each operation's run, nothing accepted before it is lost or
changed: the seeded jobs (and every job the fuzz got accepted) are still listed, with the
same views (a job may have been cancelled only by a cancel the fuzz saw succeed).

``GPUYARD_FUZZ_EXAMPLES`` (default 10) is the number of examples per operation, mode and
world (an operation with nothing schemathesis can make invalid runs twice that valid; the
raw-body tests run 10 times that); the terminal summary prints the count of
cases run (``conftest.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from scheduler.runtime import control
from scheduler.runtime.api import make_app
from scheduler.runtime.api_server import ServiceBackend
from scheduler.runtime.auth import Principal, TokenAuth
from scheduler.runtime.config import ServiceConfig, TeamGrant, parse_fleet
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.views import JobState
from tests.unit.runtime.fake_backend import (
    ADMIN_TOKEN,
    NLP_TOKEN,
    VISION_TOKEN,
    FakeBackend,
    make_auth,
)
from tests.unit.runtime.test_service import Clock, FakeCluster, FakeLauncher

if TYPE_CHECKING:
    from tests.fuzz_tally import FuzzTally

EXAMPLES = int(os.environ.get("GPUYARD_FUZZ_EXAMPLES", "10"))
RAW_EXAMPLES = 10 * EXAMPLES
TOKENS = {"vision": VISION_TOKEN, "nlp": NLP_TOKEN, "admin": ADMIN_TOKEN}
TEAMS = ("vision", "nlp")
LOCATIONS = ("body", "query", "path", "header")
IDENTITY = ("job_id", "name", "team", "priority", "submitted_at_s", "spec", "data_region", "kind")
ENDED = {"SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"}
JOB_PARAMS = ("job_id", "job_ref")
LONG_ID = "j" * 201  # the API's limit is 200 characters
LONG_NODE = "n" * 254  # a Kubernetes node name's is 253
ADMIN_ONLY = ("/v1/nodes", "/v1/audit")
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]
SETTINGS = settings(
    derandomize=True,  # the same cases on every run (CI reproducible)
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
# what the Authorization header is: a team's, the other team's or an admin's token (most
# cases, so that they get past the token), none, an unknown token, another scheme, an empty
# bearer
AUTHS = st.sampled_from(
    [*["vision"] * 3, *["nlp"] * 2, *["admin"] * 3, "none", "unknown", "basic", "empty"]
)


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    doc = app.openapi()
    return [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]


OPERATIONS = _operations(make_app(FakeBackend(), make_auth()))


# --- the worlds -------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the fuzz got accepted: jobs (their view when accepted), the keys that name them,
    and the jobs a successful cancel or stop ended."""

    accepted: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    team_of: dict[str, str] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)


@dataclass
class World:
    name: str
    app: FastAPI
    auth: TokenAuth
    client: TestClient
    seeds: dict[str, dict[str, Any]]  # job id -> its view before the fuzz
    nodes: tuple[str, ...]
    exact_views: bool  # the fake: a job nobody cancelled keeps its exact view
    ledger: Ledger = field(default_factory=Ledger)

    def admin_get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params, headers=_bearer(ADMIN_TOKEN))
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def all_jobs(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        after: str | None = None
        while True:
            page = self.admin_get("/v1/jobs", limit=1000, **({"after": after} if after else {}))
            out.update((j["job_id"], j) for j in page["items"])
            after = page["next_after"]
            if after is None:
                return out

    def team_of(self, job_id: str) -> str | None:
        seed = self.seeds.get(job_id)
        return seed["team"] if seed is not None else self.ledger.team_of.get(job_id)

    def known_ids(self) -> list[str]:
        return sorted(self.seeds)

    def check_nothing_lost(self) -> None:
        """Every job accepted before or during the fuzz is still there, unchanged but for
        the cancels the fuzz saw succeed (and, in the service, scheduling: a pending job
        may start, a running one be preempted or moved off a drained node)."""
        now = self.all_jobs()
        for job_id, before in self.seeds.items():
            assert job_id in now, f"{self.name}: seeded job {job_id} is gone"
            view = now[job_id]
            cancelled = job_id in self.ledger.cancelled
            assert _identity(view) == _identity(before), _diff(before, view)
            if before["state"] in ENDED or (self.exact_views and not cancelled):
                assert view == before, f"{self.name}: {job_id} changed: {_diff(before, view)}"
            elif cancelled:
                assert view["state"] == "CANCELLED", (self.name, job_id, view["state"])
            else:
                assert view["state"] in ("PENDING", "RUNNING"), (self.name, job_id, view)
        for job_id, accepted in self.ledger.accepted.items():
            assert job_id in now, f"{self.name}: accepted job {job_id} is gone"
            view = now[job_id]
            assert view["team"] == self.ledger.team_of[job_id], (self.name, job_id)
            if accepted is not None:
                assert _identity(view) == _identity(accepted), _diff(accepted, view)
            if view["state"] == "CANCELLED" and job_id not in self.ledger.cancelled:
                assert accepted is not None and accepted["state"] == "CANCELLED", job_id


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (before.get(k), after.get(k)) for k in {*before, *after}
            if before.get(k) != after.get(k)}  # fmt: skip


def _identity(view: dict[str, Any]) -> dict[str, Any]:
    return {k: view.get(k) for k in IDENTITY}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _snapshot(client: TestClient, ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for job_id in ids:
        r = client.get(f"/v1/jobs/{job_id}", headers=_bearer(ADMIN_TOKEN))
        assert r.status_code == 200, r.text
        out[job_id] = r.json()
    return out


@pytest.fixture(scope="module")
def fake_world() -> Iterator[World]:
    backend = FakeBackend()
    for team, name, state in (
        ("vision", "v-wait", JobState.PENDING),
        ("nlp", "n-wait", JobState.PENDING),
        ("vision", "v-run", JobState.RUNNING),
        ("vision", "v-done", JobState.SUCCEEDED),
        ("nlp", "n-failed", JobState.FAILED),
    ):
        backend.add(team, name, state)
    app = make_app(backend, make_auth())
    with TestClient(app, raise_server_exceptions=False) as client:
        seeds = _snapshot(client, sorted(backend.jobs))
        yield World("fake", app, make_auth(), client, seeds, ("sim-0", "gpu-1"), True)


FLEET = parse_fleet(
    {
        "nodes": [
            {"name": "us-0", "gpus": 4, "cpus": 16, "region": "US"},
            {"name": "cn-0", "gpus": 2, "cpus": 8, "region": "CN"},
        ]
    },
    Path("fuzz-fleet.yaml"),
)
VISION = Principal("vision", "vision", False)
NLP = Principal("nlp", "nlp", False)


def _spec(name: str, gpus: int = 1, **extra: Any) -> dict[str, Any]:
    return {"name": name, "workers": 1, "gpus_per_worker": gpus,
            "entrypoint": "examples.driving_policy:train_loop", **extra}  # fmt: skip


@pytest.fixture(scope="module")
def service_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The real service core without Ray: priority classes, team grants, residency."""
    tmp = tmp_path_factory.mktemp("fuzz-service")
    classes = tmp / "classes.yaml"
    classes.write_text(
        "classes: {production: 1000, research: 100, spot: 0}\ndefault: research\n"
        "teams: {nlp: spot}\n"
    )
    cfg = ServiceConfig(
        state_dir=str(tmp / "state"),
        preemption=True,
        priority_classes=str(classes),
        teams=(TeamGrant("vision", priority_classes=("production",), max_priority=10),),
        residency=(("CN", ("CN",)), ("US", ("US",)), ("EU", ("US",))),
    )
    kv = control.MemoryKV()
    control.use(kv)
    launcher, cluster = FakeLauncher(), FakeCluster()
    cluster.alive = {n.name for n in FLEET}
    svc = SchedulerService(cfg, FLEET, launcher, cluster, simulated=True, clock=Clock())
    svc.step()
    seeded = [
        svc.submit({**_spec("v-run", 2, data_region="US"), "team": "vision"}, None, VISION),
        svc.submit({**_spec("n-run", 2, data_region="CN"), "team": "nlp"}, None, NLP),
        svc.submit({**_spec("n-done", 1, data_region="US"), "team": "nlp"}, None, NLP),
        svc.submit({**_spec("v-gone", 1, data_region="US"), "team": "vision"}, None, VISION),
        svc.submit({**_spec("v-wait", 4, data_region="US"), "team": "vision"}, "seed-key", VISION),
    ]
    (done,) = launcher.of(seeded[2].job_id)
    done.end("succeeded", loss=0.5)
    svc.cancel(seeded[3].job_id, VISION)
    svc.step()
    backend = ServiceBackend(svc)
    app = make_app(backend, make_auth())
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            seeds = _snapshot(client, [j.job_id for j in seeded])
            assert [v["state"] for v in seeds.values()] == [
                "RUNNING", "RUNNING", "SUCCEEDED", "CANCELLED", "PENDING"
            ]  # fmt: skip
            world = World("service", app, make_auth(), client, seeds, tuple(n.name for n in FLEET),
                          False)  # fmt: skip
            world.ledger.keys[("vision", "seed-key")] = seeded[4].job_id
            yield world
    finally:
        backend.close()
        svc.close()
        control.use(None)


@pytest.fixture(scope="module")
def worlds(fake_world: World, service_world: World) -> dict[str, World]:
    return {"fake": fake_world, "service": service_world}


@pytest.fixture(scope="module")
def schema() -> Any:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", make_app(FakeBackend(), make_auth()))
    # the tests choose the Authorization header themselves (AUTHS): valid, missing, unknown
    loaded.config.generation.update(with_security_parameters=False)
    return loaded


# --- what every response must satisfy ---------------------------------------------------------


def _who(world: World, headers: Any) -> Principal | None:
    """Whom the API takes the Authorization header for (the bearer scheme, any case)."""
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, token = str(value).partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return world.auth.authenticate(token)


def _auth_header(auth: str) -> dict[str, str]:
    if auth in TOKENS:
        return _bearer(TOKENS[auth])
    return {
        "none": {},
        "unknown": _bearer("tok-nobody"),
        "basic": {"Authorization": "Basic dG9rLXZpc2lvbg=="},  # base64 of tok-vision
        "empty": {"Authorization": "Bearer "},
    }[auth]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} in a response body")

    return json.loads(text, parse_constant=refuse)


def _jobs_in(body: Any) -> Iterator[tuple[str, str]]:
    """(job id, team) of every job shown anywhere in a response body: gpuyard's views and
    Ray's JobDetails (whose metadata names the team)."""
    if isinstance(body, dict):
        if isinstance(body.get("job_id"), str) and isinstance(body.get("team"), str):
            yield body["job_id"], body["team"]
        meta = body.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("gpuyard.team"), str):
            yield str(meta.get("gpuyard.job_id")), meta["gpuyard.team"]
        for value in body.values():
            yield from _jobs_in(value)
    elif isinstance(body, list):
        for value in body:
            yield from _jobs_in(value)


def _check(
    world: World,
    method: str,
    path: str,
    path_params: dict[str, Any],
    headers: Any,
    status: int,
    content_type: str,
    text: str,
    secured: bool,
    sent_body: Any = None,
) -> None:
    """gpuyard's own properties of one exchange (schemathesis checked the document's)."""
    who = _who(world, headers)
    assert status < 500, (status, text[:500])
    body: Any = None
    if content_type.startswith("application/json"):
        body = _strict_json(text)  # the rejection (and every answer) is data
    if status >= 400 and not content_type.startswith("text/plain"):
        assert isinstance(body, dict) and "detail" in body, (status, text[:500])
    if status == 422:
        errors = body["detail"]
        assert isinstance(errors, list) and errors, text[:500]
        for e in errors:
            loc = e.get("loc")
            assert isinstance(loc, list) and loc and loc[0] in LOCATIONS, (loc, text[:500])
            assert isinstance(e.get("msg"), str) and e["msg"], text[:500]
    if secured and who is None:
        assert status in (401, 422), (status, text[:300])
    too_long = {LONG_ID, LONG_NODE} & {str(v) for v in path_params.values()}
    if who is not None and too_long:
        assert status in ((422,) if who.admin else (403, 422)), (path, status, text[:300])
    if who is None or who.admin:
        if who is not None:
            _record(world, method, path, path_params, headers, status, body, who, sent_body)
        return
    assert who.team is not None
    if 200 <= status < 300:
        foreign = [(j, t) for j, t in _jobs_in(body) if t != who.team]
        assert not foreign, f"{who.team}'s token was shown {foreign}"
    if path.startswith(ADMIN_ONLY):
        assert status in (403, 422), (path, status)
    for name in JOB_PARAMS:
        owner = world.team_of(str(path_params.get(name, "")))
        if name in path_params and owner is not None and owner != who.team:
            assert status in (403, 422), (path, path_params, status, text[:300])
            if status == 403:
                assert owner not in body["detail"].replace(f"team {who.team!r}", ""), text
    _record(world, method, path, path_params, headers, status, body, who, sent_body)


def _record(
    world: World,
    method: str,
    path: str,
    path_params: dict[str, Any],
    headers: Any,
    status: int,
    body: Any,
    who: Principal,
    sent_body: Any,
) -> None:
    """Keep the ledger: jobs accepted (and the keys naming them), jobs cancelled."""
    ledger = world.ledger
    if method == "POST" and path == "/v1/jobs" and status == 201:
        job_id = body["job_id"]
        key = headers.get("Idempotency-Key")
        if key is not None:
            known = ledger.keys.setdefault((body["team"], str(key)), job_id)
            assert known == job_id, f"Idempotency-Key {key!r} gave {job_id}, before {known}"
        if who.team is not None:
            assert body["team"] == who.team, body
        if job_id not in world.seeds and job_id not in ledger.accepted:
            ledger.accepted[job_id] = body
            ledger.team_of[job_id] = body["team"]
    elif method == "POST" and path == "/api/jobs/" and status == 200:
        job_id = body["job_id"]
        team = who.team or world.admin_get(f"/v1/jobs/{job_id}")["team"]
        sid = sent_body.get("submission_id") if isinstance(sent_body, dict) else None
        sid = sid or (sent_body.get("job_id") if isinstance(sent_body, dict) else None)
        if isinstance(sid, str) and sid:
            known = ledger.keys.setdefault((team, sid), job_id)
            assert known == job_id, f"submission_id {sid!r} gave {job_id}, before {known}"
        if job_id not in world.seeds and job_id not in ledger.accepted:
            ledger.accepted[job_id] = None
            ledger.team_of[job_id] = team
    elif method == "POST" and path == "/v1/jobs/{job_id}/cancel" and status == 200:
        ledger.cancelled.add(body["job_id"])
    elif method == "POST" and path == "/api/jobs/{job_ref}/stop" and body == {"stopped": True}:
        ref = str(path_params["job_ref"])
        job_id = ref if world.team_of(ref) is not None else None
        if job_id is None and who.team is not None:
            job_id = ledger.keys.get((who.team, ref))
        assert job_id is not None, f"a stop of {ref!r} succeeded, but names no known job"
        ledger.cancelled.add(job_id)


# --- schemathesis over every operation ------------------------------------------------------

_CONSTRAINTS = ("minLength", "maxLength", "pattern", "enum", "minimum", "maximum", "anyOf",
                "$ref", "format", "exclusiveMinimum", "exclusiveMaximum")  # fmt: skip


def _can_be_invalid(raw: dict[str, Any]) -> bool:
    """Whether the operation takes a body or a query or header parameter the document
    constrains: what schemathesis' negative mode can break. Path parameters are left to the
    tests' own values (``LONG_ID``, ``LONG_NODE``: schemathesis takes seconds to make a
    253-character path segment); the token is the tests' own choice too (``AUTHS``)."""
    if raw.get("requestBody"):
        return True
    for p in raw.get("parameters", []):
        schema = p.get("schema", {})
        if p.get("in") == "path":
            continue
        if p.get("required") or schema.get("type", "string") != "string":
            return True
        if any(k in schema for k in _CONSTRAINTS):
            return True
    return False


def _exchange(
    world: World,
    case: Any,
    auth: str,
    known: str | None,
    node: str | None,
    tally: FuzzTally,
) -> None:
    op = case.operation
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if not negative:
        for name in JOB_PARAMS:
            if name in case.path_parameters and known is not None:
                case.path_parameters[name] = known
        if "name" in case.path_parameters and node is not None:
            case.path_parameters["name"] = node
    secured = bool(op.definition.raw.get("security"))
    case.headers.pop("Authorization", None)
    case.headers.update(_auth_header(auth))
    response = case.call(app=world.app)
    tally.add(world.name, op.label, response.status_code)
    try:
        case.validate_response(response, checks=CHECKS)
        body = case.body if isinstance(case.body, dict) else None
        _check(world, op.method.upper(), op.path, dict(case.path_parameters), case.headers,
               response.status_code, (response.headers.get("content-type") or [""])[0], response.text,
               secured, body)  # fmt: skip
    except BaseException:
        tally.failures += 1
        raise


@pytest.mark.parametrize("world_name", ["fake", "service"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_as_documented(
    worlds: dict[str, World],
    schema: Any,
    api_fuzz_tally: FuzzTally,
    world_name: str,
    method: str,
    path: str,
) -> None:
    world = worlds[world_name]
    op = schema[path][method]
    # mostly real jobs and nodes (of either team), sometimes none, too long, or what
    # schemathesis made (None)
    known = world.known_ids()
    ids = st.sampled_from([*known, *known, "job-999999", LONG_ID, None])
    nodes = st.sampled_from([*world.nodes, *world.nodes, "no-such-node", LONG_NODE, None])
    modes = [GenerationMode.POSITIVE]
    if _can_be_invalid(op.definition.raw):
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @settings(SETTINGS, max_examples=2 * EXAMPLES // len(modes))
        @given(case=op.as_strategy(generation_mode=mode), auth=AUTHS, known=ids, node=nodes)
        def fuzz(case: Any, auth: str, known: str | None, node: str | None) -> None:
            _exchange(world, case, auth, known, node, api_fuzz_tally)

        fuzz()
    world.check_nothing_lost()


# --- malformed bodies of our own --------------------------------------------------------------

HOSTILE = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "-NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1e400",
            "1e-400",
            "-0",
            "0.0",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            '""',
            '"\\u0000"',
            '"\\ud800"',
            '"x\\udfff"',
            '"\\uffff"',
            '"\\ud83d\\ude00"',
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "1.7976931348623157e308",
            "5e-324",
            '"1"',
            '"2"',
            "[1]",
            '{"$ref": "#"}',
            "01",
            "1.",
            ".5",
            "+1",
            "0x10",
            "'x'",
        ]
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=19, max_value=6000).map(lambda d: "9" * d),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: json.dumps(f)),
    st.text(max_size=40).map(json.dumps),  # escapes lone surrogates: \ud800
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200).map(
        lambda s: json.dumps(s, ensure_ascii=False)
    ),
    st.integers(min_value=1, max_value=3000).map(lambda d: "[" * d + "]" * d),
    st.integers(min_value=1, max_value=300).map(lambda d: '{"a":' * d + "1" + "}" * d),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    ).map(lambda v: json.dumps(v, allow_nan=True)),  # allow_nan: inf is written Infinity
)
SPEC_FIELDS = ("name", "team", "priority", "priority_class", "workers", "gpus_per_worker",
               "gpu_milli", "cpus_per_worker", "memory_gib_per_worker", "gpu_models",
               "min_gpu_memory_gib", "topology", "data_region", "entrypoint", "command", "config",
               "runtime_env", "checkpoint_interval_s", "max_runtime_s", "estimated_duration_s",
               "metadata", "unknown_field", "")  # fmt: skip
GOOD_SPECS = [
    {"name": "fz-a", "workers": 1, "entrypoint": "examples.driving_policy:train_loop"},
    {"name": "fz-b", "workers": 2, "gpus_per_worker": 1, "data_region": "US",
     "entrypoint": "examples.driving_policy:train_loop", "priority_class": "production"},
    {"name": "fz-c", "workers": 1, "gpu_milli": 500, "command": "python train.py --lr 3e-4",
     "data_region": "CN", "team": "nlp"},
    {"name": "fz-d", "workers": 1, "priority": 5, "entrypoint": "examples.x:loop",
     "team": "vision", "max_runtime_s": 3600.5},
]  # fmt: skip
RAY_SUBMISSIONS = [
    {"entrypoint": "python train.py", "entrypoint_num_gpus": 1},
    {"entrypoint": "python train.py", "metadata": {"gpuyard.workers": "2",
     "gpuyard.gpus_per_worker": "1", "gpuyard.data_region": "US"}},
    {"entrypoint": "python train.py", "submission_id": "fz-sub",
     "metadata": {"gpuyard": "{\"workers\": 1, \"team\": \"nlp\"}"}},
]  # fmt: skip


def _object_text(items: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in items) + "}"


@st.composite
def malformed_bodies(draw: st.DrawFn, ray: bool) -> bytes:
    """A submission body: a good one with one field made hostile, a key given twice, a
    hostile top level, truncated text, or bytes; written as raw JSON text so that what
    ``json.dumps`` would never write (NaN, 1e400, duplicate keys) gets through."""
    base = draw(st.sampled_from(RAY_SUBMISSIONS if ray else GOOD_SPECS))
    items = [(k, json.dumps(v)) for k, v in base.items()]
    kind = draw(st.sampled_from(["field", "field", "field", "twice", "top", "cut", "bytes",
                                 "metadata", "good"]))  # fmt: skip
    if kind == "field":
        name = draw(st.sampled_from(SPEC_FIELDS))
        items = [(k, v) for k, v in items if k != name] + [(name, draw(HOSTILE))]
        text = _object_text(draw(st.permutations(items)))
    elif kind == "twice":
        k, _ = draw(st.sampled_from(items))
        text = _object_text([*items, (k, draw(HOSTILE))])
    elif kind == "top":
        text = draw(HOSTILE)
    elif kind == "cut":
        whole = _object_text(items)
        text = whole[: draw(st.integers(min_value=0, max_value=len(whole) - 1))]
    elif kind == "metadata":
        fields = ["workers", "gpus_per_worker", "cpus_per_worker", "max_runtime_s", "name",
                  "team", "gpu_models", "priority", "nope"]  # fmt: skip
        value = draw(HOSTILE)
        if ray:
            key = draw(st.sampled_from(fields))
            meta = {f"gpuyard.{key}": value} if draw(st.booleans()) else {"gpuyard": value}
            text = _object_text([(k, v) for k, v in items if k != "metadata"]
                                + [("metadata", json.dumps(meta))])  # fmt: skip
        else:
            text = _object_text([*items, ("metadata", "{" + f'"k":{value}' + "}")])
    elif kind == "bytes":
        return draw(st.binary(max_size=64))
    else:
        text = _object_text(items)
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("world_name", ["fake", "service"])
@pytest.mark.parametrize("path", ["/v1/jobs", "/api/jobs/"])
def test_malformed_submissions_are_refused_naming_the_field(
    worlds: dict[str, World], schema: Any, api_fuzz_tally: FuzzTally, world_name: str, path: str
) -> None:
    world = worlds[world_name]
    op = schema[path]["POST"]
    content_types = st.sampled_from(
        ["application/json"] * 6 + [None, "text/plain", "application/json; charset=latin-1"]
    )

    @settings(SETTINGS, max_examples=RAW_EXAMPLES)
    @given(
        body=malformed_bodies(ray=path.startswith("/api")),
        auth=AUTHS,
        content_type=content_types,
        key=st.sampled_from([None, None, None, "fz-key", "seed-key"]),
    )
    def fuzz(body: bytes, auth: str, content_type: str | None, key: str | None) -> None:
        headers = _auth_header(auth)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if key is not None and not path.startswith("/api"):
            headers["Idempotency-Key"] = key
        r = world.client.post(path, content=body, headers=headers)
        api_fuzz_tally.add(world.name, f"{op.label} (raw)", r.status_code)
        try:
            op.Case(headers=headers).validate_response(r, checks=CHECKS[:4])
            try:
                sent = json.loads(body)
            except (ValueError, RecursionError):
                sent = None
            ctype = r.headers.get("content-type", "")
            _check(world, "POST", path, {}, headers, r.status_code, ctype, r.text, True, sent)
            if r.status_code == 422 and body.strip().startswith(b"{") and b"NaN" in body:
                where = [e["loc"] for e in r.json()["detail"]]
                assert any(loc[0] == "body" for loc in where), where
        except BaseException as e:
            api_fuzz_tally.failures += 1
            e.add_note(f"request: POST {path} {headers} {body[:600]!r} -> {r.status_code}")
            raise

    fuzz()
    world.check_nothing_lost()


def test_the_hostile_literals_are_422s_naming_the_field(fake_world: World) -> None:
    """The cases the fuzz found, pinned: what json.loads lets through is refused with the
    field's path (before: NaN, 1e400 and lone surrogates were 500s, deep nesting and huge
    integers a 400 naming nothing, and a key given twice kept the last silently)."""
    good = '"name": "a", "workers": 1, "entrypoint": "examples.x:y"'
    json_vision = {**_bearer(VISION_TOKEN), "Content-Type": "application/json"}
    cases = {
        '{%s, "cpus_per_worker": NaN}': (["body", "cpus_per_worker"], "NaN is not JSON"),
        '{%s, "max_runtime_s": Infinity}': (["body", "max_runtime_s"], "Infinity is not JSON"),
        '{%s, "gpu_milli": 1e400}': (["body", "gpu_milli"], "the number 1e400 is out of range"),
        '{%s, "name": "b"}': (["body", "name"], "key 'name' is given more than once"),
        '{%s, "config": {"a": "\\ud800"}}': (["body", "config", "a"], "not valid Unicode"),
        '{%s, "config": ' + "[" * 70 + "]" * 70 + "}": (
            ["body", "config", *[0] * 63],
            "nested deeper than 64 levels",
        ),
        '{%s, "priority": 1' + "0" * 5000 + "}": (["body", "priority"], "an integer of 5001"),
    }
    for template, (loc, msg) in cases.items():
        body = template.replace("%s", good).encode()
        for path in ("/v1/jobs", "/api/jobs/"):
            r = fake_world.client.post(path, content=body, headers=json_vision)
            assert r.status_code == 422, (path, template[:60], r.status_code, r.text[:200])
            (error,) = r.json()["detail"]
            assert error["loc"] == loc and error["msg"].startswith(msg), (path, error)
    deep = b"[" * 5000 + b"]" * 5000
    r = fake_world.client.post("/v1/jobs", content=deep, headers=json_vision)
    assert (r.status_code, r.json()["detail"][0]["loc"]) == (422, ["body"])
    r = fake_world.client.post(
        "/v1/jobs",
        content=b"\xff{",
        headers={**_bearer(VISION_TOKEN), "Content-Type": "text/plain"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["input"] == "b'\\xff{'"
    ray = {"entrypoint": "python x.py", "entrypoint_num_gpus": 4,
           "metadata": {"gpuyard.gpus_per_worker": "9" * 400}}  # fmt: skip
    r = fake_world.client.post("/api/jobs/", json=ray, headers=json_vision)  # was a 500
    assert (r.status_code, r.json()["detail"][0]["loc"]) == (422, ["body", "entrypoint_num_gpus"])
    r = fake_world.client.get("/v1/audit", params={"since": "nan"}, headers=_bearer(ADMIN_TOKEN))
    assert (r.status_code, r.json()["detail"][0]["loc"]) == (422, ["query", "since"])


def test_what_the_fuzz_found_in_the_service_is_pinned(tmp_path: Path) -> None:
    """A resource near a float's maximum, or 10**400 workers, was a 503 "internal error ...
    retry later" (the conversion to milli-cores and MiB, or to a float, overflowed); an estimated start past the year 9999
    (from a huge estimated_duration_s) made every Ray job listing of the team a 500."""
    control.use(control.MemoryKV())
    cfg = ServiceConfig(state_dir=str(tmp_path), preemption=False)
    cluster = FakeCluster()
    cluster.alive = {n.name for n in FLEET}
    svc = SchedulerService(cfg, FLEET, FakeLauncher(), cluster, simulated=True, clock=Clock())
    svc.step()
    backend = ServiceBackend(svc)
    vision = {**_bearer(VISION_TOKEN), "Content-Type": "application/json"}
    try:
        with TestClient(make_app(backend, make_auth())) as client:
            huge = {"cpus_per_worker": 1.79e308, "memory_gib_per_worker": 1.79e308,
                    "min_gpu_memory_gib": 1.79e308, "workers": 10**400}  # fmt: skip
            for name, value in huge.items():
                r = client.post("/v1/jobs", json={**_spec("fz-big"), name: value}, headers=vision)
                assert r.status_code == 422, (name, r.text)
                assert r.json()["detail"][0]["loc"] == ["body", name]
            long = {"estimated_duration_s": 1.79e308, "data_region": "US"}
            states = []
            for i in range(2):  # the US node has 4 GPUs: the first runs, the second waits
                r = client.post("/v1/jobs", json={**_spec(f"fz-{i}", 4), **long}, headers=vision)
                assert r.status_code == 201, r.text
                states.append((r.json()["state"], r.json()["estimated_start_s"]))
            assert states == [("RUNNING", None), ("PENDING", 1.79e308)]
            r = client.get("/api/jobs/job-000002", headers=vision)
            assert r.status_code == 200
            assert r.json()["message"].endswith("estimated start after the year 9999)")
            assert client.get("/api/jobs/", headers=vision).status_code == 200
    finally:
        backend.close()
        svc.close()
        control.use(None)
