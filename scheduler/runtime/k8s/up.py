"""Start the scheduler service on the Ray cluster this process runs in (the KubeRay head pod):
the fleet from Kubernetes (or a fleet file), the detached scheduler actor and the Serve API.

Unlike ``gpuyard up --address`` it can run with simulated GPUs on a Ray cluster without
NVIDIA GPUs (the ``dev-cpu`` overlay), and it waits for the Ray head that the same container
starts just before it.
"""

from __future__ import annotations

import time
from typing import Any

from scheduler.runtime.config import NodeSpec, ServiceConfig


def connect(address: str, wait_s: float) -> None:
    """``ray.init`` to ``address``, retrying while the head is still starting."""
    import ray

    deadline = time.monotonic() + wait_s
    while True:
        try:
            ray.init(address=address, namespace="gpuyard", log_to_driver=False)
            return
        except (ConnectionError, RuntimeError, TimeoutError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(2.0)


def start_service(
    cfg: ServiceConfig, fleet: list[NodeSpec], address: str, simulated: bool, wait_s: float
) -> dict[str, Any]:
    from scheduler.runtime.ray_service import serve_api, start_scheduler

    if cfg.tokens is None:
        raise ValueError(
            "the service config needs a tokens file (key tokens); on Kubernetes it is the "
            "ConfigMap's tokens.yaml, whose token_env entries read the gpuyard-tokens Secret"
        )
    started = time.time()
    connect(address, wait_s)
    start_scheduler(cfg, fleet, simulated)
    api = serve_api(cfg)
    return {
        "address": address,
        "api": api,
        "simulated": simulated,
        "nodes": [n.name for n in fleet],
        "up_s": round(time.time() - started, 1),
    }
