"""``priority``: higher priority first, then FIFO: the core's canonical order (DESIGN.md)."""

from __future__ import annotations

from scheduler.core.queueing.queues import CanonicalOrder

PriorityOrder = CanonicalOrder
