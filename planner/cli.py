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
    p.add_argument("--sweep", help="e.g. growth=low,base,high: solve each case and tabulate regret")
    p.add_argument("--shadow", choices=("relaxed", "fixed"), default="relaxed",
                   help="LP for shadow prices: integers relaxed, or fixed at the plan")  # fmt: skip
    p.add_argument(
        "--no-rules", action="store_true", help="skip re-solving without residency/export rules"
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_plan)
    return p


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
    return SolveOptions(
        solver=args.solver,
        time_limit_s=args.time_limit,
        gap=args.gap,
        threads=args.threads,
        warm_start_share=args.warm_start,
    )


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from planner.build import build
    from planner.report import plot, print_results, rich_table, write_outputs
    from planner.results import collect
    from planner.schema import ScenarioError, load_scenario
    from planner.shadow import lp_duals, rule_prices
    from planner.solve import solve
    from planner.sweep import parse_sweep, run_sweep

    err = Console(stderr=True, soft_wrap=True)
    try:
        sc = load_scenario(args.scenario)
        options = _options(args)
        sweep = parse_sweep(args.sweep, sc) if args.sweep else None
    except (ScenarioError, ValueError) as e:
        err.print(f"[red]error:[/] {e}", markup=True, highlight=False)
        return 2
    out = Path(args.out)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=args.quiet) as progress:  # fmt: skip
        task = progress.add_task(f"building {sc.name}")

        def step(text: str) -> None:
            progress.update(task, description=text)

        m = build(sc)
        step(f"solving {len(m.buy) + len(m.cum)} integers, {len(m.rows)} rows with {options.solver} "
             f"(limit {options.time_limit_s:g} s, gap {options.gap:g})")  # fmt: skip
        outcome = solve(m, options)
        res = collect(m, outcome)
        if not outcome.has_solution:
            step("no solution: diagnosing with the elastic model")
            return _no_plan(console, res, sc_source=args.scenario, out=out, m=m, options=options)
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
    write_outputs(res, out, extra)
    print_results(console, res, shadow, rules)
    for t in sweep_tables:
        console.print(rich_table(t))
    if not args.no_plots:
        plot(res, out)
    console.print(f"wrote {out}/summary.json, purchases.csv, shadow_prices.csv and {len(res.tables) + len(extra) - 1} "
                  f"more CSVs{'' if args.no_plots else ', installed_gpus.png, power.png, costs.png'}")  # fmt: skip
    return 0


def _no_plan(
    console: Console, res: Results, sc_source: str, out: Path, m: Model, options: SolveOptions
) -> int:
    from planner.diagnose import diagnose
    from planner.report import rich_table, write_csv, write_outputs

    o = res.outcome
    write_outputs(res, out)
    console.print(f"[bold red]no plan[/] for {sc_source}: {o.headline}")
    if o.status in ("infeasible", "unbounded") or o.stop_reason == "error":
        _, findings, table = diagnose(m.scenario, options)
        write_csv(table, out / "diagnosis.csv")
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
