"""The fleet from Kubernetes Node objects (pure: JSON dicts in, ``NodeSpec`` out).

NVIDIA GPU Feature Discovery (GFD) labels each GPU node with what it found through NVML:

* ``nvidia.com/gpu.product``: the GPU's name with spaces as dashes (``NVIDIA-H100-80GB-HBM3``;
  ``-SHARED`` is appended under time-slicing);
* ``nvidia.com/gpu.count``: GPUs on the node;
* ``nvidia.com/gpu.memory``: memory per GPU in MiB.

Zone and rack come from the labels named in ``InventorySettings`` and become the fleet
labels ``zone`` and ``rack`` (the core keys topology on them); a node's own
``gpuyard.io/region`` label (data residency) is kept as it is. CPUs and memory are what the
Ray worker pod of that GPU model is given (``worker_pod``), else the node's allocatable:
the core must not plan CPU or memory that the Ray node does not have.

A node that lacks a GFD label, or carries one the core cannot use, is left out of the fleet
with the reason (``Skipped``), never silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scheduler.core.model import REGION_LABEL
from scheduler.runtime.config import NodeSpec
from scheduler.runtime.k8s.settings import InventorySettings

PRODUCT = "nvidia.com/gpu.product"
COUNT = "nvidia.com/gpu.count"
MEMORY = "nvidia.com/gpu.memory"

_MODEL_TOKEN = re.compile(r"[A-Z]{1,3}\d{1,4}[A-Z]{0,2}")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


@dataclass(frozen=True, slots=True)
class Skipped:
    node: str
    reason: str


def model_name(product: str, models: Mapping[str, str]) -> str:
    """The model jobs ask for (``H100``) from GFD's product label: the settings' mapping
    first, else the first dash-separated token shaped like a model (letters then digits),
    else the product itself."""
    base = product.removesuffix("-SHARED")
    if base in models:
        return models[base]
    for token in base.split("-"):
        if token != "NVIDIA" and _MODEL_TOKEN.fullmatch(token):
            return token
    return base


def quantity(text: str) -> float:
    """A Kubernetes resource quantity (``500m``, ``96``, ``1Ti``, ``2097152Ki``, ``1G``) as a
    plain number (cores or bytes)."""
    if text.endswith("m") and text[:-1].isdigit():
        return int(text[:-1]) / 1000
    m = _QUANTITY.match(text)
    if m is None or (m.group(2) not in _BINARY and m.group(2) not in _DECIMAL):
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    value, suffix = float(m.group(1)), m.group(2)
    return value * _BINARY.get(suffix, _DECIMAL.get(suffix, 1))


def node_spec(node: Mapping[str, Any], settings: InventorySettings) -> NodeSpec | Skipped:
    """The fleet entry for one Node object (its JSON, as the API serves it)."""
    meta = node.get("metadata", {})
    name = str(meta.get("name", ""))
    labels: Mapping[str, str] = meta.get("labels") or {}
    missing = [k for k in (PRODUCT, COUNT, MEMORY) if k not in labels]
    if missing:
        return Skipped(name, "no GPU Feature Discovery label " + ", ".join(missing))
    try:
        gpus = int(labels[COUNT])
        gpu_mem = int(labels[MEMORY])
    except ValueError:
        return Skipped(name, f"{COUNT}={labels[COUNT]!r} or {MEMORY}={labels[MEMORY]!r} is not an integer")  # fmt: skip
    if gpus < 1 or gpu_mem < 1:
        return Skipped(name, f"{COUNT}={gpus} and {MEMORY}={gpu_mem} must be >= 1")
    model = model_name(labels[PRODUCT], settings.models)
    pod = settings.worker_pod.get(model)
    if pod is not None:
        cpus, memory_mib = pod.cpus, int(pod.memory_gib * 1024)
    else:
        alloc = node.get("status", {}).get("allocatable") or {}
        try:
            cpus = int(quantity(str(alloc["cpu"])))
            memory_mib = int(quantity(str(alloc["memory"])) // 2**20)
        except (KeyError, ValueError) as e:
            return Skipped(name, f"no worker_pod size for {model} and no usable allocatable: {e}")
    if cpus < 1 or memory_mib < 1:
        return Skipped(name, f"{cpus} CPUs and {memory_mib} MiB is too small for a worker pod")
    topo = [
        ("rack", labels.get(settings.rack_label, "")),
        ("zone", labels.get(settings.zone_label, "")),
        (REGION_LABEL, labels.get(REGION_LABEL, "")),
    ]
    return NodeSpec(
        name=name,
        gpus=gpus,
        gpu_model=model,
        gpu_memory_mib=gpu_mem,
        cpus=cpus,
        memory_mib=memory_mib,
        nvlink_domains=settings.nvlink_domains.get(model, 1),
        labels=tuple(sorted((k, v) for k, v in topo if v)),
    )


def fleet_from_nodes(
    nodes: Iterable[Mapping[str, Any]], settings: InventorySettings
) -> tuple[list[NodeSpec], list[Skipped]]:
    """The fleet (sorted by name) and the nodes left out, with why."""
    specs: list[NodeSpec] = []
    skipped: list[Skipped] = []
    for node in nodes:
        got = node_spec(node, settings)
        (skipped if isinstance(got, Skipped) else specs).append(got)  # type: ignore[arg-type]
    return sorted(specs, key=lambda s: s.name), sorted(skipped, key=lambda s: s.node)


def fleet_document(specs: Iterable[NodeSpec]) -> dict[str, Any]:
    """The fleet in the fleet-file format (``scheduler.runtime.config``), for
    ``gpuyard k8s inventory`` and for ``gpuyard up --fleet``."""
    return {
        "nodes": [
            {
                "name": s.name,
                "gpus": s.gpus,
                "gpu_model": s.gpu_model,
                "gpu_memory_gib": s.gpu_memory_mib / 1024,  # exact: a power-of-two divisor
                "cpus": s.cpus,
                "memory_gib": s.memory_mib / 1024,
                "nvlink_domains": s.nvlink_domains,
                "labels": dict(s.labels),
            }
            for s in specs
        ]
    }
