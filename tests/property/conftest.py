"""The property tests' shared tally: how many cases the HTTP API fuzz ran, shown in the
terminal summary (``api fuzz: N cases over K operations, F failures``) whatever ``-s``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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


_TALLY = pytest.StashKey[FuzzTally]()


@pytest.fixture(scope="session")
def api_fuzz_tally(pytestconfig: pytest.Config) -> FuzzTally:
    tally = pytestconfig.stash.get(_TALLY, None)
    if tally is None:
        tally = pytestconfig.stash[_TALLY] = FuzzTally()
    return tally


_FILE_COUNTS = pytest.StashKey[dict[str, Counter[str]]]()


@pytest.fixture(scope="session")
def fuzz_counts(pytestconfig: pytest.Config) -> dict[str, Counter[str]]:
    """Cases run per fuzzed thing (a loader: ``fleet``, ``tokens``...): ``counts[name]
    ["cases"]`` and ``["crashes"]`` (and any other tally), printed at the end of the run as
    ``file fuzz: fleet 300 cases, 0 crashes``."""
    counts = pytestconfig.stash.get(_FILE_COUNTS, None)
    if counts is None:
        counts = pytestconfig.stash[_FILE_COUNTS] = {}
    return counts


def _file_lines(counts: dict[str, Counter[str]]) -> list[str]:
    out = []
    for name, c in sorted(counts.items()):
        rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("cases", "crashes"))
        out.append(
            f"file fuzz: {name} {c['cases']} cases, {c['crashes']} crashes"
            + (f" ({rest})" if rest else "")
        )
    return out


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    counts = config.stash.get(_FILE_COUNTS, None)
    if counts:
        terminalreporter.section("file fuzz")
        for line in _file_lines(counts):
            terminalreporter.write_line(line)
    tally = config.stash.get(_TALLY, None)
    if tally is not None and tally.cases:
        terminalreporter.section("api fuzz")
        for line in tally.lines():
            terminalreporter.write_line(line)
