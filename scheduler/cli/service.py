"""``gpuyard up``, ``gpuyard down`` and the live ``gpuyard demo``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from scheduler.cli.output import add_output_option, emit, notes

if TYPE_CHECKING:
    from scheduler.client import Client

DEMO_TEAMS = ["perception", "planning", "mapping"]


def _config(args: argparse.Namespace) -> Any:
    from scheduler.runtime.config import load_config

    return load_config(args.config, state_dir=args.state_dir, api_port=args.port)


def cmd_up(args: argparse.Namespace, console: Console) -> int:
    from scheduler.runtime.config import load_fleet
    from scheduler.runtime.local import up

    if args.address and not args.fleet:
        raise ValueError(
            "--fleet FLEET.yaml is required with --address: it names the cluster's GPU nodes "
            "(each Ray node labelled gpuyard.io/node=<name>); on Kubernetes `gpuyard k8s up` "
            "reads the fleet from the nodes' GPU Feature Discovery labels instead"
        )
    cfg = _config(args)
    fleet = load_fleet(args.fleet)
    cfg.residency_for(fleet)  # a residency rule naming a region the fleet lacks: before Ray
    with notes(args, console).status("starting Ray, the scheduler and the API"):
        info = up(cfg, fleet, args.address, DEMO_TEAMS)
    if not emit(args, console, up_document(info, fleet)):
        _print_up(info, fleet, console)
    return 0


def up_document(info: dict[str, Any], fleet: list[Any]) -> dict[str, Any]:
    """``gpuyard up --output json``: what the table and the lines under it say."""
    tokens = Path(info["state_dir"]) / "tokens"
    return {
        "up_s": info["up_s"],
        "simulated": info["simulated"],
        "api": info["api"],
        "docs": f"{info['api']}/docs",
        "ray_address": info["address"],
        "ray_dashboard": info.get("dashboard"),
        "state_dir": info["state_dir"],
        "tokens_dir": str(tokens) if tokens.exists() else None,
        "nodes": [
            {"name": n.name, "gpus": n.gpus, "gpu_model": n.gpu_model, "cpus": n.cpus,
             "labels": dict(n.labels)}
            for n in fleet
        ],
    }  # fmt: skip


def _print_up(info: dict[str, Any], fleet: list[Any], console: Console) -> None:
    sim = " (simulated GPUs and NVML telemetry)" if info["simulated"] else ""
    table = Table(title=f"gpuyard is up in {info['up_s']} s{sim}")
    for col in ("node", "GPUs", "model", "CPUs", "labels"):
        table.add_column(col)
    for n in fleet:
        model = n.gpu_model + (" [yellow]simulated[/]" if info["simulated"] else "")
        labels = ", ".join(f"{k}={v}" for k, v in n.labels)
        table.add_row(n.name, str(n.gpus), model, str(n.cpus), labels)
    console.print(table)
    dashboard = f" (dashboard {info['dashboard']})" if info.get("dashboard") else ""
    console.print(
        f"API: {info['api']}  (OpenAPI: {info['api']}/docs)   Ray: {info['address']}{dashboard}"
    )
    tokens = Path(info["state_dir"]) / "tokens"
    if tokens.exists():
        console.print(f"tokens: {tokens}/<team>; e.g. export GPUYARD_TOKEN=$(cat {tokens}/admin)")


def cmd_down(args: argparse.Namespace, console: Console) -> int:
    from scheduler.runtime.local import down

    for line in tidy_down(down(Path(args.state_dir or "~/.gpuyard").expanduser())):
        console.print(line)
    return 0


def tidy_down(lines: list[str]) -> list[str]:
    """What ``down`` did, with its "killed gpuyard-runner-3b44ee01f1ec" lines (one per actor
    left running) counted into one line by kind: ``killed 12 actors still running (11
    runners, 1 sampler)``."""
    killed = [line.removeprefix("killed ") for line in lines if line.startswith("killed ")]
    if len(killed) < 2:
        return lines
    kinds: dict[str, int] = {}
    for name in killed:
        kind = name.removeprefix("gpuyard-").split("-")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    what = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in kinds.items())
    summary = f"killed {len(killed)} actors still running ({what})"
    first = next(i for i, line in enumerate(lines) if line.startswith("killed "))
    rest = [line for line in lines if not line.startswith("killed ")]
    return [*rest[:first], summary, *rest[first:]]


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    """Bring up a local simulated cluster, submit jobs from three teams, show the queue with
    reasons and the placements, run them to completion with Ray Train, print, shut down."""
    import yaml

    from scheduler.client import Client
    from scheduler.runtime.config import load_config, load_fleet
    from scheduler.runtime.local import down, up

    console = Console(width=max(console.width, 160))  # wide tables, also when piped
    state_dir = Path(args.state_dir).resolve()
    if (state_dir / "up.json").exists():
        down(state_dir)
    for old in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (state_dir / old).unlink(missing_ok=True)
    cfg = load_config(args.config, state_dir=str(state_dir), api_port=args.port, stop_grace_s=30.0)
    fleet = load_fleet(None)
    with console.status("starting a local Ray cluster with simulated GPU nodes"):
        info = up(cfg, fleet, None, DEMO_TEAMS)
    _leave_ray()  # from here on the demo is a client of the API, as a team is
    _print_up(info, fleet, console)
    try:
        tokens = {t: (state_dir / "tokens" / t).read_text().strip() for t in ["admin", *DEMO_TEAMS]}
        admin = Client(info["api"], tokens["admin"])
        examples = sorted(Path(args.examples).glob("*.yaml"))
        # each example args.copies times: more than the 12 GPUs hold at once, so some wait
        for copy in range(1, args.copies + 1):
            for path in examples:
                spec = yaml.safe_load(path.read_text())
                spec["name"] = f"{spec['name']}-{copy}"
                client = Client(info["api"], tokens.get(spec.get("team", ""), tokens["admin"]))
                job = client.submit(spec)
                console.print(
                    f"submitted {path.name} as {job.job_id} ({job.team}): "
                    f"{job.state.value}, {job.reason}"
                )
        # a team's own script, its code uploaded from its folder (a script job)
        script = Path(args.examples) / "script_job" / "job.yaml"
        if script.exists():
            spec = yaml.safe_load(script.read_text())
            client = Client(info["api"], tokens.get(spec.get("team", ""), tokens["admin"]))
            job = client.submit(
                spec,
                base_dir=script.parent,
                on_upload=lambda u: console.print(
                    f"uploaded {u.path} as {u.uri}"
                    + (f" ({u.size_bytes} bytes)" if u.size_bytes is not None else "")
                ),
            )
            console.print(
                f"submitted {script} as {job.job_id} ({job.team}, {job.kind} job: "
                f"{job.spec.get('command')}): {job.state.value}, {job.reason}"
            )
        time.sleep(1.0)
        _show_queue(admin, console)
        _show_jobs(admin, console, "placements")
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            jobs = admin.jobs()
            if all(j.state.terminal for j in jobs):
                break
            time.sleep(2.0)
        _show_jobs(admin, console, "results")
        jobs = admin.jobs()
        ok = all(j.state == "SUCCEEDED" for j in jobs)
        console.print("[green]all jobs succeeded[/]" if ok else "[red]not every job succeeded[/]")
        return 0 if ok else 1
    finally:
        with console.status("shutting down"):
            for line in tidy_down(down(state_dir)):
                console.print(line)


def _leave_ray() -> None:
    """Disconnect this process from Ray once the service is up (its actors are detached and
    keep running). A connected driver prints every message the raylets publish to the
    cluster, e.g. "N PYTHON worker processes have been started ... the maximum expected
    startup concurrency" each time Ray Train starts workers on a 2-CPU node: advice for a Ray
    operator, not for someone watching jobs. Those stay in Ray's logs
    (``<ray temp dir>/session_latest/logs/raylet.out``); what happens to a job is in its state
    and reason, which the demo shows."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _where(j: Any) -> str:
    """A job's placement: each node once, with its GPUs (``node-h100-0: 0,1``)."""
    by_node: dict[str, list[int]] = {}
    for p in j.placement:
        by_node.setdefault(p.node, []).extend(p.gpu_indices)
    return "; ".join(f"{n}: {','.join(map(str, sorted(set(g))))}" for n, g in by_node.items())


