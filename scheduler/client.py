"""A small HTTP client of the scheduler's API (``scheduler/runtime/api.py``).

Every method returns the parsed JSON of the answer. A refusal raises ``ApiError`` with the
HTTP status and the server's ``detail`` (a string, or for 422 a list of field errors); a
server that cannot be reached raises ``ApiError`` with status 0.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

DEFAULT_TIMEOUT_S = 30.0


class ApiError(Exception):
    """The API refused a call (``status`` >= 400) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {describe_detail(detail)}" if status else str(detail))


def describe_detail(detail: Any) -> str:
    """One line from an error body's ``detail``: a string as it is; field errors (422) as
    ``field.path: message (got VALUE)`` joined by ``; ``."""
    if isinstance(detail, list):
        parts = []
        for e in detail:
            if not isinstance(e, dict):
                parts.append(str(e))
                continue
            loc = [str(x) for x in e.get("loc", [])]
            if loc and loc[0] == "body":
                loc = loc[1:]
            where = ".".join(loc) or "body"
            got = f" (got {e['input']!r})" if e.get("input") is not None else ""
            parts.append(f"{where}: {e.get('msg', 'invalid')}{got}")
        return "; ".join(parts)
    return str(detail)


class Client:
    """``Client("http://127.0.0.1:8000", token)``; ``token`` is the plain bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = session or requests.Session()
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        out: dict[str, Any] = self._call("POST", "/v1/jobs", json=spec, headers=headers)
        return out

    def jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call(
            "GET", "/v1/jobs", params={"state": state} if state else None
        )
        return out

    def job(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", f"/v1/jobs/{_seg(job_id)}")
        return out

    def cancel(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/v1/jobs/{_seg(job_id)}/cancel")
        return out

    def logs(self, job_id: str, tail: int = 200) -> dict[str, Any]:
        """``{"job_id", "tail_lines", "text"}``: the last ``tail`` lines of the job's log."""
        out: dict[str, Any] = self._call(
            "GET", f"/v1/jobs/{_seg(job_id)}/logs", params={"tail": tail}
        )
        return out

    def queue(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/v1/queue")
        return out

    def nodes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/v1/nodes")
        return out

    def cordon(self, node: str) -> dict[str, Any]:
        """No new work on ``node`` (admin token); returns the node's view."""
        return self._node_op(node, "cordon")

    def drain(self, node: str) -> dict[str, Any]:
        """Cordon ``node``, then checkpoint and move its jobs (admin token)."""
        return self._node_op(node, "drain")

    def uncordon(self, node: str) -> dict[str, Any]:
        """``node`` takes work again: clears cordon, drain and the GPU health marks the
        scheduler set, and the ECC baseline becomes the current count (admin token)."""
        return self._node_op(node, "uncordon")

    def _node_op(self, node: str, op: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/v1/nodes/{_seg(node)}/{op}")
        return out

    def audit(
        self, since_s: float | None = None, team: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The audit log, oldest first (admin token)."""
        params: dict[str, Any] = {"limit": limit}
        if since_s is not None:
            params["since"] = since_s
        if team is not None:
            params["team"] = team
        out: list[dict[str, Any]] = self._call("GET", "/v1/audit", params=params)
        return out

    def healthz(self) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/healthz")
        return out

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = self.base_url + path
        try:
            r = self._session.request(
                method,
                url,
                json=json,
                params=params,
                headers={**self._headers, **(headers or {})},
                timeout=self.timeout_s,
            )
        except requests.RequestException as e:
            raise ApiError(0, f"cannot reach the gpuyard API at {self.base_url}: {e}") from None
        if r.status_code >= 400:
            raise ApiError(r.status_code, _detail(r))
        try:
            return r.json()
        except ValueError:
            raise ApiError(
                r.status_code, f"{method} {url}: the answer is not JSON: {r.text[:200]!r}"
            ) from None


def _detail(r: requests.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip() or r.reason
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


def _seg(job_id: str) -> str:
    return quote(job_id, safe="")
