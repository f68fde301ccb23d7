"""Hypothesis properties of the plan's job streams (simulations/plan_sim/jobs.py, (P1)-(P2))."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.plan_sim.fleet import SkuPool
from simulations.plan_sim.jobs import JobSizes, Team, generate_jobs

rows_st = st.lists(
    st.tuples(st.sampled_from([1, 2, 4, 8, 16, 64]), st.floats(600.0, 200_000.0)),
    min_size=1,
    max_size=12,
)
pools_st = st.lists(
    st.tuples(
        st.sampled_from([(4, 144_000), (8, 112_000)]),  # GPUs and CPU per node
        st.integers(1, 64),  # nodes
        st.sampled_from([0.15, 1.0, 1.15, 2.3, 2.5]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    rows=rows_st,
    pools=pools_st,
    target=st.floats(1e-3, 2_000.0),
    share=st.floats(0.05, 0.95),
    slice_fraction=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32),
    cap_h=st.one_of(st.none(), st.floats(0.1, 100.0)),
)
def test_every_stream_carries_its_target_and_jobs_are_well_formed(
    rows: list[tuple[int, float]],
    pools: list[tuple[tuple[int, int], int, float]],
    target: float,
    share: float,
    slice_fraction: float,
    seed: int,
    cap_h: float | None,
) -> None:
    sizes = JobSizes.of(rows)
    skus = tuple(
        SkuPool(f"k{i}", n, n * per, eff, per, cpu, 1024 * per)
        for i, ((per, cpu), n, eff) in enumerate(pools)
    )
    eff = {p.sku: p.eff_vs_h100 for p in skus}
    teams = (Team("a", "w", share), Team("b", "w", 1.0 - share, priority=2))
    kw = dict(
        site="s", quarter_label="2030Q2", hours_h100={"w": target}, start_s=0.0, length_s=86_400.0,
        pools=skus, data_region={"w": "CN"}, allowed_regions={"w": ("CN",)}, sizes=sizes,
        teams=teams, seed=seed, slice_fraction=slice_fraction, max_duration_h=cap_h,
    )  # fmt: skip
    s = generate_jobs(**kw)  # type: ignore[arg-type]
    assert s == generate_jobs(**kw)  # type: ignore[arg-type]  # (P2)
    top = max(eff.values())  # the cap is on the run time: cap x eff H100-hours per GPU at most
    largest_h = max(
        g * (d if cap_h is None else min(d, cap_h * 3600.0 * top)) / 3600.0 for g, d in rows
    )
    for t in s.streams:
        want = slice_fraction * target * (share if t.team == "a" else 1.0 - share)
        assert math.isclose(t.target_h100_hours, want, rel_tol=1e-12)
        mine = [j for j in s.jobs if j.team == t.team]
        got = math.fsum(
            j.num_workers
            * j.worker.gpus
            * (j.estimated_duration_s or 0)
            * eff[j.worker.gpu_models[0]]
            / 3600
            for j in mine
        )
        assert abs(got - want) <= 0.01 * want  # within 1 %: in fact exact to rounding (P1)
        assert math.isclose(got, want, rel_tol=1e-9)
        assert 0.0 <= t.overshoot_h100_hours < largest_h * (1 + 1e-12)  # one job's hours at most
        assert len(mine) == t.jobs >= 1
    times = [j.submitted_at_s for j in s.jobs]
    assert times == sorted(times) and all(0.0 <= x < 86_400.0 for x in times)
    for j in s.jobs:
        assert (j.estimated_duration_s or 0) > 0
        pool = next(p for p in skus if (p.sku,) == j.worker.gpu_models)
        assert j.worker.gpus <= pool.gpus_per_node
        assert j.worker.cpu_milli * (pool.gpus_per_node // j.worker.gpus) <= pool.cpu_milli_per_node
        assert (j.data_region, j.worker.regions) == ("CN", ("CN",))
