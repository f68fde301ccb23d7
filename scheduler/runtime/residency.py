"""Data residency at the service's edge: which node regions a job's data may be processed in.

* A node's region is its label ``gpuyard.io/region`` (:data:`REGION_LABEL`; in the fleet
  file ``region: CN`` or ``labels: {gpuyard.io/region: CN}``). A node without it has no
  region: a job restricted to regions never runs there.
* The service config's ``residency`` maps a *data* region to the *node* regions where such
  data may be processed (``residency: {CN: [CN], US: [US], EU: [EU, US]}``). Without it, a
  data region is processed only in itself, and the data regions are the fleet's regions.
* A job spec's ``data_region`` becomes the core ``Job.data_region`` and the worker request's
  ``regions`` (the rule's node regions). The core keeps every worker inside them: its fleet
  masks (fits, room, eligible and hardware GPUs) leave the other nodes out for every packing
  policy, backfill, EASY's reservation, preemption and the never-fits check. "Enforced in the
  scheduler" means exactly that: no decision of the core can place the job elsewhere, and a
  job no allowed node could ever hold is rejected with the core's reason.

:class:`Residency` is the service's rule book, built from the config and checked against
the fleet once (``ServiceConfig.residency_for``); :meth:`Residency.node_regions` checks a
spec's ``data_region`` and raises :class:`SpecRejected` naming the field, the value and what
is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scheduler.core.model import REGION_LABEL
from scheduler.runtime.views import SpecRejected

__all__ = ["REGION_LABEL", "REGION_PATTERN", "REGION_RULE", "Residency", "is_region"]

# A Kubernetes (and Ray) label value, not empty: regions travel as node labels.
REGION_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
REGION_RULE = (
    "a region: 1 to 63 characters of letters, digits, '-', '_' and '.', starting and ending "
    "with a letter or digit (a Kubernetes and Ray label value), e.g. CN"
)
_REGION = re.compile(REGION_PATTERN)


def is_region(value: object) -> bool:
    return isinstance(value, str) and _REGION.match(value) is not None


@dataclass(frozen=True, slots=True)
class Residency:
    """Data region -> the node regions where its data may be processed.

    ``rules`` is the config's mapping (node regions sorted), None when the config has none
    (each of ``fleet_regions`` then in itself only). ``require``: a spec must name its
    ``data_region`` (only while the fleet carries regions)."""

    fleet_regions: tuple[str, ...] = ()
    rules: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    require: bool = False

    def allowed(self) -> dict[str, tuple[str, ...]]:
        """Every known data region and its node regions."""
        if self.rules is None:
            return {r: (r,) for r in self.fleet_regions}
        return dict(self.rules)

    def node_regions(self, data_region: str | None, source: str) -> tuple[str, ...]:
        """The node regions a job whose data lives in ``data_region`` may use (``()``: any,
        for a job that names none). :class:`SpecRejected` at ``data_region`` for a region no
        rule knows, or for a missing one when the service requires it."""
        allowed = self.allowed()
        known = ", ".join(sorted(allowed)) or (
            f"none: no fleet node carries the label {REGION_LABEL}"
        )
        where = "the service config's residency" if self.rules is not None else "the fleet"
        if data_region is None:
            if self.require and self.fleet_regions:
                raise SpecRejected(
                    [
                        {
                            "loc": ("data_region",),
                            "msg": "required field is missing: this service requires the "
                            f"region where a job's data lives (require_data_region); "
                            f"allowed ({where}): {known}",
                            "input": None,
                            "source": source,
                        }
                    ]
                )
            return ()
        if data_region not in allowed:
            raise SpecRejected(
                [
                    {
                        "loc": ("data_region",),
                        "msg": f"unknown data region {data_region!r}; allowed ({where}): {known}",
                        "input": data_region,
                        "source": source,
                    }
                ]
            )
        return allowed[data_region]
