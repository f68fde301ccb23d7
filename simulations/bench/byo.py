"""Submit -> first training step for teams' own code (BENCHMARKS.md section 5): a job whose
loop exists only in an uploaded working directory, and a script job, each through gpuyard,
against a bare ``ray job submit`` (``JobSubmissionClient``) of the same script on the same
cluster. Every path uploads the same working directory (content-hashed: after the first run
the package exists and is not sent again, for Ray's client as for gpuyard's) and every run
writes the time of its first step to a file the benchmark waits for.
"""

from __future__ import annotations

import statistics
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOP = """
import time
from pathlib import Path

import torch


def loop(config):
    if "gpuyard" in config:
        import scheduler.train as gt

        gt.context(config)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.ones(4, 8)).pow(2).mean()
    loss.backward()
    opt.step()
    mark = Path(config["first_step_file"])
    if not mark.exists():
        mark.write_text(f"{time.time():.6f}")
"""

SCRIPT = """
import argparse
import os
import uuid

from ray.train.torch import TorchConfig, TorchTrainer

from benchloop import loop

parser = argparse.ArgumentParser()
parser.add_argument("--first-step-file", required=True)
parser.add_argument("--storage", required=True)
args = parser.parse_args()
config = {"first_step_file": args.first_step_file}
if "GPUYARD_RUN" in os.environ:  # run by gpuyard: its placement, storage and run name
    import scheduler.train as gt

    trainer = TorchTrainer(loop, train_loop_config=gt.loop_config(config),
                           scaling_config=gt.scaling_config(), run_config=gt.run_config(),
                           torch_config=gt.torch_config())
else:  # bare Ray: the same one worker on one (fake) GPU, CPU torch
    from ray.train import RunConfig, ScalingConfig

    trainer = TorchTrainer(loop, train_loop_config=config,
                           scaling_config=ScalingConfig(num_workers=1, use_gpu=True,
                                                        resources_per_worker={"GPU": 1, "CPU": 1}),
                           run_config=RunConfig(name=f"bare-{uuid.uuid4().hex[:8]}",
                                                storage_path=args.storage),
                           torch_config=TorchConfig(backend="gloo"))
trainer.fit()
"""


@dataclass
class ByoFigures:
    bare: list[float]
    script: list[float]
    working_dir: list[float]

    def ratio(self, path: list[float]) -> float:
        return statistics.median(path) / statistics.median(self.bare)


def _workdir(root: Path) -> Path:
    work = root / "byo-work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "benchloop.py").write_text(textwrap.dedent(LOOP))
    (work / "bench_train.py").write_text(textwrap.dedent(SCRIPT))
    return work


def _wait_mark(path: Path, timeout_s: float) -> float:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.exists():
            text = path.read_text().strip()
            if text:
                return float(text)
        time.sleep(0.02)
    raise TimeoutError(f"no first step in {path} after {timeout_s} s")


def _bare(dashboard: str, work: Path, root: Path) -> float:
    from ray.job_submission import JobStatus, JobSubmissionClient

    mark = root / f"bare-{uuid.uuid4().hex[:8]}"
    client = JobSubmissionClient(dashboard)
    t0 = time.time()
    sub = client.submit_job(
        entrypoint=f"python bench_train.py --first-step-file {mark} --storage {root / 'bare-runs'}",
        runtime_env={"working_dir": str(work)},
    )
    first = _wait_mark(mark, 300)
    deadline = time.time() + 300
    while client.get_job_status(sub) not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        if time.time() > deadline:
            raise TimeoutError(f"bare job {sub} did not end")
        time.sleep(0.2)
    return first - t0


def _through_gpuyard(client: Any, work: Path, root: Path, kind: str, i: int) -> float:
    mark = root / f"{kind}-{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {
        "name": f"byo-{kind}-{i}", "workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 1,
        "memory_gib_per_worker": 1,
    }  # fmt: skip
    if kind == "script":
        spec["command"] = (
            f"python bench_train.py --first-step-file {mark} --storage {root / 'unused'}"
        )
    else:
        spec["entrypoint"] = "benchloop:loop"
        spec["config"] = {"first_step_file": str(mark)}
    t0 = time.time()
    job = client.submit(spec, working_dir=str(work))
    first = _wait_mark(mark, 300)
    client.wait(job.job_id, until="ended", timeout_s=300)
    return first - t0


def measure(client: Any, dashboard: str, root: Path, samples: int) -> ByoFigures:
    """``samples`` alternating runs of each path after one warm-up run each (the first run
    of a working directory on a node unpacks it there; so does Ray's)."""
    work = _workdir(root)
    _bare(dashboard, work, root)
    _through_gpuyard(client, work, root, "script", -1)
    _through_gpuyard(client, work, root, "wd", -1)
    out = ByoFigures([], [], [])
    for i in range(samples):
        out.bare.append(_bare(dashboard, work, root))
        out.script.append(_through_gpuyard(client, work, root, "script", i))
        out.working_dir.append(_through_gpuyard(client, work, root, "wd", i))
    return out


def lines(fig: ByoFigures, met: Any) -> list[str]:
    def row(name: str, xs: list[float]) -> str:
        return (
            f"| {name} | {statistics.median(xs):.2f} | {max(xs):.2f} | "
            f"{', '.join(f'{x:.1f}' for x in xs)} |"
        )

    script, wd = fig.ratio(fig.script), fig.ratio(fig.working_dir)
    return [
        f"**Submit -> first training step, teams' own code** ({len(fig.bare)} alternating runs "
        "of each path after a warm-up run of each; a 1-worker, 1-GPU `TorchTrainer` whose loop "
        "lives only in an uploaded working directory). Bare: `JobSubmissionClient.submit_job` "
        "of `python bench_train.py` with that `working_dir` to the cluster's own Jobs API. "
        "Script job: the same command through gpuyard (`Client.submit(..., working_dir=...)` -> "
        "queue -> placement -> the runner hands it to Ray's Jobs API; the script uses "
        "`scheduler.train.scaling_config()`). Working-dir job: `entrypoint: benchloop:loop` "
        "from the same folder, run by gpuyard's `TorchTrainer`. Goal <= 1.2x of bare.",
        "",
        "| path | p50 s | max s | runs (s) |",
        "|---|---|---|---|",
        row("bare `ray job submit`", fig.bare),
        row("script job through gpuyard", fig.script),
        row("working-dir job through gpuyard", fig.working_dir),
        "",
        f"Ratios of medians: script job **{script:.2f}x** ({met(script <= 1.2)}), "
        f"working-dir job **{wd:.2f}x** ({met(wd <= 1.2)}).",
    ]
