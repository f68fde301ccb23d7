"""``--output table|json``: one option and one JSON printer for every ``gpuyard`` command
that prints a table.

With ``--output json`` a command writes exactly one JSON document to stdout (keys in a fixed
order, NaN and infinities as ``null``) and everything else (progress bars, "wrote ..." notes,
warnings) to stderr, so ``gpuyard ... --output json | jq`` always parses. The default,
``table``, is for people.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from rich.console import Console


def add_output_option(parser: argparse.ArgumentParser, people: str = "table") -> None:
    """``--output table|json`` on ``parser`` (``people``: the default format's name where it
    is not a table, e.g. ``yaml``). No ``-o``: beside ``--out DIR`` it would read as the
    output folder."""
    parser.add_argument(
        "--output",
        choices=(people, "json"),
        default=people,
        help=f"{people} (default) or json: one JSON document on stdout, progress on stderr",
    )


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def notes(args: argparse.Namespace, console: Console) -> Console:
    """Where progress and notes go: ``console`` for a table, stderr with ``--output json``."""
    return Console(stderr=True, soft_wrap=True) if wants_json(args) else console


def plain(data: Any) -> Any:
    """``data`` as JSON values: pydantic models as the API's JSON, dataclasses as dicts of
    their fields (in field order), tuples as lists, paths and enums as their strings, NaN
    and infinities as None."""
    if hasattr(data, "model_dump"):
        return plain(data.model_dump(mode="json"))
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {f.name: plain(getattr(data, f.name)) for f in dataclasses.fields(data)}
    if isinstance(data, Mapping):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [plain(x) for x in data]
    if isinstance(data, enum.Enum):
        return plain(data.value)
    if isinstance(data, PurePath):
        return str(data)
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if hasattr(data, "item") and callable(data.item):  # numpy scalars
        return plain(data.item())
    return data


def print_json(console: Console, data: Any) -> None:
    """One JSON document (indented) and a newline on ``console``'s stream."""
    console.file.write(json.dumps(plain(data), indent=2, allow_nan=False) + "\n")
    console.file.flush()


def emit(args: argparse.Namespace, console: Console, data: Any) -> bool:
    """With ``--output json``: print ``data`` as JSON and return True (the caller skips its
    table); otherwise False."""
    if not wants_json(args):
        return False
    print_json(console, data)
    return True
