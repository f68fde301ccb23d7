"""Quota files (YAML) for the queue simulation and the service:

    quotas:
      - {team: 6214e9, gpu_model: "*", nominal_gpus: 96, borrowing_limit_gpus: 64, lending_limit_gpus: 48}
    cohorts:
      philly: [6214e9, 11cb48]

Errors name the file, the YAML path (``quotas[2].nominal_gpus``), the bad value and what is
allowed; a team the workload does not know is an error that lists the known teams.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scheduler.core.queueing.quota import ANY_MODEL, Quota, QuotaConfig
from scheduler.files.yamlfile import YamlFileError, read_yaml


class QuotaFileError(YamlFileError):
    pass


def _number(path: Path, where: str, value: Any, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise QuotaFileError(path, where, value, "a number >= 0" + (" or null" if optional else ""))
    return float(value)


def load_quotas(
    path: str | Path, known_teams: Iterable[str] | None = None, models: Iterable[str] | None = None
) -> QuotaConfig:
    p = Path(path)
    doc = read_yaml(p, QuotaFileError)
    if not isinstance(doc, dict) or not isinstance(doc.get("quotas"), list) or not doc["quotas"]:
        raise QuotaFileError(
            p,
            "quotas",
            None if not isinstance(doc, dict) else doc.get("quotas"),
            "a non-empty list",
        )
    extra = sorted(set(doc) - {"quotas", "cohorts"})
    if extra:
        raise QuotaFileError(p, extra[0], doc[extra[0]], "only the keys quotas and cohorts")
    known = sorted(set(known_teams)) if known_teams is not None else None
    allowed_models = sorted(set(models)) if models is not None else None
    quotas: list[Quota] = []
    for i, q in enumerate(doc["quotas"]):
        where = f"quotas[{i}]"
        if not isinstance(q, dict):
            raise QuotaFileError(p, where, q, "a mapping with team, gpu_model, nominal_gpus")
        unknown = sorted(
            set(q)
            - {"team", "gpu_model", "nominal_gpus", "borrowing_limit_gpus", "lending_limit_gpus"}
        )
        if unknown:
            raise QuotaFileError(
                p,
                f"{where}.{unknown[0]}",
                q[unknown[0]],
                "team, gpu_model, nominal_gpus, borrowing_limit_gpus, lending_limit_gpus",
            )
        team = str(q.get("team", "")).strip()
        if not team:
            raise QuotaFileError(p, f"{where}.team", q.get("team"), "a team name")
        if known is not None and team not in known:
            raise QuotaFileError(
                p, f"{where}.team", team, f"a team of the workload: {', '.join(known)}"
            )
        model = str(q.get("gpu_model", ANY_MODEL))
        if allowed_models is not None and model != ANY_MODEL and model not in allowed_models:
            raise QuotaFileError(
                p, f"{where}.gpu_model", model, f"'*' or one of {', '.join(allowed_models)}"
            )
        nominal = _number(p, f"{where}.nominal_gpus", q.get("nominal_gpus"), optional=False)
        assert nominal is not None
        quotas.append(
            Quota(
                team,
                model,
                nominal,
                _number(
                    p, f"{where}.borrowing_limit_gpus", q.get("borrowing_limit_gpus"), optional=True
                ),
                _number(
                    p, f"{where}.lending_limit_gpus", q.get("lending_limit_gpus"), optional=True
                ),
            )
        )
    seen = {(q.team, q.gpu_model) for q in quotas}
    if len(seen) != len(quotas):
        raise QuotaFileError(
            p, "quotas", "duplicate (team, gpu_model)", "one quota per team and GPU model"
        )
    cohorts: list[tuple[str, str]] = []
    raw = doc.get("cohorts") or {}
    if not isinstance(raw, dict):
        raise QuotaFileError(p, "cohorts", raw, "a mapping of cohort name to a list of teams")
    quota_teams = {q.team for q in quotas}
    member_of: dict[str, str] = {}
    for name, members in raw.items():
        if not isinstance(members, list):
            raise QuotaFileError(p, f"cohorts.{name}", members, "a list of teams")
        for j, team in enumerate(members):
            team = str(team)
            if team not in quota_teams:
                raise QuotaFileError(
                    p,
                    f"cohorts.{name}[{j}]",
                    team,
                    f"a team with a quota: {', '.join(sorted(quota_teams))}",
                )
            if team in member_of:
                raise QuotaFileError(
                    p,
                    f"cohorts.{name}[{j}]",
                    team,
                    f"a team in one cohort only (already in {member_of[team]})",
                )
            member_of[team] = str(name)
            cohorts.append((team, str(name)))
    return QuotaConfig(tuple(quotas), tuple(cohorts))
