"""``gpuyard plan SCENARIO.yaml --out DIR ...``: the planner's command.

`scheduler/cli.py` registers it with ``add_plan_parser(sub)``; ``python -m planner.cli plan``
runs it on its own. Exit codes: 0 a plan was found (optimal or feasible), 1 no plan (the
diagnosis says why), 2 bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from planner import SOLVERS

if TYPE_CHECKING:
    from planner.model import Model
    from planner.results import Results
    from planner.solve import SolveOptions

# The model, solvers (PuLP, HiGHS) and plotting load when the command runs, not when the
# `gpuyard` parser is built for every other command.


def add_plan_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plan", help="capacity planner: which GPUs to buy, when and where (MILP)"
    )
    p.add_argument("scenario", help="scenario YAML (see planner/README.md)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--solver", choices=SOLVERS, default="highs", help="MILP solver (default highs)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (default 60)")
    p.add_argument(
        "--gap", type=float, default=0.01, help="relative MIP gap to stop at (default 0.01)"
    )
    p.add_argument("--threads", type=int, default=1, help="solver threads (default 1)")
    p.add_argument(
        "--warm-start", type=float, default=0.8, metavar="SHARE",
        help="share of the time limit HiGHS may spend on a two-stage start (0: none; default 0.8)",
    )  # fmt: skip
    p.add_argument("--random-seed", type=int, default=None, metavar="N",
                   help="HiGHS's random_seed (default: HiGHS's own, 0)")  # fmt: skip
    p.add_argument("--sweep", help="e.g. growth=low,base,high: solve each case and tabulate regret")
    p.add_argument("--shadow", choices=("relaxed", "fixed"), default="relaxed",
                   help="LP for shadow prices: integers relaxed, or fixed at the plan")  # fmt: skip
    p.add_argument(
        "--no-rules", action="store_true", help="skip re-solving without residency/export rules"
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--verify", action="store_true",
        help="replay each plan through the scheduler's core and re-plan until the scenario's slo holds",
    )  # fmt: skip
    from simulations.plan_sim.options import add_plan_sim_options

    add_plan_sim_options(p, common=False)
    from scheduler.cli.output import add_output_option  # every gpuyard table's --output

    add_output_option(p)
    p.set_defaults(func=cmd_plan)
    return p


def _verify(args: argparse.Namespace, sc: Any, options: SolveOptions, console: Console) -> Any:
    """The closed loop (simulations/plan_sim/verify.py) with a progress bar over plans and
    replays."""
    from rich.progress import BarColumn, MofNCompleteColumn

    from simulations.packing_experiment import parse_seeds
    from simulations.plan_sim.options import plan_sim_settings
    from simulations.plan_sim.verify import verify

    settings = plan_sim_settings(args, sc)
    seeds = parse_seeds(args.seeds)
    limit = sc.slo.iterations if sc.slo is not None else 1
    with Progress(TextColumn("[bold]verify"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, disable=args.quiet) as progress:  # fmt: skip
        plans = progress.add_task(f"plans (at most {limit})", total=limit)
        replays = progress.add_task("replays", total=None)

        def on_plan(i: int, o: Any) -> None:
            progress.update(plans, completed=i + 1, description=f"plan {i}: {o.headline}")

        def on_tasks(i: int, n: int) -> None:
            progress.update(replays, completed=0, total=n, description=f"plan {i}: replays")

        def on_replay(i: int, r: Any) -> None:
            progress.update(
                replays,
                advance=1,
                description=f"plan {i}: {r.site} {r.quarter} wait P95 {r.wait_p95_h:.2f} h",
            )

        return verify(sc, options, settings, seeds, Path(args.traces_dir) if args.traces_dir else None,
                      args.workers, on_plan, on_replay, on_tasks)  # fmt: skip


def _write_verified(v: Any, out: Path, plots: bool) -> list[Path]:
    from simulations.plan_sim.replay import write_outputs as write_sim
    from simulations.plan_sim.verify import write_iterations

    write_iterations(v, out / "verify" / "iterations.csv")
    return [out / "verify" / "iterations.csv", *write_sim(v.kept.sim, out / "verify", plots=plots)]


def _verified_document(v: Any) -> dict[str, Any]:
    """``plan --verify --output json``: the loop's iterations and the kept plan's verdict."""
    from simulations.plan_sim.verify import ITERATIONS_COLUMNS

    return {
        "slo": {"wait_p95_hours": v.slo.wait_p95_hours,
                "max_unserved_fraction": v.slo.max_unserved_fraction},
        "slo_met": v.slo_met,
        "verdict": v.verdict,
        "iterations": [dict(zip(ITERATIONS_COLUMNS, it.row(), strict=True)) for it in v.iterations],
        "bound": [{"site": r.site, "quarter": r.quarter, "why": why} for r, why in v.kept.bound],
    }  # fmt: skip


def _print_verified(v: Any, out: Path, console: Console, plots: bool) -> None:
    from rich.table import Table as RichTable

    from simulations.plan_sim.verify import ITERATIONS_COLUMNS

    table = RichTable(
        title=f"plan --verify: SLO wait P95 <= {v.slo.wait_p95_hours:g} h, unserved <= {v.slo.max_unserved_fraction:g}"
    )
    for col in ITERATIONS_COLUMNS:
        table.add_column(col, justify="right")
    for it in v.iterations:
        table.add_row(*(str(x) for x in it.row()))
    console.print(table)
    style = "green" if v.slo_met else "red"
    console.print(f"[{style}]{v.verdict}[/]")
    for r, why in v.kept.bound:
        console.print(f"  {r.site} {r.quarter}: {why}", highlight=False)
    console.print(
        f"wrote {out}/verify/iterations.csv, sites.csv, jobs.csv"
        + (", waits.png, utilisation.png" if plots else "")
    )


def _options(args: argparse.Namespace) -> SolveOptions:
    from planner.solve import SolveOptions

    if args.time_limit is not None and args.time_limit <= 0:
        raise ValueError(f"--time-limit must be > 0 seconds, got {args.time_limit}")
    if not 0 <= args.gap < 1:
        raise ValueError(f"--gap must be in [0, 1), got {args.gap}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not 0 <= args.warm_start < 1:
        raise ValueError(f"--warm-start must be in [0, 1), got {args.warm_start}")
    if args.random_seed is not None and not 0 <= args.random_seed <= 2**31 - 1:
        raise ValueError(f"--random-seed must be in [0, 2147483647], got {args.random_seed}")
    return SolveOptions(
        solver=args.solver,
        time_limit_s=args.time_limit,
        gap=args.gap,
        threads=args.threads,
        warm_start_share=args.warm_start,
        random_seed=args.random_seed,
    )


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from planner.build import build
    from planner.report import plot, print_results, rich_table, write_outputs
    from planner.results import collect
    from planner.schema import ScenarioError, load_scenario
    from planner.shadow import lp_duals, rule_prices
    from planner.solve import solve
    from planner.sweep import parse_sweep, run_sweep
    from scheduler.cli.output import emit, notes

    err = Console(stderr=True, soft_wrap=True)
    shell = notes(args, console)  # progress and notes; stderr with --output json
    try:
        sc = load_scenario(args.scenario)
        options = _options(args)
        sweep = parse_sweep(args.sweep, sc) if args.sweep else None
    except (ScenarioError, ValueError) as e:
        err.print(f"[red]error:[/] {e}", markup=True, highlight=False)
        return 2
    out = Path(args.out)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=shell, transient=True, disable=args.quiet) as progress:  # fmt: skip
        task = progress.add_task(f"building {sc.name}")

        def step(text: str) -> None:
            progress.update(task, description=text)

        verified = None
        if args.verify:
            progress.stop()
            verified = _verify(args, sc, options, shell)
            progress.start()
            m, outcome = verified.kept.model, verified.kept.outcome
        else:
            m = build(sc)
            step(f"solving {len(m.buy) + len(m.cum)} integers, {len(m.rows)} rows with {options.solver} "
                 f"(limit {options.time_limit_s:g} s, gap {options.gap:g})")  # fmt: skip
            outcome = solve(m, options)
        res = collect(m, outcome)
        if not outcome.has_solution:
            step("no solution: diagnosing with the elastic model")
            return _no_plan(console, res, args, out=out, m=m, options=options)
        step("shadow prices (LP)")
        _, shadow = lp_duals(sc, options, m, args.shadow)
        rules = None
        if not args.no_rules:
            step("price of rules (re-solving without residency, then without export rules)")
            rules = rule_prices(sc, options, outcome)
        sweep_tables = []
        if sweep:
            result = run_sweep(sc, sweep[1], options, tick=lambda s: step(f"sweep: {s}"))
            sweep_tables = [result.regret, result.summary]
    extra = [t for t in (shadow, rules, *sweep_tables) if t is not None]
    files = write_outputs(res, out, extra)
    if not args.no_plots:
        files += plot(res, out)
    if verified is not None:
        files += _write_verified(verified, out, plots=not args.no_plots)
    doc = _plan_document(res, args.scenario, [*res.tables.values(), *extra], files)
    if verified is not None:
        doc["verify"] = _verified_document(verified)
    if emit(args, console, doc):
        shell.print(f"wrote {len(files)} files in {out}")
        return 0
    print_results(console, res, shadow, rules)
    for t in sweep_tables:
        console.print(rich_table(t))
    if verified is not None:
        _print_verified(verified, out, console, plots=not args.no_plots)
    console.print(f"wrote {out}/summary.json, purchases.csv, shadow_prices.csv and {len(res.tables) + len(extra) - 1} "
                  f"more CSVs{'' if args.no_plots else ', installed_gpus.png, power.png, costs.png'}")  # fmt: skip
    return 0


def _plan_document(
    res: Results, source: str, tables: list[Any], files: list[Path]
) -> dict[str, Any]:
    """``plan --output json``: summary.json's keys, the outcome in words, every table written
    (as in its CSV, one object a row) and the files written."""
    return {
        "scenario": res.scenario,
        "source": source,
        "headline": res.outcome.headline,
        "summary": res.summary(),
        "tables": {"purchases": [], **{t.name: t.records() for t in tables}},
        "files": files,
    }


def _no_plan(
    console: Console,
    res: Results,
    args: argparse.Namespace,
    out: Path,
    m: Model,
    options: SolveOptions,
) -> int:
    from planner.diagnose import diagnose
    from planner.report import rich_table, write_csv, write_outputs
    from scheduler.cli.output import emit

    o = res.outcome
    files = write_outputs(res, out)
    diagnosed = o.status in ("infeasible", "unbounded") or o.stop_reason == "error"
    if diagnosed:
        _, findings, table = diagnose(m.scenario, options)
        write_csv(table, out / "diagnosis.csv")
        files.append(out / "diagnosis.csv")
    doc = _plan_document(
        res, args.scenario, [*res.tables.values(), *([table] if diagnosed else [])], files
    )
    if emit(args, console, doc):
        return 1
    console.print(f"[bold red]no plan[/] for {args.scenario}: {o.headline}")
    if diagnosed:
        if findings:
            console.print(
                rich_table(
                    table, "binding constraints (elastic model: rows that need slack)", limit=20
                )
            )
        else:
            console.print(
                "the elastic model needs no slack: the rows are consistent; check fixed decisions"
            )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpuyard", description="GPU capacity planner")
    sub = parser.add_subparsers(dest="command", required=True)
    add_plan_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args, Console()))


if __name__ == "__main__":
    sys.exit(main())
