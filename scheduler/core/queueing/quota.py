"""Team quotas in GPUs per GPU model, and cohorts that borrow and lend (Kueue's semantics,
simplified to one resource, GPUs, with GPU models as flavors).

A team holds quotas keyed by GPU model, or ``"*"`` for any model. If it names any model, it may
use only the models it names; a ``"*"`` quota caps its total. Within a cohort, a team may exceed
its nominal quota by borrowing what other members leave unused, up to its borrowing limit;
a member lends at most its lending limit of its unused nominal quota. All amounts are milli-GPU.

    borrowed(t)  = max(0, used(t) - nominal(t))
    lendable(o)  = min(lending_limit(o), max(0, nominal(o) - used(o)))
    pool(t)      = sum over other members o of lendable(o) - sum over all members m of borrowed(m)
    headroom(t)  = min(max(0, nominal(t) - used(t)) + max(0, min(borrowing_limit(t) - borrowed(t), pool(t))),
                       sum of nominal over the cohort - sum of used over the cohort)

The last term is Kueue's cohort check: a lender taking back its own nominal quota while others
still borrow it must first reclaim it (preemption), not push the cohort past its total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scheduler.core.model import MILLI_PER_GPU

ANY_MODEL = "*"


@dataclass(frozen=True, slots=True)
class Quota:
    team: str
    gpu_model: str  # a model name or "*"
    nominal_gpus: float
    borrowing_limit_gpus: float | None = None  # None: unlimited
    lending_limit_gpus: float | None = None  # None: all unused nominal may be lent

    def __post_init__(self) -> None:
        for name in ("nominal_gpus", "borrowing_limit_gpus", "lending_limit_gpus"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(
                    f"quota {self.team}/{self.gpu_model}: {name} must be >= 0, got {v}"
                )


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    quotas: tuple[Quota, ...]
    cohorts: tuple[tuple[str, str], ...] = ()  # (team, cohort)

    @property
    def teams(self) -> tuple[str, ...]:
        return tuple(sorted({q.team for q in self.quotas}))


def _milli(gpus: float | None) -> float:
    return math.inf if gpus is None else gpus * MILLI_PER_GPU


class QuotaBook:
    """Quotas plus what every team uses now, per key (model or ``"*"``)."""

    def __init__(self, config: QuotaConfig) -> None:
        self.config = config
        self.quota: dict[tuple[str, str], Quota] = {}
        for q in config.quotas:
            key = (q.team, q.gpu_model)
            if key in self.quota:
                raise ValueError(f"team {q.team!r} has two quotas for GPU model {q.gpu_model!r}")
            self.quota[key] = q
        self.cohort: dict[str, str] = dict(config.cohorts)
        self.members: dict[str, tuple[str, ...]] = {}
        for team, cohort in sorted(config.cohorts):
            self.members[cohort] = (*self.members.get(cohort, ()), team)
        self.used: dict[tuple[str, str], int] = {}
        self.teams = frozenset(config.teams)
        self._keys: dict[str, tuple[str, ...]] = {}
        for t, m in sorted(self.quota):
            self._keys[t] = (*self._keys.get(t, ()), m)
        self._cohort_others: dict[str, tuple[str, ...]] = {
            t: tuple(o for o in self.members[c] if o != t) for t, c in self.cohort.items()
        }
        self._room: dict[tuple[str, str], float] = {}  # headroom memo, cleared by charge()
        # admission answers (``admission.admit``) while nothing is charged: cleared by charge()
        self.answers: dict[tuple[object, ...], tuple[tuple[str, ...] | None, object]] = {}

    def knows(self, team: str) -> bool:
        return team in self.teams

    def keys_of(self, team: str) -> tuple[str, ...]:
        return self._keys.get(team, ())

    def allows_model(self, team: str, model: str) -> bool:
        named = [m for m in self.keys_of(team) if m != ANY_MODEL]
        return not named or model in named

    def _nominal(self, team: str, key: str) -> float:
        q = self.quota.get((team, key))
        return 0.0 if q is None else q.nominal_gpus * MILLI_PER_GPU

    def _others(self, team: str) -> tuple[str, ...]:
        return self._cohort_others.get(team, ())

    def borrowed(self, team: str, key: str) -> float:
        return max(0.0, self.used.get((team, key), 0) - self._nominal(team, key))

    def headroom(self, team: str, key: str) -> float:
        """Milli-GPU the team may still take under ``key``; inf if the key is not enforced.
        Memoised until the next :meth:`charge`."""
        room = self._room.get((team, key))
        if room is None:
            room = self._room[(team, key)] = self._headroom(team, key)
        return room

    def _headroom(self, team: str, key: str) -> float:
        q = self.quota.get((team, key))
        if q is None:
            return math.inf
        used = self.used.get((team, key), 0)
        own = max(0.0, self._nominal(team, key) - used)
        pool = -self.borrowed(team, key)  # what this team already took from the pool
        for o in self._others(team):
            oq = self.quota.get((o, key))
            if oq is None:
                continue
            unused = max(0.0, self._nominal(o, key) - self.used.get((o, key), 0))
            pool += min(_milli(oq.lending_limit_gpus), unused) - self.borrowed(o, key)
        can_borrow = _milli(q.borrowing_limit_gpus) - self.borrowed(team, key)
        return self._within_cohort(team, key, own + max(0.0, min(can_borrow, pool)))

    def _within_cohort(self, team: str, key: str, room: float) -> float:
        """``room`` capped by what the team's cohort has left of its total nominal quota."""
        if self.cohort.get(team) is None:
            return room
        members = (team, *self._others(team))
        cohort_nominal = sum(self._nominal(m, key) for m in members)
        cohort_used = sum(self.used.get((m, key), 0) for m in members)
        return min(room, max(0.0, cohort_nominal - cohort_used))

    def nominal_headroom(self, team: str, key: str) -> float:
        """Milli-GPU the team may still take under ``key`` without borrowing (and without
        pushing its cohort past its total); inf if the key is not enforced."""
        if (team, key) not in self.quota:
            return math.inf
        own = max(0.0, self._nominal(team, key) - self.used.get((team, key), 0))
        return self._within_cohort(team, key, own)

    def nominal_ceiling(self, team: str, key: str) -> float:
        """The most the team may ever hold under ``key`` without borrowing."""
        q = self.quota.get((team, key))
        return math.inf if q is None else _milli(q.nominal_gpus)

    def ceiling(self, team: str, key: str) -> float:
        """The most the team could ever hold under ``key`` (empty cohort): for never-fits."""
        q = self.quota.get((team, key))
        if q is None:
            return math.inf
        lend = 0.0
        for o in self._others(team):
            oq = self.quota.get((o, key))
            if oq is not None:
                lend += min(_milli(oq.lending_limit_gpus), _milli(oq.nominal_gpus))
        return _milli(q.nominal_gpus) + min(_milli(q.borrowing_limit_gpus), lend)

    def charge(self, team: str, per_model: Mapping[str, int], sign: int = 1) -> None:
        self._room.clear()
        self.answers.clear()
        total = 0
        for model, milli in per_model.items():
            self.used[(team, model)] = self.used.get((team, model), 0) + sign * milli
            total += milli
        self.used[(team, ANY_MODEL)] = self.used.get((team, ANY_MODEL), 0) + sign * total

    def is_borrowing(self, team: str) -> bool:
        return any(self.borrowed(team, key) > 0 for key in self.keys_of(team))

    def over_nominal(self, team: str, keys: Iterable[str]) -> bool:
        return any(self.borrowed(team, k) > 0 for k in keys)
