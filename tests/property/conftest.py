"""The property tests' shared tallies (``tests/fuzz_tally.py``): how many cases the HTTP API
fuzz and the file-loader fuzz ran, printed in the terminal summary (``tests/conftest.py``)
whatever ``-s`` and with or without pytest-xdist."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fuzz_tally import FuzzTally, file_counts_of, tally_of


@pytest.fixture(scope="session")
def api_fuzz_tally(pytestconfig: pytest.Config) -> FuzzTally:
    return tally_of(pytestconfig)


@pytest.fixture(scope="session")
def fuzz_counts(pytestconfig: pytest.Config) -> dict[str, Counter[str]]:
    """Cases run per fuzzed thing (a loader: ``fleet``, ``tokens``...): ``counts[name]
    ["cases"]`` and ``["crashes"]`` (and any other tally), printed at the end of the run as
    ``file fuzz: fleet 300 cases, 0 crashes``."""
    return file_counts_of(pytestconfig)
