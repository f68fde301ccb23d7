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

Validated by :class:`K8sSettingsFile` (scheduler/files/document.py): errors name the file,
the line, the key, the bad value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from scheduler.files.document import Document, FileModel, InputRejected, read_document, validate

GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"
TRIGGER_REASONS = ("xid", "ecc", "drain", "operator", "hot")


class K8sSettingsError(InputRejected):
    """A bad k8s.yaml: one line per problem, ``file:line: field.path: msg (got value)``."""


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


Text = Annotated[str, Field(min_length=1)]
Trigger = Literal["xid", "ecc", "drain", "operator", "hot"]


class PodSizeEntry(FileModel):
    cpus: int = Field(ge=1, le=100_000, description="CPU cores of the Ray worker pod")
    memory_gib: float = Field(ge=0.001, le=1_048_576, description="its memory (GiB)")


class InventoryEntry(FileModel):
    """How nodes are read: which are GPU nodes, their zone and rack labels, model names."""

    node_selector: Text = Field(default=GPU_NODE_SELECTOR, description="label selector")
    zone_label: Text = "topology.kubernetes.io/zone"
    rack_label: Text = "gpuyard.io/rack"
    models: dict[str, Text] = Field(
        default_factory=dict, description="GPU feature discovery product -> model name"
    )
    worker_pod: dict[str, PodSizeEntry] = Field(
        default_factory=dict, description="model -> what its Ray worker pod is given"
    )
    nvlink_domains: dict[str, Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=dict, description="model -> NVLink domains per node"
    )


def _default_triggers() -> list[Trigger]:
    return ["xid", "ecc", "drain", "operator"]


class RemediationEntry(FileModel):
    """When gpuyard cordons GPU nodes and gives them back."""

    enabled: bool = True
    max_cordoned_share: float = Field(
        default=0.25, ge=0, le=1, description="at most this share of GPU nodes cordoned"
    )
    min_cordon_allowed: int = Field(
        default=1, ge=0, le=100_000, description="but always at least this many"
    )
    healthy_checks: int = Field(
        default=3, ge=1, le=100_000, description="healthy checks before a node is given back"
    )
    healthy_for_s: float = Field(default=300.0, ge=0, le=1e9, description="in a row, this long")
    period_s: float = Field(default=30.0, ge=0.1, le=86_400, description="between checks")
    trigger_reasons: list[Trigger] = Field(default_factory=_default_triggers, min_length=1)
    namespace: Text = Field(default="gpuyard", description="where the Events go")


class K8sSettingsFile(FileModel):
    """k8s.yaml: the Kubernetes node inventory and remediation settings (every key optional)."""

    inventory: InventoryEntry | None = None
    remediation: RemediationEntry | None = None


def load_k8s_settings(path: str | Path | None) -> K8sSettings:
    """The settings of ``path`` (the defaults for None). Raises :class:`K8sSettingsError`."""
    if path is None:
        return K8sSettings()
    try:
        doc = read_document(path)
    except InputRejected as exc:
        raise K8sSettingsError(exc.errors) from None
    return parse_k8s_settings(doc.data, Path(path), doc.root)


def parse_k8s_settings(doc: Any, p: Path, root: Any = None) -> K8sSettings:
    """The settings of a parsed k8s.yaml (``root``: its YAML node tree, for line numbers)."""
    f = validate(K8sSettingsFile, Document(doc, str(p), root), error=K8sSettingsError)
    inv = f.inventory or InventoryEntry()
    rem = f.remediation or RemediationEntry()
    return K8sSettings(
        InventorySettings(
            node_selector=inv.node_selector,
            zone_label=inv.zone_label,
            rack_label=inv.rack_label,
            models=dict(inv.models),
            worker_pod={k: PodSize(v.cpus, v.memory_gib) for k, v in inv.worker_pod.items()},
            nvlink_domains=dict(inv.nvlink_domains),
        ),
        RemediationSettings(
            enabled=rem.enabled,
            max_cordoned_share=rem.max_cordoned_share,
            min_cordon_allowed=rem.min_cordon_allowed,
            healthy_checks=rem.healthy_checks,
            healthy_for_s=rem.healthy_for_s,
            period_s=rem.period_s,
            trigger_reasons=tuple(rem.trigger_reasons),
            namespace=rem.namespace,
        ),
    )
