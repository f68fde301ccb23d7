"""Fair-share usage with a half-life: each team's usage as an exponentially weighted average,
so that what a team ran an hour ago counts for less than what it runs now (Slurm's
``PriorityDecayHalfLife``). Usage is piecewise constant between starts and stops, so the
average advances in closed form:

    avg(t + d) = u + (avg(t) - u) * 2 ** (-d / half_life)     (u: usage during [t, t + d))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.core.queueing.queues import TeamUsage


@dataclass(slots=True)
class DecayedUsage:
    half_life_s: float
    _avg: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    _at_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.half_life_s > 0:
            raise ValueError(f"fair-share half-life must be > 0 s, got {self.half_life_s}")

    def value(self, team: str, now_s: float, current: TeamUsage) -> TeamUsage:
        """The team's average usage at ``now_s``, if it held ``current`` since the last update."""
        avg = self._avg.get(team, (0.0, 0.0, 0.0))
        since = now_s - self._at_s.get(team, now_s)
        k = 2.0 ** (-since / self.half_life_s)
        u = (current.gpu_milli, current.cpu_milli, current.memory_mib)
        g, c, m = (x + (a - x) * k for a, x in zip(avg, u, strict=True))
        return TeamUsage(g, c, m)

    def advance(self, team: str, now_s: float, current: TeamUsage) -> None:
        """Bring the average up to ``now_s`` before the team's usage changes."""
        v = self.value(team, now_s, current)
        self._avg[team] = (v.gpu_milli, v.cpu_milli, v.memory_mib)
        self._at_s[team] = now_s
