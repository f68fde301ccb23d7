"""Priority-class files (YAML) for the queue simulation and the service:

    classes: {production: 1000, research: 100, preemptible: 0}
    default: research            # optional: the class of jobs whose team names none
    teams: {6214e9: production}  # optional: a team's default class

Errors name the file, the YAML path, the bad value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from scheduler.core.queueing.priority import PriorityClasses
from scheduler.files.yamlfile import YamlFileError, read_yaml


class PriorityFileError(YamlFileError):
    pass


def load_priority_classes(
    path: str | Path, known_teams: Iterable[str] | None = None
) -> PriorityClasses:
    p = Path(path)
    doc = read_yaml(p, PriorityFileError)
    if not isinstance(doc, dict):
        raise PriorityFileError(p, "document", doc, "a mapping with classes, default, teams")
    extra = sorted(set(doc) - {"classes", "default", "teams"})
    if extra:
        raise PriorityFileError(p, extra[0], doc[extra[0]], "only the keys classes, default, teams")
    classes = doc.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise PriorityFileError(p, "classes", classes, "a non-empty mapping of name to integer")
    values: dict[str, int] = {}
    for name, value in classes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise PriorityFileError(p, f"classes.{name}", value, "an integer priority value")
        values[str(name)] = value
    names = ", ".join(sorted(values))
    default = doc.get("default")
    if default is not None and str(default) not in values:
        raise PriorityFileError(p, "default", default, f"one of the classes: {names}")
    teams = doc.get("teams") or {}
    if not isinstance(teams, dict):
        raise PriorityFileError(p, "teams", teams, "a mapping of team to class name")
    known = sorted(set(known_teams)) if known_teams is not None else None
    team_default: dict[str, str] = {}
    for team, name in teams.items():
        if known is not None and str(team) not in known:
            raise PriorityFileError(
                p, f"teams.{team}", team, f"a team of the workload: {', '.join(known)}"
            )
        if str(name) not in values:
            raise PriorityFileError(p, f"teams.{team}", name, f"one of the classes: {names}")
        team_default[str(team)] = str(name)
    return PriorityClasses(values, team_default, None if default is None else str(default))
