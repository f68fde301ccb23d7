"""Plan -> fleet: installed systems as the planner's constraint (1) and installed.csv, nodes."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.build import build
from planner.inputs import Scenario
from planner.report import write_outputs
from planner.results import collect
from planner.schema import parse_scenario
from planner.solve import SolveOptions, solve
from scheduler.core.model import REGION_LABEL
from simulations.plan_sim.fleet import (
    DEFAULT_SHAPES,
    SITE_LABEL,
    NodeShape,
    PlanFileError,
    Purchase,
    generic_shape,
    installed_systems,
    node_shapes,
    read_purchases,
    site_nodes,
)
from simulations.plan_sim.settings import SimulationSettings

TINY = Path(__file__).parents[1] / "data" / "planner" / "tiny.yaml"


def tiny_doc() -> dict[str, Any]:
    """tiny.yaml over four quarters, short lives (so systems retire inside the horizon) and
    systems delivered before the plan at both sites."""
    doc: dict[str, Any] = yaml.safe_load(TINY.read_text())
    doc["horizon"] = {"start": "2027Q1", "end": "2027Q4"}
    doc["skus"][0]["lifetime_quarters"] = 3  # fast: lead 1
    doc["skus"][1]["lifetime_quarters"] = 2  # slow: lead 0
    doc["sites"][0]["installed"] = [{"sku": "fast", "systems": 2, "delivered": "2026Q3"}]
    doc["sites"][1]["installed"] = [{"sku": "slow", "systems": 1, "delivered": "2026Q4"}]
    doc["workloads"][0]["demand_h100_hours_per_quarter"] = [5000, 40000, 60000, 60000]
    doc["workloads"][1]["demand_h100_hours_per_quarter"] = [4000, 6000, 8000, 8000]
    return doc


def tiny() -> Scenario:
    return parse_scenario(tiny_doc(), "tiny-fleet.yaml")


def dgx_doc() -> dict[str, Any]:
    """One US site with SKUs named like the default scenario's (built-in node shapes)."""
    doc = tiny_doc()
    fast, slow = doc["skus"]
    h100 = {**copy.deepcopy(fast), "name": "H100", "it_kw_per_system": 10.2}
    nvl = {**copy.deepcopy(fast), "name": "GB200-NVL72", "gpus_per_system": 72, "eff_vs_h100": 2.5,
           "it_kw_per_system": 132, "liquid_cooled": True}  # fmt: skip
    doc["skus"] = [h100, nvl, slow]
    doc["sites"][0].update(rack_kw=40, installed=[])
    doc["sites"][1]["installed"] = []
    return doc


def dgx() -> Scenario:
    return parse_scenario(dgx_doc(), "dgx.yaml")


def read_installed(path: Path, sc: Scenario) -> dict[tuple[str, int], dict[str, int]]:
    out: dict[tuple[str, int], dict[str, int]] = {
        (s.name, t): {} for s in sc.sites for t in range(sc.horizon.quarters)
    }
    with path.open() as f:
        for r in csv.DictReader(f):
            out[(r["site"], sc.horizon.index(r["quarter"]))][r["sku"]] = int(r["systems"])
    return out


# -- installed systems ---------------------------------------------------------------------


def test_installed_systems_equal_the_planners_installed_csv(tmp_path: Path) -> None:
    sc = tiny()
    m = build(sc)
    res = collect(m, solve(m, SolveOptions(gap=None)))
    write_outputs(res, tmp_path)
    purchases = read_purchases(tmp_path / "purchases.csv", sc)
    assert purchases  # the plan buys, so arrivals are tested, not only I0
    assert installed_systems(sc, purchases) == read_installed(tmp_path / "installed.csv", sc)


