"""``k8s.yaml``: how gpuyard reads its fleet from Kubernetes nodes and when it takes GPU nodes
out of service. Every key is optional::

    inventory:
      node_selector: nvidia.com/gpu.present=true  # which nodes are GPU nodes (label selector)
      zone_label: topology.kubernetes.io/zone
      rack_label: gpuyard.io/rack                 # no standard rack label exists; name yours
      models:                                     # GFD product label -> model name jobs ask for
        NVIDIA-H100-80GB-HBM3: H100
      worker_pod:                                 # what the Ray worker pod of a model gets
        H100: {cpus: 96, memory_gib: 900}
      nvlink_domains: {H20: 1}
    remediation:
      enabled: true
      max_cordoned_share: 0.25   # at most this share of the GPU nodes cordoned by gpuyard
      min_cordon_allowed: 1      # ... but always at least this many (0: the share is strict)
      healthy_checks: 3          # a cordoned node is given back after this many healthy checks
      healthy_for_s: 300         # ... in a row, spanning at least this many seconds
      period_s: 30               # between checks
      trigger_reasons: [xid, ecc, drain, operator]
      namespace: gpuyard         # where the Events go

Errors name the file, the key, the bad value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from scheduler.files.yamlfile import YamlFileError, integer_at, number_at, read_yaml

GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"
TRIGGER_REASONS = ("xid", "ecc", "drain", "operator", "hot")


class K8sSettingsError(YamlFileError):
    pass


@dataclass(frozen=True, slots=True)
class PodSize:
    """What a Ray worker pod of one GPU model is given (the core must not plan beyond it)."""

    cpus: int
    memory_gib: float


@dataclass(frozen=True, slots=True)
class InventorySettings:
    node_selector: str = GPU_NODE_SELECTOR
    zone_label: str = "topology.kubernetes.io/zone"
    rack_label: str = "gpuyard.io/rack"
    models: dict[str, str] = field(default_factory=dict)
    worker_pod: dict[str, PodSize] = field(default_factory=dict)
    nvlink_domains: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RemediationSettings:
    enabled: bool = True
    max_cordoned_share: float = 0.25
    min_cordon_allowed: int = 1
    healthy_checks: int = 3
    healthy_for_s: float = 300.0
    period_s: float = 30.0
    trigger_reasons: tuple[str, ...] = ("xid", "ecc", "drain", "operator")
    namespace: str = "gpuyard"


@dataclass(frozen=True, slots=True)
class K8sSettings:
    inventory: InventorySettings = InventorySettings()
    remediation: RemediationSettings = RemediationSettings()


def load_k8s_settings(path: str | Path | None) -> K8sSettings:
    if path is None:
        return K8sSettings()
    p = Path(path)
    return parse_k8s_settings(read_yaml(p, K8sSettingsError), p)


def parse_k8s_settings(doc: Any, p: Path) -> K8sSettings:
    doc = {} if doc is None else doc
    _mapping(p, "document", doc, {"inventory", "remediation"})
    inv = doc.get("inventory") or {}
    _mapping(p, "inventory", inv, {f.name for f in fields(InventorySettings)})
    rem = doc.get("remediation") or {}
    _mapping(p, "remediation", rem, {f.name for f in fields(RemediationSettings)})
    return K8sSettings(_inventory(p, inv), _remediation(p, rem))


def _inventory(p: Path, inv: dict[str, Any]) -> InventorySettings:
    d = InventorySettings()
    models = inv.get("models", {})
    _str_map(p, "inventory.models", models)
    pods: dict[str, PodSize] = {}
    raw_pods = inv.get("worker_pod", {})
    _mapping(p, "inventory.worker_pod", raw_pods, None)
    for model, size in raw_pods.items():
        where = f"inventory.worker_pod.{model}"
        _mapping(p, where, size, {"cpus", "memory_gib"})
        if set(size) != {"cpus", "memory_gib"}:
            raise K8sSettingsError(p, where, size, "both cpus and memory_gib")
        pods[str(model)] = PodSize(
            integer_at(K8sSettingsError, p, f"{where}.cpus", size["cpus"], 1),
            number_at(K8sSettingsError, p, f"{where}.memory_gib", size["memory_gib"], 0.001),
        )
    domains = inv.get("nvlink_domains", {})
    _mapping(p, "inventory.nvlink_domains", domains, None)
    return InventorySettings(
        node_selector=_str(p, "inventory.node_selector", inv.get("node_selector", d.node_selector)),
        zone_label=_str(p, "inventory.zone_label", inv.get("zone_label", d.zone_label)),
        rack_label=_str(p, "inventory.rack_label", inv.get("rack_label", d.rack_label)),
        models={str(k): str(v) for k, v in models.items()},
        worker_pod=pods,
        nvlink_domains={
            str(k): integer_at(K8sSettingsError, p, f"inventory.nvlink_domains.{k}", v, 1)
            for k, v in domains.items()
        },
    )


def _remediation(p: Path, rem: dict[str, Any]) -> RemediationSettings:
    d = RemediationSettings()
    enabled = rem.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        raise K8sSettingsError(p, "remediation.enabled", enabled, "true or false")
    share = number_at(
        K8sSettingsError,
        p,
        "remediation.max_cordoned_share",
        rem.get("max_cordoned_share", d.max_cordoned_share),
        0.0,
    )
    if share > 1.0:
        raise K8sSettingsError(p, "remediation.max_cordoned_share", share, "a share in [0, 1]")
    triggers = rem.get("trigger_reasons", list(d.trigger_reasons))
    if not isinstance(triggers, list) or not triggers:
        raise K8sSettingsError(p, "remediation.trigger_reasons", triggers, "a non-empty list")
    for i, t in enumerate(triggers):
        if t not in TRIGGER_REASONS:
            raise K8sSettingsError(
                p, f"remediation.trigger_reasons[{i}]", t, "one of " + ", ".join(TRIGGER_REASONS)
            )
    return RemediationSettings(
        enabled=enabled,
        max_cordoned_share=share,
        min_cordon_allowed=integer_at(
            K8sSettingsError,
            p,
            "remediation.min_cordon_allowed",
            rem.get("min_cordon_allowed", d.min_cordon_allowed),
            0,
        ),
        healthy_checks=integer_at(
            K8sSettingsError,
            p,
            "remediation.healthy_checks",
            rem.get("healthy_checks", d.healthy_checks),
            1,
        ),
        healthy_for_s=number_at(
            K8sSettingsError,
            p,
            "remediation.healthy_for_s",
            rem.get("healthy_for_s", d.healthy_for_s),
            0.0,
        ),
        period_s=number_at(
            K8sSettingsError, p, "remediation.period_s", rem.get("period_s", d.period_s), 0.1
        ),
        trigger_reasons=tuple(triggers),
        namespace=_str(p, "remediation.namespace", rem.get("namespace", d.namespace)),
    )


def _mapping(p: Path, where: str, value: Any, keys: set[str] | None) -> None:
    if not isinstance(value, dict):
        raise K8sSettingsError(p, where, value, "a mapping")
    if keys is not None:
        extra = sorted(str(k) for k in value if k not in keys)
        if extra:
            raise K8sSettingsError(p, f"{where}.{extra[0]}", extra[0], "one of " + ", ".join(sorted(keys)))  # fmt: skip


def _str_map(p: Path, where: str, value: Any) -> None:
    _mapping(p, where, value, None)
    for k, v in value.items():
        if not isinstance(v, str) or not v:
            raise K8sSettingsError(p, f"{where}.{k}", v, "a non-empty string")


def _str(p: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise K8sSettingsError(p, where, value, "a non-empty string")
    return value
