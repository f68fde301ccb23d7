"""Seeded synthetic workloads for the packing replay: a fleet and a pod list, in the same
in-memory form as Alibaba's trace (``list[Node]``, ``list[TracePod]``, see
``simulations.traces.alibaba``), so :func:`simulations.packing.replay` runs them unchanged, and
writable as the trace's CSV files (:func:`write_mix`) for ``gpuyard simulate packing``.

A :class:`MixSpec` describes a mix; :func:`generate` turns it into a :class:`Mix`:

1. Fleet: node counts per GPU count by largest remainder of ``node_sizes`` (the largest size
   keeps at least one node, so every gang size the spec allows has a node); per size, model
   counts by largest remainder of that size's model shares. A node of ``g`` GPUs has
   ``g * cpu_per_gpu_milli`` CPU and ``g * memory_per_gpu_mib`` memory. Nodes are shuffled,
   then named in order.
2. Pod classes: the pod count (``pods``, or enough to ask for ``demand_pct`` % of the fleet's
   GPUs) is split exactly (largest remainder, no sampling noise) into CPU-only pods, multi-GPU
   ("gang") pods by size, GPU-sharing pods by fraction and whole one-GPU pods, so that gangs
   carry ``gang_share`` of the GPU demand; then shuffled.
3. Pins: exactly ``round(pinned_share * GPU pods)`` GPU pods, drawn uniformly, are pinned to one
   model. A pod of ``k`` GPUs is pinned only to a model that some node of ``>= k`` GPUs has,
   drawn in proportion to ``pin_models``' weights, or (empty, or none of them eligible) to
   the GPUs each eligible model has on such nodes.
4. CPU and memory: a pod asking for ``e`` GPUs (``num_gpu * gpu_milli / 1000``; a CPU-only
   pod: ``e`` drawn from :data:`CPU_ONLY_GPU_EQUIV`) asks for ``pressure * e * per_gpu *
   spread`` of each, ``spread`` drawn from :data:`SPREAD` (mean 1) separately for CPU and
   memory, rounded to whole cores and GiB (at least one), and capped at the largest node
   that can hold the pod (GPU count and pin), so that no pod is larger than every node it
   may use.

The same spec (its ``seed`` included) gives the same mix and byte-identical CSV files.
:func:`families` lists the named mixes the ``gpuyard simulate mixes`` harness runs.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, Gpu, Node
from simulations.traces.alibaba import (
    GPU_MEMORY_MIB,
    MAX_GPUS_PER_NODE,
    NODE_COLUMNS,
    POD_COLUMNS,
    POD_OPTIONAL,
    TracePod,
)

Weights = tuple[tuple[int, float], ...]  # (value, weight): GPU counts, sizes or milli-GPU
ModelWeights = tuple[tuple[str, float], ...]  # (GPU model, weight)

SPREAD = (0.5, 1.0, 1.5)  # per-pod multiplier of the CPU / memory a pod asks for (mean 1)
CPU_ONLY_GPU_EQUIV = (0.25, 0.5, 1.0)  # a CPU-only pod asks for the CPU of this many GPUs
CPU_QUANTUM_MILLI = 1000  # pods ask for whole cores ...
MEMORY_QUANTUM_MIB = 1024  # ... and whole GiB
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _models(per_size: dict[int, dict[str, float]]) -> tuple[tuple[int, ModelWeights], ...]:
    return tuple((g, tuple(m.items())) for g, m in per_size.items())


HETERO_SIZES: Weights = ((8, 0.25), (4, 0.25), (2, 0.25), (1, 0.25))
HETERO_MODELS = _models(
    {
        8: {"H800": 0.4, "A100": 0.4, "H20": 0.2},
        4: {"A100": 0.5, "L40S": 0.5},
        2: {"L40S": 0.5, "T4": 0.5},
        1: {"T4": 0.6, "A10": 0.4},
    }
)
GANGS_2_TO_8: Weights = ((2, 0.3), (3, 0.05), (4, 0.3), (6, 0.05), (8, 0.3))


@dataclass(frozen=True, slots=True)
class MixSpec:
    """A synthetic mix. The defaults are the issue's hard case: a heterogeneous fleet of 8-,
    4-, 2- and 1-GPU nodes of five models, multi-GPU pods of 2-8 GPUs carrying 70 % of the GPU
    demand, a fifth of the GPU pods pinned to one model. Weights need not sum to 1 (they are
    normalised); shares are fractions in [0, 1]."""

    name: str
    description: str = ""
    seed: int = 0  # the generator's seed (the harness sets it to the replay's seed)
    # -- fleet ------------------------------------------------------------------------------
    nodes: int = 400  # GPU nodes in the fleet
    node_sizes: Weights = HETERO_SIZES  # (GPUs per node, share of the nodes)
    models: tuple[tuple[int, ModelWeights], ...] = HETERO_MODELS  # per node size: model shares
    cpu_per_gpu_milli: int = 16_000  # node CPU = GPUs x this (an 8-GPU node: 128 cores)
    memory_per_gpu_mib: int = 131_072  # node memory = GPUs x this (an 8-GPU node: 1 TiB)
    # -- pods -------------------------------------------------------------------------------
    gang_share: float = 0.7  # fraction of the GPU demand (milli-GPU) from multi-GPU pods
    gang_sizes: Weights = GANGS_2_TO_8  # (GPUs, share of the multi-GPU pods), sizes 2..64
    sharing_share: float = 0.3  # fraction of the one-GPU pods that share a GPU
    sharing_milli: Weights = ((250, 0.5), (500, 0.5))  # (milli-GPU, share of sharing pods)
    pinned_share: float = 0.2  # fraction of GPU pods pinned to one GPU model
    pin_models: ModelWeights = ()  # where pins go; empty: in proportion to the models' GPUs
    cpu_only_share: float = 0.05  # fraction of the pods that ask for no GPU
    cpu_pressure: float = 0.5  # CPU per requested GPU / the nodes' CPU per GPU (mean)
    memory_pressure: float = 0.5  # memory per requested GPU / the nodes' memory per GPU (mean)
    demand_pct: float = 130.0  # the pod list asks for this % of the fleet's GPUs ...
    pods: int = 0  # ... unless this is > 0: exactly this many pods

    def __post_init__(self) -> None:
        def bad(fieldname: str, value: object, allowed: str) -> ValueError:
            return _bad(self.name, fieldname, value, allowed)

        if not _NAME.match(self.name):
            raise bad("name", self.name, "letters, digits, '_', '-', '.'")
        if self.nodes < 1:
            raise bad("nodes", self.nodes, "at least 1")
        _check_weights(self.name, "node_sizes", self.node_sizes, 1, MAX_GPUS_PER_NODE)
        models = dict(self.models)
        if len(models) != len(self.models):
            raise bad("models", self.models, "one entry per node size")
        for g, w in self.node_sizes:
            if w > 0 and g not in models:
                raise bad("models", self.models, f"model shares for the {g}-GPU nodes")
        for g, ms in models.items():
            names = [m for m, _ in ms]
            if not ms or len(set(names)) != len(names) or any(w <= 0 for _, w in ms):
                raise bad(f"models[{g}]", ms, "distinct models with weights > 0")
            for m in names:
                if not _NAME.match(m):
                    raise bad(f"models[{g}]", m, "a model name without '|' or ','")
        for f in ("cpu_per_gpu_milli", "memory_per_gpu_mib"):
            if getattr(self, f) < 1:
                raise bad(f, getattr(self, f), "at least 1")
        for f in ("gang_share", "sharing_share", "pinned_share"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise bad(f, getattr(self, f), "a fraction in 0..1")
        if not 0.0 <= self.cpu_only_share < 1.0:
            raise bad("cpu_only_share", self.cpu_only_share, "a fraction in 0..1, below 1")
        largest = max(g for g, w in self.node_sizes if w > 0)
        if self.gang_share > 0:
            _check_weights(self.name, "gang_sizes", self.gang_sizes, 2, largest)
        if self.sharing_share > 0:
            _check_weights(self.name, "sharing_milli", self.sharing_milli, 1, MILLI_PER_GPU - 1)
        fleet_models = {m for g, w in self.node_sizes if w > 0 for m, _ in models[g]}
        for m, w in self.pin_models:
            if m not in fleet_models or w <= 0:
                raise bad("pin_models", self.pin_models, "models of the fleet with weights > 0")
        for f in ("cpu_pressure", "memory_pressure", "demand_pct"):
            if not getattr(self, f) > 0:
                raise bad(f, getattr(self, f), "a number > 0")
        if self.pods < 0:
            raise bad("pods", self.pods, "0 (from demand_pct) or a pod count")

    @property
    def size_models(self) -> dict[int, ModelWeights]:
        """Model shares by node size."""
        return dict(self.models)

    @property
    def gang_probability(self) -> float:
        """The share of GPU pods that are multi-GPU, so that they carry ``gang_share`` of the
        GPU demand: ``q = g d1 / (g d1 + (1 - g) dg)`` with ``d1``, ``dg`` the mean demand of a
        one-GPU pod and of a multi-GPU pod."""
        g = self.gang_share
        if g <= 0:
            return 0.0
        if g >= 1:
            return 1.0
        s = self.sharing_share
        d1 = s * _mean(self.sharing_milli) + (1 - s) * 1000 if s > 0 else 1000.0
        dg = _mean(self.gang_sizes) * 1000
        return g * d1 / (g * d1 + (1 - g) * dg)


def _bad(mix: str, fieldname: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"mix {mix!r}: {fieldname}={value!r} is not allowed ({allowed})")


def _check_weights(mix: str, name: str, ws: Weights, lo: int, hi: int) -> None:
    values = [v for v, _ in ws]
    if (
        not ws
        or len(set(values)) != len(values)
        or any(not lo <= v <= hi for v in values)
        or any(w < 0 for _, w in ws)
        or sum(w for _, w in ws) <= 0
    ):
        raise _bad(mix, name, ws, f"distinct values in {lo}..{hi} with weights >= 0, not all 0")


def _mean(ws: Weights) -> float:
    total = sum(w for _, w in ws)
    return sum(v * w for v, w in ws) / total


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder; ties go
    to the earlier entry)."""
    w = np.asarray(weights, dtype=np.float64)
    raw = w / w.sum() * total
    base = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - base), kind="stable")
    base[order[: total - int(base.sum())]] += 1
    return [int(x) for x in base]


