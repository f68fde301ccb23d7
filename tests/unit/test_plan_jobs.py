"""Demand -> jobs: totals, seeds, SKU shares, durations, gangs, regions, settings, traces."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.schema import load_scenario, parse_scenario
from scheduler.core.model import Topology
from simulations.plan_sim.fleet import SkuPool, site_nodes
from simulations.plan_sim.jobs import (
    DEFAULT_TRACES_DIR,
    JobSizes,
    JobSizesError,
    JobStream,
    Team,
    gang_shape,
    generate_jobs,
    load_job_sizes,
    site_jobs,
)
from simulations.plan_sim.settings import CsvSizes, SettingsError, SimulationSettings
from simulations.traces.errors import TraceError

TIB = 1024 * 1024
SIZES = JobSizes.of([(1, 3600.0), (2, 1800.0), (4, 7200.0), (8, 900.0), (12, 600.0), (16, 36000.0)])
H100 = SkuPool("H100", 8, 64, 1.0, 8, 112_000, 2 * TIB)
B200 = SkuPool("B200", 4, 32, 2.3, 8, 112_000, 2 * TIB)
TRAY = SkuPool("GB200-NVL72", 1, 72, 2.5, 4, 144_000, 960 * 1024)
WEEK_S = 7 * 86400.0
ROOT = Path(__file__).parents[2]


def gen(**over: Any) -> JobStream:
    args: dict[str, Any] = dict(
        site="s1", quarter_label="2027Q1", hours_h100={"w1": 2000.0}, start_s=1000.0,
        length_s=WEEK_S, pools=(H100, B200), data_region={"w1": "CN", "w2": "US"},
        allowed_regions={"w1": ("CN",), "w2": ("US", "CN")}, sizes=SIZES, seed=7,
    )  # fmt: skip
    args.update(over)
    return generate_jobs(**args)


def fields(s: JobStream, team: str | None = None) -> list[tuple[object, ...]]:
    return [
        (j.submitted_at_s, j.team, j.num_workers, j.worker, j.estimated_duration_s)
        for j in s.jobs
        if team is None or j.team == team
    ]


def test_totals_hit_each_streams_target_split_by_team_and_slice() -> None:
    teams = (Team("a", "w1", 0.7, priority=5), Team("b", "w1", 0.3))
    s = gen(hours_h100={"w1": 5000.0, "w2": 300.0}, teams=teams, slice_fraction=0.5)
    got = {(t.workload, t.team, t.priority): t.target_h100_hours for t in s.streams}
    assert got == {("w1", "a", 5): 0.5 * 0.7 * 5000.0, ("w1", "b", 0): 0.5 * 0.3 * 5000.0,
                   ("w2", "w2", 0): 0.5 * 300.0}  # fmt: skip
    for t in s.streams:
        assert t.h100_hours == pytest.approx(t.target_h100_hours, rel=1e-9)
        mine = [j for j in s.jobs if j.team == t.team]
        assert len(mine) == t.jobs
        assert math.fsum(s.job_h100_hours(j) for j in mine) == pytest.approx(
            t.target_h100_hours, rel=1e-9
        )
        assert 0 <= t.overshoot_h100_hours < 16 * 10.0  # under the largest job's hours (160)
        assert {j.priority for j in mine} == {t.priority}
    assert s.h100_hours == pytest.approx(0.5 * 5300.0, rel=1e-9)


def test_same_seed_same_stream_and_streams_are_independent() -> None:
    a, b = gen(), gen()
    assert a.jobs == b.jobs and a.streams == b.streams
    assert fields(gen(seed=8)) != fields(a)
    with_w2 = gen(hours_h100={"w1": 2000.0, "w2": 500.0})
    assert fields(with_w2, "w1") == fields(a, "w1")  # adding a workload changes no other stream


def test_sku_shares_follow_h100_equivalent_capacity() -> None:
    s = gen(hours_h100={"w1": 200_000.0})
    n = Counter(j.worker.gpu_models[0] for j in s.jobs)
    total = n["H100"] + n["B200"]
    assert set(n) == {"H100", "B200"} and total == len(s.jobs) > 5000
    p = {"H100": 64 * 1.0 / (64 + 32 * 2.3), "B200": 32 * 2.3 / (64 + 32 * 2.3)}
    chi2 = sum((n[k] - total * p[k]) ** 2 / (total * p[k]) for k in p)
    assert chi2 < 10.83  # chi-square, 1 degree of freedom, p = 0.001
    assert n["H100"] / total == pytest.approx(p["H100"], abs=0.03)


def test_durations_are_trace_durations_divided_by_eff() -> None:
    s = gen(hours_h100={"w1": 20_000.0})
    trace = {(int(g), float(d)) for g, d in zip(SIZES.num_gpus, SIZES.duration_s, strict=True)}
    eff = {"H100": 1.0, "B200": 2.3}
    odd = []
    for j in s.jobs:
        gpus = j.num_workers * j.worker.gpus
        h100_s = (j.estimated_duration_s or 0.0) * eff[j.worker.gpu_models[0]]
        if not any(g == gpus and h100_s == pytest.approx(d, rel=1e-12) for g, d in trace):
            odd.append(j)
    assert len(odd) <= 1  # the one job (J4) trims, at most
    assert odd and (odd[0].estimated_duration_s or 0) > 0


def test_every_job_carries_regions_team_pin_and_checkpoints_sorted_and_named() -> None:
    s = gen(hours_h100={"w1": 3000.0, "w2": 1000.0}, checkpoint_interval_s=900.0)
    assert [j.job_id for j in s.jobs] == [f"s1-2027Q1-{i:06d}" for i in range(len(s.jobs))]
    times = [j.submitted_at_s for j in s.jobs]
    assert times == sorted(times) and times[0] >= 1000.0 and times[-1] < 1000.0 + WEEK_S
    for j in s.jobs:
        region, allowed = {"w1": ("CN", ("CN",)), "w2": ("US", ("US", "CN"))}[j.team]
        assert (j.data_region, j.worker.regions) == (region, allowed)
        assert j.worker.gpu_models in (("H100",), ("B200",))
        assert (j.topology, j.checkpoint_interval_s, j.priority) == (Topology.ANY, 900.0, 0)


def test_gangs_as_gang_of_with_a_share_of_the_nodes_cpu_and_memory() -> None:
    assert gang_shape(12, 8) == (2, 6)
    assert gang_shape(16, 8) == (2, 8)
    assert gang_shape(12, 4) == (3, 4)
    assert gang_shape(7, 4) == (7, 1)
    assert gang_shape(1, 8) == (1, 1)
    one = JobSizes.of([(12, 3600.0)])
    s = gen(pools=(H100,), sizes=one, hours_h100={"w1": 24.0})
    assert len(s.jobs) == 2
    j = s.jobs[0]
    assert (j.num_workers, j.worker.gpus, j.worker.cpu_milli, j.worker.memory_mib) == (
        2, 6, 112_000 * 6 // 8, 2 * TIB * 6 // 8,
    )  # fmt: skip
    t = gen(pools=(TRAY,), sizes=JobSizes.of([(7, 3600.0)]), hours_h100={"w1": 7.0}).jobs[0]
    assert (t.num_workers, t.worker.gpus, t.worker.cpu_milli, t.worker.memory_mib) == (
        7, 1, 36_000, 240 * 1024,
    )  # fmt: skip
    assert t.estimated_duration_s == pytest.approx(3600.0 / 2.5)


def test_a_target_below_one_job_is_one_trimmed_job_and_zero_is_none() -> None:
    s = gen(sizes=JobSizes.of([(8, 36_000.0)]), hours_h100={"w1": 4.0}, pools=(H100,))
    assert len(s.jobs) == 1 and s.streams[0].overshoot_h100_hours == pytest.approx(76.0)
    assert s.jobs[0].estimated_duration_s == pytest.approx(1800.0)
    assert gen(hours_h100={"w1": 0.0}).jobs == ()


def test_max_duration_caps_the_run_time_on_each_sku() -> None:
    s = gen(hours_h100={"w1": 5000.0}, max_duration_h=1.0)
    assert max(j.estimated_duration_s or 0 for j in s.jobs) <= 3600.0 + 1e-9
    # a B200 (eff 2.3) job of the cap does 2.3 H100-hours of work per GPU
    b200 = [j for j in s.jobs if j.worker.gpu_models == ("B200",)]
    assert b200 and max(j.estimated_duration_s or 0 for j in b200) == pytest.approx(3600.0)
    assert s.h100_hours == pytest.approx(5000.0, rel=1e-9)


def test_gangs_larger_than_their_skus_gpus_are_kept_and_counted() -> None:
    small = SkuPool("H100", 1, 8, 1.0, 8, 112_000, 2 * TIB)
    s = gen(
        pools=(small,), sizes=JobSizes.of([(16, 3600.0), (1, 3600.0)]), hours_h100={"w1": 200.0}
    )
    big = [j for j in s.jobs if j.num_workers * j.worker.gpus == 16]
    assert big and s.oversized == len(big)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"hours of workload w1: -1.0 is not allowed"):
        gen(hours_h100={"w1": -1.0})
    with pytest.raises(ValueError, match="site s1: demand of w1 but no GPUs in the fleet"):
        gen(pools=())
    with pytest.raises(ValueError, match=r"teams of workload w1: shares \[0.5\]"):
        gen(teams=(Team("a", "w1", 0.5),))
    with pytest.raises(ValueError, match="workload w3: no data region or allowed regions given"):
        gen(hours_h100={"w3": 1.0})
    with pytest.raises(ValueError, match=r"slice_fraction 0 is not allowed"):
        gen(slice_fraction=0)


# -- settings --------------------------------------------------------------------------------


def test_settings_defaults_and_a_full_mapping() -> None:
    d = SimulationSettings.from_mapping(None)
    assert (d.job_sizes, d.max_duration_h, d.checkpoint_interval_s, d.weeks_per_quarter) == (
        "philly",
        None,
        1800.0,
        1,
    )
    assert (d.warmup_weeks, d.max_gpus_per_site, d.queue, d.backfill, d.preemption, d.quotas) == (1, 512, "fifo", "easy", False, None)  # fmt: skip
    raw = yaml.safe_load(
        """
        job_sizes: {csv: sizes.csv}
        max_duration_h: 1.0e+2
        checkpoint_interval_s: null
        weeks_per_quarter: 2
        warmup_weeks: 0
        max_gpus_per_site: null
        queue: priority
        backfill: none
        preemption: true
        quotas: {quotas: [{team: a, gpu_model: "*", nominal_gpus: 8}]}
        priority_classes: {prod: 10}
        teams:
          - {name: a, workload: w1, share: 0.25, priority_class: prod}
          - {name: b, workload: w1, share: 0.75}
        node_shapes: {H100: {cpu_milli: 96000}}
        """
    )
    s = SimulationSettings.from_mapping(raw, "f.yaml", workloads=["w1"], skus=["H100"])
    assert s.job_sizes == CsvSizes(csv="sizes.csv") and s.max_duration_h == 100.0
    assert (s.checkpoint_interval_s, s.max_gpus_per_site, s.preemption) == (None, None, True)
    assert [s.priority(t) for t in s.teams] == [10, 0]
    classes = s.priority_class_config()
    assert classes is not None and classes.value("a") == 10 and classes.value("b") == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"weeks_per_quarter": 0}, "simulation.weeks_per_quarter: Input should be greater than 0 (got 0)"),
        ({"weeks_per_quarter": 14}, "simulation.weeks_per_quarter: Input should be less than or equal to 13 (got 14)"),
        ({"max_duration_h": float("inf")}, "simulation.max_duration_h: Input should be a finite number (not NaN or infinite) (got inf)"),
        ({"backfill": "greedy"}, "simulation.backfill: Input should be 'none' or 'easy' (got 'greedy')"),
        ({"queue": "lifo"}, "simulation.queue: unknown queue order; known: fifo, priority, sjf, las, drf (got 'lifo')"),
        ({"job_sizes": "google"}, "simulation.job_sizes: Input should be 'philly' or 'alibaba2023' (got 'google')"),
        ({"job_sizes": 5}, "simulation.job_sizes: philly, alibaba2023 or a mapping {csv: PATH} (got 5)"),
        ({"job_sizes": {"path": "x"}}, "simulation.job_sizes.csv: required field is missing\nf.yaml: simulation.job_sizes.path: unknown field 'path' in job_sizes; allowed fields: csv (got 'x')"),
        ({"quotas": 3}, "simulation.quotas: a quota file path or a mapping in the quota-file format (got 3)"),
        ({"node_shapes": {"H100": {"cpus": 8}}}, "simulation.node_shapes.H100.cpus: unknown field 'cpus' in node_shapes.H100; allowed fields: gpus_per_node, cpu_milli, memory_mib, gpu_memory_mib, gpus_per_nvlink_domain, nodes_per_system (got 8)"),
        ({"node_shapes": {"B300": {"cpu_milli": 8}}}, "simulation.node_shapes.B300: must be a SKU of the scenario: H100 (got 'B300')"),
        ({"teams": [{"name": "a", "workload": "w1", "share": 1.2}]}, "simulation.teams[0].share: Input should be less than or equal to 1 (got 1.2)"),
        ({"teams": [{"name": "a", "workload": "w1"}]}, "simulation.teams[0].share: required field is missing"),
        ({"teams": [{"name": "a", "workload": "w9", "share": 1}]}, "simulation.teams[0].workload: must be a workload of the scenario: w1 (got 'w9')"),
        ({"teams": [{"name": "a", "workload": "w1", "share": 0.5}, {"name": "b", "workload": "w1", "share": 0.4}]},
         "simulation.teams[1].share: the shares of the teams of workload w1 must sum to 1; teams[0], teams[1] sum to 0.9 (got 0.4)"),
        ({"teams": [{"name": "a", "workload": "w1", "share": 1, "priority_class": "prod"}]},
         "simulation.teams[0].priority_class: must be a priority class: none defined in simulation.priority_classes (got 'prod')"),
        ({"seed": 1}, "simulation.seed: unknown field 'seed'; allowed fields: job_sizes, max_duration_h, checkpoint_interval_s, weeks_per_quarter, warmup_weeks, max_gpus_per_site, queue, backfill, preemption, quotas, priority_classes, teams, node_shapes (got 1)"),
    ],
)  # fmt: skip
def test_a_bad_simulation_value_is_refused_naming_the_field(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as e:
        SimulationSettings.from_mapping(raw, "f.yaml", workloads=["w1"], skus=["H100"])
    assert str(e.value) == f"f.yaml: {message}"


def test_the_planners_frozen_simulation_mapping_is_read(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "tests" / "data" / "planner" / "tiny.yaml").read_text())
    doc["simulation"] = {
        "teams": [{"name": "t", "workload": "us-fsd", "share": 1.0}],
        "warmup_weeks": 2,
    }
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    sc = load_scenario(p)
    s = SimulationSettings.from_mapping(sc.simulation, sc.source, [w.name for w in sc.workloads])
    assert (s.teams[0].name, s.warmup_weeks) == ("t", 2)


def test_a_bad_simulation_value_in_a_scenario_file_has_its_line(tmp_path: Path) -> None:
    text = (ROOT / "tests" / "data" / "planner" / "tiny.yaml").read_text()
    p = tmp_path / "s.yaml"
    p.write_text(text + "simulation:\n  queue: fifo\n  warmup_weeks: .nan\n")
    sc = load_scenario(p)
    with pytest.raises(SettingsError) as e:
        SimulationSettings.from_mapping(sc.simulation, sc.source)
    line = text.count("\n") + 3
    assert str(e.value) == (
        f"{p}:{line}: simulation.warmup_weeks: Input should be a finite number (not NaN or "
        "infinite) (got nan)"
    )


# -- job sizes -------------------------------------------------------------------------------


def test_a_missing_trace_says_which_file_and_how_to_point_at_the_traces(tmp_path: Path) -> None:
    with pytest.raises(JobSizesError) as e:
        load_job_sizes("philly", traces_dir=tmp_path)
    msg = str(e.value)
    assert msg.startswith(
        f"job sizes philly: {tmp_path / 'philly' / 'philly.csv'} does not exist; "
    )
    assert "pass traces_dir=DIR" in msg and "{csv: PATH}" in msg
    with pytest.raises(JobSizesError, match=r"fix simulation\.job_sizes\.csv"):
        load_job_sizes(CsvSizes(csv="nope.csv"), relative_to=tmp_path)


def test_csv_job_sizes_relative_to_the_scenario_and_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "sizes.csv").write_text("num_gpus,duration_s\n1,60\n8,3600.5\n2,0\n")
    s = load_job_sizes(CsvSizes(csv="sizes.csv"), relative_to=tmp_path)
    assert (s.name, s.num_gpus.tolist(), s.duration_s.tolist(), s.dropped) == (
        "csv",
        [1, 8],
        [60.0, 3600.5],
        1,
    )
    (tmp_path / "bad.csv").write_text("num_gpus,duration_s\n1,60\n0,10\n")
    with pytest.raises(TraceError, match=r"bad.csv:3: column 'num_gpus': '0' is not allowed \(an integer in 1..4096\)"):  # fmt: skip
        load_job_sizes(CsvSizes(csv=str(tmp_path / "bad.csv")))


# -- with a scenario -------------------------------------------------------------------------


def test_site_jobs_take_regions_teams_and_the_slice_from_the_scenario() -> None:
    sc = parse_scenario(
        yaml.safe_load((ROOT / "tests" / "data" / "planner" / "tiny.yaml").read_text()), "t.yaml"
    )
    fleet = site_nodes(sc, "us-a", 0, {"fast": 100, "slow": 20}, max_gpus=64)
    settings = SimulationSettings.from_mapping(
        {"priority_classes": {"hi": 3}, "checkpoint_interval_s": 600,
         "teams": [{"name": "x", "workload": "us-fsd", "share": 1, "priority_class": "hi"}]}
    )  # fmt: skip
    s = site_jobs(sc, fleet, {"us-fsd": 10_000.0}, 0.0, WEEK_S, SIZES, settings, seed=3)
    assert s.streams[0].target_h100_hours == pytest.approx(10_000.0 * fleet.capacity_fraction)
    assert s.h100_hours == pytest.approx(10_000.0 * fleet.capacity_fraction, rel=1e-9)
    assert {
        (j.team, j.priority, j.data_region, j.worker.regions, j.checkpoint_interval_s)
        for j in s.jobs
    } == {("x", 3, "US", ("US",), 600.0)}
    assert s.quarter_label == "2027Q1" and s.jobs[0].job_id == "us-a-2027Q1-000000"
    with pytest.raises(ValueError, match=r"workload cn-fsd: 5 H100-hours at site us-a \(region US\), but it may run only in CN"):  # fmt: skip
        site_jobs(sc, fleet, {"cn-fsd": 5.0}, 0.0, WEEK_S, SIZES)


# -- the real traces (../shared/traces) ------------------------------------------------------

needs_traces = pytest.mark.skipif(
    not (DEFAULT_TRACES_DIR / "philly" / "philly.csv").exists(),
    reason="../shared/traces is not present",
)


@pytest.mark.trace
@needs_traces
def test_philly_and_alibaba_job_sizes() -> None:
    p = load_job_sizes("philly")
    assert (len(p), p.dropped, int(p.num_gpus.max())) == (82_247, 0, 128)
    a = load_job_sizes("alibaba2023")
    assert (len(a), a.dropped, sorted(set(a.num_gpus.tolist()))) == (7_063, 1, [1, 2, 4, 8])
    assert load_job_sizes("philly") is p  # read once


@pytest.mark.trace
@needs_traces
def test_a_site_week_of_512_gpu_pools_of_the_default_scenario() -> None:
    sc = load_scenario(ROOT / "simulations" / "scenarios" / "china-dc.yaml")
    fleet = site_nodes(sc, "cn-west", 8, {"H200": 2868, "H20": 9058}, max_gpus=512)
    assert fleet.gpus_in_slice == 2 * 512  # each GPU model's pool: 512 GPUs
    site_h100 = (2868 * 1.15 + 9058 * 0.15) * 8 * 168 * 0.8  # a week at 80 % of capacity
    sizes = load_job_sizes("philly")
    t0 = time.perf_counter()
    s = site_jobs(sc, fleet, {"cn-fsd": site_h100}, 0.0, WEEK_S, sizes, seed=1)
    assert time.perf_counter() - t0 < 2.0
    assert s.h100_hours == pytest.approx(site_h100 * fleet.capacity_fraction, rel=1e-9)
    assert len(s.jobs) > 500 and {j.worker.gpu_models[0] for j in s.jobs} == {"H200", "H20"}
    assert {(j.data_region, j.worker.regions) for j in s.jobs} == {("CN", ("CN",))}


def test_in_a_slice_a_gang_wider_than_its_pool_runs_narrower_and_longer() -> None:
    small = SkuPool("H100", 2, 16, 1.0, 8, 112_000, 2 * TIB)
    sizes = JobSizes.of([(128, 3600.0)])
    whole = gen(pools=(small,), sizes=sizes, hours_h100={"w1": 256.0})
    assert whole.oversized == 2 and whole.shrunk == 0  # the site itself cannot hold them
    sliced = gen(pools=(small,), sizes=sizes, hours_h100={"w1": 512.0}, slice_fraction=0.5)
    assert sliced.oversized == 0 and sliced.shrunk == 2
    assert [(j.num_workers, j.worker.gpus, j.estimated_duration_s) for j in sliced.jobs] == [
        (2, 8, 8 * 3600.0),
        (2, 8, 8 * 3600.0),
    ]
    assert sliced.h100_hours == pytest.approx(256.0)
