"""``gpuyard submit|jobs|job|cancel|logs|queue|nodes``: the live service's commands.

Each command takes ``--api URL`` (default ``$GPUYARD_API`` or http://127.0.0.1:8000),
``--token TOKEN`` (default ``$GPUYARD_TOKEN``) and ``--output table|json``. Exit codes: 0 done,
1 the API refused or could not be reached (the server's reason on stderr), 2 bad local input
(no token, a spec file that is not a YAML mapping, a local directory to upload that is not
there or too large), 130 ``logs -f`` ended by Ctrl-C.

``submit`` uploads what the spec's ``runtime_env`` names locally (``working_dir``,
``py_modules``: relative to the spec file's folder; ``--working-dir``: relative to the current
directory) as ``ray job submit`` does, and reads a ``pip``/``uv`` requirements file into its
list (``scheduler.client.Client.submit``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scheduler.cli.output import add_output_option, emit

if TYPE_CHECKING:
    from scheduler.client import Client, Upload
    from scheduler.runtime.views import JobPage, JobView, NodeView

# requests (through scheduler.client) loads when one of these commands runs, not for every
# `gpuyard` command.
DEFAULT_API = "http://127.0.0.1:8000"
_STATE_STYLE = {
    "PENDING": "yellow",
    "RUNNING": "green",
    "SUCCEEDED": "bold green",
    "FAILED": "red",
    "CANCELLED": "dim",
    "REJECTED": "red",
}
_STATES = tuple(_STATE_STYLE)
_CHUNK_BYTES = 1024 * 1024  # log read per request by `logs -f --tail N` before following
_JOBS_PAGE = 50  # `gpuyard jobs` shows this many a page unless --limit

Command = Callable[["Client", argparse.Namespace, Console], int]


def add_job_commands(subparsers: Any) -> None:
    """Register the service's commands on ``gpuyard``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", help=f"API URL (default $GPUYARD_API or {DEFAULT_API})")
    common.add_argument("--token", help="bearer token (default $GPUYARD_TOKEN)")
    add_output_option(common)

    def add(name: str, help: str, command: Command) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(name, help=help, parents=[common])
        p.set_defaults(func=_runner(command))
        return p

    p = add("submit", "submit a job spec (YAML) to the scheduler service", _submit)
    p.add_argument(
        "file",
        help="job spec YAML (validated by the server); a local runtime_env working_dir, "
        "py_modules or requirements file in it is relative to the file's folder and uploaded",
    )
    p.add_argument(
        "--working-dir",
        help="a local directory (relative to the current directory) uploaded as the job's "
        "runtime_env.working_dir, as `ray job submit --working-dir`; or a URI",
    )
    p.add_argument("--idempotency-key", help="a retry with the same key returns the same job")
    p = add("jobs", "list your team's jobs (admin: all), oldest first, a page at a time", _jobs)
    p.add_argument("--state", choices=_STATES, type=str.upper, help="only jobs in this state")
    p.add_argument(
        "--limit", type=int, default=_JOBS_PAGE, help=f"jobs a page (default {_JOBS_PAGE})"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--page", type=int, default=1, help="this page, 1 the oldest (default 1)")
    which.add_argument("--all", action="store_true", help="every job, no pages")
    add("job", "one job: state, why, placement, metrics", _job).add_argument("job_id")
    add("cancel", "cancel a job", _cancel).add_argument("job_id")
    p = add("logs", "the last lines of a job's log, or follow it (-f)", _logs)
    p.add_argument("job_id")
    p.add_argument(
        "--tail", type=int, help="lines (default 200; with -f: the whole log unless given)"
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="print the log as it grows until the job ends"
    )
    add("queue", "pending jobs in queue order and why they wait", _queue)
    add("nodes", "nodes and GPUs: health, allocation, why off and since when (admin)", _nodes)
    for verb, what in (
        ("cordon", "no new work on a node; running work stays (admin)"),
        ("drain", "cordon a node, then checkpoint and move its jobs (admin)"),
        ("uncordon", "a node takes work again; clears drain and GPU health marks (admin)"),
    ):
        add(verb, what, _node_command(verb)).add_argument("node", help="a fleet node's name")
    p = add("audit", "who submitted, cancelled, cordoned... and what was refused (admin)", _audit)
    p.add_argument("--since", help="from this time: ISO 8601 (2026-12-01T08:00) or epoch seconds")
    p.add_argument("--team", help="only this team's calls")
    p.add_argument("--limit", type=int, default=1000, help="at most this many, newest (1000)")


class _BadInput(Exception):
    pass


def _runner(command: Command) -> Callable[[argparse.Namespace, Console], int]:
    def run(args: argparse.Namespace, console: Console) -> int:
        from scheduler.client import ApiError, Client

        err = Console(stderr=True, soft_wrap=True)
        token = args.token or os.environ.get("GPUYARD_TOKEN")
        if not token:
            err.print("[red]error:[/] no token: pass --token or set GPUYARD_TOKEN")
            return 2
        api = args.api or os.environ.get("GPUYARD_API") or DEFAULT_API
        try:
            return command(Client(api, token), args, console)
        except ApiError as e:
            err.print(Text.assemble(("error: ", "red"), str(e)))
            return 1
        except _BadInput as e:
            err.print(Text.assemble(("error: ", "red"), str(e)))
            return 2

    return run


def _submit(client: Client, args: argparse.Namespace, console: Console) -> int:
    path = Path(args.file)
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as e:
        raise _BadInput(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise _BadInput(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise _BadInput(f"{path}: a job spec is a YAML mapping, got {type(spec).__name__}")
    # what is uploaded is told on stderr with --output json (stdout stays one JSON document)
    told = Console(stderr=True, soft_wrap=True) if args.output == "json" else console

    def tell(u: Upload) -> None:
        if u.uploaded and u.size_bytes is not None:
            line = Text.assemble(
                f"uploaded {u.path}: ", (u.uri, "bold"), f" ({_size(u.size_bytes)})"
            )
        else:
            line = Text.assemble(f"{u.path}: ", (u.uri, "bold"), " (already uploaded)")
        told.print(line, soft_wrap=True)

    try:
        job = client.submit(
            spec,
            idempotency_key=args.idempotency_key,
            working_dir=args.working_dir,
            base_dir=path.absolute().parent,
            on_upload=tell,
        )
    except (ValueError, TypeError) as e:  # a local path or requirements file (Ray's words)
        raise _BadInput(f"{path}: {e}") from None
    if emit(args, console, job):
        return 0
    console.print(
        Text.assemble("submitted ", (job.job_id, "bold"), " ", _state(job.state), ": ", job.reason)
    )
    return 0


def _jobs(client: Client, args: argparse.Namespace, console: Console) -> int:
    from scheduler.client import MAX_PAGE_SIZE

    if not 1 <= args.limit <= MAX_PAGE_SIZE:
        raise _BadInput(f"--limit {args.limit}: must be 1..{MAX_PAGE_SIZE}")
    if args.page < 1:
        raise _BadInput(f"--page {args.page}: must be >= 1 (1 is the oldest jobs)")
    if args.all:
        jobs = client.jobs(args.state)
        listing = JobListing(jobs, page=1, pages=1, limit=None, total=len(jobs))
    else:
        got = client.job_page(args.page, args.limit, args.state)
        listing = JobListing.of(got, args.page, args.limit)
    if emit(args, console, listing.document()):
        return 0
    jobs = listing.items
    what = f" ({args.state})" if args.state else ""
    table = Table(title=listing.title() + what, caption=listing.hint())
    for col in ("ID", "NAME", "TEAM", "PRIO", "STATE", "SUBMITTED", "REASON"):
        table.add_column(col, justify="right" if col == "PRIO" else "left")
    for j in jobs:
        table.add_row(
            Text(j.job_id),
            Text(j.name),
            Text(j.team),
            str(j.priority),
            _state(j.state),
            _when(j.submitted_at_s),
            Text(j.reason),
        )
    console.print(table)
    return 0


def _job(client: Client, args: argparse.Namespace, console: Console) -> int:
    j = client.job(args.job_id)
    if emit(args, console, j):
        return 0
    _print_job(j, console)
    return 0


def _cancel(client: Client, args: argparse.Namespace, console: Console) -> int:
    j = client.cancel(args.job_id)
    if emit(args, console, j):
        return 0
    console.print(Text.assemble((j.job_id, "bold"), " ", _state(j.state), ": ", j.reason))
    return 0


def _logs(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.follow:
        if args.tail is not None and args.tail < 1:
            raise _BadInput(f"--tail {args.tail}: must be >= 1")
        try:
            _follow(client, args, console)
        except KeyboardInterrupt:  # Ctrl-C: stop following, quietly
            console.file.flush()
            return 130
        return 0
    tail = 200 if args.tail is None else args.tail
    text = client.logs(args.job_id, tail)
    if emit(args, console, {"job_id": args.job_id, "tail_lines": tail, "text": text}):
        return 0
    console.file.write(text if not text or text.endswith("\n") else text + "\n")
    return 0


def _follow(client: Client, args: argparse.Namespace, console: Console) -> None:
    """The log from its start (or its last ``--tail`` lines), then as it grows, until the
    job ends. With ``--output json``: one ``{"job_id", "text"}`` line per piece."""
    out = console.file
    offset = 0
    last = ""

    def write(text: str) -> None:
        nonlocal last
        if not text:
            return
        if args.output == "json":
            out.write(json.dumps({"job_id": args.job_id, "text": text}) + "\n")
        else:
            out.write(text)
            last = text
        out.flush()

    if args.tail is not None:  # read what is there, keep its last lines, then follow
        lines: deque[str] = deque(maxlen=args.tail)
        partial = ""
        while True:
            chunk = client.log_chunk(args.job_id, offset, _CHUNK_BYTES)
            offset = chunk.next_offset
            parts = (partial + chunk.text).splitlines(keepends=True)
            partial = parts.pop() if parts and not parts[-1].endswith(("\n", "\r")) else ""
            lines.extend(parts)
            if chunk.next_offset - chunk.offset < _CHUNK_BYTES:  # read to the end, for now
                break
        if partial:
            lines.append(partial)
        write("".join(lines))
    for text in client.follow_logs(args.job_id, offset=offset):
        write(text)
    if last and not last.endswith("\n"):
        out.write("\n")


def _queue(client: Client, args: argparse.Namespace, console: Console) -> int:
    rows = client.queue()
    if emit(args, console, rows):
        return 0
    table = Table(title=f"queue: {len(rows)} pending")
    for col in ("POS", "ID", "NAME", "TEAM", "WHY", "EST. START", "REASON"):
        table.add_column(col, justify="right" if col == "POS" else "left")
    for q in rows:
        table.add_row(
            str(q.position),
            Text(q.job_id),
            Text(q.name),
            Text(q.team),
            Text(q.code),
            _when(q.estimated_start_s),
            Text(q.reason),
        )
    console.print(table)
    return 0


def _nodes(client: Client, args: argparse.Namespace, console: Console) -> int:
    nodes = client.nodes()
    if emit(args, console, nodes):
        return 0
    table = Table(title=f"{len(nodes)} nodes")
    for col in ("NODE", "STATUS", "GPUS", "ALLOCATED", "UNHEALTHY", "UTIL %", "TELEMETRY"):
        table.add_column(col, justify="right" if col in ("ALLOCATED", "UTIL %") else "left")
    for n in nodes:
        gpus = n.gpus
        models = sorted({g.model for g in gpus})
        sick = [g for g in gpus if not g.healthy]
        utils = [g.utilization_pct for g in gpus if g.utilization_pct is not None]
        table.add_row(
            Text(n.name),
            _node_status(n),
            Text(f"{len(gpus)} × {', '.join(models)}" if gpus else "none"),
            f"{sum(g.allocated_milli for g in gpus) / 1000:g}/{len(gpus)}",
            Text(
                ", ".join(f"{g.index}: {'; '.join(g.why_unhealthy) or '?'}" for g in sick) or "-",
                style="red" if sick else "",
            ),
            f"{sum(utils) / len(utils):.0f}" if utils else "-",
            Text("simulated", style="magenta") if n.simulated else Text("NVML"),
        )
    console.print(table)
    return 0


def _node_command(verb: str) -> Command:
    def run(client: Client, args: argparse.Namespace, console: Console) -> int:
        node = getattr(client, verb)(args.node)
        if emit(args, console, node):
            return 0
        console.print(Text.assemble((f"{node.name}: ", "bold"), _node_status(node)))
        return 0

    return run


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise _BadInput(
            f"--since {text!r}: not a time; give ISO 8601 (2026-12-01T08:00) or epoch seconds"
        ) from None


def _audit(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.limit < 1:
        raise _BadInput(f"--limit {args.limit}: must be >= 1")
    rows = client.audit(_since(args.since), args.team, args.limit)
    if emit(args, console, rows):
        return 0
    table = Table(title=f"{len(rows)} audit entries")
    for col in ("TIME", "WHO", "TEAM", "ACTION", "TARGET", "OUTCOME", "DETAIL"):
        table.add_column(col)
    for r in rows:
        ok = r.outcome == "ok"
        table.add_row(
            _when(r.at_s), Text(r.principal), Text(r.team or "-"), Text(r.action),
            Text(r.target or "-"), Text(r.outcome, style="green" if ok else "red"),
            Text(r.detail),
        )  # fmt: skip
    console.print(table)
    return 0


def _print_job(j: JobView, console: Console) -> None:
    table = Table(show_header=False, title=f"job {j.job_id}")
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, Text | str]] = [
        ("name", Text(j.name)),
        ("team", Text(j.team)),
        ("priority", str(j.priority)),
    ]
    if j.data_region:  # where its data lives: it runs only where residency allows
        rows.append(("data region", Text(j.data_region)))
    rows += [("state", _state(j.state)), ("reason", Text(j.reason))]
    if j.code:
        rows.append(("code", Text(j.code)))
    if j.queue_position is not None:
        rows.append(("queue position", str(j.queue_position)))
    for ts, label in (
        (j.estimated_start_s, "estimated start"),
        (j.submitted_at_s, "submitted"),
        (j.started_at_s, "started"),
        (j.finished_at_s, "finished"),
    ):
        if ts is not None:
            rows.append((label, _when(ts)))
    rows += [("attempts", str(j.attempts)), ("preemptions", str(j.preemptions))]
    for p in j.placement:
        gpus = ",".join(map(str, p.gpu_indices)) or "-"
        share = f" ({p.gpu_milli / 1000:g} GPU each)" if p.gpu_milli < 1000 else ""
        rows.append((f"worker {p.rank}", Text(f"{p.node} GPUs {gpus}{share}")))
    for k, v in sorted(j.metrics.items()):
        rows.append((f"metric {k}", f"{v:g}" if isinstance(v, float) else str(v)))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


@dataclass(frozen=True, slots=True)
class JobListing:
    """What ``gpuyard jobs`` shows: one page of ``limit`` jobs (``limit`` None: all of them),
    page ``page`` of ``pages``, of ``total`` jobs (None when the server does not count)."""

    items: list[JobView]
    page: int
    pages: int | None
    limit: int | None
    total: int | None

    @classmethod
    def of(cls, got: JobPage, page: int, limit: int) -> JobListing:
        total = got.total
        pages = None if total is None else max(1, -(-total // limit))
        return cls(list(got.items), page, pages, limit, total)

    @property
    def first(self) -> int:  # 1-based index of the page's first job
        return (self.page - 1) * (self.limit or 0) + 1

    @property
    def next_page(self) -> int | None:
        if self.limit is None:
            return None
        if self.pages is not None:
            return self.page + 1 if self.page < self.pages else None
        return self.page + 1 if len(self.items) == self.limit else None

    def title(self) -> str:
        n = len(self.items)
        if self.limit is None or self.total == 0:
            return f"{n} jobs"
        if not n:
            tail = "" if self.total is None else f": {self.total} jobs in {self.pages} page(s)"
            return f"no jobs on page {self.page}{tail}"
        shown = f"jobs {self.first}-{self.first + n - 1}"
        if self.total is None:
            return f"{shown}, page {self.page}"
        return f"{shown} of {self.total}, page {self.page} of {self.pages}"

    def hint(self) -> str | None:
        """What is left, and the flag that shows it."""
        if self.limit is None:
            return None
        if not self.items and self.page > 1:
            last = f" is --page {self.pages}" if self.pages else " is before it"
            return f"no page {self.page}: the last{last}"
        if self.next_page is None:
            return None
        if self.total is None:
            return f"more: --page {self.next_page}"
        more = self.total - (self.first - 1) - len(self.items)
        return f"{more} more: --page {self.next_page} (or --all)"

    def document(self) -> dict[str, Any]:
        """The ``--output json`` document: fixed keys."""
        return {
            "items": self.items,
            "page": self.page,
            "pages": self.pages,
            "limit": self.limit,
            "total": self.total,
            "next_page": self.next_page,
        }


def _state(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _node_status(n: NodeView) -> Text:
    if not n.alive:
        return Text("lost", style="red")
    if not n.schedulable:
        parts = [
            f"{o.reason} since {_when(o.since_s)}" + (f" ({o.cause})" if o.cause else "")
            for o in n.off
        ] or n.off_reasons
        return Text("off: " + ("; ".join(parts) or "?"), style="yellow")
    return Text("ready", style="green")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.2f} MiB"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
