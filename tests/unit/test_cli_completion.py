"""``gpuyard completion bash|zsh|fish``: each script parses in its shell, and sourced in it,
TAB on ``gpuyard `` offers the subcommands (the shell runs the real ``gpuyard``, which
answers from its argparse parser). A shell that is not installed is skipped, saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.cli import build_parser, main
from scheduler.cli.completion import script

BIN = Path(sys.executable).parent  # the venv's bin: `gpuyard` is installed there
SUBCOMMANDS = sorted(
    next(a for a in build_parser()._actions if a.dest == "command").choices  # type: ignore[union-attr]
)


def shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install -y {name}); its script is untested")
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_the_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("bash", "zsh", "fish"):
        assert main(["completion", name]) == 0
        assert capsys.readouterr().out == script(name) + (
            "" if script(name).endswith("\n") else "\n"
        )
    assert "complete -o nospace -o default -o bashdefault -F _python_argcomplete gpuyard" in (
        script("bash")
    )
    assert "complete --command gpuyard" in script("fish")
    with pytest.raises(SystemExit):
        main(["completion", "powershell"])
    assert "invalid choice: 'powershell'" in capsys.readouterr().err
    assert {"simulate", "plan", "jobs", "k8s", "completion"} <= set(SUBCOMMANDS)


@pytest.mark.skipif(not (BIN / "gpuyard").exists(), reason="gpuyard is not installed in the venv")
def test_bash_parses_it_and_tab_lists_the_subcommands(tmp_path: Path) -> None:
    bash = shell("bash")
    path = tmp_path / "gpuyard.bash"
    path.write_text(script("bash"))
    assert subprocess.run([bash, "-n", str(path)], capture_output=True).returncode == 0

    def tab(line: str, words: str) -> list[str]:
        probe = (f'source {path}; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
                 f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_TYPE=9; "
                 '_python_argcomplete gpuyard; printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
        r = subprocess.run(
            [bash, "-c", probe], capture_output=True, text=True, env=env(), timeout=60
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert sorted(w for w in tab("gpuyard ", 'gpuyard ""') if not w.startswith("-")) == SUBCOMMANDS
    assert tab("gpuyard simulate q", "gpuyard simulate q") == ["queue"]
    assert sorted(tab("gpuyard jobs --output ", 'gpuyard jobs --output ""')) == ["json", "table"]


def test_zsh_parses_it(tmp_path: Path) -> None:
    zsh = shell("zsh")
    path = tmp_path / "_gpuyard"
    path.write_text(script("zsh"))
    r = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert script("zsh").startswith("#compdef gpuyard\n")


@pytest.mark.skipif(not (BIN / "gpuyard").exists(), reason="gpuyard is not installed in the venv")
def test_fish_parses_it_and_tab_lists_the_subcommands(tmp_path: Path) -> None:
    fish = shell("fish")
    path = tmp_path / "gpuyard.fish"
    path.write_text(script("fish"))
    r = subprocess.run([fish, "--no-execute", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    probe = f'source {path}; complete -C "gpuyard "'
    r = subprocess.run([fish, "-c", probe], capture_output=True, text=True, env=env(), timeout=60)
    assert r.returncode == 0, r.stderr
    offered = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert sorted(w for w in offered if not w.startswith("-")) == SUBCOMMANDS
