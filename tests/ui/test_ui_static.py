"""The status page's routes without a browser: the page is static (the same bytes whoever
asks, no token needed, no data in it), locked down by its headers, and ``/v1/whoami`` says
who a token is."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from scheduler.runtime import ui
from scheduler.runtime.api import make_app
from scheduler.runtime.views import JobState
from tests.unit.runtime.fake_backend import (
    ADMIN_TOKEN,
    NLP_TOKEN,
    VISION_TOKEN,
    FakeBackend,
    make_auth,
)

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "scheduler" / "runtime" / "ui" / "static"


@pytest.fixture
def client() -> TestClient:
    backend = FakeBackend()
    backend.add("vision", "secret-vision-job")
    backend.add("nlp", "secret-nlp-job", JobState.RUNNING)
    return TestClient(make_app(backend, make_auth()))


def test_the_page_is_the_same_static_file_for_anyone_and_holds_no_data(client: TestClient) -> None:
    bodies = []
    for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": "Bearer x"}):
        r = client.get("/ui", headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        bodies.append(r.content)
    assert bodies == [(STATIC / "index.html").read_bytes()] * 3
    text = bodies[0].decode()
    for leak in ("secret-vision-job", "secret-nlp-job", "job-0001", ADMIN_TOKEN, "vision"):
        assert leak not in text


def test_assets_are_served_with_their_types_and_nothing_else_is(client: TestClient) -> None:
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = client.get(f"/ui/{name}")
        assert (r.status_code, r.headers["content-type"]) == (200, f"{kind}; charset=utf-8")
        assert r.content == (STATIC / name).read_bytes()
    for name in ("index.html", "nope.js", "__init__.py", "ui.py"):
        r = client.get(f"/ui/{name}")
        assert r.status_code == 404, name
        assert r.json()["detail"] == f"no {name!r} in the status page; it has app.js, style.css"
    for path in ("/ui/..%2F__init__.py", "/ui/static/app.js", "/ui/../api.py"):
        assert client.get(path).status_code == 404, path
    r = client.get("/ui/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "http://testserver/ui")


def test_every_page_response_forbids_other_origins_inline_script_and_framing(
    client: TestClient,
) -> None:
    for path in ("/ui", "/ui/app.js", "/ui/style.css"):
        h = client.get(path).headers
        assert h["content-security-policy"] == (
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        assert (h["x-content-type-options"], h["x-frame-options"]) == ("nosniff", "DENY")
        assert h["referrer-policy"] == "no-referrer"


def test_the_page_loads_nothing_from_another_host_and_has_no_inline_script() -> None:
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", html) == ['<script src="ui/app.js" defer>']
    assert re.findall(r'(?:href|src)="([^"]+)"', html) == ["data:,", "ui/style.css", "ui/app.js"]
    for name in ui.ASSETS:
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://", text), name
        assert "innerHTML" not in text and "eval(" not in text, name
        assert " style=" not in text, name  # the CSP refuses style attributes


def test_whoami_says_who_the_token_is_and_refuses_a_missing_or_unknown_one(
    client: TestClient,
) -> None:
    def me(token: str) -> object:
        return client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()

    assert me(VISION_TOKEN) == {"name": "vision", "team": "vision", "admin": False}
    assert me(NLP_TOKEN) == {"name": "nlp", "team": "nlp", "admin": False}
    assert me(ADMIN_TOKEN) == {"name": "ops", "team": None, "admin": True}
    r = client.get("/v1/whoami", headers={"Authorization": "Bearer wrong"})
    assert (r.status_code, r.json()) == (401, {"detail": "unknown token"})
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/whoami").status_code == 401
    assert "/v1/whoami" in client.get("/openapi.json").json()["paths"]
    assert "/ui" not in client.get("/openapi.json").json()["paths"]


def test_the_page_is_package_data_of_the_wheel() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-data"]["scheduler.runtime.ui"] == ["static/*"]
    assert sorted(p.name for p in STATIC.iterdir()) == sorted(ui.ASSETS)
    assert all(ui.asset(n) == (STATIC / n).read_bytes() for n in ui.ASSETS)
