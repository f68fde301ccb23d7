"""A plan's fleet as the scheduling core's nodes: installed systems per site-quarter, then nodes.

1. Installed systems (planner/README.md, constraint (1)): in quarter index t, SKU k at site s
   has inst[k,s,t] = I0[k,s,t] + sum of buy[k,s,tau] over orders with
   tau + lead_k <= t < tau + lead_k + life_k, where I0[k,s,t] counts the scenario's
   ``installed:`` entries with delivered <= t < delivered + life_k (:func:`installed_systems`,
   the planner's ``installed.csv``). Orders come from a plan's ``purchases.csv``
   (:func:`read_purchases`).
2. Node shapes (:class:`NodeShape`): per SKU, GPUs per node, CPU, memory, GPU memory, NVLink
   domain size and nodes per system; built in for the scenario SKUs (:data:`DEFAULT_SHAPES`,
   sources in the comments), a generic shape by ``gpus_per_system`` for any other SKU, and the
   scenario's ``simulation.node_shapes`` over both (:func:`node_shapes`).
3. Nodes of one site-quarter (:func:`site_nodes`), optionally a proportional slice of at most
   about ``max_gpus`` GPUs of each GPU model, with rack, region and site labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from planner.inputs import Scenario, Site, Sku, parse_quarter
from scheduler.core.model import REGION_LABEL, Gpu, Node
from simulations.plan_sim.settings import SimulationSettings
from simulations.traces.csvrows import read_rows
from simulations.traces.errors import TraceError

SITE_LABEL = "gpuyard.io/site"
RACK_LABEL = "rack"
PURCHASE_COLUMNS = ("quarter", "site", "sku", "systems", "gpus")
GIB_MIB = 1024
TIB_MIB = 1024 * 1024

SystemsBySiteQuarter = dict[tuple[str, int], dict[str, int]]


class PlanFileError(TraceError):
    """A bad row of a plan file: ``file:line``, the column, the value and what is allowed
    (line 0: the file itself, e.g. missing)."""

    def __init__(self, path: str, line: int, column: str, value: str, allowed: str) -> None:
        super().__init__(path, line, column, value, allowed)
        if line == 0:
            self.args = (f"{path}: {value!r} is not allowed ({allowed})",)


@dataclass(frozen=True, slots=True)
class Purchase:
    """One row of ``purchases.csv``: ``systems`` of ``sku`` ordered for ``site`` in quarter
    index ``quarter`` (delivered ``lead_time_quarters`` later)."""

    quarter: int
    site: str
    sku: str
    systems: int


def read_purchases(path: str | Path, scenario: Scenario) -> tuple[Purchase, ...]:
    """The rows of a plan's ``purchases.csv`` (``quarter,site,sku,systems,gpus``), checked
    against the scenario: a quarter label of its horizon, a known site and SKU, a whole
    number of systems >= 0, ``gpus == systems * gpus_per_system``, each (quarter, site, SKU)
    once. Raises :class:`PlanFileError` naming ``file:line``, the column and the value."""
    p = Path(path)
    if not p.is_file():
        how = "an existing file: gpuyard plan SCENARIO --out DIR writes DIR/purchases.csv"
        raise PlanFileError(str(p), 0, "*", str(p), how)
    h = scenario.horizon
    sites = [s.name for s in scenario.sites]
    skus = {k.name: k for k in scenario.skus}
    out: list[Purchase] = []
    seen: dict[tuple[int, str, str], int] = {}
    try:
        rows = list(read_rows(p, PURCHASE_COLUMNS))
    except TraceError as e:  # a missing column or a short row
        raise PlanFileError(e.path, e.line, e.column, e.value, e.allowed) from None
    for line, row in rows:

        def bad(
            column: str, allowed: str, line: int = line, row: dict[str, str] = row
        ) -> PlanFileError:
            return PlanFileError(str(p), line, column, row[column].strip(), allowed)

        label, site, sku = (row[c].strip() for c in ("quarter", "site", "sku"))
        try:
            t = parse_quarter(label) - h.start
        except ValueError:
            raise bad("quarter", "a quarter like 2027Q1") from None
        if not 0 <= t < h.quarters:
            raise bad(
                "quarter", f"a quarter of the scenario's horizon {h.labels[0]}..{h.labels[-1]}"
            )
        if site not in sites:
            raise bad("site", "a site of the scenario: " + ", ".join(sites))
        if sku not in skus:
            raise bad("sku", "a SKU of the scenario: " + ", ".join(skus))
        systems, gpus = (_count(row[c]) for c in ("systems", "gpus"))
        if systems is None:
            raise bad("systems", "a whole number >= 0")
        per = skus[sku].gpus_per_system
        if gpus != systems * per:
            raise bad("gpus", f"systems x {per} GPUs per {sku} system = {systems * per}")
        if (t, site, sku) in seen:
            where = f"{label} {site} {sku} is on line {seen[(t, site, sku)]}"
            raise bad("sku", f"one row per quarter, site and SKU ({where})")
        seen[(t, site, sku)] = line
        out.append(Purchase(t, site, sku, systems))
    return tuple(out)


def _count(raw: str) -> int | None:
    """A whole number >= 0, or None."""
    try:
        v = int(raw.strip())
    except ValueError:
        return None
    return v if v >= 0 else None


def installed_systems(scenario: Scenario, purchases: Iterable[Purchase]) -> SystemsBySiteQuarter:
    """Systems installed per (site, quarter index t) per SKU, t in 0..quarters-1, by
    constraint (1) (see the module docstring): every site-quarter is a key; a SKU appears
    only with a positive count, in the scenario's SKU order. Equal to the planner's
    ``installed.csv`` for the plan whose purchases these are."""
    skus = {k.name: k for k in scenario.skus}
    T = scenario.horizon.quarters
    count: dict[tuple[str, int, str], int] = {}
    for s in scenario.sites:
        for i in s.installed:  # I0: delivered before the plan, alive for the SKU's life
            k = skus[i.sku]
            for t in range(max(0, i.delivered), min(T, i.delivered + k.lifetime_quarters)):
                count[(s.name, t, k.name)] = count.get((s.name, t, k.name), 0) + i.systems
    sites = {s.name for s in scenario.sites}
    for b in purchases:
        if b.site not in sites or b.sku not in skus:
            raise ValueError(f"{b}: site and SKU must be the scenario's ({scenario.name})")
        k = skus[b.sku]
        first = b.quarter + k.lead_time_quarters
        for t in range(max(0, first), min(T, first + k.lifetime_quarters)):
            count[(b.site, t, k.name)] = count.get((b.site, t, k.name), 0) + b.systems
    return {
        (s.name, t): {
            k.name: count[(s.name, t, k.name)]
            for k in scenario.skus
            if count.get((s.name, t, k.name), 0) > 0
        }
        for s in scenario.sites
        for t in range(T)
    }


@dataclass(frozen=True, slots=True)
class NodeShape:
    """One SKU's nodes. A system (the planner's unit of purchase) is ``nodes_per_system``
    nodes of ``gpus_per_node`` GPUs; GPUs of a node form NVLink domains of
    ``gpus_per_nvlink_domain`` GPUs. CPU and memory are per node."""

    gpus_per_node: int
    cpu_milli: int
    memory_mib: int
    gpu_memory_mib: int
    gpus_per_nvlink_domain: int
    nodes_per_system: int = 1

    @property
    def gpus_per_system(self) -> int:
        return self.gpus_per_node * self.nodes_per_system


# Built-in shapes. GPU memory from planner-facts.md section 3a (GB as GiB, the convention of
# simulations/traces/alibaba.py's GPU_MEMORY_MIB); CPU and host memory are NVIDIA's
# datasheet values, which the facts note does not carry: marked assumption.
DEFAULT_SHAPES: Mapping[str, NodeShape] = {
    # DGX H100: 8 x H100 SXM 80 GB [3a]; one NVSwitch domain of 8 GPUs [3a: 8-GPU HGX/DGX server]
    "H100": NodeShape(
        gpus_per_node=8,
        cpu_milli=112_000,  # assumption: 2 x Xeon Platinum 8480C, 2 x 56 cores (DGX H100 datasheet)
        memory_mib=2 * TIB_MIB,  # assumption: 2 TB system memory (DGX H100 datasheet)
        gpu_memory_mib=80 * GIB_MIB,  # 80 GB HBM3 [3a]
        gpus_per_nvlink_domain=8,
    ),
    # DGX H200: the DGX H100 chassis with H200 SXM 141 GB [3a]
    "H200": NodeShape(
        gpus_per_node=8,
        cpu_milli=112_000,  # assumption: as DGX H100
        memory_mib=2 * TIB_MIB,  # assumption: as DGX H100
        gpu_memory_mib=141 * GIB_MIB,  # 141 GB HBM3e [3a]
        gpus_per_nvlink_domain=8,
    ),
    # H20 8-GPU HGX module [3a]
    "H20": NodeShape(
        gpus_per_node=8,
        cpu_milli=112_000,  # assumption: an HGX server with DGX H100-class CPUs
        memory_mib=2 * TIB_MIB,  # assumption: as DGX H100
        gpu_memory_mib=96 * GIB_MIB,  # 96 GB HBM3 [3a]
        gpus_per_nvlink_domain=8,
    ),
    # DGX B200: 8 x B200 [3a]
    "B200": NodeShape(
        gpus_per_node=8,
        cpu_milli=112_000,  # assumption: 2 x Xeon Platinum 8570, 2 x 56 cores (DGX B200 datasheet)
        memory_mib=2 * TIB_MIB,  # assumption: 2 TB (DGX B200 datasheet: 2 TB, up to 4 TB)
        gpu_memory_mib=180 * GIB_MIB,  # 180-192 GB HBM3e [3a]: the lower end
        gpus_per_nvlink_domain=8,
    ),
    # GB200 NVL72: one rack, 72 GPUs + 36 Grace CPUs [3a], built of 18 compute trays of
    # 4 GPUs + 2 Grace each (assumption: NVIDIA's GB200 NVL72 tray layout). The rack is one
    # 72-GPU NVLink domain, but the core's NVLink domain is per node: it is modelled as 18
    # nodes of 4 GPUs in one rack (same-rack gangs stand for the rack-wide domain).
    "GB200-NVL72": NodeShape(
        gpus_per_node=4,
        cpu_milli=144_000,  # assumption: 2 Grace x 72 Arm Neoverse V2 cores per tray
        memory_mib=960 * GIB_MIB,  # assumption: 2 x 480 GB LPDDR5X per tray
        gpu_memory_mib=186 * GIB_MIB,  # 186-192 GB per GPU [3a]: the lower end
        gpus_per_nvlink_domain=4,
        nodes_per_system=18,
    ),
}
GENERIC_CPU_MILLI_PER_GPU = 14_000  # assumption: DGX H100's 112 cores over 8 GPUs
GENERIC_MEMORY_MIB_PER_GPU = 256 * GIB_MIB  # assumption: DGX H100's 2 TB over 8 GPUs
GENERIC_GPU_MEMORY_MIB = 80 * GIB_MIB  # assumption: an H100-class GPU
GENERIC_MAX_GPUS_PER_NODE = 8  # assumption: HGX-style 8-GPU servers


def generic_shape(gpus_per_system: int) -> NodeShape:
    """A SKU without a built-in shape. A 72-GPU system (the planner's NVL72 rack) is laid out
    as GB200 NVL72 (18 trays of 4 GPUs, its tray CPU and memory); any other size is nodes of
    the largest divisor of ``gpus_per_system`` that is <= 8 GPUs (a system of <= 8 GPUs is
    one node), one NVLink domain per node, with DGX H100's CPU and memory per GPU."""
    if gpus_per_system < 1:
        raise ValueError(f"gpus_per_system must be >= 1, got {gpus_per_system}")
    if gpus_per_system == DEFAULT_SHAPES["GB200-NVL72"].gpus_per_system:
        return DEFAULT_SHAPES["GB200-NVL72"]
    per = max(d for d in range(1, GENERIC_MAX_GPUS_PER_NODE + 1) if gpus_per_system % d == 0)
    return NodeShape(
        gpus_per_node=per,
        cpu_milli=GENERIC_CPU_MILLI_PER_GPU * per,
        memory_mib=GENERIC_MEMORY_MIB_PER_GPU * per,
        gpu_memory_mib=GENERIC_GPU_MEMORY_MIB,
        gpus_per_nvlink_domain=per,
        nodes_per_system=gpus_per_system // per,
    )


def node_shapes(
    scenario: Scenario, settings: SimulationSettings | None = None
) -> dict[str, NodeShape]:
    """Every scenario SKU's shape: the built-in one if its name has one and its GPUs per
    system match, else the generic one; then the settings' ``node_shapes`` over it, field by
    field. ValueError (naming ``simulation.node_shapes.SKU``) when a shape's GPUs per node
    times nodes per system is not the SKU's ``gpus_per_system``, or its NVLink domain size
    does not divide its GPUs per node."""
    overrides = settings.node_shapes if settings is not None else {}
    out: dict[str, NodeShape] = {}
    for k in scenario.skus:
        base = DEFAULT_SHAPES.get(k.name)
        if base is None or base.gpus_per_system != k.gpus_per_system:
            base = generic_shape(k.gpus_per_system)
        over = overrides.get(k.name)
        if over is not None:
            given = {
                f.name: getattr(over, f.name)
                for f in fields(NodeShape)
                if getattr(over, f.name) is not None
            }
            values = {f.name: getattr(base, f.name) for f in fields(NodeShape)} | given
            base = NodeShape(**values)
        where = f"simulation.node_shapes.{k.name}"
        if base.gpus_per_system != k.gpus_per_system:
            raise ValueError(
                f"{scenario.source}: {where}: {base.gpus_per_node} GPUs per node x {base.nodes_per_system} nodes "
                f"per system is not allowed (SKU {k.name} has {k.gpus_per_system} GPUs per system)"
            )
        if base.gpus_per_node % base.gpus_per_nvlink_domain:
            raise ValueError(
                f"{scenario.source}: {where}.gpus_per_nvlink_domain: {base.gpus_per_nvlink_domain} is not allowed "
                f"(a divisor of gpus_per_node = {base.gpus_per_node})"
            )
        out[k.name] = base
    return out


def systems_per_rack(site: Site, sku: Sku, shape: NodeShape) -> int:
    """Systems sharing one rack: a liquid-cooled or multi-node system (a rack-scale system
    such as NVL72) is its own rack; air-cooled ones fill a rack up to the site's density,
    max(1, floor(rack_kw / it_kw_per_system)) (the planner's (6), at least one)."""
    if sku.liquid_cooled or shape.nodes_per_system > 1:
        return 1
    return max(1, int(site.rack_kw // sku.it_kw_per_system))


@dataclass(frozen=True, slots=True)
class SkuPool:
    """One SKU's part of a site's (sliced) fleet: what the job generator needs of it."""

    sku: str
    systems: int
    gpus: int
    eff_vs_h100: float
    gpus_per_node: int
    cpu_milli_per_node: int
    memory_mib_per_node: int

    @property
    def h100_capacity(self) -> float:
        """H100-equivalent GPUs: eff x GPUs."""
        return self.eff_vs_h100 * self.gpus


@dataclass(frozen=True, slots=True)
class SiteFleet:
    """The nodes of one site-quarter, or of a proportional slice of it.

    ``slice_fraction`` = GPUs in the slice / the site's GPUs; ``capacity_fraction`` the same
    in H100-equivalent GPUs (eff x GPUs). They differ when rounding to whole systems scales
    SKUs unevenly; demand scaled by ``capacity_fraction`` keeps the site's utilisation (load
    over H100-equivalent capacity) in the slice. Both are 1 for a whole site (or an empty
    one)."""

    site: str
    region: str
    t: int
    nodes: tuple[Node, ...]
    pools: tuple[SkuPool, ...]  # SKUs in the slice, in the scenario's SKU order
    systems_total: tuple[tuple[str, int], ...]  # the site's systems per SKU (before slicing)
    gpus_total: int
    gpus_in_slice: int
    slice_fraction: float
    capacity_fraction: float

    @property
    def sliced(self) -> bool:
        return self.gpus_in_slice < self.gpus_total


def site_nodes(
    scenario: Scenario,
    site: str,
    t: int,
    systems_by_sku: Mapping[str, int],
    shapes: Mapping[str, NodeShape] | None = None,
    max_gpus: int | None = None,
    seed: int | None = 0,
) -> SiteFleet:
    """The core's nodes of ``site`` in quarter index ``t`` holding ``systems_by_sku`` (e.g.
    ``installed_systems(...)[(site, t)]``); ``shapes`` default to :func:`node_shapes`.

    Nodes: SKU k's system j has ``nodes_per_system`` nodes named ``f"{site}-{k}-{i:05d}"``
    (i counts the SKU's nodes from 0), each with ``gpus_per_node`` GPUs of model k (GPU
    memory from the shape, NVLink domain = GPU index // ``gpus_per_nvlink_domain``), the
    shape's CPU and memory, and labels ``rack`` (``f"{site}-{k}-rack-{r:04d}"``, r = j //
    :func:`systems_per_rack`), ``gpuyard.io/region`` (the site's region) and
    ``gpuyard.io/site``. The list is a seeded permutation of that name order (``seed=None``:
    name order), so that the core's index-order tie-breaks favour no SKU or rack.

    Slice: a SKU of which the site has more than ``max_gpus`` GPUs keeps min(n_k, max(1,
    floor(max_gpus / GPUs per system))) of its n_k systems: every GPU model's pool is at
    most ``max_gpus`` GPUs (whole systems, at least one), each its own slice of the site.
    Jobs are pinned to one model, so the pools do not interact, and slicing each pool
    alike keeps a small model's pool from becoming a handful of GPUs beside a big one's (a
    site-wide fraction gave 418 H200 systems next to 6,608 H20 two systems in a 256-GPU
    slice, where gangs queued for hours while the site's 3,344 H200 would not). The job
    generator scales each model's demand by its pool's share of its capacity
    (``capacity_fraction`` overall, ``jobs.py`` (J1), (J5)). A slice is a conservative
    stand-in for the site: at the same utilisation a larger pool of servers waits less
    (pooling: more jobs finish per unit of time, so a freed GPU is found sooner), so the
    slice's queue waits are an upper bound on the site's. Gangs wider than their pool in
    the slice run narrower for longer (``jobs.py`` (J7)), and gangs near that width are
    harder to place than at the site: their waits are not representative."""
    sc_site = next((s for s in scenario.sites if s.name == site), None)
    if sc_site is None:
        raise ValueError(f"site {site!r} is not a site of scenario {scenario.name!r}")
    if shapes is None:
        shapes = node_shapes(scenario)
    if max_gpus is not None and max_gpus < 1:
        raise ValueError(f"max_gpus must be >= 1 or None, got {max_gpus}")
    skus = {k.name: k for k in scenario.skus}
    for name, n in systems_by_sku.items():
        if name not in skus:
            raise ValueError(
                f"site {site}: SKU {name!r} is not a SKU of scenario {scenario.name!r}"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"site {site}: systems of {name}: {n!r} is not a whole number >= 0")
    total = {
        k.name: systems_by_sku.get(k.name, 0)
        for k in scenario.skus
        if systems_by_sku.get(k.name, 0) > 0
    }
    gpus_total = sum(n * skus[k].gpus_per_system for k, n in total.items())
    kept = dict(total)
    if max_gpus is not None:
        kept = {k: min(n, max(1, max_gpus // skus[k].gpus_per_system)) for k, n in total.items()}
    nodes: list[Node] = []
    pools: list[SkuPool] = []
    for name, n in kept.items():
        k, shape = skus[name], shapes[name]
        gpus = tuple(
            Gpu(name, shape.gpu_memory_mib, nvlink_domain=g // shape.gpus_per_nvlink_domain)
            for g in range(shape.gpus_per_node)
        )
        per_rack = systems_per_rack(sc_site, k, shape)
        for j in range(n):
            rack = f"{site}-{name}-rack-{j // per_rack:04d}"
            labels = ((RACK_LABEL, rack), (REGION_LABEL, sc_site.region), (SITE_LABEL, site))
            for m in range(shape.nodes_per_system):
                i = j * shape.nodes_per_system + m
                nodes.append(
                    Node(f"{site}-{name}-{i:05d}", shape.cpu_milli, shape.memory_mib, gpus, labels)
                )
        pools.append(
            SkuPool(
                name,
                n,
                n * k.gpus_per_system,
                k.eff_vs_h100,
                shape.gpus_per_node,
                shape.cpu_milli,
                shape.memory_mib,
            )
        )
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(nodes))
        nodes = [nodes[i] for i in order]
    gpus_in_slice = sum(p.gpus for p in pools)
    cap_total = sum(skus[k].eff_vs_h100 * n * skus[k].gpus_per_system for k, n in total.items())
    cap_slice = sum(p.h100_capacity for p in pools)
    return SiteFleet(
        site=site,
        region=sc_site.region,
        t=t,
        nodes=tuple(nodes),
        pools=tuple(pools),
        systems_total=tuple(total.items()),
        gpus_total=gpus_total,
        gpus_in_slice=gpus_in_slice,
        slice_fraction=gpus_in_slice / gpus_total if gpus_total else 1.0,
        capacity_fraction=cap_slice / cap_total if cap_total else 1.0,
    )