def test_installed_systems_by_hand_lead_time_and_retirement() -> None:
    sc = tiny()  # fast: lead 1, life 3; slow: lead 0, life 2
    buys = [
        Purchase(0, "us-a", "fast", 2),  # alive 1..3
        Purchase(2, "us-a", "fast", 1),  # alive 3..5 (horizon ends at 3)
        Purchase(1, "us-a", "slow", 1),  # alive 1..2
        Purchase(3, "cn-a", "slow", 4),  # alive 3..4
    ]
    # I0: us-a 2 fast delivered 2026Q3 (t=-2), alive -2..0; cn-a 1 slow from t=-1, alive -1..0
    assert installed_systems(sc, buys) == {
        ("us-a", 0): {"fast": 2},
        ("us-a", 1): {"fast": 2, "slow": 1},
        ("us-a", 2): {"fast": 2, "slow": 1},
        ("us-a", 3): {"fast": 3},
        ("cn-a", 0): {"slow": 1},
        ("cn-a", 1): {},
        ("cn-a", 2): {},
        ("cn-a", 3): {"slow": 4},
    }


def write_purchases(tmp_path: Path, *rows: str) -> Path:
    p = tmp_path / "purchases.csv"
    p.write_text("quarter,site,sku,systems,gpus\n" + "".join(r + "\n" for r in rows))
    return p


def test_read_purchases_reads_rows_as_quarter_indices(tmp_path: Path) -> None:
    p = write_purchases(tmp_path, "2027Q1,us-a,fast,2,16", "2027Q4,cn-a,slow,0,0")
    assert read_purchases(p, tiny()) == (
        Purchase(0, "us-a", "fast", 2),
        Purchase(3, "cn-a", "slow", 0),
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2027-1,us-a,fast,2,16", ":2: column 'quarter': '2027-1' is not allowed (a quarter like 2027Q1)"),
        ("2028Q1,us-a,fast,2,16", ":2: column 'quarter': '2028Q1' is not allowed (a quarter of the scenario's horizon 2027Q1..2027Q4)"),
        ("2027Q1,eu-a,fast,2,16", ":2: column 'site': 'eu-a' is not allowed (a site of the scenario: us-a, cn-a)"),
        ("2027Q1,us-a,H100,2,16", ":2: column 'sku': 'H100' is not allowed (a SKU of the scenario: fast, slow)"),
        ("2027Q1,us-a,fast,-2,-16", ":2: column 'systems': '-2' is not allowed (a whole number >= 0)"),
        ("2027Q1,us-a,fast,2.5,20", ":2: column 'systems': '2.5' is not allowed (a whole number >= 0)"),
        ("2027Q1,us-a,fast,2,15", ":2: column 'gpus': '15' is not allowed (systems x 8 GPUs per fast system = 16)"),
    ],
)  # fmt: skip
def test_read_purchases_names_file_line_column_and_value(
    tmp_path: Path, row: str, message: str
) -> None:
    p = write_purchases(tmp_path, row)
    with pytest.raises(PlanFileError) as e:
        read_purchases(p, tiny())
    assert str(e.value) == f"{p}{message}"


def test_read_purchases_refuses_a_repeated_row_and_a_missing_file(tmp_path: Path) -> None:
    p = write_purchases(
        tmp_path, "2027Q1,us-a,fast,2,16", "2027Q2,us-a,fast,1,8", "2027Q1,us-a,fast,1,8"
    )
    with pytest.raises(PlanFileError, match=r":4: column 'sku': 'fast' is not allowed \(one row per quarter, site and SKU \(2027Q1 us-a fast is on line 2\)\)"):  # fmt: skip
        read_purchases(p, tiny())
    with pytest.raises(
        PlanFileError, match=r"gpuyard plan SCENARIO --out DIR writes DIR/purchases\.csv"
    ):
        read_purchases(tmp_path / "none.csv", tiny())


def test_read_purchases_refuses_a_file_without_the_columns(tmp_path: Path) -> None:
    p = tmp_path / "purchases.csv"
    p.write_text("quarter,site,sku,systems\n2027Q1,us-a,fast,2\n")
    with pytest.raises(PlanFileError, match=r"purchases.csv:1: column 'gpus'"):
        read_purchases(p, tiny())
    with pytest.raises(ValueError, match="site and SKU must be the scenario's"):
        installed_systems(tiny(), [Purchase(0, "eu-a", "fast", 1)])


