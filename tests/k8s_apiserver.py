"""A stand-in Kubernetes API server for tests (standard library only).

It speaks the real JSON of the calls gpuyard makes, so the ``kubernetes`` client runs its
real code paths against it:

* ``GET /api/v1/nodes`` (``labelSelector``: ``k=v``, ``k!=v``, ``k``, ``!k``, comma-separated):
  a ``NodeList`` with ``metadata.resourceVersion``;
* ``GET /api/v1/nodes?watch=true&resourceVersion=N&timeoutSeconds=T``: a chunked stream of
  ``{"type": ..., "object": ...}`` lines, one per change after N, held open until T; a
  version older than the retained history gets the ``ERROR`` event with a 410 ``Status``, as
  the real server sends;
* ``GET /api/v1/nodes/NAME``, ``PATCH`` it with ``application/merge-patch+json`` (RFC 7386)
  or ``application/strategic-merge-patch+json`` (maps merge, lists replace: the Node fields
  touched here, labels, annotations, ``unschedulable`` and the atomic ``taints`` list, merge
  that way on the real server too); ``metadata.resourceVersion`` in a patch is a
  precondition (409 Conflict when stale);
* ``POST /api/v1/namespaces/NS/events`` (409 AlreadyExists on a taken name) and ``PATCH``
  of an Event (strategic merge).

Every request is recorded (method, path, query, content type, JSON body) for assertions.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeApiServer:
    def __init__(self, nodes: list[dict[str, Any]], token: str | None = None) -> None:
        self.lock = threading.Condition()
        self.rv = 100
        self.nodes: dict[str, dict[str, Any]] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []  # (rv, type, node)
        self.oldest_rv = self.rv  # watches from before this get 410 Gone
        self.requests: list[Request] = []
        self.token = token
        with self.lock:
            for n in nodes:
                self._store(copy.deepcopy(n))
        self.oldest_rv = self.rv
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------ state
    def _store(self, node: dict[str, Any], kind: str = "ADDED") -> dict[str, Any]:
        self.rv += 1
        meta = node.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", f"uid-{meta['name']}")
        node.setdefault("apiVersion", "v1")
        node.setdefault("kind", "Node")
        self.nodes[meta["name"]] = node
        self.history.append((self.rv, kind, copy.deepcopy(node)))
        self.lock.notify_all()
        return node

    def put_node(self, node: dict[str, Any]) -> None:
        """Add or change a node from the test's side (a MODIFIED or ADDED watch event)."""
        with self.lock:
            name = node["metadata"]["name"]
            self._store(copy.deepcopy(node), "MODIFIED" if name in self.nodes else "ADDED")

    def delete_node(self, name: str) -> None:
        with self.lock:
            node = self.nodes.pop(name)
            self.rv += 1
            node["metadata"]["resourceVersion"] = str(self.rv)
            self.history.append((self.rv, "DELETED", copy.deepcopy(node)))
            self.lock.notify_all()

    def compact(self) -> None:
        """Forget the history so far: a watch from an older version gets 410 Gone."""
        with self.lock:
            self.history.clear()
            self.oldest_rv = self.rv

    def node(self, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.nodes[name])

    def calls(self, method: str, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    # ------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _begin(self) -> tuple[str, dict[str, str], Any] | None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                server.requests.append(
                    Request(self.command, url.path, query, self.headers.get("Content-Type"), body)
                )
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                    return None
                return url.path, query, body

            def do_GET(self) -> None:
                got = self._begin()
                if got is None:
                    return
                path, query, _ = got
                if path == "/api/v1/nodes":
                    if query.get("watch") in ("true", "True", "1"):
                        self._watch(query)
                        return
                    with server.lock:
                        items = [
                            copy.deepcopy(n)
                            for _, n in sorted(server.nodes.items())
                            if _matches(n["metadata"].get("labels", {}), query.get("labelSelector"))
                        ]
                        doc = {
                            "kind": "NodeList",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(server.rv)},
                            "items": items,
                        }
                    self._send(200, doc)
                elif path.startswith("/api/v1/nodes/"):
                    name = path.rsplit("/", 1)[1]
                    with server.lock:
                        node = copy.deepcopy(server.nodes.get(name))
                    if node is None:
                        self._send(404, _status(404, "NotFound", f'nodes "{name}" not found'))
                    else:
                        self._send(200, node)
                else:
                    self._send(404, _status(404, "NotFound", path))

            def _chunk(self, doc: Any) -> None:
                data = json.dumps(doc).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, query: dict[str, str]) -> None:
                since = int(query.get("resourceVersion") or server.rv)
                deadline = time.monotonic() + float(query.get("timeoutSeconds") or 5)
                selector = query.get("labelSelector")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if since < server.oldest_rv:
                    self._chunk(
                        {
                            "type": "ERROR",
                            "object": _status(
                                410,
                                "Expired",
                                f"too old resource version: {since} ({server.oldest_rv})",
                            ),
                        }
                    )
                else:
                    while True:
                        with server.lock:
                            todo = [(rv, k, n) for rv, k, n in server.history if rv > since]
                            if not todo:
                                left = deadline - time.monotonic()
                                if left <= 0:
                                    break
                                server.lock.wait(min(left, 0.05))
                                continue
                        for rv, kind, node in todo:
                            since = rv
                            if _matches(node["metadata"].get("labels", {}), selector):
                                self._chunk({"type": kind, "object": node})
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def do_PATCH(self) -> None:
                got = self._begin()
                if got is None:
                    return
                path, _, body = got
                ctype = (self.headers.get("Content-Type") or "").split(";")[0]
                if ctype not in (MERGE, STRATEGIC):
                    self._send(
                        415, _status(415, "UnsupportedMediaType", f"{ctype} not served here")
                    )
                    return
                parts = path.strip("/").split("/")
                with server.lock:
                    if parts[:3] == ["api", "v1", "nodes"] and len(parts) == 4:
                        node = server.nodes.get(parts[3])
                        if node is None:
                            self._send(
                                404, _status(404, "NotFound", f'nodes "{parts[3]}" not found')
                            )
                            return
                        want = (body.get("metadata") or {}).get("resourceVersion")
                        if want is not None and want != node["metadata"]["resourceVersion"]:
                            self._send(
                                409,
                                _status(
                                    409,
                                    "Conflict",
                                    "the object has been modified; please apply your changes to the latest version and try again",
                                ),
                            )
                            return
                        body = copy.deepcopy(body)
                        body.get("metadata", {}).pop("resourceVersion", None)
                        new = merge_patch(node, body)
                        self._send(200, copy.deepcopy(server._store(new, "MODIFIED")))
                    elif len(parts) == 6 and parts[4] == "events":
                        key = (parts[3], parts[5])
                        if key not in server.events:
                            self._send(
                                404, _status(404, "NotFound", f'events "{parts[5]}" not found')
                            )
                            return
                        server.events[key] = merge_patch(server.events[key], body)
                        self._send(200, server.events[key])
                    else:
                        self._send(404, _status(404, "NotFound", path))

            def do_POST(self) -> None:
                got = self._begin()
                if got is None:
                    return
                path, _, body = got
                parts = path.strip("/").split("/")
                if len(parts) == 5 and parts[4] == "events":
                    key = (parts[3], body["metadata"]["name"])
                    with server.lock:
                        if key in server.events:
                            self._send(
                                409,
                                _status(409, "AlreadyExists", f'events "{key[1]}" already exists'),
                            )
                            return
                        server.events[key] = body
                    self._send(201, body)
                else:
                    self._send(404, _status(404, "NotFound", path))

        return Handler
