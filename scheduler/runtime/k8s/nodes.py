"""Nodes and Events through the ``kubernetes`` client: list and watch GPU nodes, cordon and
taint or give back a node (JSON merge patches guarded by ``resourceVersion``), and record
each action as a core/v1 Event on the Node.

Objects are handled as the API's JSON (``_preload_content=False``), so the pure modules
(``inventory``, ``remediation``) read exactly what the API server sends.

RBAC this needs (``k8s/base/rbac.yaml``): nodes get, list, watch, patch (cluster-wide);
events create, patch in the Events' namespace.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from scheduler.runtime.k8s.remediation import (
    OWNER,
    OWNER_ANNOTATION,
    REASON_ANNOTATION,
    SINCE_ANNOTATION,
    TAINT_EFFECT,
    TAINT_KEY,
    Action,
    Cordon,
    Refuse,
    Uncordon,
    taint_value,
)

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
COMPONENT = "gpuyard-remediator"
# Event reason (CamelCase, as Kubernetes' own) and action for each remediation action
EVENT_OF: dict[type, tuple[str, str, str]] = {
    Cordon: ("GpuUnhealthy", "Warning", "Cordon"),
    Uncordon: ("GpuHealthy", "Normal", "Uncordon"),
    Refuse: ("RemediationLimited", "Warning", "Refuse"),
}


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_client(host: str | None = None, token: str | None = None) -> client.ApiClient:
    """A client for ``host`` (tests, a port-forward), else in-cluster config (the pod's
    ServiceAccount), else the local kubeconfig."""
    if host is not None:
        cfg = client.Configuration(host=host)
        if token:
            cfg.api_key = {"authorization": token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class NodeClient:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
        conflict_retries: int = 3,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.instance = instance or socket.gethostname()
        self.clock = clock
        self.conflict_retries = conflict_retries
        self._events: dict[str, int] = {}  # event name -> count recorded by this process

    # ------------------------------------------------------------ reading
    def list_nodes(self, selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """The nodes (JSON) and the list's resourceVersion, to watch from."""
        resp: Any = self.core.list_node(label_selector=selector, _preload_content=False)
        doc = json.loads(resp.data)
        return list(doc.get("items") or []), str(doc.get("metadata", {}).get("resourceVersion", ""))  # fmt: skip

    def watch_nodes(
        self, selector: str | None, resource_version: str, timeout_s: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, node JSON) for each change after ``resource_version`` until the server ends
        the watch after ``timeout_s``. Raises ``ApiException`` 410 when that version is too
        old (list again)."""
        w = watch.Watch()  # type: ignore[no-untyped-call]
        for ev in w.stream(  # type: ignore[no-untyped-call]
            self.core.list_node,
            label_selector=selector,
            resource_version=resource_version,
            timeout_seconds=timeout_s,
            allow_watch_bookmarks=True,
        ):
            # the client raises ERROR events (410 Gone included) as ApiException itself
            yield str(ev["type"]), ev["raw_object"]

    def read_node(self, name: str) -> dict[str, Any]:
        resp: Any = self.core.read_node(name, _preload_content=False)
        return dict(json.loads(resp.data))

    # ------------------------------------------------------------ acting
    def apply(self, action: Action) -> dict[str, Any]:
        """Carry out one action and record its Event; returns the Node as it is after."""
        if isinstance(action, Cordon):
            node = self._patch(action.node, lambda n: cordon_patch(n, action.reason, self.clock()))
        elif isinstance(action, Uncordon):
            node = self._patch(action.node, uncordon_patch)
        else:
            node = self.read_node(action.node)
        self.record(node, action)
        return node

    def _patch(self, name: str, make: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Read, build the patch from what was read (it carries that resourceVersion, so a
        write by someone else in between is a 409 Conflict, not a lost update), send; retry
        on conflict."""
        for attempt in range(self.conflict_retries + 1):
            node = self.read_node(name)
            try:
                resp: Any = self.core.patch_node(
                    name, make(node), _content_type=MERGE_PATCH, _preload_content=False
                )
                return dict(json.loads(resp.data))
            except ApiException as e:
                if e.status != 409 or attempt == self.conflict_retries:
                    raise
        raise AssertionError("unreachable")

    def record(self, node: dict[str, Any], action: Action) -> None:
        """A core/v1 Event on the Node. The same action and message again from this process
        bumps the first Event's count (a strategic-merge patch), as client-go's recorder
        does, instead of adding a new one."""
        reason, kind, verb = EVENT_OF[type(action)]
        meta = node.get("metadata", {})
        digest = hashlib.sha256(f"{reason}\0{action.reason}".encode()).hexdigest()[:12]
        name = f"{meta.get('name', action.node)}.gpuyard.{digest}"
        now = rfc3339(self.clock())
        count = self._events.get(name, 0) + 1
        if count > 1:
            try:
                self.core.patch_namespaced_event(
                    name, self.namespace, {"count": count, "lastTimestamp": now},
                    _content_type=STRATEGIC_MERGE_PATCH, _preload_content=False,
                )  # fmt: skip
                self._events[name] = count
                return
            except ApiException as e:
                if e.status != 404:  # gone (events expire): create it again
                    raise
                count = 1
        body = client.CoreV1Event.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": self.namespace},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": meta.get("name", action.node),
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": action.reason,
                "type": kind,
                "action": verb,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": COMPONENT},
                "reportingComponent": f"gpuyard.io/{COMPONENT}",
                "reportingInstance": self.instance,
            }
        )
        try:
            assert body is not None
            self.core.create_namespaced_event(self.namespace, body, _preload_content=False)
        except ApiException as e:
            if e.status != 409:  # recorded by an earlier run of this process: leave it
                raise
        self._events[name] = count


def cordon_patch(node: dict[str, Any], reason: str, now_s: float) -> dict[str, Any]:
    """JSON merge patch: unschedulable, gpuyard's taint (taints is an atomic list, so the
    whole list is sent, others' taints kept) and the owner annotations."""
    meta = node.get("metadata", {})
    others = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") != TAINT_KEY]
    ours = {"key": TAINT_KEY, "value": taint_value(reason), "effect": TAINT_EFFECT}
    since = (meta.get("annotations") or {}).get(SINCE_ANNOTATION) or rfc3339(now_s)
    return {
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "annotations": {
                OWNER_ANNOTATION: OWNER,
                REASON_ANNOTATION: reason,
                SINCE_ANNOTATION: since,
            },
        },
        "spec": {"unschedulable": True, "taints": [*others, ours]},
    }


def uncordon_patch(node: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch undoing ``cordon_patch`` (null deletes a key)."""
    meta = node.get("metadata", {})
    others = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") != TAINT_KEY]
    return {
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "annotations": {
                OWNER_ANNOTATION: None,
                REASON_ANNOTATION: None,
                SINCE_ANNOTATION: None,
            },
        },
        "spec": {"unschedulable": None, "taints": others or None},
    }
