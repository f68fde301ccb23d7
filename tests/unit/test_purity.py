"""scheduler/core is pure: it imports only the standard library and numpy, and reads no clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "scheduler" / "core"
FORBIDDEN_CALLS = {"time", "perf_counter", "monotonic", "now", "utcnow", "today", "time_ns"}
FORBIDDEN_MODULES = {
    "time",
    "datetime",
    "random",
    "logging",
    "socket",
    "os",
    "subprocess",
    "threading",
}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_core_imports_only_stdlib_numpy_and_itself() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert files
    for f in files:
        for mod in imports(f):
            top = mod.split(".")[0]
            assert top not in {"ray", "pynvml", "kubernetes", "yaml", "torch", "pulp"}, (
                f"{f.name} imports {mod}"
            )
            assert top in sys.stdlib_module_names or top in {"numpy", "scheduler"}, (
                f"{f.name} imports {mod}"
            )
            if top == "scheduler":
                assert mod.startswith("scheduler.core"), (
                    f"{f.name} imports {mod} (core must not import outward)"
                )
            assert top not in FORBIDDEN_MODULES, (
                f"{f.name} imports {mod} (clock, randomness or I/O)"
            )


def test_core_calls_no_clock() -> None:
    for f in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
                base = node.value
                name = base.id if isinstance(base, ast.Name) else ""
                assert name not in {"time", "datetime", "date"}, f"{f.name}: {name}.{node.attr}"
