"""Small helpers shared by the CSV trace loaders: header checks and typed cell parsing."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from simulations.traces.errors import TraceError


def read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)``; the header must hold every required column."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceError(
                str(path),
                1,
                missing[0],
                ",".join(header),
                f"header must contain {', '.join(required)}",
            )
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise TraceError(
                    str(path),
                    reader.line_num,
                    "*",
                    str(row),
                    f"exactly {len(header)} comma-separated cells",
                )
            yield reader.line_num, row


def cell_int(
    path: Path, line: int, row: dict[str, str], column: str, lo: int, hi: int | None = None
) -> int:
    raw = row[column].strip()
    allowed = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
    try:
        value = int(raw)
    except ValueError:
        raise TraceError(str(path), line, column, raw, allowed) from None
    if value < lo or (hi is not None and value > hi):
        raise TraceError(str(path), line, column, raw, allowed)
    return value


def cell_float(path: Path, line: int, row: dict[str, str], column: str, lo: float) -> float:
    raw = row[column].strip()
    try:
        value = float(raw)
    except ValueError:
        raise TraceError(str(path), line, column, raw, f"a number >= {lo}") from None
    if not value >= lo:
        raise TraceError(str(path), line, column, raw, f"a number >= {lo}")
    return value
