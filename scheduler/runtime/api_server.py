"""The HTTP API served from the scheduler actor's own process (uvicorn in a thread).

Why not Ray Serve: every call of the API ends in the one scheduler actor, so Serve's proxy
and replica add two hops and no availability, and they cost most of a submission: measured
on this 2-core machine (BENCHMARKS.md section 5), 11.6 ms of CPU per submission went to the
Serve proxy and the API replica, which capped the API near 100 submissions/s whatever the
scheduler did. Served here, a route calls the service in-process (``ServiceBackend``), and the
API lives and dies with the scheduler actor: Ray restarts the actor (``max_restarts=-1``) and
its constructor serves the API again.

Route handlers are async (FastAPI); the service's calls block until the driver has committed
their batch, so they run on a thread pool as wide as the number of submissions that may wait
together on one group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from scheduler.runtime.auth import Principal
from scheduler.runtime.views import (
    AuditView,
    JobPage,
    JobState,
    JobView,
    LogChunk,
    NodeOp,
    NodeView,
    QueueEntry,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from scheduler.runtime.service import SchedulerService

T = TypeVar("T")
API_THREADS = 64  # calls that may wait on one commit at once


class ServiceBackend:
    """``views.Backend`` over a ``SchedulerService`` in this process."""

    def __init__(self, service: SchedulerService, threads: int = API_THREADS) -> None:
        self.service = service
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="gpuyard-api")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args))

    async def submit(
        self, who: Principal, spec: dict[str, Any], idempotency_key: str | None
    ) -> JobView:
        return await self._run(self.service.submit, spec, idempotency_key, who)

    async def list_jobs(
        self, team: str | None, state: JobState | None, limit: int, after: str | None
    ) -> JobPage:
        return await self._run(self.service.page_jobs, team, state, limit, after)

    async def get_job(self, job_id: str) -> JobView:
        return await self._run(self.service.get_job, job_id)

    async def find_job(self, team: str, key: str) -> JobView:
        return await self._run(self.service.find_job, team, key)

    async def log_chunk(self, job_id: str, offset: int, limit_bytes: int) -> LogChunk:
        return await self._run(self.service.log_chunk, job_id, offset, limit_bytes)

    async def package_exists(self, uri: str) -> bool:
        return await self._run(self.service.package_exists, uri)

    async def put_package(self, who: Principal, uri: str, data: bytes) -> None:
        await self._run(self.service.put_package, who, uri, data)

    async def cancel(self, who: Principal, job_id: str) -> JobView:
        return await self._run(self.service.cancel, job_id, who)

    async def logs(self, job_id: str, tail_lines: int) -> str:
        return await self._run(self.service.logs, job_id, tail_lines)

    async def queue(self, team: str | None) -> list[QueueEntry]:
        return await self._run(self.service.queue, team)

    async def nodes(self) -> list[NodeView]:
        return await self._run(self.service.nodes)

    async def node_op(self, who: Principal, node: str, op: NodeOp) -> NodeView:
        return await self._run(self.service.node_op, node, op, who)

    async def audit(self, since_s: float | None, team: str | None, limit: int) -> list[AuditView]:
        return await self._run(self.service.audit, since_s, team, limit)

    async def refused(
        self, who: Principal, action: str, target: str, outcome: str, detail: str
    ) -> None:
        self.service.refused(who, action, target, outcome, detail)  # only queues it

    async def metrics_text(self) -> str:
        return await self._run(self.service.metrics_text)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="gpuyard-api", daemon=True)

    def _serve(self) -> None:
        # uvicorn exits (SystemExit) when it cannot bind; start() reports that to the caller
        with contextlib.suppress(SystemExit):
            self.server.run()

    def start(self, timeout_s: float = 30.0) -> str:
        """Serve, and return the URL once the socket listens; ``RuntimeError`` naming the
        address if it does not (the port is taken, say)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the gpuyard API could not listen on {self.url} (is the port in use?)"
                )
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
