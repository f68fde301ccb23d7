"""A tentative allocation of a whole gang that is committed whole or discarded whole.

Like Volcano's ``Statement``: each worker's allocation is applied to the fleet at once (so the
next worker is scored against the updated state) and logged; ``discard`` undoes the log in
reverse order, ``commit`` freezes it into a :class:`Placement`.
"""

from __future__ import annotations

from scheduler.core.model import Placement, WorkerPlacement
from scheduler.core.placement.fleet import Fleet


class Reservation:
    def __init__(self, fleet: Fleet, job_id: str) -> None:
        self._fleet = fleet
        self._job_id = job_id
        self._log: list[WorkerPlacement] = []
        self._open = True

    @property
    def workers(self) -> tuple[WorkerPlacement, ...]:
        return tuple(self._log)

    def take(
        self, node: int, gpus: tuple[int, ...], gpu_milli: int, cpu_milli: int, memory_mib: int
    ) -> None:
        if not self._open:
            raise RuntimeError("reservation already closed")
        self._fleet.take(node, gpus, gpu_milli, cpu_milli, memory_mib)
        self._log.append(
            WorkerPlacement(self._fleet.names[node], node, gpus, gpu_milli, cpu_milli, memory_mib)
        )

    def commit(self) -> Placement:
        if not self._open:
            raise RuntimeError("reservation already closed")
        self._open = False
        return Placement(self._job_id, tuple(self._log))

    def rollback(self) -> None:
        """Undo every take so far; the reservation stays open for another attempt."""
        for w in reversed(self._log):
            self._fleet.give(w.node_index, w.gpu_indices, w.gpu_milli, w.cpu_milli, w.memory_mib)
        self._log.clear()

    def discard(self) -> None:
        if not self._open:
            raise RuntimeError("reservation already closed")
        self.rollback()
        self._open = False


def release(fleet: Fleet, placement: Placement) -> None:
    """Return every worker's resources of a committed placement to the fleet."""
    for w in reversed(placement.workers):
        fleet.give(w.node_index, w.gpu_indices, w.gpu_milli, w.cpu_milli, w.memory_mib)


def reacquire(fleet: Fleet, placement: Placement) -> None:
    """Take back what :func:`release` returned (to undo a what-if release)."""
    for w in placement.workers:
        fleet.take(w.node_index, w.gpu_indices, w.gpu_milli, w.cpu_milli, w.memory_mib)
