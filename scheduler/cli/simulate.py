"""``gpuyard simulate packing|mixes|mix-csv|queue|scale`` and ``gpuyard demo-packing``: the
trace replays of the scheduling core."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.cli.output import add_output_option, emit, notes, plain


def _packing_rows(results: list) -> list[dict[str, object]]:  # type: ignore[type-arg]
    """Per policy: its runs and the medians the table shows (``--output json``'s rows)."""
    from simulations.packing_experiment import medians

    counts: dict[str, int] = {}
    for r in results:
        counts[r.curve.policy] = counts.get(r.curve.policy, 0) + 1
    return [
        {"policy": policy, "runs": counts[policy], "unallocated_pct_at_100": u100,
         "unallocated_pct_at_130": u130, "wall_s": wall}
        for policy, (u100, u130, wall) in medians(results).items()
    ]  # fmt: skip


def _packing_table(results: list, title: str) -> Table:  # type: ignore[type-arg]
    table = Table(title=title)
    for col in (
        "policy",
        "runs",
        "unallocated % @100 (median)",
        "@130 (median)",
        "wall s (median)",
    ):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for row in _packing_rows(results):
        table.add_row(str(row["policy"]), str(row["runs"]),
                      *(f"{row[k]:.2f}" for k in ("unallocated_pct_at_100", "unallocated_pct_at_130", "wall_s")))  # fmt: skip
    return table


def cmd_simulate_packing(args: argparse.Namespace, console: Console) -> int:
    from simulations.packing_experiment import parse_policies, parse_seeds, run_grid, write_outputs

    policies = parse_policies(args.policy)
    seeds = parse_seeds(args.seeds)
    if args.inflate <= 0:
        raise ValueError(f"--inflate must be > 0, got {args.inflate}")
    total = len(policies) * len(seeds)
    with Progress(
        TextColumn("[bold]packing replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=notes(args, console),
        transient=False,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("", total=total)

        def tick(r) -> None:  # type: ignore[no-untyped-def]
            progress.update(
                task,
                advance=1,
                description=f"{r.curve.policy} seed {r.curve.seed}: {r.curve.unallocated_at(100):.2f}% unallocated @100%",
            )

        results = run_grid(args.nodes, args.trace, policies, seeds, args.inflate, args.jobs, tick)
    out = Path(args.out)
    write_outputs(results, out)
    files = [out / "curves.csv", out / "summary.csv", out / "curves.png"]
    doc = {"trace": args.trace, "nodes": args.nodes, "seeds": seeds, "inflate": args.inflate,
           "policies": _packing_rows(results), "files": files}  # fmt: skip
    if not emit(args, console, doc):
        console.print(
            _packing_table(results, f"{Path(args.trace).name} on {Path(args.nodes).name}")
        )
    notes(args, console).print("wrote " + ", ".join(map(str, files)))
    return 0


def _mix_specs(args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    from dataclasses import replace

    from simulations.mixes_experiment import parse_mixes

    specs = parse_mixes(args.mixes)
    if args.nodes is not None:
        if args.nodes < 1:
            raise ValueError(f"--nodes {args.nodes}: must be at least 1")
        specs = [replace(s, nodes=args.nodes) for s in specs]
    return specs


def cmd_simulate_mixes(args: argparse.Namespace, console: Console) -> int:
    from simulations.mixes_experiment import run_mixes, write_mixes_outputs
    from simulations.packing_experiment import parse_policies, parse_seeds
    from simulations.synthetic import families

    if args.list:
        rows = [{"mix": s.name, "nodes": s.nodes, "description": s.description} for s in families()]
        if emit(args, console, rows):
            return 0
        table = Table(title="synthetic mixes (simulations/synthetic.py)")
        for col in ("mix", "nodes", "description"):
            table.add_column(col)
        for row in rows:
            table.add_row(str(row["mix"]), str(row["nodes"]), str(row["description"]))
        console.print(table)
        return 0
    if not args.out:
        raise ValueError("--out DIR is required (or --list)")
    specs = _mix_specs(args)
    policies = parse_policies(args.policy)
    seeds = parse_seeds(args.seeds)
    if args.inflate <= 0:
        raise ValueError(f"--inflate must be > 0, got {args.inflate}")
    with Progress(
        TextColumn("[bold]mixes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=notes(args, console),
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("", total=len(specs) * len(policies) * len(seeds))

        def tick(r) -> None:  # type: ignore[no-untyped-def]
            progress.update(
                task,
                advance=1,
                description=f"{r.mix} {r.policy} seed {r.seed}: {r.unallocated_pct_at_100:.2f}% @100%",
            )

        runs = run_mixes(specs, policies, seeds, args.inflate, args.jobs, tick)
    out = Path(args.out)
    summaries = write_mixes_outputs(runs, out)
    files = [out / "mixes.csv", out / "summary.csv"]
    if emit(args, console, {"seeds": seeds, "inflate": args.inflate, "mixes": summaries,
                            "files": files}):  # fmt: skip
        notes(args, console).print("wrote " + ", ".join(map(str, files)))
        return 0
    table = Table(title=f"median unallocated GPU % at arrived 100 % ({len(seeds)} seeds)")
    for col in ("mix", "best of six", "%", "fgd", "frag_pack"):
        table.add_column(col, justify="left" if col in ("mix", "best of six") else "right")

    def cell(x: float) -> str:
        return "" if x != x else f"{x:.2f}"  # NaN: not run

    for m in summaries:
        table.add_row(m.mix, m.best_of_six, cell(m.best_of_six_pct),
                      cell(m.medians.get("fgd", float("nan"))),
                      cell(m.medians.get("frag_pack", float("nan"))))  # fmt: skip
    console.print(table)
    console.print(f"wrote {out / 'mixes.csv'}, {out / 'summary.csv'} (every policy's medians)")
    return 0


def cmd_simulate_mix_csv(args: argparse.Namespace, console: Console) -> int:
    from dataclasses import replace

    from simulations.packing_experiment import parse_seeds
    from simulations.synthetic import generate, write_mix

    out = Path(args.out)
    written = []
    for spec in _mix_specs(args):
        for seed in parse_seeds(args.seeds):
            nodes_csv, pods_csv = write_mix(generate(replace(spec, seed=seed)), out)
            written.append({"mix": spec.name, "seed": seed, "nodes": nodes_csv, "pods": pods_csv})
            notes(args, console).print(
                f"wrote {nodes_csv}, {pods_csv}; run: gpuyard simulate packing "
                f"--nodes {nodes_csv} --trace {pods_csv} --seeds {seed} --out OUT"
            )
    emit(args, console, written)
    return 0


def cmd_simulate_queue(args: argparse.Namespace, console: Console) -> int:
    from scheduler.files.priority_file import load_priority_classes
    from scheduler.files.quota_file import load_quotas
    from simulations.queue import GPU_MODEL, QueueOptions
    from simulations.queue_experiment import (
        parse_queue_policies,
        run_queue_grid,
        write_queue_outputs,
    )
    from simulations.traces.jobs import load_jobs

    policies = parse_queue_policies(args.policy)
    jobs = load_jobs(args.trace)
    teams = {j.team for j in jobs}
    quotas = None
    if args.quotas:
        quotas = load_quotas(args.quotas, known_teams=teams, models=[GPU_MODEL])
    classes = None
    if args.priority_classes:
        classes = load_priority_classes(args.priority_classes, known_teams=teams)
    for flag, value in (
        ("--aging", args.aging),
        ("--checkpoint-interval", args.checkpoint_interval),
    ):
        if value is not None and value <= 0:
            raise ValueError(f"{flag} must be > 0 seconds, got {value}")
    options = QueueOptions(
        backfill=args.backfill,
        quotas=quotas,
        preemption=args.preemption,
        aging_s=args.aging,
        checkpoint_interval_s=args.checkpoint_interval,
        fair_share_half_life_s=args.fair_share_half_life,
        priority_classes=classes,
    )
    with Progress(
        TextColumn("[bold]queue replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=notes(args, console),
        disable=args.quiet,
    ) as progress:
        task = progress.add_task(f"{len(jobs)} jobs", total=len(policies))

        def tick(run) -> None:  # type: ignore[no-untyped-def]
            progress.update(task, advance=1, description=f"{run.policy} done in {run.wall_s:.1f}s")

        runs = run_queue_grid(jobs, args.gpus, args.gpus_per_node, policies, options, tick)
    summaries = write_queue_outputs(runs, Path(args.out))
    files = [Path(args.out) / f for f in ("jobs.csv", "summary.csv", "jct_cdf.png")]
    if emit(args, console, {"trace": args.trace, "jobs": len(jobs), "gpus": args.gpus,
                            "gpus_per_node": args.gpus_per_node, "backfill": args.backfill,
                            "policies": summaries, "files": files}):  # fmt: skip
        notes(args, console).print("wrote " + ", ".join(map(str, files)))
        return 0
    table = Table(
        title=f"{Path(args.trace).name}: {len(jobs)} jobs on {args.gpus} GPUs ({args.gpus_per_node} per node)"
    )
    for col in ("policy", "avg JCT h", "p95 JCT h", "avg wait h", "GPU util %", "Jain", "wall s"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for s in summaries:
        table.add_row(s.policy, f"{s.avg_jct_s / 3600:.2f}", f"{s.p95_jct_s / 3600:.2f}", f"{s.avg_wait_s / 3600:.2f}",
                      f"{s.gpu_util_pct:.1f}", f"{s.jain_fairness:.3f}", f"{s.wall_s:.1f}")  # fmt: skip
    console.print(table)
    console.print(f"wrote {args.out}/jobs.csv, summary.csv, jct_cdf.png")
    return 0


def cmd_simulate_scale(args: argparse.Namespace, console: Console) -> int:
    from simulations.packing_experiment import parse_policies
    from simulations.scale import run_scale, write_summary

    for name, value, low in (("--nodes", args.nodes, 1), ("--gpus-per-node", args.gpus_per_node, 1),
                             ("--jobs", args.jobs, 1)):  # fmt: skip
        if value < low:
            raise ValueError(f"{name} {value}: must be at least {low}")
    results = []
    for policy in parse_policies(args.policy):
        r = run_scale(policy, nodes=args.nodes, jobs=args.jobs, seed=args.seed,
                      gpus_per_node=args.gpus_per_node)  # fmt: skip
        notes(args, console).print(
            f"{policy}: {r.placed_jobs} of {r.jobs} jobs placed, {r.placements_per_s:.0f} "
            f"placements/s, p99 cycle {r.p99_cycle_ms:.1f} ms"
        )
        results.append(r)
    path = write_summary(results, Path(args.out))
    emit(args, console, {"policies": [{**plain(r), "placements_per_s": r.placements_per_s}
                                      for r in results], "files": [path]})  # fmt: skip
    notes(args, console).print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    """A short packing replay on the embedded trace slice."""
    from simulations.packing_experiment import run_grid, write_outputs
    from simulations.sample import write_sample

    out = Path(args.out)
    nodes_csv, pods_csv = write_sample(out)
    notes(args, console).print(
        f"[bold]gpuyard demo[/]: packing replay of a synthetic pod list ({pods_csv}) on a synthetic "
        f"fleet ({nodes_csv}); simulated, arrivals only, inflated to 130 % of the fleet's GPUs"
    )
    results = run_grid(nodes_csv, pods_csv, ["random", "best_fit", "fgd"], [42, 43, 44], 1.3, 1)
    write_outputs(results, out)
    files = [out / "curves.csv", out / "summary.csv", out / "curves.png"]
    doc = {"trace": pods_csv, "nodes": nodes_csv, "seeds": [42, 43, 44], "inflate": 1.3,
           "policies": _packing_rows(results), "files": files}  # fmt: skip
    if not emit(args, console, doc):
        console.print(_packing_table(results, "demo: median over 3 seeds"))
    notes(args, console).print("wrote " + ", ".join(map(str, files)))
    return 0


def _sites_table(rows: list, title: str) -> Table:  # type: ignore[type-arg]
    table = Table(title=title)
    for col in (
        "site",
        "quarter",
        "GPUs",
        "jobs",
        "wait P50 h",
        "P95 h",
        "P99 h",
        "util %",
        "planner %",
        "never fit",
        "unserved",
    ):
        table.add_column(col, justify="left" if col in ("site", "quarter") else "right")
    for r in rows:
        table.add_row(
            r.site, r.quarter, f"{r.gpus:,}", f"{r.jobs:,}", f"{r.wait_p50_h:.2f}", f"{r.wait_p95_h:.2f}",
            f"{r.wait_p99_h:.2f}", f"{r.gpu_util_pct:.1f}", f"{r.planned_util_pct:.1f}", str(r.never_fit),
            f"{r.unserved_fraction:.3f}",
        )  # fmt: skip
    return table


def cmd_simulate_plan(args: argparse.Namespace, console: Console) -> int:
    from planner.schema import ScenarioError, load_scenario
    from simulations.packing_experiment import parse_seeds
    from simulations.plan_sim.options import plan_sim_settings
    from simulations.plan_sim.replay import simulate_plan_dir, write_outputs

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        raise ValueError(str(e)) from None
    settings = plan_sim_settings(args, scenario)
    seeds = parse_seeds(args.seeds)
    plan_dir = Path(args.plan_dir)
    with _plan_progress(notes(args, console), args.quiet) as (progress, task):

        def tick(r) -> None:  # type: ignore[no-untyped-def]
            progress.update(
                task, advance=1, description=f"{r.site} {r.quarter}: wait P95 {r.wait_p95_h:.2f} h"
            )

        sim = simulate_plan_dir(
            plan_dir, scenario, settings, seeds,
            Path(args.traces_dir) if args.traces_dir else None, tick=tick, workers=args.workers,
            on_tasks=lambda n: progress.update(task, total=n),
        )  # fmt: skip
    out = Path(args.out)
    paths = write_outputs(sim, out, plots=not args.no_plots)
    doc = {"scenario": scenario.name, "plan_dir": plan_dir, "seeds": seeds,
           "wall_s": sim.wall_s, "sites": sim.sites, "files": paths}  # fmt: skip
    if not emit(args, console, doc):
        title = f"{scenario.name}: {plan_dir} replayed ({sim.wall_s:.0f} s)"
        console.print(_sites_table(list(sim.sites), title))
    notes(args, console).print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _plan_progress(console: Console, quiet: bool):  # type: ignore[no-untyped-def]
    import contextlib

    @contextlib.contextmanager
    def cm():  # type: ignore[no-untyped-def]
        with Progress(
            TextColumn("[bold]plan replay"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.description}"), TimeElapsedColumn(), console=console, disable=quiet,
        ) as progress:  # fmt: skip
            yield progress, progress.add_task("", total=None)

    return cm()


def add_simulate_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = sub.add_parser("simulate", help="trace-driven simulations of the scheduling core")
    simsub = sim.add_subparsers(dest="what", required=True)
    pk = simsub.add_parser(
        "packing",
        help="replay a pod list (FGD protocol) and measure GPU allocation and fragmentation",
    )
    pk.add_argument(
        "--trace", required=True, help="pod list CSV (Alibaba openb_pod_list_*.csv format)"
    )
    pk.add_argument(
        "--nodes", required=True, help="node list CSV (openb_node_list_gpu_node.csv format)"
    )
    pk.add_argument("--policy", default="all", help="NAME[,NAME...] or 'all'")
    pk.add_argument("--seeds", default="42-51", help="e.g. 42-51 or 42,43")
    pk.add_argument(
        "--inflate",
        type=float,
        default=1.3,
        help="inflate or deflate the workload to this x fleet GPUs",
    )
    pk.add_argument("--out", required=True, help="output directory")
    pk.add_argument("--jobs", type=int, default=1, help="worker processes")
    pk.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_option(pk)
    pk.set_defaults(func=cmd_simulate_packing)

    mx = simsub.add_parser(
        "mixes",
        help="every packing policy on synthetic mixes (simulations/synthetic.py), FGD protocol",
    )
    mx.add_argument("--policy", default="all", help="NAME[,NAME...] or 'all'")
    mx.add_argument("--mixes", default="all", help="MIX[,MIX...] or 'all' (see --list)")
    mx.add_argument("--seeds", default="42-44", help="e.g. 42-44 or 42,43 (generator and replay)")
    mx.add_argument("--nodes", type=int, help="resize every mix's fleet to this many nodes")
    mx.add_argument(
        "--inflate", type=float, default=1.3, help="inflate the workload to this x fleet GPUs"
    )
    mx.add_argument("--out", help="output directory (mixes.csv, summary.csv)")
    mx.add_argument("--jobs", type=int, default=1, help="worker processes")
    mx.add_argument("--list", action="store_true", help="list the mixes and exit")
    mx.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_option(mx)
    mx.set_defaults(func=cmd_simulate_mixes)

    mc = simsub.add_parser(
        "mix-csv",
        help="write synthetic mixes as Alibaba-format node and pod lists (for simulate packing)",
    )
    mc.add_argument("--mixes", required=True, help="MIX[,MIX...] or 'all'")
    mc.add_argument("--seeds", default="42", help="e.g. 42-44 or 42,43")
    mc.add_argument("--nodes", type=int, help="resize every mix's fleet to this many nodes")
    mc.add_argument("--out", required=True, help="output directory (MIX_sSEED_{nodes,pods}.csv)")
    add_output_option(mc)
    mc.set_defaults(func=cmd_simulate_mix_csv)

    qu = simsub.add_parser(
        "queue", help="replay a job trace (Philly or Tiresias format) through the queue policies"
    )
    qu.add_argument("--trace", required=True, help="philly.csv or a Tiresias job CSV")
    qu.add_argument("--gpus", type=int, required=True, help="fleet size in GPUs")
    qu.add_argument("--gpus-per-node", type=int, default=8)
    qu.add_argument(
        "--policy", default="all", help="NAME[,NAME...] or 'all' (fifo, priority, sjf, las, drf)"
    )
    qu.add_argument("--backfill", choices=["none", "easy", "greedy"], default="none")
    qu.add_argument("--quotas", help="quota YAML (teams, GPU quotas, cohorts)")
    qu.add_argument(
        "--priority-classes", help="priority-class YAML (classes, default, teams' classes)"
    )
    qu.add_argument(
        "--preemption", action="store_true", help="reclaim lent quota, preempt lower priorities"
    )
    qu.add_argument(
        "--aging", type=float, help="seconds after which a waiting job is reserved ahead of all"
    )
    qu.add_argument(
        "--checkpoint-interval", type=float, help="seconds between checkpoints of every job"
    )
    qu.add_argument(
        "--fair-share-half-life", type=float, help="seconds; drf shares use usage decayed with it"
    )
    qu.add_argument("--out", required=True)
    qu.add_argument("--quiet", action="store_true")
    add_output_option(qu)
    qu.set_defaults(func=cmd_simulate_queue)

    sc = simsub.add_parser(
        "scale", help="placements per second and cycle times on a synthetic fleet of your size"
    )
    sc.add_argument("--policy", default="all", help="NAME[,NAME...] or 'all' (packing policies)")
    sc.add_argument("--nodes", type=int, default=12_500)
    sc.add_argument("--gpus-per-node", type=int, default=8)
    sc.add_argument("--jobs", type=int, default=10_000, help="pending gang jobs")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--out", required=True, help="output directory (summary.csv)")
    add_output_option(sc)
    sc.set_defaults(func=cmd_simulate_scale)

    pl = simsub.add_parser(
        "plan",
        help="replay a plan's fleet through the scheduling core with the planner's demand as jobs",
    )
    pl.add_argument("plan_dir", help="a plan folder (gpuyard plan --out DIR)")
    pl.add_argument("--scenario", required=True, help="the scenario YAML the plan was made from")
    pl.add_argument("--out", required=True, help="output directory (sites.csv, jobs.csv, plots)")
    from simulations.plan_sim.options import add_plan_sim_options

    add_plan_sim_options(pl)
    add_output_option(pl)
    pl.set_defaults(func=cmd_simulate_plan)

    demo = sub.add_parser("demo-packing", help="a short packing replay on a synthetic pod list")
    demo.add_argument("--out", default="out/demo")
    add_output_option(demo)
    demo.set_defaults(func=cmd_demo)
