"""Benchmark of the live service on a local Ray cluster with simulated GPU nodes (``gpuyard
up``'s own cluster: a head and 3 raylets of 4 fake GPUs, CPU torch):

1. submit -> first training step, through the HTTP API and the scheduler, against a bare
   ``TorchTrainer.fit`` of the same loop pinned the same way on the same cluster, run
   alternately (goal: <= 1.2x);
2. a burst of submissions through the API from several client threads while the fleet is
   full (so every job queues): accepted per second, and that none is lost (each accepted id
   is listed by the API and stored in the journal);
3. telemetry: seconds per NVML sample on each node's sampler (simulated NVML here).

``python -m scheduler.runtime.bench`` prints the Markdown section; ``simulations/bench.py``
embeds it in BENCHMARKS.md as section 5.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SMALL: dict[str, Any] = {
    "workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 1, "memory_gib_per_worker": 2,
    "entrypoint": "examples.driving_policy:train_loop",
    "config": {"epochs": 1, "batch_size": 16, "samples": 32, "image_size": 32},
}  # fmt: skip


def _wait_file(path: Path, timeout_s: float) -> float:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.exists():
            text = path.read_text().strip()
            if text:
                return float(text)
        time.sleep(0.02)
    raise TimeoutError(f"no {path} after {timeout_s} s")


def _bare_first_step(state: Path, node_id: str, i: int) -> float:
    """Seconds from ``TorchTrainer.fit()`` to the loop's first step (same loop, same pin)."""
    from scheduler.runtime.executor import RunRequest, WorkerSlot, build_trainer

    control = state / "bare" / f"run-{i}"
    req = RunRequest(
        job_id=f"bare-{i}", attempt=1, entrypoint=SMALL["entrypoint"], config=dict(SMALL["config"]),
        workers=(WorkerSlot("bench", node_id, (0,)),), cpus_per_worker=1.0, gpus_per_worker=1.0,
        storage_path=str(state / "bare-runs"), control_dir=str(control), simulated_gpus=True,
    )  # fmt: skip
    control.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(req)
    t0 = time.time()
    thread = threading.Thread(target=trainer.fit, daemon=True)
    thread.start()
    first = _wait_file(control / "first_step", 300)
    thread.join(300)
    return first - t0


