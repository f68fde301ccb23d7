"""The runtime's unit tests run without Ray: the control channel uses a process-local store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.runtime import control


@pytest.fixture(autouse=True)
def memory_kv() -> Iterator[control.MemoryKV]:
    kv = control.MemoryKV()
    control.use(kv)
    yield kv
    control.use(None)
