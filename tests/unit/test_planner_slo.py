"""The scenario's ``slo:`` (validated) and ``simulation:`` (kept, read-only) sections."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.inputs import Slo
from planner.schema import ScenarioError, load_scenario, parse_scenario

DATA = Path(__file__).parent.parent / "data" / "planner"
DEFAULT = Path(__file__).parents[2] / "simulations" / "scenarios" / "china-dc.yaml"


def _doc(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DATA / "tiny.yaml").read_text())
    doc.update(top)
    return doc


def _error(**top: Any) -> str:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(_doc(**top), "s.yaml")
    return str(e.value)


def test_no_slo_and_no_simulation_by_default() -> None:
    sc = parse_scenario(_doc(), "s.yaml")
    assert sc.slo is None and sc.simulation is None


def test_slo_defaults_and_full_values() -> None:
    assert parse_scenario(_doc(slo={"wait_p95_hours": 4}), "s.yaml").slo == Slo(4.0, 0.02, 6)
    full = {"wait_p95_hours": 0.5, "max_unserved_fraction": 0, "iterations": 50}
    assert parse_scenario(_doc(slo=full), "s.yaml").slo == Slo(0.5, 0.0, 50)
    one = {"wait_p95_hours": "1.5e+1", "max_unserved_fraction": 0.999, "iterations": 1}
    assert parse_scenario(_doc(slo=one), "s.yaml").slo == Slo(15.0, 0.999, 1)


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ({"wait_p95_hours": 0}, "slo.wait_p95_hours: Input should be greater than 0 (got 0)"),
        ({"wait_p95_hours": -2.0}, "slo.wait_p95_hours: Input should be greater than 0 (got -2.0)"),
        ({"wait_p95_hours": math.inf},
         "slo.wait_p95_hours: Input should be a finite number (not NaN or infinite) (got inf)"),
        ({"wait_p95_hours": "4h"}, "slo.wait_p95_hours: Input should be a valid number (got '4h')"),
        ({"wait_p95_hours": True}, "slo.wait_p95_hours: Input should be a valid number (got True)"),
        ({"max_unserved_fraction": 0.02}, "slo.wait_p95_hours: required field is missing"),
        ({"wait_p95_hours": 4, "max_unserved_fraction": 1},
         "slo.max_unserved_fraction: Input should be less than 1 (got 1)"),
        ({"wait_p95_hours": 4, "max_unserved_fraction": -0.01},
         "slo.max_unserved_fraction: Input should be greater than or equal to 0 (got -0.01)"),
        ({"wait_p95_hours": 4, "max_unserved_fraction": math.nan},
         "slo.max_unserved_fraction: Input should be a finite number (not NaN or infinite) "
         "(got nan)"),
        ({"wait_p95_hours": 4, "iterations": 0},
         "slo.iterations: Input should be greater than or equal to 1 (got 0)"),
        ({"wait_p95_hours": 4, "iterations": 51},
         "slo.iterations: Input should be less than or equal to 50 (got 51)"),
        ({"wait_p95_hours": 4, "iterations": 2.0},
         "slo.iterations: Input should be a valid integer (got 2.0)"),
        ({"wait_p95_hours": 4, "iterations": True},
         "slo.iterations: Input should be a valid integer (got True)"),
        ({"wait_p95_hours": 4, "wait_p99_hours": 8},
         "slo.wait_p99_hours: unknown field 'wait_p99_hours' in slo (did you mean "
         "'wait_p95_hours'?); allowed fields: wait_p95_hours, max_unserved_fraction, iterations "
         "(got 8)"),
        ([4], "slo: Input should be a mapping with fields wait_p95_hours, "
              "max_unserved_fraction, iterations (got [4])"),
    ],
)  # fmt: skip
def test_bad_slo_values_name_the_field(slo: object, message: str) -> None:
    assert _error(slo=slo) == f"s.yaml: {message}"


def test_the_simulation_section_is_kept_read_only_and_unvalidated() -> None:
    raw = {"seed": 3, "trace": {"kind": "philly", "jobs": [1, 2]}, "anything": None}
    sc = parse_scenario(_doc(simulation=raw), "s.yaml")
    assert sc.simulation == {
        "seed": 3,
        "trace": {"kind": "philly", "jobs": (1, 2)},
        "anything": None,
    }
    with pytest.raises(TypeError):
        sc.simulation["seed"] = 4  # type: ignore[index]
    with pytest.raises(TypeError):
        sc.simulation["trace"]["kind"] = "x"
    raw["seed"] = 5  # the scenario holds its own copy
    assert sc.simulation["seed"] == 3
    assert hash(sc) == hash(parse_scenario(_doc(), "s.yaml"))  # the mapping is not hashed
    assert _error(simulation=[1]) == (
        "s.yaml: simulation: Input should be a valid dictionary (got [1])"
    )


def test_the_default_scenario_has_an_slo() -> None:
    assert load_scenario(DEFAULT).slo == Slo(
        wait_p95_hours=4.0, max_unserved_fraction=0.02, iterations=6
    )
