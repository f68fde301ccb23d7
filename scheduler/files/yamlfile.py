"""Small YAML files (quotas, priority classes, the service's config and fleet, Kubernetes
settings): reading, typed field checks, and errors that name the file, the YAML path, the bad
value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    def __init__(self, path: Path, where: str, value: object, allowed: str) -> None:
        super().__init__(f"{path}: {where}: {value!r} is not allowed ({allowed})")


def read_yaml(path: Path, error: type[YamlFileError]) -> Any:
    """The parsed document; a syntax error becomes ``error`` naming the first line of it."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise error(path, "document", str(e).splitlines()[0], "valid YAML") from None


def integer_at(error: type[YamlFileError], path: Path, where: str, value: Any, low: int) -> int:
    """``value`` if it is an integer >= ``low`` (a bool is not), else ``error`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise error(path, where, value, f"an integer >= {low}")
    return value


def number_at(error: type[YamlFileError], path: Path, where: str, value: Any, low: float) -> float:
    """``value`` as a float if it is a number >= ``low`` (a bool is not), else ``error``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise error(path, where, value, f"a number >= {low}")
    return float(value)
