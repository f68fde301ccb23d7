"""Which GPU nodes to take out of Kubernetes' service and which to give back (pure).

``decide`` turns per-node GPU health (what the scheduler's ``/v1/nodes`` says) and the
Nodes' current state into actions; ``nodes.NodeClient`` carries them out. Rules:

1. A node with a GPU failing a health check (a reason in ``trigger_reasons``: an XID that
   needs a reset, uncorrected ECC errors, a drain, an operator's mark) is cordoned
   (``spec.unschedulable``) and tainted ``gpuyard.io/gpu-unhealthy=<reason>:NoSchedule``, and
   marked as gpuyard's with the annotation ``gpuyard.io/cordoned-by: gpuyard``.
2. A node is given back (uncordoned, taint and annotations removed) only after
   ``healthy_checks`` healthy checks in a row spanning at least ``healthy_for_s`` seconds
   (hysteresis), and only if gpuyard cordoned it (the annotation): a node that someone else
   cordoned is never touched, nor one labelled ``gpuyard.io/remediation=off``.
3. At most ``max(min_cordon_allowed, floor(max_cordoned_share x GPU nodes))`` nodes are
   cordoned by gpuyard at once. A node past that limit is refused, and the refusal is
   recorded (once per reason) so an operator sees why a bad node still takes work.
4. A node with no health reading (lost, not in the fleet) keeps its state: gpuyard never
   gives a node back without evidence that it is healthy.

Order is deterministic: give-backs first (by name; they free room under the limit), then
cordons, worst first (most failing GPUs), ties by name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler.runtime.k8s.settings import RemediationSettings

OWNER_ANNOTATION = "gpuyard.io/cordoned-by"
OWNER = "gpuyard"
REASON_ANNOTATION = "gpuyard.io/cordon-reason"
SINCE_ANNOTATION = "gpuyard.io/cordoned-at"
OPT_OUT_LABEL = "gpuyard.io/remediation"  # value "off": gpuyard leaves the node alone
TAINT_KEY = "gpuyard.io/gpu-unhealthy"
TAINT_EFFECT = "NoSchedule"


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One health check of one node: ``reasons`` say which GPUs fail and why (empty when
    healthy)."""

    node: str
    reasons: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.reasons

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class NodeState:
    """What matters of a Kubernetes Node here."""

    name: str
    unschedulable: bool = False
    ours: bool = False  # carries gpuyard's owner annotation
    tainted: bool = False  # carries gpuyard's taint
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class Cordon:
    node: str
    reason: str  # what fails, for the taint value, the annotation and the Event


@dataclass(frozen=True, slots=True)
class Uncordon:
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refuse:
    node: str
    reason: str


Action = Cordon | Uncordon | Refuse


@dataclass(frozen=True, slots=True)
class Memory:
    """What ``decide`` keeps between checks: each owned node's healthy streak (checks, first
    healthy time) and the refusals already recorded."""

    streaks: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)


def cordon_limit(gpu_nodes: int, policy: RemediationSettings) -> int:
    share = math.floor(policy.max_cordoned_share * gpu_nodes + 1e-9)
    return min(gpu_nodes, max(policy.min_cordon_allowed, share))


def decide(
    now_s: float,
    checks: Iterable[NodeHealth],
    nodes: Mapping[str, NodeState],
    memory: Memory,
    policy: RemediationSettings,
) -> tuple[list[Action], Memory]:
    """The actions for this check and the memory for the next one. ``nodes`` are the GPU
    nodes (the share's denominator); health for other nodes is ignored."""
    streaks = dict(memory.streaks)
    refused = dict(memory.refused)
    owned = sum(1 for s in nodes.values() if s.ours)
    limit = cordon_limit(len(nodes), policy)
    give_back: list[Action] = []
    sick: list[tuple[NodeHealth, NodeState]] = []
    for check in sorted(checks, key=lambda c: c.node):
        state = nodes.get(check.node)
        if state is None or state.opted_out:
            continue
        if not check.healthy:
            streaks.pop(check.node, None)
            sick.append((check, state))
            continue
        refused.pop(check.node, None)
        if not state.ours:
            streaks.pop(check.node, None)
            continue
        count, since = streaks.get(check.node, (0, now_s))
        count += 1
        if count >= policy.healthy_checks and now_s - since >= policy.healthy_for_s:
            streaks.pop(check.node, None)
            give_back.append(
                Uncordon(check.node, f"GPUs healthy for {count} checks over {now_s - since:.0f} s")
            )
            owned -= 1
        else:
            streaks[check.node] = (count, since)
    take: list[Action] = []
    for check, state in sorted(sick, key=lambda cs: (-len(cs[0].reasons), cs[0].node)):
        if state.ours:
            if not (state.unschedulable and state.tainted):  # someone undid part of it: redo
                take.append(Cordon(check.node, check.summary))
            continue
        if state.unschedulable:  # cordoned by someone else: theirs to manage
            continue
        if owned + 1 > limit:
            why = (
                f"not cordoned although {check.summary}: {owned} of {len(nodes)} GPU nodes are "
                f"already cordoned by gpuyard, the limit is {limit}"
            )
            if refused.get(check.node) != check.summary:
                take.append(Refuse(check.node, why))
                refused[check.node] = check.summary
            continue
        refused.pop(check.node, None)
        take.append(Cordon(check.node, check.summary))
        owned += 1
    return give_back + take, Memory(streaks, refused)


def health_from_view(view: Mapping[str, Any], triggers: Sequence[str]) -> NodeHealth | None:
    """A health check from one ``NodeView`` of the API (its JSON); None when the node has no
    reading (lost, or never sampled): no evidence either way."""
    if not view.get("alive", False):
        return None
    reasons: list[str] = []
    if "drain" in triggers and "drain" in view.get("off_reasons", []):
        reasons.append("node drained")
    for gpu in view.get("gpus", []):
        if gpu.get("healthy", True):
            continue
        for why in gpu.get("why_unhealthy", []):
            if str(why).split(" ")[0] in triggers:
                reasons.append(f"GPU {gpu.get('index')}: {why}")
    return NodeHealth(str(view["name"]), tuple(reasons))


def node_state(node: Mapping[str, Any]) -> NodeState:
    """The ``NodeState`` of a Node object (its JSON)."""
    meta = node.get("metadata", {})
    spec = node.get("spec", {})
    return NodeState(
        name=str(meta.get("name", "")),
        unschedulable=bool(spec.get("unschedulable", False)),
        ours=(meta.get("annotations") or {}).get(OWNER_ANNOTATION) == OWNER,
        tainted=any(t.get("key") == TAINT_KEY for t in spec.get("taints") or []),
        opted_out=(meta.get("labels") or {}).get(OPT_OUT_LABEL) == "off",
    )


def taint_value(reason: str) -> str:
    """A label-value-shaped summary for the taint (63 characters of [A-Za-z0-9_.-],
    starting and ending alphanumeric): the full reason is in the annotation and Event."""
    out = "".join(c if c.isalnum() or c in "_.-" else "-" for c in reason)
    while "--" in out:
        out = out.replace("--", "-")
    return out[:63].strip("-_.") or "unhealthy"
