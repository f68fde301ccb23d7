"""Named priority classes (Kubernetes PriorityClass / Kueue WorkloadPriorityClass semantics):
a job names a class; the core orders and preempts by the class's integer value (higher runs
first and may preempt lower). Jobs that name none get the team's default class, else the
fleet's default, else 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class UnknownPriorityClass(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PriorityClasses:
    values: Mapping[str, int] = field(default_factory=dict)  # class name -> priority value
    team_default: Mapping[str, str] = field(default_factory=dict)  # team -> class name
    default: str | None = None  # class of jobs whose team names none

    def __post_init__(self) -> None:
        for team, name in sorted(self.team_default.items()):
            self._check(name, f"default class of team {team!r}")
        if self.default is not None:
            self._check(self.default, "default class")

    def _check(self, name: str, what: str) -> None:
        if name not in self.values:
            known = ", ".join(f"{n} ({v})" for n, v in self.by_value()) or "none defined"
            raise UnknownPriorityClass(f"{what}: unknown priority class {name!r}; known: {known}")

    def by_value(self) -> list[tuple[str, int]]:
        """Classes from the highest value down (ties by name)."""
        return sorted(self.values.items(), key=lambda kv: (-kv[1], kv[0]))

    def class_of(self, team: str, name: str | None = None) -> str | None:
        """The class a job of ``team`` gets when it names ``name`` (or none)."""
        if name is not None:
            self._check(name, f"job of team {team!r}")
            return name
        return self.team_default.get(team, self.default)

    def value(self, team: str, name: str | None = None) -> int:
        chosen = self.class_of(team, name)
        return 0 if chosen is None else self.values[chosen]
