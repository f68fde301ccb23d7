"""One configuration of the scheduling core, and one way to build the core from it.

The live service, the simulators and the benchmarks all describe how they schedule with a
``SchedulerConfig`` and get their core from ``build_core(config, nodes)``, so whatever a
simulation measures the service can run (aging, the fair-share half-life, the depths...).

A ``SchedulerConfig`` is plain data (pydantic, frozen): the policies by name, the switches of
``CoreConfig``, and the *content* of the quota and priority-class files (not their paths), so
that the service can store the exact configuration a snapshot of its core was taken under
(``model_dump_json``) and rebuild it later (``model_validate_json``) even if the files changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scheduler.core.health import HealthRules
from scheduler.core.model import Node
from scheduler.core.queueing.priority import PriorityClasses
from scheduler.core.queueing.quota import QuotaConfig
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import (
    ADMISSION,
    PACKING,
    PREEMPTION,
    QUEUE,
    lookup,
    make_admission,
    make_packing,
    make_preemption,
    make_queue,
)

# a config field naming a policy -> (its registry, what the error calls it)
_REGISTRIES: dict[str, tuple[Mapping[str, object], str]] = {
    "packing": (PACKING, "packing policy"),
    "queue": (QUEUE, "queue order"),
    "admission": (ADMISSION, "admission policy"),
    "preemption_policy": (PREEMPTION, "preemption policy"),
}


class SchedulerConfig(BaseModel):
    """How the core schedules. Field names are those of the service config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=False)

    packing: str = Field(default="best_fit", description="packing policy: " + ", ".join(PACKING))
    queue: str = Field(default="priority", description="queue order: " + ", ".join(QUEUE))
    admission: str = Field(
        default="quota", description="admission under quotas: " + ", ".join(ADMISSION)
    )
    preemption_policy: str = Field(
        default="cheapest", description="which victims preemption picks: " + ", ".join(PREEMPTION)
    )
    backfill: Literal["none", "greedy", "easy"] = "easy"
    preemption: bool = True
    aging_s: float | None = Field(
        default=None,
        gt=0,
        description="a job pending longer goes to the front lane and is reserved",
    )
    fair_share_half_life_s: float | None = Field(
        default=None,
        gt=0,
        description="half-life of past usage in team shares (None: current usage)",
    )
    backfill_depth: int = Field(
        default=500, ge=1, description="jobs tried behind a reservation a cycle"
    )
    preemption_depth: int = Field(
        default=8, ge=1, description="jobs per team seeking victims a cycle"
    )
    seed: int = 0
    quotas: QuotaConfig | None = None
    priority_classes: PriorityClasses | None = None

    @field_validator("packing", "queue", "admission", "preemption_policy")
    @classmethod
    def _known_policy(cls, v: str, info: ValidationInfo) -> str:
        table, kind = _REGISTRIES[info.field_name or ""]
        lookup(table, kind, v)
        return v

    @model_validator(mode="before")
    @classmethod
    def _stored_before_fail_fast_moved(cls, data: Any) -> Any:
        """Configurations stored before ``fail_fast`` left the core carry ``fail_fast:
        false``: read them as they were. Fail-fast is the FGD packing replay's own rule now
        (``simulations/packing.py``), so ``true`` is refused with that said."""
        if isinstance(data, dict) and "fail_fast" in data:
            data = dict(data)
            if data.pop("fail_fast"):
                raise ValueError(
                    "fail_fast: true is no longer a core setting; the FGD packing replay "
                    "(gpuyard simulate packing) rejects what does not fit now by itself"
                )
        return data

    def core_config(self, health: HealthRules | None = None) -> CoreConfig:
        return CoreConfig(
            seed=self.seed,
            backfill=self.backfill,
            preemption=self.preemption,
            backfill_depth=self.backfill_depth,
            preemption_depth=self.preemption_depth,
            health=health or HealthRules(),
            aging_s=self.aging_s,
            fair_share_half_life_s=self.fair_share_half_life_s,
        )

    def context(self, ctx: PolicyContext | None = None) -> PolicyContext:
        """The packing policy's context: ``ctx`` (seed, typical shapes) or one with our seed."""
        return ctx if ctx is not None else PolicyContext(seed=self.seed)


def build_core(
    config: SchedulerConfig, nodes: list[Node] | tuple[Node, ...], ctx: PolicyContext | None = None
) -> ClusterState:
    """A fresh core over ``nodes`` scheduling as ``config`` says. ``ctx`` carries what a
    packing policy may need beyond the config (FGD's typical shapes of the workload)."""
    return ClusterState(
        list(nodes),
        make_packing(config.packing, config.context(ctx)),
        config.core_config(),
        make_queue(config.queue),
        config.quotas,
        make_admission(config.admission),
        make_preemption(config.preemption_policy, config.preemption_depth),
    )
