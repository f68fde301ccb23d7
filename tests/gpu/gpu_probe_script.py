"""A gpuyard script job for the GPU tests: builds its own ``TorchTrainer`` from what the
scheduler chose (``scheduler.train.scaling_config()``, ``run_config()``, ``torch_config()``,
``loop_config()``) and runs the probe loop (``tests/gpu/gpu_probe.py``) on it.

    python tests/gpu/gpu_probe_script.py --out DIR [--tag script]

run by the service as a Ray job (spec ``command``), with the run info in ``GPUYARD_RUN``.
Each rank writes ``DIR/<tag>-rank<r>.json``; the script exits non-zero when the run failed,
and with 2 before fitting when the trainer lacks the switches that leave the choice of GPUs
to the scheduler (``gpu_env.gpu_switches_missing``: the setup hook in ``run_config()``'s
runtime env, ``TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES=0`` in this driver's environment, which
the service's job runtime env sets and the Train controller inherits).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the per-rank records")
    parser.add_argument("--tag", default="script", help="record file prefix")
    args = parser.parse_args(argv)

    if str(ROOT) not in sys.path:  # tests.gpu is this checkout's, not an installed package
        sys.path.insert(0, str(ROOT))
    from ray import cloudpickle
    from ray.train.v2.torch.torch_trainer import TorchTrainer

    import scheduler.train as gt
    from tests.gpu import gpu_probe
    from tests.gpu.gpu_env import gpu_switches_missing

    # ship the loop by value: the Train workers need not import this checkout's tests
    cloudpickle.register_pickle_by_value(gpu_probe)
    run_config = gt.run_config()
    missing = gpu_switches_missing(run_config.worker_runtime_env, os.environ)
    if missing:
        print("gpu_probe_script: not fitting: " + "; ".join(missing), flush=True)
        return 2
    trainer = TorchTrainer(
        gpu_probe.probe_loop,
        train_loop_config=gt.loop_config({"probe_out": args.out, "probe_tag": args.tag}),
        scaling_config=gt.scaling_config(),
        run_config=run_config,
        torch_config=gt.torch_config(),
    )
    result = trainer.fit()
    print(f"gpu_probe_script: error={result.error!r} metrics={result.metrics!r}", flush=True)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
