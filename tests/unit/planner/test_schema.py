from __future__ import annotations

from pathlib import Path

import pytest

from planner.schema import ScenarioError, load_scenario, parse_scenario

DEFAULT = Path(__file__).parents[3] / "simulations" / "scenarios" / "china-dc.yaml"


def test_default_scenario_loads() -> None:
    sc = load_scenario(DEFAULT)
    assert sc.horizon.labels[0] == "2027Q1" and sc.horizon.labels[-1] == "2031Q4"
    assert sc.regions == ("CN", "US")
    assert sc.growth_cases() == ("base", "high", "low")
    h200 = sc.sku("H200")
    assert h200.eligible_in("CN", 0) and dict(h200.supply_cap_systems_per_quarter)["CN"] == 250
    assert not any(
        sc.sku(k).eligible_in("CN", t) for k in ("H100", "B200", "GB200-NVL72") for t in range(20)
    )
    assert sc.sku("H20").eligible_in("CN", 0) and not sc.sku("H20").eligible_in("US", 0)


def _error(doc: dict) -> str:  # type: ignore[type-arg]
    with pytest.raises(ScenarioError) as e:
        parse_scenario(doc, "s.yaml")
    return str(e.value)


def test_bad_number_names_path_value_and_allowed(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][1]["grid_cap_mw"] = -5
    msg = _error(tiny_doc)
    assert msg == "s.yaml: sites[1].grid_cap_mw: -5 is not allowed (a number >= 0)"


def test_unknown_key_lists_allowed(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][0]["prise_usd"] = 3
    msg = _error(tiny_doc)
    assert msg.startswith(
        "s.yaml: skus[0].prise_usd: 3 is not allowed (unknown key; allowed: name, gpus_per_system,"
    )
    assert "price_usd_per_system" in msg


def test_unknown_region_and_bad_quarter(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][0]["eligible"] = {"EU": {}}
    assert "skus[0].eligible.EU: 'EU' is not allowed (a region of a site: CN, US)" in _error(
        tiny_doc
    )
    tiny_doc["skus"][0]["eligible"] = {"US": {"from": "2027-Q1"}}
    assert "skus[0].eligible.US.from: '2027-Q1' is not allowed (a quarter like 2027Q1)" in _error(
        tiny_doc
    )


def test_missing_key_and_choices(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    del tiny_doc["sites"][0]["pue"]
    assert "sites[0].pue: None is not allowed (a required key)" in _error(tiny_doc)
    tiny_doc["sites"][0]["pue"] = 1.3
    tiny_doc["economics"]["unserved"]["mode"] = "soft"
    assert "economics.unserved.mode: 'soft' is not allowed (one of penalty, hard)" in _error(
        tiny_doc
    )


def test_gpus_per_system_and_demand_length(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][1]["gpus_per_system"] = 4
    assert (
        "skus[1].gpus_per_system: 4 is not allowed (8 (HGX/DGX server) or 72 (NVL72 rack))"
        in _error(tiny_doc)
    )
    tiny_doc["skus"][1]["gpus_per_system"] = 8
    tiny_doc["workloads"][0]["demand_h100_hours_per_quarter"] = [1, 2]
    assert (
        "workloads[0].demand_h100_hours_per_quarter: '2 values' is not allowed (one number, or 3"
        in _error(tiny_doc)
    )


def test_cross_references(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["workloads"][1]["home_site"] = "cn-b"
    assert "workloads[1].home_site: 'cn-b' is not allowed (a site name: us-a, cn-a)" in _error(
        tiny_doc
    )
    tiny_doc["workloads"][1]["home_site"] = "cn-a"
    tiny_doc["sites"][0]["installed"] = [{"sku": "H100", "systems": 1, "delivered": "2026Q1"}]
    assert "sites[0].installed[0].sku: 'H100' is not allowed (a SKU of skus: fast, slow)" in _error(
        tiny_doc
    )


def test_existing_load_above_grid_cap(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][0]["grid_cap_mw"] = 0.01
    assert "sites[0].grid_cap_mw: 0.01 is not allowed (>= existing_it_mw x pue = 0.065)" in _error(
        tiny_doc
    )


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="a readable YAML file"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="valid YAML"):
        load_scenario(bad)


def test_scientific_notation_strings_are_numbers(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][0]["block_usd_per_mw"] = "2.5e6"  # what PyYAML makes of 2.5e6
    assert parse_scenario(tiny_doc, "s.yaml").sites[0].block_usd_per_mw == 2.5e6
