"""``pip install '.[planner]'`` in a fresh venv: ``gpuyard plan`` runs on the default scenario
with neither torch nor Ray importable, and a service command names the extra it needs.

A real install: a new venv (no system site packages), pip resolving the ``planner`` extra
against the package index under constraints.txt (pip's cache makes it quick after the first
time). The sources are copied out of the work tree first so that neither the build (setuptools
writes build/ and *.egg-info beside the sources) nor the commands see the repository's own
copy of the packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "simulations" / "scenarios" / "china-dc.yaml"  # make plan's scenario
SOURCES = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "scheduler",
    "planner",
    "simulations",
    "examples",
)
# what `gpuyard plan` writes (planner/report.py: write_outputs and plot)
PLAN_FILES = {
    "summary.json", "purchases.csv", "shadow_prices.csv", "rule_prices.csv", "installed.csv",
    "costs.csv", "power.csv", "demand.csv", "dispatch.csv", "utilisation.csv", "blocks.csv",
    "installed_gpus.png", "power.png", "costs.png",
}  # fmt: skip
INSTALL_TIMEOUT_S = 900


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["GPUYARD_HOME"] = str(cwd / "gpuyard-home")  # nothing lands in the user's state dir
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def planner_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``gpuyard[planner]`` installed: its bin/ directory."""
    root = tmp_path_factory.mktemp("planner-extra")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    venv = root / "venv"
    started = time.monotonic()
    # --without-pip: this venv's own pip (ensurepip, some 15 s) is not what is tested; the test
    # venv's pip installs into it (--python) and resolves the extra against the index as any
    # pip would. --no-compile: no .pyc for the 30 packages (half of the install's time).
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    bin_ = venv / "bin"
    install = _run(
        [sys.executable, "-m", "pip", "--python", str(bin_ / "python"), "install", "--quiet",
         "--no-compile", "--disable-pip-version-check", "-c", str(REPO / "constraints.txt"),
         f"{src}[planner]"],
        cwd=root, timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    took = time.monotonic() - started
    print(f"\nfresh venv + pip install '.[planner]': {took:.1f} s")
    assert install.returncode == 0, install.stdout + install.stderr
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    return bin_


def test_torch_and_ray_are_not_importable(planner_venv: Path, tmp_path: Path) -> None:
    for module in ("torch", "ray"):
        r = _run([str(planner_venv / "python"), "-c", f"import {module}"], cwd=tmp_path)
        assert r.returncode != 0, f"{module} is importable in the planner-only venv"
        assert f"No module named '{module}'" in r.stderr, r.stderr
    # gpuyard itself comes from the venv, not from the work tree
    r = _run([str(planner_venv / "python"), "-c", "import planner; print(planner.__file__)"],
             cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "site-packages" in r.stdout, r.stdout


def test_plan_runs_on_the_default_scenario(planner_venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    r = _run(
        [str(planner_venv / "gpuyard"), "plan", str(SCENARIO), "--out", str(out), "--quiet",
         "--time-limit", "10"],
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    written = {p.name for p in out.iterdir()}
    assert written >= PLAN_FILES, f"missing: {sorted(PLAN_FILES - written)}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["has_solution"] is True
    for png in ("installed_gpus.png", "power.png", "costs.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_service_commands_name_the_service_extra(planner_venv: Path, tmp_path: Path) -> None:
    gpuyard = str(planner_venv / "gpuyard")
    # the parser builds without the extras: help works for every command
    for argv in (["--help"], ["up", "--help"]):
        r = _run([gpuyard, *argv], cwd=tmp_path)
        assert r.returncode == 0, (argv, r.stdout + r.stderr)
    for command in ("up", "demo"):
        r = _run([gpuyard, command], cwd=tmp_path, timeout=120)
        assert r.returncode == 2, (command, r.stdout + r.stderr)
        assert (
            f"error: gpuyard {command} needs the service extra: pip install 'gpuyard[service]' "
            "(missing module: ray)"
        ) in " ".join(r.stderr.split()), r.stderr
        assert "Traceback" not in r.stderr, r.stderr
    r = _run([gpuyard, "k8s", "inventory"], cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert (
        "needs the k8s extra: pip install 'gpuyard[k8s]' (missing module: kubernetes)"
        in " ".join(r.stderr.split())
    ), r.stderr