def _show_queue(client: Client, console: Console) -> None:
    table = Table(title="queue (why each job waits)")
    for col in ("pos", "job", "team", "code", "reason", "est. start in"):
        table.add_column(col)
    now = time.time()
    for q in client.queue():
        est = q.estimated_start_s
        table.add_row(str(q.position), q.job_id, q.team, q.code, q.reason,
                      "-" if est is None else f"{max(0.0, est - now):.0f} s")  # fmt: skip
    console.print(table)


def _show_jobs(client: Client, console: Console, title: str) -> None:
    table = Table(title=title)
    for col in ("job", "name", "team", "state", "placement", "attempts", "loss", "reason"):
        table.add_column(col)
    for j in client.jobs():
        where = _where(j)
        loss = j.metrics.get("loss")
        table.add_row(j.job_id, j.name, j.team, j.state.value, where or "-",
                      str(j.attempts), "-" if loss is None else f"{loss:.4f}", j.reason)  # fmt: skip
    console.print(table)


def cmd_journal_verify(args: argparse.Namespace, console: Console) -> int:
    """Replay the journal from its oldest snapshot and compare every batch's actions."""
    from scheduler.runtime.journal import Journal
    from scheduler.runtime.recovery import verify

    path = Path(args.state_dir).expanduser() / "journal.db"
    if not path.exists():
        raise ValueError(f"{path}: no journal there (--state-dir is the service's state_dir)")
    with Journal(path) as journal:
        verdict = verify(journal)
    if verdict.mismatches:
        for line in verdict.mismatches:
            console.print(f"[red]mismatch[/] {line}")
        console.print(
            f"{path}: {len(verdict.mismatches)} difference(s) in {verdict.batches} batch(es) "
            f"after seq {verdict.from_seq}: this code does not decide as the journal recorded"
        )
        return 1
    console.print(
        f"{path}: {verdict.batches} batch(es) after the snapshot at seq {verdict.from_seq} "
        "replay to exactly the recorded actions"
    )
    return 0


