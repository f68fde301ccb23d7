"""The fuzz tests' tallies (how many cases each ran), kept in pytest's stash, carried from
pytest-xdist's workers to the controller (``payload``/``merge``), and printed in the terminal
summary by ``tests/conftest.py`` (``api fuzz: N cases ...``, ``file fuzz: fleet N cases ...``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class FuzzTally:
    """Cases run, by world (backend) and operation, with the statuses they got."""

    cases: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0

    def add(self, world: str, operation: str, status: int) -> None:
        self.cases[(world, operation)] += 1
        self.statuses[status] += 1

    def lines(self) -> list[str]:
        total = sum(self.cases.values())
        ops = {op for _, op in self.cases}
        worlds = sorted({w for w, _ in self.cases})
        out = [
            f"api fuzz: {total} cases over {len(ops)} operations, {self.failures} failures",
        ]
        for w in worlds:
            n = sum(c for (ww, _), c in self.cases.items() if ww == w)
            k = len({op for ww, op in self.cases if ww == w})
            out.append(f"api fuzz [{w}]: {n} cases over {k} operations")
        shown = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        out.append(f"api fuzz statuses: {shown}")
        return out


TALLY = pytest.StashKey[FuzzTally]()
FILE_COUNTS = pytest.StashKey[dict[str, Counter[str]]]()


def tally_of(config: pytest.Config) -> FuzzTally:
    tally = config.stash.get(TALLY, None)
    if tally is None:
        tally = config.stash[TALLY] = FuzzTally()
    return tally


def file_counts_of(config: pytest.Config) -> dict[str, Counter[str]]:
    counts = config.stash.get(FILE_COUNTS, None)
    if counts is None:
        counts = config.stash[FILE_COUNTS] = {}
    return counts


def payload(config: pytest.Config) -> dict[str, Any]:
    """This process's tallies as plain data (what an xdist worker sends back)."""
    tally = tally_of(config)
    return {
        "cases": [[w, op, n] for (w, op), n in tally.cases.items()],
        "statuses": [[s, n] for s, n in tally.statuses.items()],
        "failures": tally.failures,
        "files": {name: dict(c) for name, c in file_counts_of(config).items()},
    }


def merge(config: pytest.Config, data: dict[str, Any]) -> None:
    """Add a worker's ``payload`` to this process's tallies."""
    tally = tally_of(config)
    for w, op, n in data.get("cases", []):
        tally.cases[(w, op)] += n
    for s, n in data.get("statuses", []):
        tally.statuses[int(s)] += n
    tally.failures += int(data.get("failures", 0))
    counts = file_counts_of(config)
    for name, c in data.get("files", {}).items():
        counts.setdefault(name, Counter()).update(c)


def file_lines(counts: dict[str, Counter[str]]) -> list[str]:
    out = []
    for name, c in sorted(counts.items()):
        rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("cases", "crashes"))
        out.append(
            f"file fuzz: {name} {c['cases']} cases, {c['crashes']} crashes"
            + (f" ({rest})" if rest else "")
        )
    return out