# -- node shapes and nodes -----------------------------------------------------------------


def test_built_in_shapes_generic_shapes_and_overrides() -> None:
    sc = dgx()
    shapes = node_shapes(sc)
    assert shapes["H100"] == NodeShape(8, 112_000, 2 * 1024 * 1024, 80 * 1024, 8, 1)
    assert shapes["GB200-NVL72"] == NodeShape(4, 144_000, 960 * 1024, 186 * 1024, 4, 18)
    assert shapes["slow"] == NodeShape(8, 8 * 14_000, 8 * 256 * 1024, 80 * 1024, 8, 1)  # generic
    settings = SimulationSettings.from_mapping(
        {"node_shapes": {"slow": {"cpu_milli": 64_000, "gpus_per_nvlink_domain": 4}}}
    )
    assert node_shapes(sc, settings)["slow"] == NodeShape(
        8, 64_000, 8 * 256 * 1024, 80 * 1024, 4, 1
    )
    bad = SimulationSettings.from_mapping({"node_shapes": {"H100": {"gpus_per_node": 4}}})
    with pytest.raises(ValueError, match=r"dgx.yaml: simulation.node_shapes.H100: 4 GPUs per node x 1 nodes per system is not allowed \(SKU H100 has 8 GPUs per system\)"):  # fmt: skip
        node_shapes(sc, bad)
    odd = SimulationSettings.from_mapping({"node_shapes": {"H100": {"gpus_per_nvlink_domain": 3}}})
    with pytest.raises(ValueError, match=r"gpus_per_nvlink_domain: 3 is not allowed \(a divisor of gpus_per_node = 8\)"):  # fmt: skip
        node_shapes(sc, odd)


def test_generic_shapes_by_gpus_per_system() -> None:
    doc = tiny_doc()
    doc["skus"][1]["gpus_per_system"] = 72  # an NVL72-like rack of another name
    shapes = node_shapes(parse_scenario(doc, "x.yaml"))
    assert shapes["slow"] == DEFAULT_SHAPES["GB200-NVL72"]
    assert (
        shapes["fast"]
        == generic_shape(8)
        == NodeShape(8, 112_000, 2 * 1024 * 1024, 80 * 1024, 8, 1)
    )
    assert generic_shape(36) == NodeShape(6, 6 * 14_000, 6 * 256 * 1024, 80 * 1024, 6, 6)
    assert generic_shape(4) == NodeShape(4, 4 * 14_000, 4 * 256 * 1024, 80 * 1024, 4, 1)


def test_site_nodes_of_air_cooled_systems_count_gpus_racks_and_labels() -> None:
    sc = tiny()  # us-a: rack_kw 20, fast 10 kW (2 per rack), slow 6 kW (3 per rack)
    fleet = site_nodes(sc, "us-a", 3, {"fast": 3, "slow": 4}, seed=None)
    assert [n.name for n in fleet.nodes] == [
        "us-a-fast-00000", "us-a-fast-00001", "us-a-fast-00002",
        "us-a-slow-00000", "us-a-slow-00001", "us-a-slow-00002", "us-a-slow-00003",
    ]  # fmt: skip
    assert [n.label("rack") for n in fleet.nodes] == [
        "us-a-fast-rack-0000", "us-a-fast-rack-0000", "us-a-fast-rack-0001",
        "us-a-slow-rack-0000", "us-a-slow-rack-0000", "us-a-slow-rack-0000", "us-a-slow-rack-0001",
    ]  # fmt: skip
    assert {(n.label(REGION_LABEL), n.label(SITE_LABEL)) for n in fleet.nodes} == {("US", "us-a")}
    node = fleet.nodes[0]
    assert (node.cpu_milli, node.memory_mib, len(node.gpus)) == (112_000, 2 * 1024 * 1024, 8)
    assert {g.model for g in node.gpus} == {"fast"} and {g.nvlink_domain for g in node.gpus} == {0}
    assert (fleet.gpus_total, fleet.gpus_in_slice, fleet.slice_fraction) == (56, 56, 1.0)
    assert fleet.capacity_fraction == 1.0 and not fleet.sliced
    assert fleet.systems_total == (("fast", 3), ("slow", 4))
    assert [(p.sku, p.systems, p.gpus, p.eff_vs_h100, p.gpus_per_node) for p in fleet.pools] == [
        ("fast", 3, 24, 1.0, 8),
        ("slow", 4, 32, 0.3, 8),
    ]
    cn = site_nodes(sc, "cn-a", 0, {"slow": 1})
    assert [n.label(REGION_LABEL) for n in cn.nodes] == ["CN"] * 1


