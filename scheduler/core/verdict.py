"""Why a job is where it is: codes plus a human reason, returned as data (never logged)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    FIT = "FIT"
    WAIT_CAPACITY = "WAIT_CAPACITY"  # fits the fleet, not its free capacity now
    WAIT_QUOTA = "WAIT_QUOTA"
    WAIT_ORDER = "WAIT_ORDER"  # fits the fleet, but the queue order or a reservation holds it
    NEVER = "NEVER"  # cannot fit even an empty fleet


@dataclass(frozen=True, slots=True)
class Verdict:
    code: Code
    reason: str

    @property
    def fits(self) -> bool:
        return self.code is Code.FIT
