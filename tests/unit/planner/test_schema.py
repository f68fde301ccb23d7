from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from planner.inputs import Window
from planner.schema import ScenarioError, load_scenario, parse_scenario
from scheduler.files import schemas
from scheduler.files.document import InputRejected, dotted

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


def _error(doc: Any) -> str:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(doc, "s.yaml")
    return str(e.value)


def test_bad_number_names_path_value_and_allowed(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][1]["grid_cap_mw"] = -5
    msg = _error(tiny_doc)
    assert (
        msg == "s.yaml: sites[1].grid_cap_mw: Input should be greater than or equal to 0 (got -5)"
    )


def test_unknown_key_lists_allowed(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][0]["prise_usd"] = 3
    msg = _error(tiny_doc)
    assert msg.startswith(
        "s.yaml: skus[0].prise_usd: unknown field 'prise_usd' in skus[0]; allowed fields: name, "
        "gpus_per_system, price_usd_per_system,"
    )
    assert msg.endswith("supply_cap_systems_per_quarter (got 3)")


def test_unknown_region_and_bad_quarter(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][0]["eligible"] = {"EU": {}}
    assert _error(tiny_doc) == (
        "s.yaml: skus[0].eligible.EU: Input should be a region of a site: CN, US (got 'EU')"
    )
    tiny_doc["skus"][0]["eligible"] = {"US": {"from": "2027-Q1"}}
    assert _error(tiny_doc) == (
        "s.yaml: skus[0].eligible.US.from: Input should be a quarter like 2027Q1 (got '2027-Q1')"
    )
    for key in ("region_price_multiplier", "supply_cap_systems_per_quarter"):
        doc = copy.deepcopy(tiny_doc)
        doc["skus"][0]["eligible"] = {"US": {}}
        doc["skus"][0][key] = {"EU": 1}
        assert _error(doc) == (
            f"s.yaml: skus[0].{key}.EU: Input should be a region of a site: CN, US (got 'EU')"
        )