@dataclass(frozen=True, slots=True)
class Mix:
    """A generated mix: the fleet and the pod list, in the trace loaders' form."""

    spec: MixSpec
    nodes: tuple[Node, ...]
    pods: tuple[TracePod, ...]

    @property
    def total_gpus(self) -> int:
        return sum(len(n.gpus) for n in self.nodes)


def generate(spec: MixSpec) -> Mix:
    """The mix ``spec`` describes, drawn with ``spec.seed`` (steps 1-4 of the module doc)."""
    rng = np.random.default_rng(spec.seed)
    nodes = _fleet(spec, rng)
    shapes = _pod_shapes(spec, sum(len(n.gpus) for n in nodes), rng)
    pins = _pins(spec, nodes, shapes, rng)
    pods = _sized_pods(spec, nodes, shapes, pins, rng)
    return Mix(spec, tuple(nodes), tuple(pods))


def _fleet(spec: MixSpec, rng: np.random.Generator) -> list[Node]:
    """Step 1."""
    sizes = [g for g, _ in spec.node_sizes]
    counts = apportion(spec.nodes, [w for _, w in spec.node_sizes])
    big = sizes.index(max(g for g, w in spec.node_sizes if w > 0))
    if counts[big] == 0:  # keep one node of the largest size: every allowed gang has a node
        counts[int(np.argmax(counts))] -= 1
        counts[big] = 1
    kinds: list[tuple[int, str]] = []
    for g, n in zip(sizes, counts, strict=True):
        if n == 0:
            continue
        ms = spec.size_models[g]
        for (model, _), k in zip(ms, apportion(n, [w for _, w in ms]), strict=True):
            kinds += [(g, model)] * k
    order = rng.permutation(len(kinds))
    width = max(4, len(str(len(kinds))))
    nodes = []
    for i, j in enumerate(order):
        g, model = kinds[int(j)]
        gpu = Gpu(model=model, memory_mib=GPU_MEMORY_MIB.get(model, 0))
        nodes.append(
            Node(
                name=f"{spec.name}-n{i:0{width}d}",
                cpu_milli=g * spec.cpu_per_gpu_milli,
                memory_mib=g * spec.memory_per_gpu_mib,
                gpus=(gpu,) * g,
            )
        )
    return nodes


