"""``gpuyard k8s inventory|up|remediate``: the scheduler on Kubernetes.

* ``inventory``: the fleet read from the GPU nodes' GPU Feature Discovery labels, as a fleet
  file (nodes left out are listed on stderr with why);
* ``up``: in the KubeRay head pod, start the scheduler and the API on the local Ray head with
  that fleet (``--simulated`` for GPU-less dev clusters);
* ``remediate``: cordon and taint nodes whose GPUs fail health checks, give them back when
  healthy again (``--once`` for one check, ``--dry-run`` to only print).

``--server URL`` talks to that API server (tests, ``kubectl proxy``); without it the pod's
ServiceAccount (in-cluster) or the local kubeconfig is used.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

import yaml
from rich.console import Console

from scheduler.cli.output import add_output_option, emit


def _fleet(args: argparse.Namespace, err: Console) -> list[Any]:
    from scheduler.runtime.config import load_fleet
    from scheduler.runtime.k8s.inventory import fleet_from_nodes
    from scheduler.runtime.k8s.nodes import NodeClient, api_client
    from scheduler.runtime.k8s.settings import load_k8s_settings

    if getattr(args, "fleet", None):
        return load_fleet(args.fleet)
    settings = load_k8s_settings(args.k8s_config)
    nodes = NodeClient(api_client(args.server), settings.remediation.namespace)
    items, _ = nodes.list_nodes(settings.inventory.node_selector)
    specs, skipped = fleet_from_nodes(items, settings.inventory)
    for s in skipped:
        err.print(f"[yellow]left out[/] {s.node}: {s.reason}")
    if not specs:
        raise ValueError(
            f"no usable GPU node matches {settings.inventory.node_selector!r}: "
            "is GPU Feature Discovery running, and does the selector match its labels?"
        )
    return specs


def cmd_inventory(args: argparse.Namespace, console: Console) -> int:
    from scheduler.runtime.k8s.inventory import fleet_document

    err = Console(stderr=True, soft_wrap=True)
    doc = fleet_document(_fleet(args, err))
    if not emit(args, console, doc):
        console.print(yaml.safe_dump(doc, sort_keys=False), end="", markup=False, highlight=False)
    return 0


def cmd_up(args: argparse.Namespace, console: Console) -> int:
    from scheduler.runtime.config import load_config
    from scheduler.runtime.k8s.inventory import fleet_document
    from scheduler.runtime.ray_service import start_service

    err = Console(stderr=True, soft_wrap=True)
    cfg = load_config(args.config)
    fleet = _fleet(args, err)
    info = start_service(cfg, fleet, args.address, args.simulated, args.wait_for_ray)
    if emit(args, console, {**info, "fleet": fleet_document(fleet)["nodes"]}):
        return 0
    sim = " with simulated GPUs and telemetry" if info["simulated"] else ""
    console.print(f"gpuyard is up in {info['up_s']} s{sim}: API {info['api']}, Ray {info['address']}")  # fmt: skip
    console.print("fleet: " + ", ".join(f"{n.name} ({n.gpus}x{n.gpu_model})" for n in fleet))
    return 0


def cmd_remediate(args: argparse.Namespace, console: Console) -> int:
    from scheduler.client import Client
    from scheduler.runtime.k8s.nodes import NodeClient, api_client
    from scheduler.runtime.k8s.remediator import Remediator
    from scheduler.runtime.k8s.settings import load_k8s_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = args.token or os.environ.get("GPUYARD_TOKEN")
    if not token:
        raise ValueError("no token: pass --token or set GPUYARD_TOKEN (an admin token)")
    settings = load_k8s_settings(args.k8s_config)
    if not settings.remediation.enabled and not args.once:
        console.print("remediation is disabled in the k8s settings (remediation.enabled)")
        return 0
    api = Client(args.api, token)
    nodes = NodeClient(api_client(args.server), settings.remediation.namespace)
    rem = Remediator(
        nodes,
        lambda: [n.model_dump(mode="json") for n in api.nodes()],
        settings,
        dry_run=args.dry_run,
    )
    if args.once:
        actions = rem.check()
        rows = [{"action": type(a).__name__, "node": a.node, "reason": a.reason} for a in actions]
        if not emit(args, console, rows):
            for a in actions:
                console.print(f"{type(a).__name__} {a.node}: {a.reason}", markup=False)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rem.run(stop)
    return 0


def add_k8s_commands(sub: Any) -> None:
    k = sub.add_parser("k8s", help="the scheduler on Kubernetes: inventory, up, remediate")
    ks = k.add_subparsers(dest="k8s_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--k8s-config", help="k8s.yaml (inventory and remediation settings)")
    common.add_argument("--server", help="Kubernetes API URL (default: in-cluster/kubeconfig)")

    inv = ks.add_parser("inventory", parents=[common], help="the fleet from GPU nodes' labels")
    add_output_option(inv, people="yaml")
    inv.set_defaults(func=cmd_inventory)

    up = ks.add_parser("up", parents=[common], help="start the scheduler in the Ray head pod")
    up.add_argument("--address", default="127.0.0.1:6379", help="the Ray head (GCS) address")
    up.add_argument("--config", required=True, help="service config YAML")
    up.add_argument("--fleet", help="a fleet file instead of the Kubernetes inventory")
    up.add_argument(
        "--simulated", action="store_true", help="simulated GPUs and NVML (no NVIDIA GPUs)"
    )
    up.add_argument("--wait-for-ray", type=float, default=120.0, help="seconds (default 120)")
    add_output_option(up, people="text")
    up.set_defaults(func=cmd_up)

    rem = ks.add_parser("remediate", parents=[common], help="cordon nodes with failing GPUs")
    rem.add_argument("--api", default="http://127.0.0.1:8000", help="the scheduler's API")
    rem.add_argument("--token", help="admin token (default $GPUYARD_TOKEN)")
    rem.add_argument("--once", action="store_true", help="one check, then exit")
    rem.add_argument("--dry-run", action="store_true", help="decide and print, change nothing")
    add_output_option(rem, people="text")
    rem.set_defaults(func=cmd_remediate)