def test_missing_key_and_choices(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    del tiny_doc["sites"][0]["pue"]
    assert _error(tiny_doc) == "s.yaml: sites[0].pue: required field is missing"
    tiny_doc["sites"][0]["pue"] = 1.3
    tiny_doc["economics"]["unserved"]["mode"] = "soft"
    assert _error(tiny_doc) == (
        "s.yaml: economics.unserved.mode: Input should be 'penalty' or 'hard' (got 'soft')"
    )


def test_penalty_mode_needs_a_penalty(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    del tiny_doc["economics"]["unserved"]["penalty_usd_per_h100_hour"]
    assert _error(tiny_doc) == (
        "s.yaml: economics.unserved.penalty_usd_per_h100_hour: required field is missing "
        "(with mode penalty, a number > 0)"
    )
    tiny_doc["economics"]["unserved"] = {"mode": "hard"}
    assert parse_scenario(tiny_doc, "s.yaml").economics.penalty_usd_per_h100_hour == 0.0


def test_gpus_per_system_and_demand_length(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][1]["gpus_per_system"] = 4
    assert _error(tiny_doc) == (
        "s.yaml: skus[1].gpus_per_system: Input should be 8 (an HGX/DGX server) or 72 "
        "(an NVL72 rack) (got 4)"
    )
    tiny_doc["skus"][1]["gpus_per_system"] = 8.0  # strict: a float is not a system size
    assert _error(tiny_doc) == (
        "s.yaml: skus[1].gpus_per_system: Input should be a valid integer (got 8.0)"
    )
    tiny_doc["skus"][1]["gpus_per_system"] = 8
    tiny_doc["workloads"][0]["demand_h100_hours_per_quarter"] = [1, 2]
    assert _error(tiny_doc) == (
        "s.yaml: workloads[0].demand_h100_hours_per_quarter: Input should be one number, or a "
        "list of 3 (one per quarter), not of 2 (got [1, 2])"
    )
    tiny_doc["workloads"][0]["demand_h100_hours_per_quarter"] = 7
    assert parse_scenario(tiny_doc, "s.yaml").workloads[0].demand_h100_hours == (7.0, 7.0, 7.0)
    tiny_doc["workloads"][0]["demand_h100_hours_per_quarter"] = [1, -2, 3]
    assert _error(tiny_doc) == (
        "s.yaml: workloads[0].demand_h100_hours_per_quarter[1]: Input should be greater than "
        "or equal to 0 (got -2)"
    )


def test_exactly_one_of_fleet_and_direct_demand(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    del tiny_doc["workloads"][1]["demand_h100_hours_per_quarter"]
    assert _error(tiny_doc) == (
        "s.yaml: workloads[1].fleet: give exactly one of fleet and "
        "demand_h100_hours_per_quarter (neither is given)"
    )
    fleet = yaml.safe_load(DEFAULT.read_text())["workloads"][0]["fleet"]
    tiny_doc["workloads"][1]["fleet"] = fleet
    assert parse_scenario(tiny_doc, "s.yaml").workloads[1].fleet is not None
    tiny_doc["workloads"][1]["demand_h100_hours_per_quarter"] = 5
    assert _error(tiny_doc) == (
        "s.yaml: workloads[1].fleet: give exactly one of fleet and "
        "demand_h100_hours_per_quarter (both are given)"
    )


def test_growth_rates(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["workloads"][0]["demand_growth_per_year"] = {"low": 0.1, "base": "2.0e-1"}
    tiny_doc["workloads"][1]["demand_growth_per_year"] = 0.5
    sc = parse_scenario(tiny_doc, "s.yaml")
    assert sc.workloads[0].demand_growth_per_year == (("base", 0.2), ("low", 0.1))
    assert sc.workloads[1].demand_growth_per_year == (("*", 0.5),)
    assert sc.growth_cases() == ("base", "low")
    tiny_doc["growth_case"] = "mid"
    assert _error(tiny_doc) == (
        "s.yaml: growth_case: Input should be a growth case of the workloads: base, low (got 'mid')"
    )
    tiny_doc["growth_case"] = " low "
    assert parse_scenario(tiny_doc, "s.yaml").growth_case == "low"
    tiny_doc["workloads"][0]["demand_growth_per_year"] = {"low": -0.95}
    assert _error(tiny_doc) == (
        "s.yaml: workloads[0].demand_growth_per_year.low: Input should be greater than or "
        "equal to -0.9 (got -0.95)"
    )
    tiny_doc["workloads"][0]["demand_growth_per_year"] = {}
    assert _error(tiny_doc) == (
        "s.yaml: workloads[0].demand_growth_per_year: Dictionary should have at least 1 item "
        "after validation, not 0 (got {})"
    )
    tiny_doc["workloads"][0]["demand_growth_per_year"] = "fast"
    assert _error(tiny_doc) == (
        "s.yaml: workloads[0].demand_growth_per_year: Input should be a valid number (got 'fast')"
    )


def test_cross_references(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["workloads"][1]["home_site"] = "cn-b"
    assert _error(tiny_doc) == (
        "s.yaml: workloads[1].home_site: Input should be a site name: us-a, cn-a (got 'cn-b')"
    )
    tiny_doc["workloads"][1]["home_site"] = "cn-a"
    tiny_doc["workloads"][1]["allowed_regions"] = ["CN", "EU"]
    assert _error(tiny_doc) == (
        "s.yaml: workloads[1].allowed_regions[1]: Input should be a region of a site: CN, US "
        "(got 'EU')"
    )
    tiny_doc["workloads"][1]["allowed_regions"] = ["CN"]
    tiny_doc["sites"][0]["installed"] = [{"sku": "H100", "systems": 1, "delivered": "2026Q1"}]
    assert _error(tiny_doc) == (
        "s.yaml: sites[0].installed[0].sku: Input should be a SKU of skus: fast, slow (got 'H100')"
    )


def test_names_are_unique(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    for key in ("skus", "sites", "workloads"):
        doc = copy.deepcopy(tiny_doc)
        doc[key][1]["name"] = doc[key][0]["name"]
        assert _error(doc).startswith(
            f"s.yaml: {key}[1].name: Input should be a name not used by another entry of {key} "
        )


def test_existing_load_above_grid_cap(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][0]["grid_cap_mw"] = 0.01
    assert _error(tiny_doc) == (
        "s.yaml: sites[0].grid_cap_mw: Input should be >= existing_it_mw x pue = 0.065 (got 0.01)"
    )
    tiny_doc["sites"][0]["grid_cap_mw"] = 0.05 * 1.3  # exactly the existing draw
    assert parse_scenario(tiny_doc, "s.yaml").sites[0].grid_cap_mw == 0.05 * 1.3


def test_liquid_capacity_is_part_of_the_existing(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][0]["liquid_it_mw"] = 0.05
    assert parse_scenario(tiny_doc, "s.yaml").sites[0].liquid_it_mw == 0.05
    tiny_doc["sites"][0]["liquid_it_mw"] = 0.06
    assert _error(tiny_doc) == (
        "s.yaml: sites[0].liquid_it_mw: Input should be less than or equal to existing_it_mw "
        "= 0.05 (got 0.06)"
    )


def test_windows_and_horizon_in_order(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["skus"][0]["eligible"] = {"US": {"from": "2026Q2", "until": "2027Q2"}, "CN": None}
    sku = parse_scenario(tiny_doc, "s.yaml").skus[0]
    assert sku.eligible == (("US", Window(-3, 1)), ("CN", Window(-(10**6), 10**6)))
    tiny_doc["skus"][0]["eligible"] = {"US": {"from": "2027Q3", "until": "2027Q2"}}
    assert _error(tiny_doc) == (
        "s.yaml: skus[0].eligible.US.until: Input should be a quarter not before from 2027Q3 "
        "(got '2027Q2')"
    )
    tiny_doc["skus"][0]["eligible"] = {"US": {}}
    tiny_doc["horizon"] = {"start": "2027Q1", "end": "2026Q4"}
    assert _error(tiny_doc) == (
        "s.yaml: horizon.end: Input should be a quarter not before start 2027Q1 (got '2026Q4')"
    )


def _set(doc: dict[str, Any], loc: tuple[Any, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for part in loc[:-1]:
        node = node[part]
    node[loc[-1]] = value
    return out


def test_ranges_open_and_closed(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    cases: list[tuple[tuple[Any, ...], object, str]] = [
        (("economics", "availability"), 0, "Input should be greater than 0"),
        (("economics", "availability"), 1.01, "Input should be less than or equal to 1"),
        (("economics", "discount_rate_per_year"), 1.5, "Input should be less than or equal to 1"),
        (("sites", 0, "pue"), 0.99, "Input should be greater than or equal to 1"),
        (("sites", 0, "pue"), 3.01, "Input should be less than or equal to 3"),
        (("sites", 0, "rack_kw"), 0, "Input should be greater than 0"),
        (("sites", 0, "existing_racks"), -1, "Input should be greater than or equal to 0"),
        (("skus", 0, "price_change_per_year"), -0.91, "Input should be greater than or equal to -0.9"),
        (("skus", 0, "lifetime_quarters"), 0, "Input should be greater than or equal to 1"),
        (("skus", 0, "price_usd_per_system"), 0, "Input should be greater than 0"),
        (("skus", 0, "liquid_cooled"), "yes", "Input should be a valid boolean"),
        (("sites", 0, "existing_racks"), 2**53 + 1,  # integers the model's floats hold exactly
         "Input should be less than or equal to 9007199254740992"),
        (("sites", 0, "grid_cap_mw"), 10**400, "Input should be a valid number"),  # no float holds it
    ]  # fmt: skip
    for loc, value, msg in cases:
        doc = _set(tiny_doc, loc, value)
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        assert _error(doc) == f"s.yaml: {dotted(loc)}: {msg} (got {shown})"
    for loc, value in [(("economics", "availability"), 1), (("sites", 0, "pue"), 3)]:
        doc = _set(tiny_doc, loc, value)
        parse_scenario(doc, "s.yaml")  # the closed ends are allowed


def test_every_problem_is_reported_at_once(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][0]["pue"] = float("nan")
    tiny_doc["skus"][1]["eff_vs_h100"] = "fast"
    with pytest.raises(ScenarioError) as e:
        parse_scenario(tiny_doc, "s.yaml")
    assert isinstance(e.value, InputRejected) and isinstance(e.value, ValueError)
    assert [(x["loc"], x["msg"]) for x in e.value.errors] == [
        (("skus", 1, "eff_vs_h100"), "Input should be a valid number"),
        (("sites", 0, "pue"), "Input should be a finite number (not NaN or infinite)"),
    ]
    assert e.value.where == "skus[1].eff_vs_h100"


def test_file_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing.yaml: document: cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml:2: document: invalid YAML"):
        load_scenario(bad)
    text = DEFAULT.read_text()
    twice = tmp_path / "twice.yaml"
    twice.write_text(text.replace("    pue: 1.2 ", "    pue: 1.2\n    pue: 1.25 ", 1))
    with pytest.raises(ScenarioError) as e:
        load_scenario(twice)
    assert str(e.value).startswith(f"{twice}:")
    assert e.value.errors[0]["loc"] == ("sites", 1, "pue")
    assert "key 'pue' is given more than once" in e.value.errors[0]["msg"]
    line = text.splitlines().index(next(x for x in text.splitlines() if "pue: 1.2 " in x)) + 2
    assert e.value.errors[0]["line"] == line
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text.replace("grid_cap_mw: 150 ", "grid_cap_mw: -150", 1))
    with pytest.raises(ScenarioError) as e:
        load_scenario(wrong)
    line = next(i for i, x in enumerate(text.splitlines(), 1) if "grid_cap_mw: 150 " in x)
    assert str(e.value) == (
        f"{wrong}:{line}: sites[1].grid_cap_mw: Input should be greater than or equal to 0 "
        "(got -150)"
    )


def test_scientific_notation_strings_are_numbers(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["sites"][0]["block_usd_per_mw"] = "2.5e6"  # what PyYAML makes of 2.5e6
    assert parse_scenario(tiny_doc, "s.yaml").sites[0].block_usd_per_mw == 2.5e6
    tiny_doc["sites"][0]["block_usd_per_mw"] = "2.5 e6"
    assert _error(tiny_doc) == (
        "s.yaml: sites[0].block_usd_per_mw: Input should be a valid number (got '2.5 e6')"
    )


def test_nulls_where_allowed(tiny_doc: dict) -> None:  # type: ignore[type-arg]
    tiny_doc["economics"]["capex_budget_usd_per_quarter"] = None
    tiny_doc["skus"][1]["supply_cap_systems_per_quarter"] = None
    tiny_doc["slo"] = None
    sc = parse_scenario(tiny_doc, "s.yaml")
    assert sc.economics.capex_budget_usd_per_quarter is None and sc.slo is None
    assert sc.skus[1].supply_cap_systems_per_quarter == ()
    tiny_doc["sites"][0]["installed"] = None
    assert _error(tiny_doc) == (
        "s.yaml: sites[0].installed: Input should be a valid list (got None)"
    )


def test_not_a_mapping_lists_the_fields() -> None:
    assert _error([1]) == (
        "s.yaml: document: Input should be a mapping with fields name, horizon, growth_case, "
        "economics, skus, sites, workloads, notes, slo, simulation (got [1])"
    )
    assert _error(None).splitlines()[0] == "s.yaml: name: required field is missing"


def test_loading_twice_gives_equal_scenarios() -> None:
    a, b = load_scenario(DEFAULT), load_scenario(DEFAULT)
    assert a == b and hash(a) == hash(b) and a is not b


# --- the published JSON Schema -----------------------------------------------------------------

PUBLISHED = Path(__file__).parents[3] / "examples" / "schemas" / "scenario.schema.json"
SCENARIOS = [DEFAULT, *sorted((Path(__file__).parents[2] / "data" / "planner").glob("**/*.yaml"))]


class _Yaml12(yaml.SafeLoader):
    """Reads ``1.0e6`` as a number, as YAML 1.2 (and so editors) do; PyYAML reads a string."""


_Yaml12.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def _published() -> Draft202012Validator:
    schema = json.loads(PUBLISHED.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_published_schema_is_the_models() -> None:
    assert PUBLISHED.read_text() == schemas.schema_text("scenario")
    assert schemas.path_of("scenario") == PUBLISHED


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_the_repos_scenarios_validate_against_the_published_schema(path: Path) -> None:
    doc = yaml.load(path.read_text(), Loader=_Yaml12)
    assert [e.message for e in _published().iter_errors(doc)] == []
    assert load_scenario(path) == parse_scenario(doc, str(path))  # the same numbers either way


def test_the_published_schema_rejects_what_the_model_rejects() -> None:
    tiny = Path(__file__).parents[2] / "data" / "planner" / "tiny.yaml"
    tiny_doc = yaml.load(tiny.read_text(), Loader=_Yaml12)
    tiny_doc["sites"][0]["pue"] = 0.5
    tiny_doc["skus"][1]["gpus_per_system"] = 4
    tiny_doc["horizon"]["start"] = "2027-Q1"
    tiny_doc["economics"]["surprise"] = 1
    found = sorted((list(e.absolute_path), e.validator) for e in _published().iter_errors(tiny_doc))
    assert found == [
        (["economics"], "additionalProperties"),
        (["horizon", "start"], "pattern"),
        (["sites", 0, "pue"], "minimum"),
        (["skus", 1, "gpus_per_system"], "enum"),
    ]