def _pod_shapes(spec: MixSpec, total_gpus: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Step 2: ``(num_gpu, gpu_milli)`` per pod, in arrival-file order."""
    q = spec.gang_probability
    s = spec.sharing_share
    c = spec.cpu_only_share
    n = spec.pods
    if n == 0:  # expected GPU milli per pod, from the class shares
        d1 = s * _mean(spec.sharing_milli) + (1 - s) * 1000 if s > 0 else 1000.0
        dg = _mean(spec.gang_sizes) * 1000 if q > 0 else 0.0
        per_pod = (1 - c) * (q * dg + (1 - q) * d1)
        n = max(1, math.ceil(spec.demand_pct / 100 * total_gpus * 1000 / per_pod))
    n_cpu = min(round(n * c), n - 1)
    n_gpu = n - n_cpu
    n_gang = round(n_gpu * q)
    n_one = n_gpu - n_gang
    n_share = round(n_one * s)
    shapes: list[tuple[int, int]] = [(0, 0)] * n_cpu
    if n_gang:
        for (g, _), k in zip(spec.gang_sizes, _split(n_gang, spec.gang_sizes), strict=True):
            shapes += [(g, MILLI_PER_GPU)] * k
    if n_share:
        for (m, _), k in zip(spec.sharing_milli, _split(n_share, spec.sharing_milli), strict=True):
            shapes += [(1, m)] * k
    shapes += [(1, MILLI_PER_GPU)] * (n_one - n_share)
    return [shapes[int(i)] for i in rng.permutation(len(shapes))]


def _split(total: int, ws: Weights) -> list[int]:
    return apportion(total, [w for _, w in ws])


def _pins(
    spec: MixSpec,
    nodes: Sequence[Node],
    shapes: Sequence[tuple[int, int]],
    rng: np.random.Generator,
) -> list[str]:
    """Step 3: the model each pod is pinned to ('' = any)."""
    gpu_pods = [i for i, (g, _) in enumerate(shapes) if g > 0]
    pins = [""] * len(shapes)
    k = round(len(gpu_pods) * spec.pinned_share)
    if k == 0:
        return pins
    chosen = sorted(int(i) for i in rng.choice(len(gpu_pods), size=k, replace=False))
    models = sorted({n.gpus[0].model for n in nodes})
    cap = np.zeros((len(models), MAX_GPUS_PER_NODE + 1))  # GPUs of model m on nodes of size g
    for n in nodes:
        cap[models.index(n.gpus[0].model), len(n.gpus)] += len(n.gpus)
    prefer = dict(spec.pin_models)
    weights: dict[int, np.ndarray] = {}
    for i in chosen:
        g = shapes[gpu_pods[i]][0]
        if g not in weights:
            usable = cap[:, g:].sum(axis=1)  # GPUs on nodes large enough for the pod
            w = np.array(
                [prefer.get(m, 0.0) if usable[j] > 0 else 0.0 for j, m in enumerate(models)]
            )
            weights[g] = w if w.sum() > 0 else usable
        w = weights[g]
        pins[gpu_pods[i]] = models[int(rng.choice(len(models), p=w / w.sum()))]
    return pins


def _sized_pods(
    spec: MixSpec,
    nodes: Sequence[Node],
    shapes: Sequence[tuple[int, int]],
    pins: Sequence[str],
    rng: np.random.Generator,
) -> list[TracePod]:
    """Step 4: CPU and memory per pod, capped by the largest node that can hold it."""
    largest: dict[tuple[str, int], int] = {}  # (model or '', GPUs asked) -> most GPUs of a node
    for n in nodes:
        g, m = len(n.gpus), n.gpus[0].model
        for key in ((m, g), ("", g)):
            largest[key] = max(largest.get(key, 0), g)
    sizes = sorted({g for _, g in largest})

    def biggest(model: str, asked: int) -> int:
        return max(largest.get((model, g), 0) for g in sizes if g >= asked)

    spread = np.array(SPREAD)
    cpu_m = spread[rng.integers(len(SPREAD), size=len(shapes))]
    mem_m = spread[rng.integers(len(SPREAD), size=len(shapes))]
    equiv_cpu_only = np.array(CPU_ONLY_GPU_EQUIV)[
        rng.integers(len(CPU_ONLY_GPU_EQUIV), size=len(shapes))
    ]
    width = max(5, len(str(len(shapes))))
    pods = []
    for i, ((num, milli), pin) in enumerate(zip(shapes, pins, strict=True)):
        e = num * milli / MILLI_PER_GPU if num else float(equiv_cpu_only[i])
        host = biggest(pin, max(num, 1))
        cpu = _quantize(
            spec.cpu_pressure * e * spec.cpu_per_gpu_milli * cpu_m[i], CPU_QUANTUM_MILLI
        )
        mem = _quantize(
            spec.memory_pressure * e * spec.memory_per_gpu_mib * mem_m[i], MEMORY_QUANTUM_MIB
        )
        pods.append(
            TracePod(
                name=f"{spec.name}-p{i:0{width}d}",
                cpu_milli=min(cpu, host * spec.cpu_per_gpu_milli),
                memory_mib=min(mem, host * spec.memory_per_gpu_mib),
                num_gpu=num,
                gpu_milli=milli,
                gpu_spec=(pin,) if pin else (),
            )
        )
    return pods


def _quantize(x: float, quantum: int) -> int:
    return max(quantum, math.floor(x / quantum + 0.5) * quantum)


def write_mix(mix: Mix, out: Path, stem: str | None = None) -> tuple[Path, Path]:
    """Write ``STEM_nodes.csv`` (``openb_node_list_gpu_node.csv`` format) and ``STEM_pods.csv``
    (``openb_pod_list_*.csv`` format, optional columns empty) under ``out``; ``STEM`` defaults
    to ``NAME_sSEED``. Returns their paths (nodes, pods)."""
    stem = stem or f"{mix.spec.name}_s{mix.spec.seed}"
    out.mkdir(parents=True, exist_ok=True)
    nodes_csv, pods_csv = out / f"{stem}_nodes.csv", out / f"{stem}_pods.csv"
    with nodes_csv.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(NODE_COLUMNS)
        for n in mix.nodes:
            w.writerow([n.name, n.cpu_milli, n.memory_mib, len(n.gpus), n.gpus[0].model])
    with pods_csv.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(POD_COLUMNS + POD_OPTIONAL)
        blank = [""] * len(POD_OPTIONAL[1:])
        for p in mix.pods:
            w.writerow(
                [
                    p.name,
                    p.cpu_milli,
                    p.memory_mib,
                    p.num_gpu,
                    p.gpu_milli,
                    "|".join(p.gpu_spec),
                    *blank,
                ]
            )
    return nodes_csv, pods_csv


def families(seed: int = 0) -> list[MixSpec]:
    """The named mixes, each with generator seed ``seed``, in a fixed order."""
    return [replace(s, seed=seed) for s in _FAMILIES]


def family(name: str, seed: int = 0) -> MixSpec:
    for s in _FAMILIES:
        if s.name == name:
            return replace(s, seed=seed)
    raise ValueError(f"unknown mix {name!r}; known: {', '.join(s.name for s in _FAMILIES)}")


ALIBABA_SIZES: Weights = ((8, 0.509), (4, 0.045), (2, 0.427), (1, 0.02))  # 617/54/518/24 nodes
ALIBABA_MODELS = _models(
    {
        8: {"G2": 0.9, "V100M32": 0.05, "G3": 0.05},
        4: {"V100M16": 0.5, "G3": 0.5},
        2: {"T4": 0.55, "P100": 0.25, "V100M16": 0.2},
        1: {"T4": 0.6, "A10": 0.4},
    }
)
# the default trace's sharing fractions (those above 0.5 % of its sharing pods), by share
ALIBABA_SHARING: Weights = ((810, 0.35), (470, 0.244), (320, 0.107), (650, 0.082), (230, 0.045),
                            (460, 0.042), (590, 0.024), (160, 0.024), (550, 0.023), (220, 0.02),
                            (370, 0.015), (110, 0.008))  # fmt: skip
ALIBABA = MixSpec(
    name="alibaba_like",
    description="Alibaba-like: mostly 8- and 2-GPU nodes, one-GPU pods, 44 % of them sharing "
    "(the trace's fractions), 7 % of demand in 2/4/8-GPU pods, no pins",
    nodes=600,
    node_sizes=ALIBABA_SIZES,
    models=ALIBABA_MODELS,
    cpu_per_gpu_milli=12_000,
    memory_per_gpu_mib=98_304,
    gang_share=0.07,
    gang_sizes=((2, 0.21), (4, 0.2), (8, 0.59)),
    sharing_share=0.44,
    sharing_milli=ALIBABA_SHARING,
    pinned_share=0.0,
    cpu_only_share=0.13,
    cpu_pressure=0.8,
)
HARD = MixSpec(
    name="hard_case",
    description="the issue's case: 8/4/2/1-GPU nodes of 5 models, gangs 2-8 carry 70 % of GPU demand, 20 % pinned",
)
ONE_MODEL_8 = _models({8: {"H800": 1.0}})
MANY_MODELS = _models(
    {
        8: {"H800": 0.4, "H20": 0.3, "A100": 0.3},
        4: {"A100": 0.4, "L40S": 0.3, "V100M32": 0.3},
        2: {"L40S": 0.4, "A10": 0.3, "T4": 0.3},
        1: {"T4": 0.4, "A10": 0.3, "P100": 0.3},
    }
)

_FAMILIES: tuple[MixSpec, ...] = (
    ALIBABA,
    replace(
        ALIBABA,
        name="alibaba_like_gangs",
        description="Alibaba-like fleet, multi-GPU pods carry half the GPU demand",
        gang_share=0.5,
    ),
    replace(
        ALIBABA,
        name="alibaba_like_pinned",
        description="Alibaba-like, a fifth of the GPU pods pinned to one model (as gpuspec20)",
        pinned_share=0.2,
    ),
    replace(
        ALIBABA,
        name="alibaba_like_large",
        description="Alibaba-like at 2000 nodes",
        nodes=2000,
    ),
    HARD,
    replace(
        HARD,
        name="hard_unpinned",
        description="the hard case without pins",
        pinned_share=0.0,
    ),
    replace(
        HARD,
        name="hard_no_sharing",
        description="the hard case without GPU-sharing pods",
        sharing_share=0.0,
    ),
    replace(
        HARD,
        name="gang_heavy",
        description="heterogeneous fleet, gangs 2-8 carry 90 % of GPU demand",
        gang_share=0.9,
    ),
    replace(
        HARD,
        name="whole_node_gangs",
        description="one-model 8-GPU fleet, 8-GPU (whole-node) gangs carry 80 % of GPU demand",
        node_sizes=((8, 1.0),),
        models=ONE_MODEL_8,
        gang_share=0.8,
        gang_sizes=((8, 1.0),),
        pinned_share=0.0,
    ),
    replace(
        HARD,
        name="whole_node_gangs_hetero",
        description="heterogeneous fleet, gangs of 8/4/2 (a whole node each) carry 80 % of GPU demand",
        gang_share=0.8,
        gang_sizes=((8, 0.34), (4, 0.33), (2, 0.33)),
    ),
    replace(
        HARD,
        name="odd_gangs",
        description="heterogeneous fleet, gangs of 3, 5, 6, 7 GPUs (awkward holes) carry 70 %",
        gang_sizes=((3, 0.3), (5, 0.3), (6, 0.2), (7, 0.2)),
    ),
    replace(
        HARD,
        name="scarce_big_nodes",
        description="8-GPU nodes are 10 % of the nodes, yet 30 % of the gangs ask for 8 GPUs",
        node_sizes=((8, 0.1), (4, 0.3), (2, 0.3), (1, 0.3)),
        gang_share=0.6,
        gang_sizes=((2, 0.35), (4, 0.35), (8, 0.3)),
    ),
    replace(
        HARD,
        name="sharing_heavy",
        description="heterogeneous fleet, 80 % of one-GPU pods share a GPU, gangs 20 % of demand",
        gang_share=0.2,
        sharing_share=0.8,
        sharing_milli=((250, 0.4), (500, 0.4), (750, 0.2)),
    ),
    replace(
        HARD,
        name="sharing_fine",
        description="one-model 8-GPU fleet, no gangs, 90 % of pods share a GPU in fractions 0.1-0.9",
        node_sizes=((8, 1.0),),
        models=ONE_MODEL_8,
        gang_share=0.0,
        sharing_share=0.9,
        sharing_milli=tuple((m, 1.0) for m in range(100, 1000, 100)),
        pinned_share=0.0,
    ),
    replace(
        HARD,
        name="cpu_bound",
        description="the hard case with pods asking 1.3x the nodes' CPU per GPU",
        cpu_pressure=1.3,
    ),
    replace(
        HARD,
        name="memory_bound",
        description="the hard case with pods asking 1.3x the nodes' memory per GPU",
        memory_pressure=1.3,
    ),
    replace(
        HARD,
        name="cpu_only_heavy",
        description="the hard case plus 40 % CPU-only pods at 0.8x CPU pressure",
        cpu_only_share=0.4,
        cpu_pressure=0.8,
    ),
    replace(
        HARD,
        name="single_model",
        description="one-model 8-GPU fleet (H800), the hard case's pods",
        node_sizes=((8, 1.0),),
        models=ONE_MODEL_8,
        pinned_share=0.0,
    ),
    replace(
        HARD,
        name="single_model_hetero",
        description="one model (A100) on 8/4/2/1-GPU nodes, the hard case's pods",
        models=_models({8: {"A100": 1.0}, 4: {"A100": 1.0}, 2: {"A100": 1.0}, 1: {"A100": 1.0}}),
        pinned_share=0.0,
    ),
    replace(
        HARD,
        name="many_models",
        description="8 models over 8/4/2/1-GPU nodes, the hard case's pods",
        models=MANY_MODELS,
    ),
    replace(
        HARD,
        name="pinned_heavy",
        description="the hard case with 60 % of GPU pods pinned to one model",
        pinned_share=0.6,
    ),
    replace(
        HARD,
        name="pinned_scarce",
        description="the hard case, 10 % of GPU pods all pinned to H20 (11 % of the GPUs)",
        pinned_share=0.1,
        pin_models=(("H20", 1.0),),
    ),
    replace(
        HARD,
        name="small_nodes",
        description="4/2/1-GPU nodes only, gangs of 2 and 4 carry 60 % of GPU demand",
        node_sizes=((4, 0.3), (2, 0.4), (1, 0.3)),
        gang_share=0.6,
        gang_sizes=((2, 0.6), (4, 0.4)),
    ),
    replace(
        HARD,
        name="single_gpu_only",
        description="heterogeneous fleet, whole one-GPU pods only (a sanity baseline)",
        gang_share=0.0,
        sharing_share=0.0,
        pinned_share=0.0,
    ),
    replace(HARD, name="small_fleet", description="the hard case on 64 nodes", nodes=64),
    replace(HARD, name="large_fleet", description="the hard case on 2000 nodes", nodes=2000),
)


# ------------------------------------------------------------------ drawn (random) mix specs
_DRAW_MODELS = ("H800", "H20", "A100", "L40S", "V100M32", "A10", "T4", "P100")
_DRAW_SIZES = (8, 4, 2, 1)


def drawn_spec(seed: int, index: int) -> MixSpec:
    """One mix spec drawn at random (seeded by ``(seed, index)``) over every axis the named
    families vary one at a time: node sizes and their shares, 1-3 GPU models per size, CPU
    and memory per GPU, gang share and gang sizes (up to the largest node), sharing share and
    fractions, pinned share (and sometimes a preferred pin model), CPU-only share, CPU and
    memory pressure and fleet size. Named ``drawnSEED_INDEX``. Used to validate policies on
    mixes nobody tuned them on: tune on one ``seed``, report on another."""
    rng = np.random.default_rng([seed, index])
    k = int(rng.integers(1, 5))
    sizes = sorted((int(x) for x in rng.choice(_DRAW_SIZES, size=k, replace=False)), reverse=True)
    if max(sizes) < 4 and rng.random() < 0.7:  # most fleets have some big nodes
        sizes = [8, *sizes]
    share = rng.dirichlet(np.ones(len(sizes)))
    node_sizes = tuple((g, round(float(w) + 0.05, 3)) for g, w in zip(sizes, share, strict=True))
    models = []
    for g in sizes:
        m = int(rng.integers(1, 4))
        names = [str(x) for x in rng.choice(_DRAW_MODELS, size=m, replace=False)]
        ws = rng.dirichlet(np.ones(m))
        models.append(
            (g, tuple((n, round(float(w) + 0.05, 3)) for n, w in zip(names, ws, strict=True)))
        )
    largest = max(sizes)
    gang_share = 0.0 if largest < 2 else float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 0.9]))
    gsizes = [g for g in range(2, largest + 1)]
    pick: list[int] = (
        [
            int(g)
            for g in rng.choice(
                gsizes, size=min(len(gsizes), int(rng.integers(1, 5))), replace=False
            )
        ]
        if gsizes
        else []
    )
    gang_sizes = tuple(sorted((int(g), round(float(rng.uniform(0.2, 1.0)), 2)) for g in pick)) or (
        (2, 1.0),
    )
    if gang_share == 0.0:
        gang_sizes = GANGS_2_TO_8 if largest >= 8 else ((2, 1.0),)
    sharing_share = float(rng.choice([0.0, 0.2, 0.4, 0.6, 0.8]))
    fr = sorted(
        {int(x) for x in rng.choice(np.arange(100, 1000, 50), size=int(rng.integers(1, 6)))}
    )
    sharing_milli = tuple((m, round(float(rng.uniform(0.2, 1.0)), 2)) for m in fr)
    pinned_share = float(rng.choice([0.0, 0.0, 0.1, 0.3, 0.5]))
    fleet_models = sorted({n for _, ms in models for n, _ in ms})
    pin_models: ModelWeights = ()
    if pinned_share > 0 and rng.random() < 0.3:
        pin_models = ((str(rng.choice(fleet_models)), 1.0),)
    return MixSpec(
        name=f"drawn{seed}_{index:02d}",
        description=f"drawn at random (seed {seed}, index {index})",
        nodes=int(rng.choice([100, 200, 400])),
        node_sizes=node_sizes,
        models=tuple(models),
        cpu_per_gpu_milli=int(rng.choice([8_000, 12_000, 16_000, 24_000])),
        memory_per_gpu_mib=int(rng.choice([65_536, 98_304, 131_072, 262_144])),
        gang_share=gang_share,
        gang_sizes=gang_sizes,
        sharing_share=sharing_share,
        sharing_milli=sharing_milli,
        pinned_share=pinned_share,
        pin_models=pin_models,
        cpu_only_share=float(rng.choice([0.0, 0.05, 0.15, 0.3])),
        cpu_pressure=round(float(rng.uniform(0.3, 1.3)), 2),
        memory_pressure=round(float(rng.uniform(0.3, 1.3)), 2),
    )


def drawn_families(seed: int, count: int) -> list[MixSpec]:
    """``count`` drawn specs (:func:`drawn_spec`) for one draw ``seed``."""
    return [drawn_spec(seed, i) for i in range(count)]
