from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parents[2] / "data" / "planner"


@pytest.fixture
def tiny_doc() -> dict:  # type: ignore[type-arg]
    """The tiny scenario as a mutable YAML document, to derive variants from."""
    return yaml.safe_load((DATA / "tiny.yaml").read_text())


@pytest.fixture
def write_yaml(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(doc: dict, name: str = "scenario.yaml") -> Path:  # type: ignore[type-arg]
        p = tmp_path / name
        p.write_text(yaml.safe_dump(doc))
        return p

    return write