def test_site_nodes_a_dense_site_puts_at_least_one_system_in_a_rack() -> None:
    doc = tiny_doc()
    doc["sites"][0]["rack_kw"] = 8  # below the 10 kW of a fast system
    fleet = site_nodes(parse_scenario(doc, "x.yaml"), "us-a", 0, {"fast": 2}, seed=None)
    assert [n.label("rack") for n in fleet.nodes] == ["us-a-fast-rack-0000", "us-a-fast-rack-0001"]


def test_nvl72_system_is_one_rack_of_18_trays_of_4_gpus() -> None:
    sc = dgx()  # us-a: rack_kw 40, H100 10.2 kW: 3 per rack
    fleet = site_nodes(sc, "us-a", 0, {"H100": 4, "GB200-NVL72": 2}, seed=None)
    h100 = [n for n in fleet.nodes if n.gpus[0].model == "H100"]
    trays = [n for n in fleet.nodes if n.gpus[0].model == "GB200-NVL72"]
    assert len(h100) == 4 and len(trays) == 36
    assert [n.label("rack") for n in h100] == ["us-a-H100-rack-0000"] * 3 + ["us-a-H100-rack-0001"]
    assert [n.label("rack") for n in trays] == ["us-a-GB200-NVL72-rack-0000"] * 18 + [
        "us-a-GB200-NVL72-rack-0001"
    ] * 18
    assert trays[0].name == "us-a-GB200-NVL72-00000" and trays[-1].name == "us-a-GB200-NVL72-00035"
    t = trays[0]
    assert (len(t.gpus), t.cpu_milli, t.memory_mib) == (4, 144_000, 960 * 1024)
    assert {g.nvlink_domain for g in t.gpus} == {0} and t.gpus[0].memory_mib == 186 * 1024
    assert (fleet.gpus_total, fleet.gpus_in_slice) == (4 * 8 + 2 * 72, 176)


def test_a_slice_keeps_each_gpu_models_pool_within_max_gpus() -> None:
    sc = dgx()
    # H100: 100 systems (800 GPUs) -> 512 // 8 = 64; NVL72: 3 racks (216 GPUs) stay whole
    fleet = site_nodes(sc, "us-a", 0, {"H100": 100, "GB200-NVL72": 3}, max_gpus=512)
    assert [(p.sku, p.systems, p.gpus) for p in fleet.pools] == [
        ("H100", 64, 512),
        ("GB200-NVL72", 3, 216),
    ]
    assert len(fleet.nodes) == 64 + 3 * 18
    assert (fleet.gpus_total, fleet.gpus_in_slice, fleet.sliced) == (1016, 728, True)
    assert fleet.slice_fraction == 728 / 1016
    assert fleet.capacity_fraction == (512 + 2.5 * 216) / (800 + 2.5 * 216)
    assert fleet.systems_total == (("H100", 100), ("GB200-NVL72", 3))
    # a small model keeps its pool: H100 1000 -> 64 systems, NVL72 1 -> 1 (at least one)
    small = site_nodes(sc, "us-a", 0, {"H100": 1000, "GB200-NVL72": 1}, max_gpus=512)
    assert [(p.sku, p.systems) for p in small.pools] == [("H100", 64), ("GB200-NVL72", 1)]
    assert small.gpus_in_slice == 64 * 8 + 72 and small.slice_fraction == 584 / 8072
    # NVL72 wider than max_gpus: one rack at least
    one = site_nodes(sc, "us-a", 0, {"GB200-NVL72": 5}, max_gpus=64)
    assert [(p.sku, p.systems) for p in one.pools] == [("GB200-NVL72", 1)]
    # a site within max_gpus is whole
    whole = site_nodes(sc, "us-a", 0, {"H100": 64}, max_gpus=512)
    assert (whole.gpus_in_slice, whole.slice_fraction, whole.sliced) == (512, 1.0, False)


