"""pyproject.toml's extras cover what each part of gpuyard imports, and the CLI's table of
extras (scheduler/cli/extras.py) agrees with them.

Every module's third-party imports are read with ``ast`` (``if TYPE_CHECKING:`` blocks and
``try: ... except ImportError`` left out) and checked against the dependencies of core plus the
extras of the part it belongs to (``AREAS``): planner/ may import core and ``planner`` only,
even inside functions, so that ``gpuyard plan`` runs with ``pip install 'gpuyard[planner]'``;
the same holds for everything planner/ reaches through module-level imports. The install test
(tests/install) checks the same thing for real in a fresh venv, in minutes; this one in a second.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from scheduler.cli.extras import COMMAND_EXTRA, MODULE_EXTRAS, extra_for, missing_extra_message

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("scheduler", "planner", "simulations", "examples")
EXTRAS = ("planner", "sim", "service", "k8s")
ALL = frozenset(EXTRAS)

# the part of gpuyard a file belongs to (the first prefix that matches): the extras it may
# import besides core, and whether a function may import a module of another extra that
# MODULE_EXTRAS names (the CLI then says which extra the command needs)
AREAS: tuple[tuple[str, frozenset[str], bool], ...] = (
    ("examples/", frozenset({"service"}), False),  # Ray Train scripts: submitted to the service
    ("simulations/bench/", ALL, False),  # make bench: every section, the live service's too
    ("simulations/bound.py", frozenset({"planner"}), False),  # the packing lower bound: HiGHS LPs
    ("simulations/plan_sim/verify.py", frozenset({"planner"}), False),  # plan --verify re-plans
    ("simulations/", frozenset({"sim"}), False),
    ("planner/", frozenset({"planner"}), False),
    ("scheduler/runtime/k8s/", frozenset({"k8s"}), False),
    ("scheduler/runtime/", frozenset({"service"}), False),
    ("scheduler/train.py", frozenset({"service"}), False),  # gpuyard's Ray Train helpers
    ("scheduler/client.py", frozenset(), True),  # Ray packages a local working_dir
    ("scheduler/cli/", frozenset(), True),  # each command imports its part when it runs
    ("scheduler/", frozenset(), False),  # the core, policies, files, config
)

# imported directly, installed by a dependency that declares it (checked below)
COMES_WITH = {"starlette": "fastapi", "urllib3": "requests", "pydantic_core": "pydantic"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements(group: str) -> list[Requirement]:
    """core (``""``) or an extra's requirements, gpuyard's own extras expanded."""
    project = _pyproject()["project"]
    raw = project["dependencies"] if group == "" else project["optional-dependencies"][group]
    out: list[Requirement] = []
    for line in raw:
        req = Requirement(line)
        if _norm(req.name) == "gpuyard":
            for extra in sorted(req.extras):
                out += _requirements(extra)
        else:
            out.append(req)
    return out


@cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def _modules_of(dist: str) -> frozenset[str]:
    """The top-level import names that an installed distribution provides."""
    names = {m for m, dists in _distributions().items() if _norm(dist) in {_norm(d) for d in dists}}
    return frozenset(names | {m for m, d in COMES_WITH.items() if _norm(d) == _norm(dist)})


def _modules(groups: frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for group in ("", *sorted(groups)):
        for req in _requirements(group):
            out |= _modules_of(req.name)
    return frozenset(out)


@dataclass(frozen=True)
class Import:
    module: str  # as written (absolute; relative ones resolved)
    line: int
    lazy: bool  # inside a function


@cache
def _imports(path: Path, name: str) -> tuple[Import, ...]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for n in node.orelse:
                visit(n, lazy)
            return
        if isinstance(node, ast.Try) and any(
            h.type is not None
            and re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type))
            for h in node.handlers
        ):  # an optional import
            for n in (*node.handlers, *node.orelse, *node.finalbody):
                visit(n, lazy)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, node.lineno, lazy) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append(Import(module, node.lineno, lazy))
            found.extend(Import(f"{module}.{a.name}", node.lineno, lazy) for a in node.names
                         if f"{module}.{a.name}" in _files())  # fmt: skip
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return tuple(found)


@cache
def _files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _area(path: Path) -> tuple[frozenset[str], bool]:
    rel = path.relative_to(REPO).as_posix()
    for prefix, extras, lazy_ok in AREAS:
        if rel.startswith(prefix):
            return extras, lazy_ok
    raise AssertionError(f"{rel}: in none of AREAS")


def _third_party(module: str) -> str | None:
    top = module.partition(".")[0]
    if top in PACKAGES or top in sys.stdlib_module_names or top == "__future__":
        return None
    return top


def _eager_closure(name: str) -> set[str]:
    """The gpuyard modules that importing ``name`` runs (module-level imports, parents too)."""
    files, seen, stack = _files(), set(), [name]
    while stack:
        m = stack.pop()
        if m in seen or m not in files:
            continue
        seen.add(m)
        parts = m.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]
        for imp in _imports(files[m], m):
            if not imp.lazy and _third_party(imp.module) is None:
                stack.append(imp.module if imp.module in files else imp.module.rpartition(".")[0])
    return seen


def test_every_file_has_an_area_and_the_extras_exist() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert set(EXTRAS) | {"all", "dev"} <= set(extras)
    for path in _files().values():
        _area(path)


def test_third_party_imports_are_in_the_extras_of_their_part() -> None:
    wrong = [w for name in sorted(_files()) for w in _wrong_imports(name)]
    assert not wrong, "\n".join(wrong)


def _wrong_imports(name: str) -> list[str]:
    path = _files()[name]
    extras, lazy_ok = _area(path)
    allowed = _modules(extras)
    rel = path.relative_to(REPO)
    wrong = []
    for imp in _imports(path, name):
        top = _third_party(imp.module)
        if top is None or top in allowed:
            continue
        if imp.lazy and lazy_ok and top in MODULE_EXTRAS:
            continue
        wrong.append(f"{rel}:{imp.line}: {imp.module} (allowed: core + {sorted(extras)})")
    # what this module's module-level imports of gpuyard run, with the same extras
    for other in sorted(_eager_closure(name) - {name}):
        for imp in _imports(_files()[other], other):
            top = _third_party(imp.module)
            if not imp.lazy and top is not None and top not in allowed:
                wrong.append(
                    f"{rel} imports {other}, which imports {imp.module} at line {imp.line}"
                )
    return wrong


def test_the_planner_needs_no_torch_nor_ray() -> None:
    planner = _modules(frozenset({"planner"}))
    assert not {"torch", "ray", "fastapi", "kubernetes"} & planner
    assert {"pulp", "highspy", "matplotlib", "numpy", "yaml", "pydantic", "rich"} <= planner


def test_all_is_every_extra_and_dev_installs_all() -> None:
    by_name = {str(r) for e in EXTRAS for r in _requirements(e)}
    assert {str(r) for r in _requirements("all")} == by_name
    assert by_name <= {str(r) for r in _requirements("dev")}


def test_the_cli_table_names_the_extras_that_install_each_module() -> None:
    for module, extras in MODULE_EXTRAS.items():
        for extra in extras:
            assert extra in EXTRAS, (module, extra)
            assert module in _modules(frozenset({extra})), f"{module} is not in [{extra}]"
            assert module not in _modules(frozenset()), f"{module} is a core dependency"
    for command, extra in COMMAND_EXTRA.items():
        assert extra in EXTRAS, (command, extra)
    # every module that an extra brings and gpuyard imports has its line in the table
    imported = {
        t for n, p in _files().items() for i in _imports(p, n) if (t := _third_party(i.module))
    }
    for extra in EXTRAS:
        for module in (_modules(frozenset({extra})) - _modules(frozenset())) & imported:
            assert extra in MODULE_EXTRAS.get(module, ()), (
                f"{module} ([{extra}]) not in MODULE_EXTRAS"
            )


def test_comes_with_is_declared_by_that_dependency() -> None:
    for module, dist in COMES_WITH.items():
        requires = [Requirement(r) for r in metadata.requires(dist) or []]
        provider = {_norm(r.name) for r in requires if r.marker is None or r.marker.evaluate()}
        assert _norm(_distributions()[module][0]) in provider, (module, dist)


def test_every_dependency_has_an_upper_bound_that_admits_the_constraints() -> None:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_norm(name)] = Version(version)
    for group in ("", *EXTRAS, "dev"):
        for req in _requirements(group):
            ops = {s.operator for s in req.specifier}
            if str(req).startswith("types-"):
                continue  # typeshed's stubs follow the library's version
            assert ops & {"<", "==", "~="}, f"{req}: no upper bound"
            pinned = pins.get(_norm(req.name))
            assert pinned is not None, f"{req.name}: not in constraints.txt (make constraints)"
            assert req.specifier.contains(pinned, prereleases=True), f"{req} excludes {pinned}"


def test_constraints_keep_torch_without_a_local_tag_and_gpuyard_out() -> None:
    text = (REPO / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", text, re.M)
    assert not re.search(r"^gpuyard\b|^-e |@ ", text, re.M)


def test_building_the_parser_imports_no_extra() -> None:
    code = (
        "import sys; from scheduler.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {sorted(MODULE_EXTRAS)!r} if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=True)  # fmt: skip
    assert r.stdout.strip() == "[]", r.stdout


def test_the_message_names_the_commands_extra() -> None:
    ray = ModuleNotFoundError("No module named 'ray'", name="ray")
    assert missing_extra_message(ray, "up") == (
        "gpuyard up needs the service extra: pip install 'gpuyard[service]' (missing module: ray)"
    )
    assert extra_for("matplotlib.pyplot", "plan") == "planner"
    assert extra_for("matplotlib", "simulate packing") == "sim"
    assert extra_for("kubernetes.client", "k8s inventory") == "k8s"
    assert missing_extra_message(ModuleNotFoundError("x", name="scheduler.nope"), "plan") is None
