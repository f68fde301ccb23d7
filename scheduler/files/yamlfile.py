"""Small YAML policy files (quotas, priority classes): reading, and errors that name the file,
the YAML path, the bad value and what is allowed."""

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
