"""The HTTP API over an in-memory backend: auth, team scoping, status codes, error bodies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from scheduler.core.outcomes import PreemptReason
from scheduler.runtime.api import make_app
from scheduler.runtime.views import JobState
from tests.unit.runtime.fake_backend import (
    ADMIN_TOKEN,
    NLP_TOKEN,
    VISION_TOKEN,
    FakeBackend,
    make_auth,
)

SPEC = {"name": "resnet", "workers": 2, "entrypoint": "examples.train:loop"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


VISION, NLP, ADMIN = bearer(VISION_TOKEN), bearer(NLP_TOKEN), bearer(ADMIN_TOKEN)


@pytest.fixture
def backend() -> FakeBackend:
    b = FakeBackend()
    b.add("vision", "v1")
    b.add("nlp", "n1")
    b.add("vision", "v2", JobState.SUCCEEDED)
    return b


@pytest.fixture
def api(backend: FakeBackend) -> TestClient:
    return TestClient(make_app(backend, make_auth()))


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": "Basic dXNlcg=="}])
def test_401_without_a_known_token(api: TestClient, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/nodes"),
                         ("GET", "/v1/queue"), ("GET", "/v1/jobs/job-0001"),
                         ("POST", "/v1/jobs/job-0001/cancel")):  # fmt: skip
        r = api.request(method, path, headers=headers, json=SPEC)
        assert r.status_code == 401, (method, path)
        assert r.headers["WWW-Authenticate"] == "Bearer"
        why = "unknown token" if headers.get("Authorization") == "Bearer wrong" else "no bearer"
        assert r.json()["detail"].startswith(why)


def test_submit_fills_the_tokens_team_and_returns_201(
    api: TestClient, backend: FakeBackend
) -> None:
    r = api.post("/v1/jobs", json=SPEC, headers=VISION)
    assert r.status_code == 201
    body = r.json()
    assert (body["job_id"], body["team"], body["state"]) == ("job-0004", "vision", "PENDING")
    assert backend.calls[-1] == ("submit", ({**SPEC, "team": "vision"}, None))
    r = api.post("/v1/jobs", json={**SPEC, "team": "vision"}, headers=VISION)
    assert r.status_code == 201


def test_403_on_another_teams_spec(api: TestClient, backend: FakeBackend) -> None:
    r = api.post("/v1/jobs", json={**SPEC, "team": "nlp"}, headers=VISION)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "the token of 'vision' submits for team 'vision' only, not 'nlp'; "
        "leave 'team' out or set it to 'vision'"
    )
    assert not [c for c in backend.calls if c[0] == "submit"]


def test_admin_must_name_the_team(api: TestClient) -> None:
    r = api.post("/v1/jobs", json=SPEC, headers=ADMIN)
    assert r.status_code == 422
    assert r.json() == {"detail": [{"loc": ["body", "team"], "input": None,
                                    "msg": "an admin token must name the team the job runs for"}]}  # fmt: skip
    r = api.post("/v1/jobs", json={**SPEC, "team": "nlp"}, headers=ADMIN)
    assert (r.status_code, r.json()["team"]) == (201, "nlp")


def test_422_names_the_field(api: TestClient) -> None:
    r = api.post("/v1/jobs", json={**SPEC, "workers": 0}, headers=VISION)
    assert r.status_code == 422
    assert r.json() == {
        "detail": [{"loc": ["body", "workers"], "msg": "must be an integer >= 1", "input": 0}]
    }
    r = api.post("/v1/jobs", json={**SPEC, "team": 7}, headers=VISION)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "team"]


def test_422_from_fastapis_own_validation(api: TestClient) -> None:
    r = api.post("/v1/jobs", json=[1, 2], headers=VISION)  # not an object
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert (err["loc"], err["input"]) == (["body"], [1, 2]) and err["msg"]
    r = api.get("/v1/jobs", params={"state": "SLEEPING"}, headers=VISION)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert (err["loc"], err["input"]) == (["query", "state"], "SLEEPING")
    assert "PENDING" in err["msg"]
    r = api.get("/v1/jobs/job-0001/logs", params={"tail": 0}, headers=VISION)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "tail"]


def test_idempotency_key_passes_through(api: TestClient, backend: FakeBackend) -> None:
    h = {**VISION, "Idempotency-Key": "abc-1"}
    first = api.post("/v1/jobs", json=SPEC, headers=h).json()
    again = api.post("/v1/jobs", json=SPEC, headers=h).json()
    assert first["job_id"] == again["job_id"] == "job-0004"
    assert [c[1][1] for c in backend.calls if c[0] == "submit"] == ["abc-1", "abc-1"]


def test_lists_and_queue_are_team_filtered_admin_sees_all(api: TestClient) -> None:
    def ids(path: str, headers: dict[str, str], **params: str) -> list[str]:
        r = api.get(path, headers=headers, params=params)
        assert r.status_code == 200
        body = r.json()
        rows = body["items"] if path == "/v1/jobs" else body
        return [row["job_id"] for row in rows]

    assert ids("/v1/jobs", VISION) == ["job-0001", "job-0003"]
    assert ids("/v1/jobs", VISION, state="SUCCEEDED") == ["job-0003"]
    assert ids("/v1/jobs", NLP) == ["job-0002"]
    assert ids("/v1/jobs", ADMIN) == ["job-0001", "job-0002", "job-0003"]
    assert ids("/v1/queue", VISION) == ["job-0001"]
    assert ids("/v1/queue", NLP) == ["job-0002"]
    assert ids("/v1/queue", ADMIN) == ["job-0001", "job-0002"]
    page = api.get("/v1/jobs", headers=ADMIN, params={"limit": 2}).json()
    assert [j["job_id"] for j in page["items"]] == ["job-0001", "job-0002"]
    assert page["next_after"] == "job-0002"
    rest = api.get("/v1/jobs", headers=ADMIN, params={"limit": 2, "after": "job-0002"}).json()
    assert ([j["job_id"] for j in rest["items"]], rest["next_after"]) == (["job-0003"], None)
    nlp_q = api.get("/v1/queue", headers=NLP).json()
    assert nlp_q[0]["position"] == 2 and nlp_q[0]["code"] == "WAIT_CAPACITY"


def test_one_job_owner_or_admin_else_403_unknown_404(api: TestClient) -> None:
    assert api.get("/v1/jobs/job-0001", headers=VISION).json()["name"] == "v1"
    assert api.get("/v1/jobs/job-0002", headers=ADMIN).json()["name"] == "n1"
    r = api.get("/v1/jobs/job-0002", headers=VISION)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "job 'job-0002' belongs to another team; the token of 'vision' acts for team 'vision' only"
    )
    r = api.get("/v1/jobs/job-9999", headers=ADMIN)
    assert (r.status_code, r.json()) == (404, {"detail": "no job 'job-9999'"})


def test_cancel(api: TestClient, backend: FakeBackend) -> None:
    r = api.post("/v1/jobs/job-0002/cancel", headers=VISION)
    assert r.status_code == 403 and "another team" in r.json()["detail"]
    assert backend.jobs["job-0002"].state is JobState.PENDING
    r = api.post("/v1/jobs/job-0001/cancel", headers=VISION)
    assert (r.status_code, r.json()["state"]) == (200, "CANCELLED")
    r = api.post("/v1/jobs/job-0001/cancel", headers=VISION)
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "job 'job-0001' has already ended (CANCELLED: cancelled by user); nothing to cancel"
    )
    assert api.post("/v1/jobs/job-0002/cancel", headers=ADMIN).status_code == 200
    assert api.post("/v1/jobs/nope/cancel", headers=ADMIN).status_code == 404


def test_log_chunks_and_job_pages_refuse_bad_bounds_and_other_teams(api: TestClient) -> None:
    whole = "".join(f"line {i}\n" for i in range(1, 11))  # the fake backend's log
    r = api.get("/v1/jobs/job-0001/logs/chunk", params={"offset": 7}, headers=VISION)
    assert r.json() == {"job_id": "job-0001", "offset": 7, "next_offset": len(whole),
                        "text": whole[7:], "ended": False}  # fmt: skip
    for params in ({"offset": -1}, {"limit_bytes": 0}, {"limit_bytes": 4 * 1024 * 1024 + 1}):
        bad = api.get("/v1/jobs/job-0001/logs/chunk", params=params, headers=VISION)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][0] == "query"
    assert api.get("/v1/jobs/job-0002/logs/chunk", headers=VISION).status_code == 403
    assert api.get("/v1/jobs/job-0001/logs/chunk").status_code == 401
    for params in ({"limit": 0}, {"limit": 1001}, {"after": ""}):
        bad = api.get("/v1/jobs", params=params, headers=VISION)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][0] == "query"


def test_logs_tail(api: TestClient) -> None:
    r = api.get("/v1/jobs/job-0001/logs", params={"tail": 2}, headers=VISION)
    assert r.json() == {"job_id": "job-0001", "tail_lines": 2, "text": "line 9\nline 10\n"}
    assert api.get("/v1/jobs/job-0002/logs", headers=VISION).status_code == 403


def test_nodes_are_for_admins_only(api: TestClient, backend: FakeBackend) -> None:
    r = api.get("/v1/nodes", headers=NLP)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "/v1/nodes is for operators: the token of 'nlp' acts for team 'nlp' only; "
        "use an admin token"
    )
    r = api.get("/v1/nodes", headers=ADMIN)
    assert r.status_code == 200
    assert [(n["name"], n["simulated"]) for n in r.json()] == [("sim-0", True), ("gpu-1", False)]
    # the refusal is in the audit log, with who asked
    assert [(a.principal, a.team, a.action, a.outcome) for a in backend.audit_log] == [
        ("nlp", "nlp", "GET /v1/nodes", "403")
    ]


@pytest.mark.parametrize("op", ["cordon", "drain", "uncordon"])
def test_node_operations_need_an_admin(api: TestClient, backend: FakeBackend, op: str) -> None:
    r = api.post(f"/v1/nodes/gpu-1/{op}", headers=VISION)
    assert r.status_code == 403
    assert backend.calls == []  # never reached the backend
    r = api.post(f"/v1/nodes/gpu-1/{op}", headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["off_reasons"] == ([] if op == "uncordon" else [op])
    assert backend.calls == [("node_op", ("ops", "gpu-1", op))]
    r = api.post(f"/v1/nodes/nope/{op}", headers=ADMIN)
    assert r.status_code == 404 and r.json() == {"detail": "no node 'nope' in the fleet"}


def test_audit_is_for_admins_and_filters(api: TestClient, backend: FakeBackend) -> None:
    api.get("/v1/jobs", headers=bearer("wrong"))  # 401, audited as anonymous
    api.get("/v1/jobs/job-0002", headers=VISION)  # nlp's job: 403
    r = api.get("/v1/audit", headers=VISION)
    assert r.status_code == 403
    rows = api.get("/v1/audit", headers=ADMIN).json()
    assert [(a["principal"], a["action"], a["target"], a["outcome"]) for a in rows] == [
        ("anonymous", "GET /v1/jobs", "", "401"),
        ("vision", "GET /v1/jobs/job-0002", "job-0002", "403"),
        ("vision", "GET /v1/audit", "", "403"),
    ]
    rows = api.get("/v1/audit", params={"team": "vision", "limit": 1}, headers=ADMIN).json()
    assert [(a["action"], a["outcome"]) for a in rows] == [("GET /v1/audit", "403")]
    assert api.get("/v1/audit", params={"limit": 0}, headers=ADMIN).status_code == 422


def test_priority_above_the_grant_is_403_naming_the_field(api: TestClient) -> None:
    r = api.post("/v1/jobs", json={**SPEC, "priority": 1099511627776}, headers=VISION)
    assert r.status_code == 403
    assert r.json() == {"detail": "priority: above the team's grant"}
    r = api.post("/v1/jobs", json={**SPEC, "team": "vision", "priority": 5}, headers=ADMIN)
    assert r.status_code == 201


def test_openapi_lists_paths_and_bearer_scheme(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    assert {p for p in doc["paths"] if not p.startswith("/api/")} == {
        "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/logs",
        "/v1/jobs/{job_id}/logs/chunk", "/v1/queue", "/v1/nodes", "/v1/nodes/{name}/cordon", "/v1/nodes/{name}/drain",
        "/v1/nodes/{name}/uncordon", "/v1/audit", "/metrics", "/healthz", "/v1/whoami",
    }  # fmt: skip
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "a team's or an admin's token from the service's token file",
    }
    assert doc["paths"]["/v1/jobs"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert set(doc["paths"]["/v1/jobs"]["post"]["responses"]) == {
        "201", "401", "403", "409", "422", "503"
    }  # fmt: skip


def test_metrics_and_healthz_need_no_token(api: TestClient, backend: FakeBackend) -> None:
    backend.metrics.observe_cycle(0.002)
    backend.metrics.observe_admission("vision", 42.0)
    backend.metrics.preempted("nlp", PreemptReason.PRIORITY)
    backend.metrics.finished("vision", "SUCCEEDED")
    backend.metrics.set_gpus(allocated=3.5, free=4.5, unhealthy=1)
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for line in (
        'gpuyard_pending_jobs{reason="WAIT_CAPACITY",team="vision"} 1.0',
        'gpuyard_pending_jobs{reason="WAIT_CAPACITY",team="nlp"} 1.0',
        'gpuyard_gpus{state="allocated"} 3.5',
        'gpuyard_gpus{state="unhealthy"} 1.0',
        "gpuyard_cycle_seconds_count 1.0",
        'gpuyard_admission_latency_seconds_bucket{le="60.0",team="vision"} 1.0',
        'gpuyard_preemptions_total{reason="priority",team="nlp"} 1.0',
        'gpuyard_jobs_total{state="SUCCEEDED",team="vision"} 1.0',
    ):
        assert line in text.splitlines(), line
    assert api.get("/healthz").json() == {"status": "ok"}


def test_metrics_behind_a_token_when_asked(backend: FakeBackend) -> None:
    api = TestClient(make_app(backend, make_auth(), metrics_require_token=True))
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=NLP).status_code == 200


def test_finished_refuses_a_state_that_is_not_terminal() -> None:
    from scheduler.runtime.metrics import ServiceMetrics

    with pytest.raises(ValueError, match="state 'RUNNING' is not allowed"):
        ServiceMetrics().finished("vision", "RUNNING")


def test_set_pending_takes_counts_or_rows() -> None:
    from scheduler.runtime.metrics import ServiceMetrics

    m = ServiceMetrics()
    m.set_pending({("vision", "WAIT_QUOTA"): 3})
    assert 'gpuyard_pending_jobs{reason="WAIT_QUOTA",team="vision"} 3.0' in m.render()
    m.set_pending([])
    assert "gpuyard_pending_jobs{" not in m.render()


def test_a_journal_that_cannot_be_written_is_503_with_the_reason(backend: FakeBackend) -> None:
    from scheduler.runtime.views import Unavailable

    async def full(*_: object) -> None:
        raise Unavailable("disk full")

    backend.submit = full  # type: ignore[assignment,method-assign]
    r = TestClient(make_app(backend, make_auth())).post("/v1/jobs", json=SPEC, headers=VISION)
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json() == {"detail": "nothing was applied: disk full; retry later"}


def test_an_idempotency_key_reused_with_another_body_is_409(backend: FakeBackend) -> None:
    from scheduler.runtime.views import Conflict

    async def clash(*_: object) -> None:
        raise Conflict("Idempotency-Key 'k' of team 'vision' was used for job-0001")

    backend.submit = clash  # type: ignore[assignment,method-assign]
    r = TestClient(make_app(backend, make_auth())).post("/v1/jobs", json=SPEC, headers=VISION)
    assert r.status_code == 409 and "Idempotency-Key 'k'" in r.json()["detail"]