def _service_first_step(client: Any, state: Path, i: int) -> float:
    t0 = time.time()
    job = client.submit({**SMALL, "name": f"latency-{i}"})
    first = _wait_file(state / "control" / job["job_id"] / "first_step", 300)
    deadline = time.time() + 300
    while (
        client.job(job["job_id"])["state"] not in ("SUCCEEDED", "FAILED") and time.time() < deadline
    ):
        time.sleep(0.2)
    return first - t0


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def service_section(samples: int = 5, burst: int = 1000, threads: int = 8, port: int = 8765) -> str:
    import ray

    from scheduler.client import Client
    from scheduler.runtime.config import ServiceConfig, load_fleet
    from scheduler.runtime.journal import Journal
    from scheduler.runtime.local import down, up

    state = Path(tempfile.mkdtemp(prefix="gpuyard-bench-"))
    cfg = ServiceConfig(state_dir=str(state), api_port=port, preemption=False)
    fleet = load_fleet(None)
    t0 = time.time()
    info = up(cfg, fleet, None, ["perception"])
    up_s = time.time() - t0
    lines: list[str] = []
    try:
        token = (state / "tokens" / "perception").read_text().strip()
        client = Client(info["api"], token)
        admin = Client(info["api"], (state / "tokens" / "admin").read_text().strip())
        node_id = next(
            n["NodeID"] for n in ray.nodes()  # type: ignore[no-untyped-call]
            if n["Alive"] and n.get("Labels", {}).get("gpuyard.io/node") == fleet[0].name
        )  # fmt: skip
        _bare_first_step(state, node_id, -1)  # warm-up: imports, worker processes
        _service_first_step(client, state, -1)
        bare, svc = [], []
        for i in range(samples):  # alternate, so drift hits both alike
            bare.append(_bare_first_step(state, node_id, i))
            svc.append(_service_first_step(client, state, i))

        # fill all 12 GPUs with one long job, then burst small ones: they all queue
        blocker = client.submit({**SMALL, "name": "blocker", "workers": 3, "gpus_per_worker": 4,
                                 "config": {**SMALL["config"], "epochs": 100000, "step_sleep_s": 0.5}})  # fmt: skip
        while client.job(blocker["job_id"])["state"] != "RUNNING":
            time.sleep(0.2)
        accepted: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            try:
                job = client.submit({**SMALL, "name": f"burst-{i}"})
                with lock:
                    accepted.append(job["job_id"])
            except Exception as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(burst)))
        burst_s = time.perf_counter() - t0
        listed = {j["job_id"] for j in admin.jobs()}
        journal = Journal(state / "journal.db")
        stored = {s.job_id for s in journal.submissions()}
        journal.close()
        lost_api = len(set(accepted) - listed)
        lost_journal = len(set(accepted) - stored)
        queued = sum(1 for q in admin.queue() if q["job_id"] in set(accepted))

        stats: list[tuple[str, int, float, float]] = []
        for node in fleet:
            actor = ray.get_actor(f"gpuyard-sampler-{node.name}", namespace="gpuyard")
            st: Any = ray.get(actor.stats.remote())
            stats.append((node.name, st.samples, st.mean_s, st.p95_s))
    finally:
        down(state)

    ratio50 = statistics.median(svc) / statistics.median(bare)
    lines += [
        "## 5. Live service (Ray)",
        "",
        f"A local cluster as `gpuyard up` starts it: a Ray head and {len(fleet)} raylets with "
        f"{sum(n.gpus for n in fleet)} simulated GPUs, CPU torch, on this machine (up in {up_s:.1f} s). "
        "Command: `python -m scheduler.runtime.bench` (or `make bench`, section 5).",
        "",
        f"**Submit -> first training step**, {samples} alternating runs each of a 1-worker, 1-GPU job of "
        "`examples.driving_policy:train_loop`. Service: HTTP submit (Serve) -> journal -> core -> runner actor -> "
        "`TorchTrainer.fit`; bare: `TorchTrainer.fit` called in the driver with the same pinning. Goal <= 1.2x.",
        "",
        "| path | p50 s | p95 s | runs (s) |",
        "|---|---|---|---|",
        f"| bare `TorchTrainer.fit` | {statistics.median(bare):.2f} | {_pct(bare, 0.95):.2f} | {', '.join(f'{x:.1f}' for x in bare)} |",
        f"| through gpuyard | {statistics.median(svc):.2f} | {_pct(svc, 0.95):.2f} | {', '.join(f'{x:.1f}' for x in svc)} |",
        "",
        f"Ratio of medians: **{ratio50:.2f}x** ({'met' if ratio50 <= 1.2 else 'not met'}); p95 ratio {_pct(svc, 0.95) / _pct(bare, 0.95):.2f}x.",
        "",
        f"**Burst of {burst} submissions** through the API from {threads} client threads while one job holds "
        f"every GPU: {len(accepted)} accepted in {burst_s:.1f} s = **{len(accepted) / burst_s:.0f} accepted/s**; "
        f"{len(errors)} refused{' (' + errors[0] + ')' if errors else ''}; lost: {lost_api} missing from the API's job list, "
        f"{lost_journal} missing from the journal; {queued} listed in the queue. Each submission is one SQLite "
        "transaction with `synchronous=FULL` and one core cycle over the whole queue.",
        "",
        "**Telemetry sampling** (one sampler actor per node, simulated NVML, every 2 s):",
        "",
        "| node | samples | mean ms per sample | p95 ms |",
        "|---|---|---|---|",
        *[f"| {n} | {k} | {m * 1000:.2f} | {p * 1000:.2f} |" for n, k, m, p in stats],
        "",
        "The simulated backend answers from memory, so these figures are the sampler's own cost (Python, "
        "the NVML call sequence, event-set draining), not a real GPU's NVML latency, which this machine "
        "cannot measure.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    print(service_section(args.samples, args.burst, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
