"""``--output json`` on every command that prints a table: one JSON document on stdout (keys
in a fixed order), progress and "wrote ..." notes on stderr, and the same figures as the
table and the files."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.cli import main
from scheduler.cli.output import plain
from scheduler.cli.service import _print_up, up_document
from scheduler.runtime.config import load_fleet

DATA = Path(__file__).resolve().parents[1] / "data"
TINY_PLAN = str(DATA / "planner" / "tiny.yaml")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[Any, str]:
    """``gpuyard ARGV --output json``: its exit code, stdout parsed (it must parse whole), and
    stderr."""
    assert main([*argv, "--output", "json"]) == code
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_plain_turns_views_dataclasses_and_nan_into_json_values() -> None:
    @dataclass(frozen=True)
    class Row:
        name: str
        value: float
        path: Path
        pair: tuple[int, int]

    assert plain([Row("a", math.nan, Path("/x/y"), (1, 2))]) == [
        {"name": "a", "value": None, "path": "/x/y", "pair": [1, 2]}
    ]
    assert plain({"inf": math.inf, "ok": 1.5}) == {"inf": None, "ok": 1.5}


def test_simulate_mixes_list_and_mix_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixes, err = run_json(capsys, "simulate", "mixes", "--list")
    assert err == ""
    assert all(list(m) == ["mix", "nodes", "description"] for m in mixes)
    assert "hard_case" in [m["mix"] for m in mixes]
    out = tmp_path / "csv"
    written, err = run_json(capsys, "simulate", "mix-csv", "--mixes", "hard_case", "--nodes", "24",
                            "--seeds", "42", "--out", str(out))  # fmt: skip
    assert written == [{"mix": "hard_case", "seed": 42, "nodes": str(out / "hard_case_s42_nodes.csv"),
                        "pods": str(out / "hard_case_s42_pods.csv")}]  # fmt: skip
    assert err.startswith(f"wrote {out / 'hard_case_s42_nodes.csv'}")


def test_simulate_packing_and_mixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--mixes", "hard_case", "--nodes", "24", "--seeds", "42"]
    assert main(["simulate", "mix-csv", *base, "--out", str(tmp_path / "csv")]) == 0
    capsys.readouterr()
    nodes = str(tmp_path / "csv" / "hard_case_s42_nodes.csv")
    pods = str(tmp_path / "csv" / "hard_case_s42_pods.csv")
    out = tmp_path / "packing"
    doc, err = run_json(capsys, "simulate", "packing", "--nodes", nodes, "--trace", pods,
                        "--policy", "best_fit,fgd", "--seeds", "42", "--out", str(out))  # fmt: skip
    assert list(doc) == ["trace", "nodes", "seeds", "inflate", "policies", "files"]
    assert (doc["trace"], doc["nodes"], doc["seeds"], doc["inflate"]) == (pods, nodes, [42], 1.3)
    assert doc["files"] == [str(out / f) for f in ("curves.csv", "summary.csv", "curves.png")]
    assert [p["policy"] for p in doc["policies"]] == ["best_fit", "fgd"]
    assert list(doc["policies"][0]) == ["policy", "runs", "unallocated_pct_at_100",
                                        "unallocated_pct_at_130", "wall_s"]  # fmt: skip
    with (out / "summary.csv").open(newline="") as f:
        summary = {r["policy"]: r for r in csv.DictReader(f)}
    for p in doc["policies"]:  # the figures of summary.csv (written from the same medians)
        assert p["runs"] == 1
        assert p["unallocated_pct_at_100"] == pytest.approx(
            float(summary[p["policy"]]["unallocated_pct_at_100"]), abs=1e-3
        )
    assert "packing replay" in err and f"wrote {out / 'curves.csv'}" in err  # progress: stderr
    doc, err = run_json(capsys, "simulate", "mixes", *base, "--policy", "best_fit,fgd",
                        "--out", str(tmp_path / "mixes"), "--quiet")  # fmt: skip
    assert list(doc) == ["seeds", "inflate", "mixes", "files"]
    (mix,) = doc["mixes"]
    assert list(mix) == ["mix", "seeds", "medians", "best_of_six", "best_of_six_pct",
                         "fgd_gap", "frag_pack_gap"]  # fmt: skip
    assert mix["mix"] == "hard_case" and mix["seeds"] == 1 and list(mix["medians"]) == [
        "best_fit", "fgd"
    ]  # fmt: skip
    best = min(mix["medians"], key=mix["medians"].get)  # both are among the paper's six
    assert mix["best_of_six"] == best and mix["best_of_six_pct"] == mix["medians"][best]
    assert mix["frag_pack_gap"] is None  # NaN (frag_pack not run) is null


def test_simulate_queue_and_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,num_gpu,submit_time,duration\n0,1,0,100\n1,4,10,50\n2,2,20,30\n")
    doc, err = run_json(capsys, "simulate", "queue", "--trace", str(trace), "--gpus", "4",
                        "--gpus-per-node", "4", "--policy", "fifo", "--out", str(tmp_path / "q"))  # fmt: skip
    assert list(doc) == ["trace", "jobs", "gpus", "gpus_per_node", "backfill", "policies", "files"]
    assert (doc["jobs"], doc["gpus"], doc["gpus_per_node"], doc["backfill"]) == (3, 4, 4, "none")
    (fifo,) = doc["policies"]
    assert list(fifo) == ["policy", "jobs", "avg_jct_s", "p50_jct_s", "p95_jct_s", "p99_jct_s",
                          "avg_wait_s", "p95_wait_s", "makespan_s", "gpu_util_pct",
                          "jain_fairness", "preemptions", "lost_gpu_h", "wall_s"]  # fmt: skip
    # FIFO on 4 GPUs: job 0 (1 GPU) runs 0-100; job 1 (4 GPUs) waits for it, 100-150; job 2
    # (2 GPUs) waits behind job 1, 150-180
    assert (fifo["policy"], fifo["jobs"], fifo["makespan_s"]) == ("fifo", 3, 180.0)
    assert fifo["avg_wait_s"] == pytest.approx((0 + 90 + 130) / 3)
    assert "queue replay" in err and "wrote" in err
    doc, err = run_json(capsys, "simulate", "scale", "--nodes", "4", "--gpus-per-node", "8",
                        "--jobs", "6", "--policy", "best_fit", "--out", str(tmp_path / "s"))  # fmt: skip
    assert list(doc) == ["policies", "files"]
    (r,) = doc["policies"]
    assert (r["policy"], r["nodes"], r["gpus"], r["jobs"]) == ("best_fit", 4, 32, 6)
    assert r["placements_per_s"] == pytest.approx(r["placed_jobs"] / r["total_s"])
    assert err.startswith("best_fit: ") and doc["files"] == [str(tmp_path / "s" / "summary.csv")]


def test_plan_json_is_summary_json_and_the_csvs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan"
    doc, err = run_json(capsys, "plan", TINY_PLAN, "--out", str(out), "--no-plots", "--no-rules")
    assert list(doc) == ["scenario", "source", "headline", "summary", "tables", "files"]
    assert (doc["scenario"], doc["source"]) == ("tiny", TINY_PLAN)
    assert doc["summary"] == json.loads((out / "summary.json").read_text())
    assert doc["headline"].startswith(doc["summary"]["status"])
    with (out / "purchases.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [{k: str(v) for k, v in r.items()} for r in doc["tables"]["purchases"]] == rows
    assert set(doc["tables"]) == {p.stem for p in out.glob("*.csv")}
    assert doc["files"] == [str(out / "summary.json")] + [
        str(out / f"{name}.csv") for name in doc["tables"]
    ]
    assert err.strip() == f"wrote {len(doc['files'])} files in {out}"


def test_plan_verify_and_simulate_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load((DATA / "plan_sim" / "one-node.yaml").read_text())
    scenario = tmp_path / "one-node.yaml"
    scenario.write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "sizes.csv").write_text((DATA / "plan_sim" / "sizes.csv").read_text())
    out = tmp_path / "plan"
    plan, _ = run_json(capsys, "plan", str(scenario), "--verify", "--out", str(out), "--no-rules",
                       "--no-plots", "--quiet")  # fmt: skip
    v = plan["verify"]
    assert list(v) == ["slo", "slo_met", "verdict", "iterations", "bound"]
    assert (v["slo_met"], v["verdict"], v["bound"]) == (True, "SLO met after 2 plan(s)", [])
    assert [(i["iteration"], i["gpus_bought"], i["failed_site_quarters"], i["slo_met"])
            for i in v["iterations"]] == [(0, 0, 1, "false"), (1, 8, 0, "true")]  # fmt: skip
    assert str(out / "verify" / "iterations.csv") in plan["files"]
    sim = tmp_path / "sim"
    doc, err = run_json(capsys, "simulate", "plan", str(out), "--scenario", str(scenario),
                        "--out", str(sim), "--quiet", "--no-plots")  # fmt: skip
    assert list(doc) == ["scenario", "plan_dir", "seeds", "wall_s", "sites", "files"]
    (site,) = doc["sites"]
    assert (site["site"], site["region"], site["quarter"], site["gpus"]) == (
        "us-a", "US", "2027Q1", 16
    )  # fmt: skip
    with (sim / "sites.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["wait_p95_h"]) == pytest.approx(site["wait_p95_h"], abs=1e-4)
    assert doc["files"] == [str(sim / "sites.csv"), str(sim / "jobs.csv")]
    assert err.startswith("wrote ")


UP_INFO = {"address": "127.0.0.1:6379", "api": "http://127.0.0.1:8000", "simulated": True,
           "up_s": 12.5}  # fmt: skip


def test_up_renders_json_and_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    fleet = load_fleet(None)
    (tmp_path / "tokens").mkdir()
    info = {**UP_INFO, "state_dir": str(tmp_path), "dashboard": "http://127.0.0.1:8265"}
    doc = plain(up_document(info, fleet))
    assert doc == {
        "up_s": 12.5,
        "simulated": True,
        "api": "http://127.0.0.1:8000",
        "docs": "http://127.0.0.1:8000/docs",
        "ray_address": "127.0.0.1:6379",
        "ray_dashboard": "http://127.0.0.1:8265",
        "state_dir": str(tmp_path),
        "tokens_dir": str(tmp_path / "tokens"),
        "nodes": [
            {"name": "node-h100-0", "gpus": 4, "gpu_model": "H100", "cpus": 8,
             "labels": {"rack": "r0", "zone": "z0"}},
            {"name": "node-h100-1", "gpus": 4, "gpu_model": "H100", "cpus": 8,
             "labels": {"rack": "r1", "zone": "z0"}},
            {"name": "node-h20-0", "gpus": 4, "gpu_model": "H20", "cpus": 8,
             "labels": {"rack": "r1", "zone": "z0"}},
        ],
    }  # fmt: skip
    assert json.loads(json.dumps(doc)) == doc
    console = Console(width=200, force_terminal=False, color_system=None)
    with console.capture() as cap:
        _print_up(info, fleet, console)
    text = cap.get()
    assert "gpuyard is up in 12.5 s (simulated GPUs and NVML telemetry)" in text
    assert "node-h20-0" in text and "rack=r1, zone=z0" in text
    assert "Ray: 127.0.0.1:6379 (dashboard http://127.0.0.1:8265)" in text


def test_up_parser_takes_output_json() -> None:
    from scheduler.cli.main import build_parser

    args = build_parser().parse_args(["up", "--output", "json"])
    assert args.output == "json"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--output", "yaml"])


def test_k8s_inventory_json_is_the_fleet_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler.runtime.k8s.nodes import api_client
    from tests.k8s_apiserver import FakeApiServer
    from tests.unit.k8s.nodes import cpu_node, gpu_node

    monkeypatch.setattr("scheduler.runtime.k8s.nodes.api_client",
                        lambda host=None, token=None: api_client(host, "sa"))  # fmt: skip
    with FakeApiServer([gpu_node("gpu-0"), gpu_node("gpu-1"), cpu_node("cpu-0")], token="sa") as s:
        assert main(["k8s", "inventory", "--server", s.url]) == 0
        as_yaml = yaml.safe_load(capsys.readouterr().out)
        doc, err = run_json(capsys, "k8s", "inventory", "--server", s.url)
    assert doc == as_yaml and [n["name"] for n in doc["nodes"]] == ["gpu-0", "gpu-1"]
    assert list(doc["nodes"][0]) == ["name", "gpus", "gpu_model", "gpu_memory_gib", "cpus",
                                     "memory_gib", "nvlink_domains", "labels"]  # fmt: skip
    assert err == ""


def test_every_command_that_prints_a_table_takes_output_json() -> None:
    """The parser itself: every leaf command offers --output json, except those that print
    no table (a demo, down, journal verify, completion) and the service commands' own."""
    import argparse

    from scheduler.cli.main import build_parser

    def leaves(p: argparse.ArgumentParser, path: tuple[str, ...]) -> dict[str, Any]:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return {" ".join(path): p}
        out: dict[str, Any] = {}
        for name, child in subs[0].choices.items():
            out |= leaves(child, (*path, name))
        return out

    def offers_json(p: argparse.ArgumentParser) -> bool:
        return any(
            "--output" in a.option_strings and "json" in (a.choices or ()) for a in p._actions
        )

    every = leaves(build_parser(), ())
    without = sorted(name for name, p in every.items() if not offers_json(p))
    assert without == ["completion", "demo", "down", "journal verify"]


def test_k8s_remediate_once_json_lists_the_actions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler.runtime.k8s.remediation import Cordon, Uncordon

    class Decided:  # the decisions are tested in tests/unit/k8s; here: how they are printed
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def check(self) -> list[Any]:
            return [Cordon("gpu-0", "GPU 3: XID 79"), Uncordon("gpu-1", "healthy again")]

    monkeypatch.setattr("scheduler.runtime.k8s.remediator.Remediator", Decided)
    argv = ["k8s", "remediate", "--once", "--token", "t", "--server", "http://127.0.0.1:9"]
    doc, _ = run_json(capsys, *argv)
    assert doc == [
        {"action": "Cordon", "node": "gpu-0", "reason": "GPU 3: XID 79"},
        {"action": "Uncordon", "node": "gpu-1", "reason": "healthy again"},
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out == "Cordon gpu-0: GPU 3: XID 79\nUncordon gpu-1: healthy again\n"
