"""The fleet-data formula against the note's worked example (section 4c), by hand."""

from __future__ import annotations

import math

from planner.demand import DAYS_PER_QUARTER, fleet_demand, tokens_per_video_hour, workload_demand
from planner.inputs import Fleet, Horizon, Workload


def _fleet(**over: object) -> Fleet:
    base: dict[str, object] = dict(
        vehicles=2.5e6, vehicle_growth_per_year=(("base", 0.0),), clips_per_vehicle_day=1.0, clip_s=10.0,
        keep_fraction=0.10, retention_quarters=1, cameras=8, sampled_fps=10.0, height_px=480, width_px=640,
        tokenizer_t=1, tokenizer_h=16, tokenizer_w=16, params_b=1.0, params_growth_per_year=0.0,
        passes_new=1.0, passes_replay=0.0, experiments_multiplier=1.0, mfu=0.40, goodput=0.9,
        reference_tflops=989.0, video_gb_per_hour=14.4,
    )  # fmt: skip
    base.update(over)
    return Fleet(**base)  # type: ignore[arg-type]


def test_tokens_per_hour_of_video() -> None:
    # 640x480 / (16x16) = 1,200 patches per camera-frame; x 8 cameras x 10 fps x 3600 s
    assert tokens_per_video_hour(_fleet()) == 1200 * 8 * 10 * 3600 == 3.456e8


def test_worked_example_one_pass_of_a_1b_model() -> None:
    rows = fleet_demand(_fleet(), 4, "base")
    year_raw = sum(r.raw_video_h for r in rows)
    # 2.5M vehicles x 1 clip x 10 s per day = 6,944 h/day, ~2.5M h/yr; kept 10 %: ~250k h/yr
    assert math.isclose(year_raw, 2.5e6 * 10 / 3600 * 4 * DAYS_PER_QUARTER)
    assert 2.5e6 < year_raw < 2.6e6
    new = sum(r.new_video_h for r in rows)
    tokens = new * 3.456e8  # ~8.6e13 tokens/yr
    flop = 6 * 1e9 * tokens  # ~5.2e23 FLOP per pass
    assert 8.6e13 < tokens < 8.9e13 and 5.2e23 < flop < 5.3e23
    h100_h = flop / (989e12 * 0.40 * 0.9 * 3600)  # 3.56e14 FLOP/s delivered
    assert math.isclose(sum(r.h100_hours for r in rows), h100_h, rel_tol=1e-12)
    assert 4.0e5 < h100_h < 4.2e5  # the note: 4.0e5 H100-hours per pass


def test_worked_example_10b_three_passes_five_experiments() -> None:
    rows = fleet_demand(
        _fleet(params_b=10.0, passes_new=3.0, experiments_multiplier=5.0), 4, "base"
    )
    year = sum(r.h100_hours for r in rows)
    assert 6.0e7 < year < 6.3e7  # the note: 6e7 H100-h/yr
    h100s = year / (4 * 8766 / 4)
    assert 6_900 < h100s < 7_100  # ~6,900 H100s busy all year
    assert 46_000 < h100s / 0.15 < 47_500  # ~46,000 H20s at eff 0.15


def test_growth_retention_and_replay() -> None:
    f = _fleet(vehicle_growth_per_year=(("low", 0.0), ("high", 0.21)), retention_quarters=4,
               passes_new=0.0, passes_replay=1.0)  # fmt: skip
    high = fleet_demand(f, 8, "high")
    assert math.isclose(high[4].vehicles / high[0].vehicles, 1.21)
    # the pool holds the last 4 quarters of curated video, including those before the plan
    expect = sum(
        0.1 * 2.5e6 * 1.21 ** (tau / 4) * 10 * DAYS_PER_QUARTER / 3600 for tau in range(-3, 1)
    )
    assert math.isclose(high[0].pool_video_h, expect)
    low = fleet_demand(f, 8, "low")
    assert all(math.isclose(r.h100_hours, low[0].h100_hours) for r in low)


def test_direct_demand_with_growth() -> None:
    w = Workload("w", "s", ("US",), None, (100.0, 100.0, 100.0, 100.0, 100.0), (("base", 1.0),))
    e = workload_demand(w, Horizon(2027 * 4, 5), "base")
    assert e[0] == 100.0 and math.isclose(e[4], 200.0)
