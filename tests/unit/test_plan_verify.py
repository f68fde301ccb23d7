"""The closed loop on tiny scenarios: plan, replay the plan through the core, re-plan."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from planner.schema import load_scenario
from planner.solve import SolveOptions
from simulations.plan_sim.settings import SimulationSettings
from simulations.plan_sim.verify import ITERATIONS_COLUMNS, verify, write_iterations

DATA = Path(__file__).resolve().parents[1] / "data" / "plan_sim"


def _scenario(tmp_path: Path, **site: object):  # type: ignore[no-untyped-def]
    doc = yaml.safe_load((DATA / "one-node.yaml").read_text())
    doc["sites"][0].update(site)
    path = tmp_path / "one-node.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "sizes.csv").write_text((DATA / "sizes.csv").read_text())
    return load_scenario(path)


def _run(tmp_path: Path, **site: object):  # type: ignore[no-untyped-def]
    sc = _scenario(tmp_path, **site)
    settings = SimulationSettings.from_mapping(sc.simulation, sc.source)
    return verify(sc, SolveOptions(time_limit_s=30), settings)


def test_one_node_misses_the_slo_and_the_loop_buys_a_second(tmp_path: Path) -> None:
    v = _run(tmp_path)
    first, kept = v.iterations[0], v.iterations[-1]
    # the GPU-hours plan: one installed node covers the demand, so it buys nothing ...
    assert first.gpus_bought == 0 and [r.gpus for r in first.sim.sites] == [8]
    # ... but gangs of 2-8 GPUs on one node at 91 % load wait for hours
    assert first.failed and first.sim.sites[0].wait_p95_h > 1.0
    assert first.bound == ()  # the plan served everything: derating can help
    assert len(v.iterations) == 2 and dict(kept.derate) == {("us-a", 0): 0.9}
    assert kept.gpus_bought == 8 and [r.gpus for r in kept.sim.sites] == [16]
    assert kept.sim.sites[0].wait_p95_h <= 1.0 and v.slo_met
    assert v.verdict == "SLO met after 2 plan(s)"
    out = tmp_path / "verify" / "iterations.csv"
    write_iterations(v, out)
    rows = list(csv.reader(out.open()))
    assert tuple(rows[0]) == ITERATIONS_COLUMNS
    assert [(r[0], r[2], r[4], r[5]) for r in rows[1:]] == [
        ("0", "0", "1", "false"),
        ("1", "8", "0", "true"),
    ]


def test_a_power_cap_that_forbids_a_second_node_is_named(tmp_path: Path) -> None:
    # 10 kW of IT power: one system; a grid connection too small for any block
    v = _run(tmp_path, existing_it_mw=0.01, grid_cap_mw=0.013)
    kept = v.iterations[-1]
    assert not v.slo_met and kept.gpus_bought == 0
    assert kept.bound and kept.bound[0][0].site == "us-a"
    assert (
        kept.bound[0][1]
        == "the plan leaves 11% of us-fsd's demand unserved; binding: IT power at us-a (2027Q1)"
    )
    assert v.verdict.startswith(
        "SLO not met: 1 site-quarter(s) cannot meet it within the scenario's limits"
    )
    assert any("IT power at us-a" in x for x in v.limits)


def test_a_scenario_without_an_slo_is_refused(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    from dataclasses import replace

    with pytest.raises(ValueError, match="no slo: section"):
        verify(replace(sc, slo=None), SolveOptions(), SimulationSettings())


def test_the_commands_write_the_files_with_their_columns(tmp_path: Path) -> None:
    from scheduler.cli.main import main
    from simulations.plan_sim.replay import SITES_COLUMNS

    sc = _scenario(tmp_path)
    out = tmp_path / "plan"
    assert (
        main(
            [
                "plan",
                sc.source,
                "--verify",
                "--out",
                str(out),
                "--no-rules",
                "--no-plots",
                "--quiet",
            ]
        )
        == 0
    )
    rows = list(csv.reader((out / "verify" / "iterations.csv").open()))
    assert tuple(rows[0]) == ITERATIONS_COLUMNS and rows[-1][5] == "true"
    assert (out / "dispatch.csv").exists() and (out / "purchases.csv").read_text().count(
        "us-a"
    ) == 1
    sim = tmp_path / "sim"
    args = [
        "simulate",
        "plan",
        str(out),
        "--scenario",
        sc.source,
        "--out",
        str(sim),
        "--quiet",
        "--no-plots",
    ]
    assert main(args) == 0
    sites = list(csv.reader((sim / "sites.csv").open()))
    assert tuple(sites[0]) == SITES_COLUMNS
    assert [(r[0], r[1], r[2], r[3]) for r in sites[1:]] == [("us-a", "US", "2027Q1", "16")]
    jobs = list(csv.reader((sim / "jobs.csv").open()))
    asked = [
        "site",
        "quarter",
        "job_id",
        "team",
        "data_region",
        "num_gpus",
        "submit_s",
        "start_s",
        "end_s",
    ]
    assert set(asked) <= set(jobs[0])  # the columns, at least
    assert {r[4] for r in jobs[1:]} == {"US"}
    bad = [
        "simulate",
        "plan",
        str(out),
        "--scenario",
        sc.source,
        "--out",
        str(sim),
        "--weeks-per-quarter",
        "0",
    ]
    assert main(bad) == 2


def test_quotas_as_shares_give_each_team_its_part_of_the_slice(tmp_path: Path) -> None:
    from simulations.plan_sim.fleet import site_nodes
    from simulations.plan_sim.jobs import load_job_sizes, site_jobs
    from simulations.plan_sim.replay import Task, _shares, simulate

    sc = _scenario(tmp_path)
    raw = {
        **dict(sc.simulation or {}),
        "teams": [
            {"name": "perception", "workload": "us-fsd", "share": 0.75, "priority_class": "prod"},
            {"name": "research", "workload": "us-fsd", "share": 0.25},
        ],
        "priority_classes": {"prod": 10},
        "quotas": "shares",
        "preemption": True,
    }
    settings = SimulationSettings.from_mapping(raw, sc.source, ["us-fsd"], ["h"])
    fleet = site_nodes(sc, "us-a", 0, {"h": 2})
    sizes = load_job_sizes(settings.job_sizes, relative_to=tmp_path)
    stream = site_jobs(sc, fleet, {"us-fsd": 2000.0}, 0.0, 86_400.0, sizes, settings)
    q = _shares(stream, fleet)
    assert q is not None
    assert sorted((x.team, round(x.nominal_gpus, 6)) for x in q.quotas) == [
        ("perception", 12.0),
        ("research", 4.0),
    ]
    assert q.cohorts == (("perception", "us-a"), ("research", "us-a"))
    sim = simulate(sc, [Task("us-a", 0, {"h": 2}, {"us-fsd": 16000.0}, 50.0)], settings)
    row = sim.sites[0]
    assert row.gpus == 16 and row.jobs > 0 and row.never_fit == 0
    assert {r[3] for r in sim.jobs} == {"perception", "research"}
