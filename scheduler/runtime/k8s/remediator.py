"""The remediation loop: GPU health from the scheduler's API, Node state from a list+watch
cache, ``remediation.decide``, and ``NodeClient.apply`` for each action.

It runs beside the scheduler (a container in the Ray head pod, ``gpuyard k8s remediate``)
with the ServiceAccount that may patch nodes; the scheduler itself holds no Kubernetes
rights beyond reading nodes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from scheduler.runtime.k8s.nodes import NodeClient
from scheduler.runtime.k8s.remediation import (
    Action,
    Memory,
    NodeState,
    decide,
    health_from_view,
    node_state,
)
from scheduler.runtime.k8s.settings import K8sSettings

log = logging.getLogger("gpuyard.k8s")


class NodeCache:
    """The GPU nodes (JSON by name), kept current by one list and then watches from its
    resourceVersion; a 410 Gone (the version expired) lists again."""

    def __init__(self, nodes: NodeClient, selector: str | None) -> None:
        self.client = nodes
        self.selector = selector
        self.nodes: dict[str, dict[str, Any]] = {}
        self.resource_version = ""
        self.relists = 0

    def sync(self) -> None:
        items, rv = self.client.list_nodes(self.selector)
        self.nodes = {n["metadata"]["name"]: n for n in items}
        self.resource_version = rv
        self.relists += 1

    def watch(self, timeout_s: int) -> int:
        """Apply changes for up to ``timeout_s``; returns how many were applied."""
        if not self.resource_version:
            self.sync()
        seen = 0
        try:
            for kind, obj in self.client.watch_nodes(
                self.selector, self.resource_version, timeout_s
            ):
                rv = obj.get("metadata", {}).get("resourceVersion")
                if rv:
                    self.resource_version = str(rv)
                if kind == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                if kind == "DELETED":
                    self.nodes.pop(name, None)
                else:
                    self.nodes[name] = obj
                seen += 1
        except ApiException as e:
            if e.status != 410:
                raise
            self.sync()
        return seen

    def update(self, node: Mapping[str, Any]) -> None:
        """A node as returned by our own patch (newer than the cache until the watch sees it)."""
        name = node["metadata"]["name"]
        if name in self.nodes:
            self.nodes[name] = dict(node)

    def states(self) -> dict[str, NodeState]:
        return {name: node_state(n) for name, n in sorted(self.nodes.items())}


class Remediator:
    def __init__(
        self,
        nodes: NodeClient,
        health: Callable[[], list[dict[str, Any]]],
        settings: K8sSettings,
        clock: Callable[[], float] = time.time,
        dry_run: bool = False,
    ) -> None:
        self.client = nodes
        self.health = health
        self.settings = settings
        self.clock = clock
        self.dry_run = dry_run
        self.cache = NodeCache(nodes, settings.inventory.node_selector)
        self.memory = Memory()

    def check(self) -> list[Action]:
        """One health check: decide and (unless dry-run) act. Returns the actions."""
        if not self.cache.resource_version:
            self.cache.sync()
        policy = self.settings.remediation
        checks = [
            h
            for v in self.health()
            if (h := health_from_view(v, policy.trigger_reasons)) is not None
        ]
        actions, self.memory = decide(
            self.clock(), checks, self.cache.states(), self.memory, policy
        )
        for action in actions:
            log.info("%s %s: %s", type(action).__name__, action.node, action.reason)
            if not self.dry_run:
                self.cache.update(self.client.apply(action))
        return actions

    def run(self, stop: threading.Event) -> None:
        """Check every ``period_s``, keeping the node cache current by watching in between;
        an error is logged and the loop goes on."""
        period = max(1, int(self.settings.remediation.period_s))
        while not stop.is_set():
            try:
                self.check()
                self.cache.watch(period)
            except Exception:  # the API or the scheduler is briefly unreachable
                log.exception("remediation check failed; retrying in %s s", period)
                stop.wait(period)
