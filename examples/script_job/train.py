"""A script job: a team's own training script, run by gpuyard as a Ray job once its gang is
placed (``gpuyard submit examples/script_job/job.yaml``, or ``ray job submit`` to gpuyard's
address from this folder: ``-- python train.py --epochs 20``).

The script builds its own ``TorchTrainer``; ``scheduler.train`` gives it the placement the
scheduler chose, the run's storage and name, and the loop's helpers (restore, report with a
checkpoint, stop when asked). Without gpuyard (``GPUYARD_RUN`` unset) it trains on one CPU
worker, so the same file runs under a bare ``ray job submit`` too.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from ray.train.torch import TorchConfig, TorchTrainer

import scheduler.train as gt


def loop(config: dict[str, Any]) -> None:
    managed = gt.CONFIG_KEY in config
    ctx = gt.context(config) if managed else None
    device = gt.device(ctx) if ctx is not None else torch.device("cpu")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    start = 0
    saved = gt.restore(ctx) if ctx is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        start = int(saved["epoch"]) + 1
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(1)).to(device)
    y = x.sum(dim=1, keepdim=True)
    for epoch in range(start, int(config["epochs"])):
        if ctx is not None and gt.stop_requested(ctx):  # preempted, drained or cancelled
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch - 1}
            gt.report(ctx, {"epoch": float(epoch - 1), "stopped": 1.0}, state=state)
            return
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ctx is not None:
            gt.mark_first_step(ctx)
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
            gt.report(
                ctx, {"epoch": float(epoch), "loss": float(loss), "stopped": 0.0}, state=state
            )
        time.sleep(float(config["sleep"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per epoch (demo)")
    args = parser.parse_args()
    config = {"epochs": args.epochs, "lr": args.lr, "sleep": args.sleep}
    if "GPUYARD_RUN" in os.environ:
        trainer = TorchTrainer(
            loop,
            train_loop_config=gt.loop_config(config),
            scaling_config=gt.scaling_config(),
            run_config=gt.run_config(),
            torch_config=gt.torch_config(),
        )
    else:
        from ray.train import ScalingConfig

        trainer = TorchTrainer(
            loop,
            train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=1),
            torch_config=TorchConfig(backend="gloo"),
        )
    result = trainer.fit()
    print(f"done: {result.metrics}", flush=True)


if __name__ == "__main__":
    main()
