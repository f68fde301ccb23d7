"""End to end: ``gpuyard simulate packing`` on a small slice of Alibaba's trace (made at test
time from ../shared/traces, never committed) and on the synthetic sample."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from scheduler.cli import main
from simulations.sample import write_sample

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces" / "alibaba-gpu-v2023"


def simulate(pods: Path, nodes: Path, *args: str) -> int:
    return main(["simulate", "packing", "--trace", str(pods), "--nodes", str(nodes), *args])


def slice_csv(src: Path, dst: Path, rows: int, every: int = 1) -> Path:
    lines = src.read_text().splitlines()
    dst.write_text("\n".join([lines[0], *lines[1::every][:rows]]) + "\n")
    return dst


@pytest.mark.trace
@pytest.mark.skipif(not TRACES.is_dir(), reason=f"{TRACES} (the shared traces) is not present")
def test_simulate_packing_on_a_slice_of_the_alibaba_trace(tmp_path: Path) -> None:
    nodes = slice_csv(TRACES / "openb_node_list_gpu_node.csv", tmp_path / "nodes.csv", 60, every=20)
    pods = slice_csv(TRACES / "openb_pod_list_default.csv", tmp_path / "pods.csv", 400, every=20)
    out = tmp_path / "out"
    rc = simulate(
        pods, nodes, "--policy", "best_fit,fgd", "--seeds", "42-43", "--out", str(out), "--quiet"
    )
    assert rc == 0
    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "policy",
        "seed",
        "arrived_pct",
        "allocated_pct",
        "unallocated_pct",
        "frag_amount_pct",
        "frag_ratio_pct",
    ]
    assert len(rows) == 2 * 2 * 131
    assert [r["arrived_pct"] for r in rows[:3]] == ["0", "1", "2"]
    with (out / "summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    assert list(summary[0]) == [
        "policy",
        "seed",
        "unallocated_pct_at_100",
        "unallocated_pct_at_130",
        "wall_s",
    ]
    assert [(r["policy"], r["seed"]) for r in summary] == [
        ("best_fit", "42"),
        ("best_fit", "43"),
        ("fgd", "42"),
        ("fgd", "43"),
    ]
    for r in rows:
        if r["allocated_pct"]:
            assert abs(float(r["allocated_pct"]) + float(r["unallocated_pct"]) - 100) < 0.011
    assert (out / "curves.png").stat().st_size > 10_000


def test_same_seed_gives_byte_identical_curves(tmp_path: Path) -> None:
    nodes, pods = write_sample(tmp_path / "in", nodes=20, pods=200)
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert (
            simulate(pods, nodes, "--policy", "all", "--seeds", "5", "--out", str(out), "--quiet")
            == 0
        )
        outs.append((out / "curves.csv").read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") == 1 + 8 * 131


def test_unknown_policy_is_an_error_listing_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = write_sample(tmp_path, nodes=5, pods=20)
    rc = simulate(pods, nodes, "--policy", "fgd,bogus", "--out", str(tmp_path / "o"), "--quiet")
    assert rc == 2
    err = capsys.readouterr().err
    assert (
        "unknown packing policy 'bogus'" in err
        and "known: random, dot_product, gpu_clustering" in err
    )


def test_a_malformed_trace_row_is_reported_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = write_sample(tmp_path, nodes=5, pods=20)
    text = pods.read_text().splitlines()
    text[4] = "sample-pod-x,1000,2000,1,abc,"
    pods.write_text("\n".join(text) + "\n")
    rc = simulate(pods, nodes, "--policy", "fgd", "--out", str(tmp_path / "o"), "--quiet")
    assert rc == 2
    assert f"{pods}:5: column 'gpu_milli': 'abc' is not allowed" in capsys.readouterr().err.replace(
        "\n", ""
    )
