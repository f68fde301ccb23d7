"""Session hooks for every test: the fuzz tests' case counts (``tests/fuzz_tally.py``) in the
terminal summary. Under pytest-xdist (``make test`` runs the tests without Ray on both cores)
each worker sends its tallies back when it finishes and the controller adds them up."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz_tally import file_counts_of, file_lines, merge, payload, tally_of


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the tallies to the controller
        workeroutput["gpuyard_fuzz"] = payload(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    data = getattr(node, "workeroutput", {}).get("gpuyard_fuzz")
    if data:
        merge(node.config, data)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    counts = file_counts_of(config)
    if counts:
        terminalreporter.section("file fuzz")
        for line in file_lines(counts):
            terminalreporter.write_line(line)
    tally = tally_of(config)
    if tally.cases:
        terminalreporter.section("api fuzz")
        for line in tally.lines():
            terminalreporter.write_line(line)
