"""``GET /v1/jobs`` pages (``limit``, ``after``, ``total``) and ``gpuyard jobs --limit N
--page K | --all`` walks them: the real FastAPI app over the in-memory backend, through
TestClient for the API and through a uvicorn server for the command."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from scheduler.cli import main
from scheduler.runtime.api import make_app
from tests.unit.runtime.fake_backend import (
    ADMIN_TOKEN,
    NLP_TOKEN,
    VISION_TOKEN,
    FakeBackend,
    make_auth,
)

VISION = {"Authorization": f"Bearer {VISION_TOKEN}"}
NLP = {"Authorization": f"Bearer {NLP_TOKEN}"}


@pytest.fixture
def backend() -> FakeBackend:
    """250 vision jobs and, among them, 5 of nlp's (every 51st id)."""
    b = FakeBackend()
    for i in range(1, 256):
        b.add("nlp" if i % 51 == 0 else "vision", f"j{i}")
    return b


def vision_ids(backend: FakeBackend) -> list[str]:
    return sorted(j.job_id for j in backend.jobs.values() if j.team == "vision")


def test_the_api_pages_250_jobs_100_at_a_time(backend: FakeBackend) -> None:
    api = TestClient(make_app(backend, make_auth()))
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({} if after is None else {"after": after})
        r = api.get("/v1/jobs", headers=VISION, params=params)
        assert r.status_code == 200
        pages.append(r.json())
        after = pages[-1]["next_after"]
        if after is None:
            break
    assert [len(p["items"]) for p in pages] == [100, 100, 50]
    assert [p["total"] for p in pages] == [250, 250, 250]
    ids = [j["job_id"] for p in pages for j in p["items"]]
    assert ids == vision_ids(backend) and len(set(ids)) == 250  # exact, no duplicates
    assert [p["next_after"] for p in pages] == [ids[99], ids[199], None]
    assert {j["team"] for p in pages for j in p["items"]} == {"vision"}
    # each request asked the backend for one page only, never the whole list
    assert [c[1][2:] for c in backend.calls if c[0] == "list_jobs"] == [
        (100, None), (100, ids[99]), (100, ids[199])
    ]  # fmt: skip


def test_a_cursor_from_another_teams_job_shows_nothing_of_theirs(backend: FakeBackend) -> None:
    api = TestClient(make_app(backend, make_auth()))
    nlp_ids = [j["job_id"] for j in api.get("/v1/jobs", headers=NLP).json()["items"]]
    assert nlp_ids == ["job-0051", "job-0102", "job-0153", "job-0204", "job-0255"]
    page = api.get("/v1/jobs", headers=VISION, params={"after": "job-0153", "limit": 3}).json()
    # vision's own jobs after that id: the cursor is a position, not an access to nlp's jobs
    assert [j["job_id"] for j in page["items"]] == ["job-0154", "job-0155", "job-0156"]
    assert page["total"] == 250
    tail = api.get("/v1/jobs", headers=VISION, params={"after": "job-0204"}).json()
    assert "job-0255" not in [j["job_id"] for j in tail["items"]] and tail["next_after"] is None
    assert api.get("/v1/jobs", headers=VISION, params={"after": "x" * 201}).status_code == 422


@pytest.fixture
def url(backend: FakeBackend) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(make_app(backend, make_auth()), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def jobs(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main(["jobs", *argv, "--api", url, "--token", VISION_TOKEN])
    out, err = capsys.readouterr()
    return code, out, err


def test_jobs_pages_walk_the_cursor(
    url: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = vision_ids(backend)
    seen: list[str] = []
    for page in (1, 2, 3):
        code, out, _ = jobs(capsys, url, "--limit", "100", "--page", str(page), "--output", "json")
        doc = json.loads(out)
        assert code == 0 and list(doc) == ["items", "page", "pages", "limit", "total", "next_page"]
        assert (doc["page"], doc["pages"], doc["limit"], doc["total"]) == (page, 3, 100, 250)
        assert doc["next_page"] == (page + 1 if page < 3 else None)
        seen += [j["job_id"] for j in doc["items"]]
    assert seen == ids
    backend.calls.clear()
    code, out, _ = jobs(capsys, url, "--limit", "100", "--page", "3", "--output", "json")
    assert [c[1][3] for c in backend.calls if c[0] == "list_jobs"] == [None, ids[99], ids[199]]
    code, out, _ = jobs(capsys, url, "--all", "--output", "json")
    doc = json.loads(out)
    assert [j["job_id"] for j in doc["items"]] == ids
    assert (doc["page"], doc["pages"], doc["limit"], doc["total"], doc["next_page"]) == (
        1, 1, None, 250, None
    )  # fmt: skip


def test_jobs_table_says_which_page_and_what_is_left(
    url: str, backend: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = vision_ids(backend)
    code, out, _ = jobs(capsys, url)  # 50 a page by default
    assert code == 0
    lines = out.splitlines()
    assert lines[0].strip() == "jobs 1-50 of 250, page 1 of 5"
    assert lines[-1].strip() == "200 more: --page 2 (or --all)"
    assert ids[49] in out and ids[50] not in out
    code, out, _ = jobs(capsys, url, "--limit", "100", "--page", "3")
    assert out.splitlines()[0].strip() == "jobs 201-250 of 250, page 3 of 3"
    assert "more:" not in out and ids[200] in out and ids[199] not in out
    code, out, _ = jobs(capsys, url, "--limit", "100", "--page", "4")
    assert code == 0 and out.splitlines()[0].strip() == "no jobs on page 4: 250 jobs in 3 page(s)"
    assert out.splitlines()[-1].strip() == "no page 4: the last is --page 3"


def test_bad_paging_flags_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, why in ((["--limit", "0"], "--limit 0: must be 1..1000"),
                      (["--limit", "1001"], "--limit 1001: must be 1..1000"),
                      (["--page", "0"], "--page 0: must be >= 1 (1 is the oldest jobs)")):  # fmt: skip
        code, _, err = jobs(capsys, url, *argv)
        assert (code, err.strip()) == (2, f"error: {why}")
    with pytest.raises(SystemExit):  # argparse: not allowed with each other
        main(["jobs", "--page", "2", "--all", "--token", VISION_TOKEN])
    assert "not allowed with argument" in capsys.readouterr().err


def test_admin_sees_every_team_in_the_count(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["jobs", "--api", url, "--token", ADMIN_TOKEN, "--limit", "255", "--output",
                 "json"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and (len(doc["items"]), doc["total"], doc["pages"]) == (255, 255, 1)
