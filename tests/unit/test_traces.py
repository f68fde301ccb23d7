"""Trace loaders (errors name file:line, column and value), the workload protocol, binning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.packing import Trajectory, bin_curve
from simulations.protocol import arrivals
from simulations.traces.alibaba import TracePod, load_nodes, load_pods
from simulations.traces.errors import TraceError

POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_pods_load_every_column(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "pods.csv",
        POD_HEADER + "p0,6000,12288,1,460,V100M16|V100M32|V100M32,LS,Running,0,12902960,427061\n",
    )
    (pod,) = load_pods(p)
    assert pod == TracePod(
        "p0", 6000, 12288, 1, 460, ("V100M16", "V100M32"), "LS", "Running", 0, 12902960, 427061
    )
    job = pod.to_job()
    assert job.worker.shares_gpu and job.worker.gpu_models == ("V100M16", "V100M32")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "p1,abc,1,1,1000,,,,,,",
            "pods.csv:3: column 'cpu_milli': 'abc' is not allowed (an integer >= 0)",
        ),
        (
            "p1,1,1,2,500,,,,,,",
            "pods.csv:3: column 'gpu_milli': '500' is not allowed (1000 when num_gpu > 1)",
        ),
        (
            "p1,1,1,0,300,,,,,,",
            "pods.csv:3: column 'gpu_milli': '300' is not allowed (0 when num_gpu is 0)",
        ),
        (
            "p1,1,1,1,1200,,,,,,",
            "pods.csv:3: column 'gpu_milli': '1200' is not allowed (an integer in 0..1000)",
        ),
        (
            "p0,1,1,1,1000,,,,,,",
            "pods.csv:3: column 'name': 'p0' is not allowed (a non-empty pod name not used before)",
        ),
        ("p1,1,1,1", "pods.csv:3: column '*'"),
    ],
)
def test_a_malformed_pod_row_stops_the_load_naming_file_line_and_value(
    tmp_path: Path, row: str, message: str
) -> None:
    p = write(tmp_path, "pods.csv", POD_HEADER + "p0,1,1,1,1000,,,,,,\n" + row + "\n")
    with pytest.raises(TraceError) as err:
        load_pods(p)
    assert str(err.value).startswith(
        str(tmp_path / message.split(":")[0]) + ":" + message.split(":", 1)[1]
    )


def test_a_malformed_node_row_and_a_missing_column(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "nodes.csv",
        "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,64000,262144,-1,P100\n",
    )
    with pytest.raises(
        TraceError, match=r"nodes.csv:3: column 'gpu': '-1' is not allowed \(an integer in 0..64\)"
    ):
        load_nodes(p)
    p = write(tmp_path, "bad.csv", "sn,cpu_milli,gpu\nn0,1,1\n")
    with pytest.raises(TraceError, match=r"bad\.csv:1: column 'memory_mib'"):
        load_nodes(p)


def pod(name: str, gpus: int, milli: int = 1000) -> TracePod:
    return TracePod(name, 1000, 1024, gpus, milli if gpus else 0)


def test_inflation_appends_draws_until_the_next_would_pass_the_target() -> None:
    pods = [pod("b", 1), pod("a", 1), pod("c", 0)]
    seq = arrivals(pods, total_gpu_milli=10_000, seed=1, inflate=1.3)
    assert sorted(p.name for p in seq[:3]) == ["a", "b", "c"]
    asked = sum(p.gpu_request_milli for p in seq)
    assert asked == 13_000  # 1000-milli draws reach the target exactly
    assert arrivals(pods, 10_000, 1, 1.3) == seq  # same seed, same sequence


def test_deflation_removes_pods_until_at_or_below_the_target() -> None:
    pods = [pod(f"p{i}", 1) for i in range(20)]
    seq = arrivals(pods, total_gpu_milli=10_000, seed=3, inflate=1.3)
    assert sum(p.gpu_request_milli for p in seq) == 13_000 and len(seq) == 13


def test_binning_averages_every_arrival_in_the_rounded_bin() -> None:
    # 2 GPUs: arrivals at 25 %, 50 %, 50 % (a CPU-only pod), 100 %
    t = Trajectory(
        "p",
        1,
        2,
        np.array([500, 1000, 1000, 2000]),
        np.array([500, 1000, 1000, 1000]),
        np.zeros(4),
        0.0,
        4,
        1,
    )
    c = bin_curve(t)
    assert (
        c.allocated_pct[25] == 25.0 and c.allocated_pct[50] == 50.0 and c.allocated_pct[100] == 50.0
    )
    assert c.allocated_pct[26] == 25.0  # empty bin: falls back to arrivals within +-1
    assert np.isnan(c.allocated_pct[70])
    assert c.unallocated_at(100) == 50.0


def test_sharing_gap_packs_best_fit_decreasing() -> None:
    from simulations.bound import sharing_gap_bfd_pct

    # 600, 500, 400, 300 (1800 milli) on 2 GPUs: every inflation draw passes 100 %, so exactly
    # these pods arrive by 100 %; BFD opens 600+400 (no gap) and 500+300 (200 gap) -> 10 %
    pods = [TracePod(f"p{i}", 0, 0, 1, m) for i, m in enumerate((600, 500, 400, 300))]
    assert sharing_gap_bfd_pct(pods, 2_000, seed=1, upto_pct=100.0) == 10.0
