"""The status page: a read-only page in the browser at ``/ui``, served by the HTTP API.

The page is static (``static/``: one HTML file, one script, one style sheet, no build step,
nothing fetched from another host): it holds no data. It asks for the user's bearer token,
keeps it in the tab's ``sessionStorage`` and calls the JSON API with it (``/v1/whoami``,
``/v1/queue``, ``/v1/jobs``, ``/v1/nodes``), so it shows exactly what that token may see: a
team's token its team's jobs and queue entries (with their global positions), an admin's
every team's plus the nodes and their GPUs. It changes nothing.

Routes added by :func:`install`:

====== ================= ===========================================================
GET    /ui               the page (no token: it is static)
GET    /ui/{asset}       its script and style sheet (only the files named in ASSETS)
GET    /v1/whoami        the caller's name, team and whether it is an admin (token)
====== ================= ===========================================================

Every page response carries a Content-Security-Policy that allows scripts, styles and
connections to this origin only, no frames and no inline script.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from scheduler.runtime.auth import Principal

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate: a service upgrade serves its own page
}


class WhoAmI(BaseModel):
    """Who the bearer token acts as."""

    name: str = Field(description="the token's name in the token file")
    team: str | None = Field(description="the team it acts for; None for an admin")
    admin: bool = Field(description="an admin token: every team, and the operator routes")


@cache
def asset(name: str) -> bytes:
    """One of the page's files, from the package data."""
    return resources.files(__name__).joinpath("static", name).read_bytes()


def install(app: FastAPI, principal: Callable[..., Awaitable[Principal]]) -> None:
    """Add the page's routes to ``app``; ``principal`` is the API's bearer-token dependency
    (401 for a missing or unknown token, recorded in the audit log)."""

    def page(name: str) -> Response:
        return Response(asset(name), media_type=ASSETS[name], headers=HEADERS)

    @app.get("/ui", include_in_schema=False)
    async def ui_page() -> Response:
        return page("index.html")

    @app.get("/ui/{name}", include_in_schema=False)
    async def ui_asset(
        name: Annotated[str, Path(min_length=1, max_length=64)],
    ) -> Response:
        if name not in ASSETS or name == "index.html":
            raise HTTPException(404, f"no {name!r} in the status page; it has {_files()}")
        return page(name)

    @app.get("/v1/whoami", response_model=WhoAmI, responses=_WHOAMI_ERRORS)
    async def whoami(who: Annotated[Principal, Depends(principal)]) -> WhoAmI:
        return WhoAmI(name=who.name, team=who.team, admin=who.admin)


def _files() -> str:
    return ", ".join(n for n in ASSETS if n != "index.html")


_WHOAMI_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown bearer token"},
}
