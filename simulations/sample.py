"""A small synthetic fleet and pod list in the Alibaba trace's CSV format, for the demo and
for tests that must run without ``../shared/traces``.

The mix imitates the shape of Alibaba's ``openb_pod_list_default`` (about 48 % one-GPU pods,
38 % GPU-sharing pods, 13 % CPU-only pods, 1 % eight-GPU pods; nodes mostly 8-GPU or 2-GPU;
see ``../shared/traces/README.md``). It is generated from a seed, not copied from the trace.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SHARE_MILLI = (110, 160, 220, 230, 320, 370, 460, 470, 550, 590, 650, 810)
NODE_KINDS = (  # (GPUs, model, cpu_milli, memory_mib, weight)
    (8, "G2", 96000, 786432, 0.50),
    (2, "T4", 64000, 262144, 0.30),
    (4, "V100M32", 96000, 393216, 0.10),
    (2, "P100", 64000, 262144, 0.10),
)


def write_sample(out: Path, nodes: int = 60, pods: int = 700, seed: int = 7) -> tuple[Path, Path]:
    """Write ``sample_nodes.csv`` and ``sample_pods.csv`` under ``out``; returns their paths."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    nodes_csv, pods_csv = out / "sample_nodes.csv", out / "sample_pods.csv"
    weights = np.array([k[4] for k in NODE_KINDS])
    with nodes_csv.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sn", "cpu_milli", "memory_mib", "gpu", "model"])
        for i in range(nodes):
            gpus, model, cpu, mem, _ = NODE_KINDS[
                rng.choice(len(NODE_KINDS), p=weights / weights.sum())
            ]
            w.writerow([f"sample-node-{i:04d}", cpu, mem, gpus, model])
    with pods_csv.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec"])
        for i in range(pods):
            u = rng.random()
            if u < 0.13:
                num, milli, cpu = 0, 0, int(rng.choice([1000, 2000, 4000, 8000]))
            elif u < 0.51:
                num, milli, cpu = (
                    1,
                    int(rng.choice(SHARE_MILLI)),
                    int(rng.choice([2000, 4000, 6000])),
                )
            elif u < 0.99:
                num, milli, cpu = 1, 1000, int(rng.choice([4000, 8000, 12000]))
            else:
                num, milli, cpu = 8, 1000, 64000
            spec = "T4" if num and rng.random() < 0.05 else ""
            w.writerow([f"sample-pod-{i:05d}", cpu, cpu * 2, num, milli, spec])
    return nodes_csv, pods_csv
