"""``gpuyard simulate scale``: an operator's own fleet size, summary.csv with exactly the
documented columns, the same figures for the same seed (the counts; times vary)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from scheduler.cli import main
from simulations.scale import SUMMARY_COLUMNS, run_scale


def test_the_command_writes_one_row_per_policy_with_the_documented_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scale"
    argv = ["simulate", "scale", "--policy", "best_fit,topology", "--nodes", "40",
            "--gpus-per-node", "4", "--jobs", "300", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == SUMMARY_COLUMNS == (
        "policy", "nodes", "gpus", "jobs", "placed_jobs", "placed_workers", "cycles",
        "placements_per_s", "p50_cycle_ms", "p99_cycle_ms", "max_cycle_ms",
    )  # fmt: skip
    assert [r[0] for r in rows[1:]] == ["best_fit", "topology"]
    for row in rows[1:]:
        assert row[1:4] == ["40", "160", "300"] and row[6] == "3"  # 300 jobs in cycles of 100
        expected = run_scale(row[0], nodes=40, jobs=300, gpus_per_node=4)
        assert (int(row[4]), int(row[5])) == (expected.placed_jobs, expected.placed_workers)
        # a 4-GPU node cannot hold an 8-GPU worker: some jobs stay unplaced
        assert 0 < expected.placed_jobs < 300
    assert "wrote" in capsys.readouterr().out


def test_bad_sizes_and_unknown_policies_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "scale", "--nodes", "0", "--out", str(tmp_path)]) == 2
    assert "--nodes 0: must be at least 1" in capsys.readouterr().err
    assert main(["simulate", "scale", "--policy", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown packing policy 'nope'" in capsys.readouterr().err
