"""``gpuyard plan``: files, exact columns and keys, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from planner.cli import main

TINY = str(Path(__file__).parents[2] / "data" / "planner" / "tiny.yaml")


def test_plan_writes_the_promised_files(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    assert main(["plan", TINY, "--out", str(out), "--gap", "0", "--quiet"]) == 0
    with (out / "purchases.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["quarter", "site", "sku", "systems", "gpus"]
    assert all(int(r[4]) == 8 * int(r[3]) for r in rows[1:]) and len(rows) > 1
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["status", "has_solution", "objective_usd", "best_bound_usd", "gap",
                             "solve_s", "build_s", "unserved_gpu_h"]  # fmt: skip
    assert summary["status"] == "optimal" and summary["has_solution"] is True
    assert (out / "shadow_prices.csv").read_text().startswith("kind,subject,quarter,value,unit\n")
    for png in ("installed_gpus.png", "power.png", "costs.png"):
        assert (out / png).stat().st_size > 1000


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(TINY).read_text().replace("pue: 1.3", "pue: 0.5", 1))
    assert main(["plan", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {bad}:38: sites[0].pue: Input should be greater than or equal to 1 (got 0.5)"
    )
    assert main(["plan", TINY, "--out", str(tmp_path / "o"), "--gap", "2"]) == 2
    assert "--gap must be in [0, 1), got 2.0" in capsys.readouterr().err
    assert main(["plan", TINY, "--out", str(tmp_path / "o"), "--sweep", "growth=low"]) == 2
    assert "low is not a growth case" in capsys.readouterr().err


def test_infeasible_plan_exits_1_with_a_diagnosis(
    tmp_path: Path, tiny_doc: dict, write_yaml
) -> None:  # type: ignore[no-untyped-def, type-arg]
    tiny_doc["economics"]["unserved"] = {"mode": "hard"}
    tiny_doc["skus"][1]["eligible"] = {"US": {}}
    out = tmp_path / "o"
    assert main(["plan", str(write_yaml(tiny_doc)), "--out", str(out), "--quiet"]) == 1
    assert json.loads((out / "summary.json").read_text())["status"] == "infeasible"
    assert "no eligible SKU in region CN" in (out / "diagnosis.csv").read_text()


def test_sweep_writes_a_regret_table(tmp_path: Path, tiny_doc: dict, write_yaml) -> None:  # type: ignore[no-untyped-def, type-arg]
    for w in tiny_doc["workloads"]:
        w["demand_growth_per_year"] = {"low": 0.0, "base": 0.5, "high": 2.0}
    out = tmp_path / "o"
    args = ["plan", str(write_yaml(tiny_doc)), "--out", str(out), "--quiet", "--no-plots", "--no-rules",
            "--gap", "0", "--sweep", "growth=low,base,high"]  # fmt: skip
    assert main(args) == 0
    with (out / "regret.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    for r in rows:
        assert float(r["regret_usd"]) >= -1e-6 * abs(
            float(r["npv_usd"])
        )  # exact solves: no negative regret
        if r["plan"] == r["scenario"]:
            assert float(r["regret_usd"]) == 0.0
