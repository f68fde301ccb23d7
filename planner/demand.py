"""Fleet data -> training demand in H100-equivalent GPU-hours (the note's section 4a).

Per quarter t (planner/README.md, equations (D1)-(D6)):

    V[t]      = V0 * (1 + g) ** (t / 4)                       vehicles collecting data
    H_raw[t]  = V[t] * u * L_clip * days[t] / 3600            hours of multi-camera video
    H_new[t]  = kappa * H_raw[t]                              curated hours added
    H_pool[t] = sum of H_new over the last W quarters         retained training pool
    tau_h     = 3600 * C * (f_s / s_t) * (h / s_h) * (w / s_w)   tokens per hour of video
    FLOP[t]   = 6 * N[t] * tau_h * (e_new * H_new[t] + e_replay * H_pool[t]) * m_exp
    E[t]      = FLOP[t] / (F_ref * MFU * goodput * 3600)      H100-equivalent GPU-hours

Quarters before the horizon (t < 0) follow the same growth backwards, so the retention pool
is full from the first planned quarter: the fleet collected data before the plan started.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.inputs import HOURS_PER_QUARTER, QUARTERS_PER_YEAR, Fleet, Horizon, Workload

DAYS_PER_QUARTER = HOURS_PER_QUARTER / 24
ANY_CASE = "*"  # a single growth rate given as a number applies to every growth case


@dataclass(frozen=True, slots=True)
class DemandRow:
    quarter: int
    vehicles: float
    raw_video_h: float
    new_video_h: float
    pool_video_h: float
    tokens_per_video_h: float
    train_flop: float
    h100_hours: float
    new_data_tb: float


def growth_rate(rates: tuple[tuple[str, float], ...], case: str) -> float:
    table = dict(rates)
    if not table:
        return 0.0
    if case not in table and ANY_CASE in table:
        return table[ANY_CASE]
    if case not in table:
        raise ValueError(
            f"growth case {case!r} is not defined (defined: {', '.join(sorted(table))})"
        )
    return table[case]


def tokens_per_video_hour(f: Fleet) -> float:
    """(D5): patches or tokens per hour of C-camera video after the tokenizer's compression."""
    return (
        3600.0
        * f.cameras
        * (f.sampled_fps / f.tokenizer_t)
        * (f.height_px / f.tokenizer_h)
        * (f.width_px / f.tokenizer_w)
    )


def _new_video_h(f: Fleet, g: float, t: int) -> tuple[float, float, float]:
    vehicles = f.vehicles * (1.0 + g) ** (t / QUARTERS_PER_YEAR)  # (D1)
    raw = vehicles * f.clips_per_vehicle_day * f.clip_s * DAYS_PER_QUARTER / 3600.0  # (D2)
    return vehicles, raw, f.keep_fraction * raw  # (D3)


def fleet_demand(f: Fleet, quarters: int, case: str) -> tuple[DemandRow, ...]:
    g = growth_rate(f.vehicle_growth_per_year, case)
    tau_h = tokens_per_video_hour(f)
    # H100-equivalent FLOP/s actually delivered: peak x MFU x goodput (D7).
    delivered = f.reference_tflops * 1e12 * f.mfu * f.goodput
    rows: list[DemandRow] = []
    for t in range(quarters):
        vehicles, raw, new = _new_video_h(f, g, t)
        pool = sum(_new_video_h(f, g, tau)[2] for tau in range(t - f.retention_quarters + 1, t + 1))
        params = f.params_b * 1e9 * (1.0 + f.params_growth_per_year) ** (t / QUARTERS_PER_YEAR)
        tokens = tau_h * (f.passes_new * new + f.passes_replay * pool)
        flop = 6.0 * params * tokens * f.experiments_multiplier  # (D6), C = 6 N D
        rows.append(
            DemandRow(
                quarter=t,
                vehicles=vehicles,
                raw_video_h=raw,
                new_video_h=new,
                pool_video_h=pool,
                tokens_per_video_h=tau_h,
                train_flop=flop,
                h100_hours=flop / (delivered * 3600.0),
                new_data_tb=new * f.video_gb_per_hour / 1000.0,
            )
        )
    return tuple(rows)


def workload_demand(w: Workload, horizon: Horizon, case: str) -> tuple[float, ...]:
    """E[w, t] in H100-equivalent GPU-hours for every planned quarter."""
    if w.fleet is not None:
        return tuple(r.h100_hours for r in fleet_demand(w.fleet, horizon.quarters, case))
    assert w.demand_h100_hours is not None  # the schema requires one of the two
    g = growth_rate(w.demand_growth_per_year, case)
    return tuple(
        e * (1.0 + g) ** (t / QUARTERS_PER_YEAR) for t, e in enumerate(w.demand_h100_hours)
    )


def tb_per_h100_hour(w: Workload, horizon: Horizon, case: str) -> tuple[float, ...]:
    """Data moved to a non-home site per H100-hour served there (new curated video, once)."""
    if w.fleet is None:
        return (w.tb_per_h100_hour,) * horizon.quarters
    rows = fleet_demand(w.fleet, horizon.quarters, case)
    return tuple(r.new_data_tb / r.h100_hours if r.h100_hours > 0 else 0.0 for r in rows)
