"""Command-line options of the plan replay, shared by ``gpuyard simulate plan`` and
``gpuyard plan --verify``: each overrides a field of the scenario's ``simulation:``."""

from __future__ import annotations

import argparse

from planner.inputs import Scenario
from simulations.plan_sim.settings import SimulationSettings


def add_plan_sim_options(p: argparse.ArgumentParser, common: bool = True) -> None:
    """Options of the plan replay that override the scenario's ``simulation:`` section
    (shared by ``simulate plan`` and ``plan --verify``)."""
    p.add_argument("--weeks-per-quarter", type=float, help="simulated weeks per quarter (K)")
    p.add_argument("--warmup-weeks", type=float, help="weeks replayed before the measured ones")
    p.add_argument(
        "--max-gpus-per-site",
        type=int,
        help="replay at most this many GPUs of each GPU model of a site",
    )
    p.add_argument("--policy", help="queue order (fifo, priority, sjf, las, drf)")
    p.add_argument("--backfill", choices=("none", "easy"))
    p.add_argument("--preemption", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--seeds", default="0", help="job-stream seeds, e.g. 0,1,2 or 0-4")
    p.add_argument("--workers", type=int, default=1, help="replays in parallel (processes)")
    p.add_argument(
        "--traces-dir", help="where philly/ and alibaba-gpu-v2023/ are (../shared/traces)"
    )
    if common:  # the plan command has its own
        p.add_argument("--no-plots", action="store_true")
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def plan_sim_settings(args: argparse.Namespace, scenario: Scenario) -> SimulationSettings:
    """The scenario's ``simulation:`` settings with the command line's overrides."""
    raw = dict(scenario.simulation or {})
    for opt, key in (
        ("weeks_per_quarter", "weeks_per_quarter"),
        ("warmup_weeks", "warmup_weeks"),
        ("max_gpus_per_site", "max_gpus_per_site"),
        ("policy", "queue"),
        ("backfill", "backfill"),
        ("preemption", "preemption"),
    ):
        value = getattr(args, opt)
        if value is not None:
            raw[key] = value
    return SimulationSettings.from_mapping(
        raw,
        f"{scenario.source} (simulation: with the command line's options)",
        [w.name for w in scenario.workloads],
        [k.name for k in scenario.skus],
    )
