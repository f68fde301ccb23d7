"""The control channel between the service and a run's workers, over Ray's own key-value store
(the GCS internal KV), so that it reaches workers on any node: nothing travels through files
on the head's disk.

Keys (namespace ``gpuyard``), per run name (``<job id>-<journal id>``, unique across
journals) and attempt:

* ``run/<run>/attempt``: the job's current attempt. A worker of an older attempt is
  *superseded*: it must neither checkpoint nor go on (the fence that stops a stale run from
  writing over its successor's checkpoints).
* ``run/<run>/<attempt>/stop``: why the service asks the attempt to checkpoint and return
  (a preemption, a drain, a cancel); absent while it may go on.
* ``run/<run>/<attempt>/metrics``: rank 0's last reported metrics (JSON).
* ``run/<run>/<attempt>/first_step``: when rank 0 made its first training step.
* ``run/<run>/<attempt>/violation``: set by a worker that finds itself outside the placement
  the scheduler chose (a script job whose trainer ignored ``scaling_config()``).

The store is Ray's internal KV in a Ray process; tests without Ray use :class:`MemoryKV`
(:func:`use`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

NAMESPACE = "gpuyard"


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def claim(self, key: str, value: bytes) -> bool: ...  # put unless present; True if put


class RayKV:
    """Ray's GCS internal KV (any process connected to the cluster: driver, actor, worker)."""

    def get(self, key: str) -> bytes | None:
        from ray.experimental import internal_kv

        value = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
        return None if value is None else bytes(value)

    def put(self, key: str, value: bytes) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(key, value, overwrite=True, namespace=NAMESPACE)

    def delete(self, key: str) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(key, namespace=NAMESPACE)

    def claim(self, key: str, value: bytes) -> bool:
        from ray.experimental import internal_kv

        existed = internal_kv._internal_kv_put(key, value, overwrite=False, namespace=NAMESPACE)
        return not existed


class MemoryKV:
    """A process-local store with the same interface (unit tests)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self.data[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self.data.pop(key, None)

    def claim(self, key: str, value: bytes) -> bool:
        with self._lock:
            if key in self.data:
                return False
            self.data[key] = value
            return True


_store: Store | None = None


def use(store: Store | None) -> None:
    """Use ``store`` in this process (None: back to Ray's KV)."""
    global _store
    _store = store


def store() -> Store:
    return _store if _store is not None else RayKV()


@contextlib.contextmanager
def process_local() -> Iterator[MemoryKV]:
    """A process-local store while the block runs (a service with fake runs, no Ray)."""
    kv = MemoryKV()
    before = _store
    use(kv)
    try:
        yield kv
    finally:
        use(before)


class RunChannel:
    """One attempt of one run, as the service and the workers see it."""

    def __init__(self, run: str, attempt: int, kv: Store | None = None) -> None:
        self.run = run
        self.attempt = attempt
        self.kv = kv if kv is not None else store()

    def _key(self, name: str) -> str:
        return f"run/{self.run}/{self.attempt}/{name}"

    # ------------------------------------------------------------ the service's side
    def begin(self) -> None:
        """Make this attempt the current one (older attempts are superseded from now on) and
        clear what a previous use of the same attempt number left."""
        for name in ("stop", "metrics", "first_step", "violation"):
            self.kv.delete(self._key(name))
        self.kv.put(f"run/{self.run}/attempt", str(self.attempt).encode())

    def ask_stop(self, why: str) -> None:
        self.kv.put(self._key("stop"), why.encode() or b"stop")

    def metrics(self) -> dict[str, float]:
        raw = self.kv.get(self._key("metrics"))
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
            return {str(k): float(v) for k, v in data.items()}
        except (ValueError, TypeError, AttributeError):
            return {}

    def first_step_at(self) -> float | None:
        raw = self.kv.get(self._key("first_step"))
        try:
            return None if raw is None else float(raw)
        except ValueError:
            return None

    def violation(self) -> str | None:
        raw = self.kv.get(self._key("violation"))
        return None if raw is None else raw.decode(errors="replace")

    # ------------------------------------------------------------ the workers' side
    def current_attempt(self) -> int | None:
        raw = self.kv.get(f"run/{self.run}/attempt")
        try:
            return None if raw is None else int(raw)
        except ValueError:
            return None

    def superseded(self) -> bool:
        current = self.current_attempt()
        return current is not None and current > self.attempt

    def stop_asked(self) -> str | None:
        raw = self.kv.get(self._key("stop"))
        return None if raw is None else raw.decode(errors="replace")

    def put_metrics(self, metrics: dict[str, Any]) -> None:
        self.kv.put(self._key("metrics"), json.dumps(metrics, sort_keys=True).encode())

    def mark_first_step(self, at_s: float) -> bool:
        """Record the first step's time unless one is recorded; True if this call did."""
        if self.kv.get(self._key("first_step")) is not None:
            return False
        self.kv.put(self._key("first_step"), f"{at_s:.6f}".encode())
        return True

    def report_violation(self, what: str) -> None:
        self.kv.put(self._key("violation"), what.encode())

    def claim_slot(
        self, node: str, slots: int, pid: int, alive: Callable[[int], bool], rounds: int = 64
    ) -> int | None:
        """The first of the node's ``slots`` worker slots that no live process holds, now
        process ``pid``'s; None when live processes hold them all. A slot's holders are
        numbered rounds (``slot/<node>/<i>/<round>``, each taken at most once): when Ray Train
        restarts a crashed worker group, the new process takes the next round of a slot whose
        holder is dead (``alive`` is asked on this node, where the holder ran)."""
        for i in range(slots):
            for r in range(rounds):
                key = self._key(f"slot/{node}/{i}/{r}")
                if self.kv.claim(key, str(pid).encode()):
                    return i
                holder = self.kv.get(key)
                try:
                    holder_pid = int(holder or b"0")
                except ValueError:
                    holder_pid = 0
                if holder_pid == pid or alive(holder_pid):
                    break  # held by a live process: try the next slot
        return None
