"""``gpuyard``: one command line for the scheduler, the planner and the simulations.

The commands live in one module each and are assembled here; they import nothing from this
module (one direction: ``main`` -> ``simulate``, ``service``, ``jobs``, ``k8s``, and the
planner's ``planner.cli``):

* ``simulate.py``: ``simulate packing``, ``simulate queue``, ``demo-packing``;
* ``service.py``: ``up``, ``down``, ``demo``, ``journal verify`` (the live service);
* ``jobs.py``: ``submit``, ``jobs``, ``job``, ``cancel``, ``logs``, ``queue``, ``nodes``,
  ``cordon``/``drain``/``uncordon``, ``audit`` (clients of its API);
* ``k8s.py``: ``k8s inventory|up|remediate``;
* ``completion.py``: ``completion bash|zsh|fish``; ``output.py``: every table's
  ``--output table|json``.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from scheduler.policies.registry import UnknownPolicy
from simulations.traces.errors import TraceError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuyard", description="GPU cluster scheduler, capacity planner and simulations"
    )
    sub = p.add_subparsers(dest="command", required=True)
    from scheduler.cli.simulate import add_simulate_commands

    add_simulate_commands(sub)
    from scheduler.cli.service import add_service_commands  # up, down, demo (live service)

    add_service_commands(sub)
    from planner.cli import add_plan_parser  # light: the planner loads when `plan` runs

    add_plan_parser(sub)
    from scheduler.cli.jobs import add_job_commands  # the live service's commands

    add_job_commands(sub)
    from scheduler.cli.k8s import add_k8s_commands  # gpuyard k8s inventory|up|remediate

    add_k8s_commands(sub)
    from scheduler.cli.completion import add_completion_command  # gpuyard completion bash|...

    add_completion_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    from scheduler.cli.completion import complete

    complete(parser)  # a shell asking for completions (TAB) is answered here, then exits
    args = parser.parse_args(argv)
    console = Console()
    err = Console(stderr=True, soft_wrap=True)
    try:
        return int(args.func(args, console))
    except ModuleNotFoundError as e:  # a module of an extra that this install lacks
        from rich.markup import escape

        from scheduler.cli.extras import command_words, missing_extra_message

        message = missing_extra_message(e, command_words(args))
        if message is None:
            raise
        err.print(f"[red]error:[/] {escape(message)}")
        return 2
    except (UnknownPolicy, TraceError, ValueError, OSError) as e:
        err.print(f"[red]error:[/] {e}")
        return 2


def run() -> None:
    sys.exit(main())
