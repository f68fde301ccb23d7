"""Who may ask for what: the priority a job runs at, checked against the caller's grant.

A team's token may use its default priority class (the one its jobs get when they name none),
the classes its ``TeamGrant`` lists, and a plain ``priority`` up to the grant's
``max_priority`` (default 0). Anything above is ``Forbidden`` (403) naming the field and what
the team may use. An admin token may set any class and any plain priority.

This is what keeps one team from preempting another: the core preempts only for a higher
priority or to reclaim quota a team lent, so a team that cannot raise its priority can only
take back what is its own.
"""

from __future__ import annotations

from scheduler.core.queueing.priority import PriorityClasses
from scheduler.runtime.auth import Principal
from scheduler.runtime.config import TeamGrant
from scheduler.runtime.spec import JobSpec
from scheduler.runtime.views import Forbidden, SpecRejected


def job_priority(
    who: Principal, spec: JobSpec, grant: TeamGrant, classes: PriorityClasses | None
) -> int:
    """The priority of the job ``who`` submits with ``spec`` (whose team is set), or raise
    ``Forbidden`` (not entitled) / ``SpecRejected`` (no such class)."""
    team = spec.team or ""
    if classes is None:
        if spec.priority_class is not None:
            raise SpecRejected(
                [
                    {
                        "loc": ["priority_class"],
                        "msg": "no priority classes are configured; use priority",
                        "input": spec.priority_class,
                    }
                ]
            )
        _check_plain(who, team, spec.priority, grant)
        return spec.priority
    try:
        value = classes.value(team, spec.priority_class)
        default = classes.class_of(team, None)
    except ValueError as e:
        raise SpecRejected(
            [{"loc": ["priority_class"], "msg": str(e), "input": spec.priority_class}]
        ) from None
    name = spec.priority_class
    if (
        not who.admin
        and name is not None
        and name != default
        and name not in grant.priority_classes
    ):
        may = sorted({*grant.priority_classes, *([default] if default else [])})
        raise Forbidden(
            f"priority_class: team {team!r} may not use class {name!r} "
            f"(it may use: {', '.join(may) or 'none'}); an admin can grant it in the service "
            "config (teams.<team>.priority_classes)",
            "priority_class",
        )
    if spec.priority != 0:  # a plain priority overrides the class
        _check_plain(who, team, spec.priority, grant)
        return spec.priority
    return value


def _check_plain(who: Principal, team: str, priority: int, grant: TeamGrant) -> None:
    if who.admin or priority <= grant.max_priority:
        return
    raise Forbidden(
        f"priority: {priority} is above the highest priority team {team!r} may use "
        f"({grant.max_priority}); an admin can raise it in the service config "
        "(teams.<team>.max_priority)",
        "priority",
    )
