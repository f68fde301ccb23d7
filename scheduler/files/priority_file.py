"""Priority-class files (YAML) for the queue simulation and the service:

    classes: {production: 1000, research: 100, preemptible: 0}
    default: research            # optional: the class of jobs whose team names none
    teams: {6214e9: production}  # optional: a team's default class

Validated by :class:`PriorityFile` (scheduler/files/document.py): errors name the file, the
line, the field path, the bad value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from scheduler.core.queueing.priority import PriorityClasses
from scheduler.files.document import (
    CrossField,
    FileModel,
    InputRejected,
    Loc,
    read_document,
    reject,
    validate,
)

__all__ = ["PriorityFile", "PriorityFileError", "load_priority_classes"]

# Kubernetes PriorityClass values for users are at most one billion
Value = Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
Name = Annotated[str, Field(min_length=1)]


class PriorityFileError(InputRejected):
    """A bad priority-class file: one line per problem, ``file:line: field: msg (got value)``."""


class PriorityFile(FileModel):
    """Named priority classes, the default class and each team's default class."""

    classes: dict[Name, Value] = Field(
        min_length=1, description="class name -> priority value (higher runs first)"
    )
    default: Name | None = Field(
        default=None, description="the class of jobs whose team names none"
    )
    teams: dict[Name, Name] | None = Field(default=None, description="team -> its default class")

    @model_validator(mode="after")
    def _known_classes(self) -> PriorityFile:
        names = ", ".join(sorted(self.classes))
        problems: list[tuple[Loc, str, Any]] = []
        if self.default is not None and self.default not in self.classes:
            problems.append((("default",), f"must be one of the classes: {names}", self.default))
        for team, name in (self.teams or {}).items():
            if name not in self.classes:
                problems.append((("teams", team), f"must be one of the classes: {names}", name))
        if problems:
            raise CrossField(problems)
        return self


def load_priority_classes(
    path: str | Path, known_teams: Iterable[str] | None = None
) -> PriorityClasses:
    """The priority classes of the file at ``path``; ``known_teams``: the teams ``teams`` may
    name (None: any). Raises :class:`PriorityFileError`."""
    try:
        doc = read_document(path)
    except InputRejected as exc:
        raise PriorityFileError(exc.errors) from None
    f = validate(PriorityFile, doc, error=PriorityFileError)
    teams = f.teams or {}
    if known_teams is not None:
        known = sorted(set(known_teams))
        for team in teams:
            if team not in known:
                msg = f"must be a team of the workload: {', '.join(known)}"
                raise reject(doc, ("teams", team), msg, team, error=PriorityFileError)
    return PriorityClasses(dict(f.classes), dict(teams), f.default)