def test_node_order_is_a_seeded_permutation_of_name_order() -> None:
    sc = dgx()
    plain = site_nodes(sc, "us-a", 0, {"H100": 5, "GB200-NVL72": 1}, seed=None)
    a = site_nodes(sc, "us-a", 0, {"H100": 5, "GB200-NVL72": 1}, seed=0)
    b = site_nodes(sc, "us-a", 0, {"H100": 5, "GB200-NVL72": 1}, seed=0)
    assert a.nodes == b.nodes and a.nodes != plain.nodes
    assert sorted(a.nodes, key=lambda n: n.name) == sorted(plain.nodes, key=lambda n: n.name)


def test_an_empty_site_and_bad_arguments() -> None:
    sc = tiny()
    empty = site_nodes(sc, "us-a", 0, {})
    assert (empty.nodes, empty.pools, empty.gpus_total, empty.slice_fraction) == ((), (), 0, 1.0)
    with pytest.raises(ValueError, match="site 'eu' is not a site of scenario 'tiny'"):
        site_nodes(sc, "eu", 0, {})
    with pytest.raises(ValueError, match="SKU 'H100' is not a SKU of scenario 'tiny'"):
        site_nodes(sc, "us-a", 0, {"H100": 1})
    with pytest.raises(ValueError, match="systems of fast: -1 is not a whole number >= 0"):
        site_nodes(sc, "us-a", 0, {"fast": -1})


def test_a_cn_job_of_the_simulator_never_lands_on_a_us_node() -> None:
    """Both sites' nodes in one core (the US site's idle, the CN site's one node busy): the
    China workload's jobs wait for CN GPUs and never take the idle US ones."""
    from scheduler.config import SchedulerConfig, build_core
    from scheduler.core.actions import Launch
    from simulations.plan_sim.jobs import JobSizes, site_jobs
    from simulations.replay import replay_jobs

    sc = tiny()
    us = site_nodes(sc, "us-a", 0, {"fast": 4})
    cn = site_nodes(sc, "cn-a", 0, {"slow": 1})
    sizes = JobSizes.of([(8, 3600.0), (4, 7200.0), (1, 1800.0)])
    stream = site_jobs(sc, cn, {"cn-fsd": 400.0}, 0.0, 86_400.0, sizes)
    assert stream.jobs and {j.data_region for j in stream.jobs} == {"CN"}
    assert {j.worker.regions for j in stream.jobs} == {("CN",)}
    state = build_core(SchedulerConfig(backfill="easy"), [*us.nodes, *cn.nodes])
    launched: list[str] = []
    handle = state.handle

    def spy(*events):  # type: ignore[no-untyped-def]
        acts = handle(*events)
        launched.extend(n for a in acts if isinstance(a, Launch) for n in a.placement.nodes)
        return acts

    state.handle = spy  # type: ignore[method-assign]
    replay = replay_jobs(state, stream.jobs, [j.estimated_duration_s or 0.0 for j in stream.jobs])
    region = {n.name: n.label(REGION_LABEL) for n in [*us.nodes, *cn.nodes]}
    assert launched and {region[n] for n in launched} == {"CN"}
    waited = [t.start_s - t.submit_s for t in replay.tracks]
    assert max(waited) > 0  # the CN node was busy while four US nodes idled
    assert all(t.end_s > 0 for t in replay.tracks)  # and every job ran, in China
