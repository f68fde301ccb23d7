"""GPU health from telemetry, and taking nodes out of service (pure).

A GPU takes no new work while any reason holds against it:

* ``hot``: its temperature reached ``HealthRules.max_temperature_c``; it clears once the GPU
  cools ``cool_down_c`` below that (hysteresis, so a GPU hovering at the limit does not flap);
* ``xid N``: NVML reported an XID event whose code NVIDIA's XID catalog says needs the GPU
  reset or the node drained (``drain_xids``; https://docs.nvidia.com/deploy/xid-errors/);
* ``ecc``: the volatile uncorrected ECC count grew since the GPU's previous reading. The
  baseline is the last reading, not the largest: a reset sets the volatile count back to 0,
  and errors after it must count from there (a drop is the reset, not an error);
* ``operator``: a ``GpuHealthChanged(healthy=False)`` event.

An XID or ECC reason also *drains* the node: it is cordoned and every job running on it is
preempted (checkpoint, requeue) so it moves elsewhere. Only an operator clears those reasons,
since the GPU needs a reset: ``GpuHealthChanged(healthy=True)`` for one GPU, or
``NodeUncordoned`` for the whole node (:meth:`HealthBook.all_clear`, which lifts every mark but
``hot``); a hot GPU clears by itself, as it is a live reading.

Memory: on a GPU where gpuyard placed nothing, every MiB NVML reports used belongs to someone
else. That foreign use is subtracted from the GPU's memory when a job asks for a minimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.core.events import GpuTelemetry

# NVIDIA XID catalog: 48 double-bit ECC, 64 row-remapping failure, 74 NVLink error, 79 GPU fell
# off the bus, 92 high single-bit ECC rate, 94/95 contained/uncontained ECC, 119/120 GSP errors.
# Application faults (13, 31, 43, 45) are the job's problem, not the node's, and are not here.
DEFAULT_DRAIN_XIDS = frozenset({48, 64, 74, 79, 92, 94, 95, 119, 120})


@dataclass(frozen=True, slots=True)
class HealthRules:
    max_temperature_c: float = 87.0
    cool_down_c: float = 5.0
    drain_xids: frozenset[int] = DEFAULT_DRAIN_XIDS
    drain_on_ecc: bool = True

    def __post_init__(self) -> None:
        if self.cool_down_c < 0:
            raise ValueError(f"cool_down_c must be >= 0, got {self.cool_down_c}")


@dataclass(frozen=True, slots=True)
class Observation:
    """What one reading means: is the GPU fit for new work, and must its node be drained
    (``drain`` names why, or is None)."""

    healthy: bool
    drain: str | None


@dataclass(slots=True)
class HealthBook:
    """The reasons held against each GPU, keyed by (node, GPU index). A GPU with a key in
    ``reasons`` (even an empty set) has been judged here, and its fleet health is ``not
    reasons``; ``ecc_seen`` is each GPU's last uncorrected ECC count (the baseline of the next
    reading; 0 before the first)."""

    rules: HealthRules
    reasons: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    ecc_seen: dict[tuple[str, int], int] = field(default_factory=dict)

    def observe(self, ev: GpuTelemetry) -> Observation:
        key = (ev.node, ev.gpu_index)
        held = self.reasons.setdefault(key, set())
        rules = self.rules
        if ev.temperature_c >= rules.max_temperature_c:
            held.add("hot")
        elif ev.temperature_c <= rules.max_temperature_c - rules.cool_down_c:
            held.discard("hot")
        drain: list[str] = []
        for code in sorted(set(ev.xids)):
            if code in rules.drain_xids:
                held.add(f"xid {code}")
                drain.append(f"XID {code} on GPU {ev.gpu_index}")
        # growth over the last reading is new errors; a drop is a reset and the new baseline
        before = self.ecc_seen.get(key, 0)
        self.ecc_seen[key] = ev.ecc_uncorrected
        if rules.drain_on_ecc and ev.ecc_uncorrected > before:
            held.add("ecc")
            drain.append(
                f"{ev.ecc_uncorrected - before} uncorrected ECC error(s) on GPU {ev.gpu_index}"
            )
        reason = f"drain {ev.node}: {'; '.join(drain)}" if drain else None
        return Observation(not held, reason)

    def set_operator(self, node: str, gpu: int, healthy: bool) -> bool:
        """An operator marked the GPU bad (adds a reason) or good (clears every reason, the
        GPU was reset). Returns whether the GPU is now healthy."""
        held = self.reasons.setdefault((node, gpu), set())
        if healthy:
            held.clear()
        else:
            held.add("operator")
        return not held

    def all_clear(self, node: str, gpus: int) -> list[tuple[int, bool]]:
        """The operator's all-clear for ``node`` (``NodeUncordoned``): its GPUs ``0..gpus-1``
        were seen to, so every reason this book set on them (``xid N``, ``ecc``, ``operator``)
        is lifted, except ``hot``, a live reading that clears itself when the GPU cools. The
        ECC baseline stays the last reading, so only errors after the all-clear count.
        Returns ``(GPU index, healthy now)`` for each GPU judged here, in index order, for
        the fleet's health to follow."""
        out: list[tuple[int, bool]] = []
        for gpu in range(gpus):
            held = self.reasons.get((node, gpu))
            if held is None:
                continue  # never judged: the fleet keeps the node's own health for it
            held.intersection_update(("hot",))
            out.append((gpu, not held))
        return out

    def why(self, node: str, gpu: int) -> tuple[str, ...]:
        return tuple(sorted(self.reasons.get((node, gpu), ())))
