"""Quota files (YAML) for the queue simulation and the service:

    quotas:
      - {team: 6214e9, gpu_model: "*", nominal_gpus: 96, borrowing_limit_gpus: 64, lending_limit_gpus: 48}
    cohorts:
      philly: [6214e9, 11cb48]

Validated by :class:`QuotaFile` (scheduler/files/document.py): errors name the file, the line,
the field path (``quotas[2].nominal_gpus``), the bad value and what is allowed. A team the
workload does not know, or a GPU model the fleet does not have, is an error that lists the
known ones (checked against the caller's ``known_teams`` / ``models``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from scheduler.core.queueing.quota import ANY_MODEL, Quota, QuotaConfig
from scheduler.files.document import (
    CrossField,
    Document,
    FileModel,
    InputRejected,
    Loc,
    read_document,
    reject,
    validate,
)

__all__ = ["QuotaEntry", "QuotaFile", "QuotaFileError", "load_quotas", "parse_quotas"]

MAX_GPUS = 1e7  # a quota beyond any fleet is a typo
Gpus = Annotated[float, Field(ge=0, le=MAX_GPUS)]
Team = Annotated[str, Field(min_length=1, pattern=r"\S")]


class QuotaFileError(InputRejected):
    """A bad quota file: one line per problem, ``file:line: field.path: msg (got value)``."""


class QuotaEntry(FileModel):
    """A team's quota of one GPU model (``"*"``: of every model together)."""

    team: Team
    gpu_model: str = Field(default=ANY_MODEL, min_length=1, description="a GPU model or '*'")
    nominal_gpus: Gpus = Field(description="GPUs the team is guaranteed")
    borrowing_limit_gpus: Gpus | None = Field(
        default=None, description="at most this many above nominal (null: unlimited)"
    )
    lending_limit_gpus: Gpus | None = Field(
        default=None, description="at most this much unused nominal lent (null: all of it)"
    )


class QuotaFile(FileModel):
    """The quota file: quotas per team (and GPU model), and cohorts that lend to each other."""

    quotas: list[QuotaEntry] = Field(min_length=1)
    cohorts: dict[str, list[Team]] | None = Field(
        default=None, description="cohort name -> its teams (each team in one cohort)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> QuotaFile:
        problems: list[tuple[Loc, str, Any]] = []
        first: dict[tuple[str, str], int] = {}
        for i, q in enumerate(self.quotas):
            key = (q.team.strip(), q.gpu_model)
            if key in first:
                msg = (
                    f"team {key[0]!r} already has a quota for GPU model {q.gpu_model!r} "
                    f"(quotas[{first[key]}]); one quota per team and GPU model"
                )
                problems.append((("quotas", i, "team"), msg, q.team))
            first.setdefault(key, i)
        teams = sorted({q.team.strip() for q in self.quotas})
        member_of: dict[str, str] = {}
        for name, members in (self.cohorts or {}).items():
            for j, team in enumerate(members):
                if team not in teams:
                    msg = f"must be a team with a quota: {', '.join(teams)}"
                    problems.append((("cohorts", name, j), msg, team))
                elif team in member_of:
                    msg = f"a team is in one cohort only (already in {member_of[team]})"
                    problems.append((("cohorts", name, j), msg, team))
                else:
                    member_of[team] = name
        if problems:
            raise CrossField(problems)
        return self


def parse_quotas(
    doc: Document,
    known_teams: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
) -> QuotaConfig:
    """The quotas of a parsed quota document; ``known_teams`` / ``models``: the teams and GPU
    models the quotas may name (None: any). Raises :class:`QuotaFileError`."""
    f = validate(QuotaFile, doc, error=QuotaFileError)
    known = sorted(set(known_teams)) if known_teams is not None else None
    allowed = sorted(set(models)) if models is not None else None
    for i, q in enumerate(f.quotas):
        if known is not None and q.team.strip() not in known:
            msg = f"must be a team of the workload: {', '.join(known)}"
            raise reject(doc, ("quotas", i, "team"), msg, q.team, error=QuotaFileError)
        if allowed is not None and q.gpu_model != ANY_MODEL and q.gpu_model not in allowed:
            msg = f"must be '*' or one of {', '.join(allowed)}"
            raise reject(doc, ("quotas", i, "gpu_model"), msg, q.gpu_model, error=QuotaFileError)
    quotas = tuple(
        Quota(
            q.team.strip(),
            q.gpu_model,
            q.nominal_gpus,
            q.borrowing_limit_gpus,
            q.lending_limit_gpus,
        )
        for q in f.quotas
    )
    cohorts = tuple((team, name) for name, members in (f.cohorts or {}).items() for team in members)
    return QuotaConfig(quotas, cohorts)


def load_quotas(
    path: str | Path, known_teams: Iterable[str] | None = None, models: Iterable[str] | None = None
) -> QuotaConfig:
    """The quota file at ``path`` (see :func:`parse_quotas`). Raises :class:`QuotaFileError`."""
    try:
        doc = read_document(path)
    except InputRejected as exc:
        raise QuotaFileError(exc.errors) from None
    return parse_quotas(doc, known_teams, models)