def add_service_commands(sub: Any) -> None:
    default_state = os.environ.get("GPUYARD_HOME", "~/.gpuyard")
    u = sub.add_parser("up", help="start the scheduler service (and a local simulated cluster)")
    u.add_argument("--address", help="an existing Ray cluster (default: start a local one)")
    u.add_argument("--fleet", help="fleet YAML (default: 3 simulated nodes x 4 GPUs)")
    u.add_argument("--config", help="service config YAML (policies, quotas, tokens, ports)")
    u.add_argument("--state-dir", default=default_state)
    u.add_argument("--port", type=int, help="API port (default 8000)")
    add_output_option(u)
    u.set_defaults(func=cmd_up)
    d = sub.add_parser("down", help="stop what `gpuyard up` started")
    d.add_argument("--state-dir", default=default_state)
    d.set_defaults(func=cmd_down)
    jr = sub.add_parser("journal", help="the service's journal (offline tools)")
    jrsub = jr.add_subparsers(dest="journal_command", required=True)
    jv = jrsub.add_parser("verify", help="replay from the oldest snapshot; compare the actions")
    jv.add_argument("--state-dir", default=default_state)
    jv.set_defaults(func=cmd_journal_verify)
    demo = sub.add_parser("demo", help="the live service end to end on a local simulated cluster")
    demo.add_argument("--state-dir", default="out/demo-service")
    demo.add_argument("--examples", default=str(Path(__file__).resolve().parents[2] / "examples"))
    demo.add_argument(
        "--config",
        default=str(Path(__file__).resolve().parents[2] / "examples" / "config" / "service.yaml"),
        help="service config (default: the examples' one, which grants their priorities)",
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.add_argument("--copies", type=int, default=3, help="submissions of each example")
    demo.set_defaults(func=cmd_demo)
