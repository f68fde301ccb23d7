"""``gpuyard completion bash|zsh|fish``: the shell's completion script for ``gpuyard``.

The script is argcomplete's (https://kislyuk.github.io/argcomplete/): on TAB the shell runs
``gpuyard`` with argcomplete's environment variables set, and :func:`complete` (called by
``scheduler.cli.main.main`` before parsing) answers from the same argparse parser the
command runs with, so completions always match the installed version (subcommands, flags,
choices such as ``--output table|json``; file names where an argument takes a path).

Install (once; a new shell picks it up)::

    gpuyard completion bash > ~/.local/share/bash-completion/completions/gpuyard
    gpuyard completion zsh > "${fpath[1]}/_gpuyard"      # or: eval "$(gpuyard completion zsh)"
    gpuyard completion fish > ~/.config/fish/completions/gpuyard.fish
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.console import Console

SHELLS = ("bash", "zsh", "fish")


def add_completion_command(sub: Any) -> None:
    c = sub.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh, fish)",
        description="Print gpuyard's completion script for a shell; e.g. "
        "`gpuyard completion bash > ~/.local/share/bash-completion/completions/gpuyard`.",
    )
    c.add_argument("shell", choices=SHELLS)
    c.set_defaults(func=cmd_completion)


def script(shell: str, prog: str = "gpuyard") -> str:
    """The completion script that registers ``prog`` in ``shell``."""
    if shell not in SHELLS:
        raise ValueError(f"{shell!r}: no completion for this shell; one of {', '.join(SHELLS)}")
    from argcomplete.shell_integration import shellcode  # argcomplete.shellcode

    return str(shellcode([prog], shell=shell))


def cmd_completion(args: argparse.Namespace, console: Console) -> int:
    text = script(args.shell)
    console.file.write(text if text.endswith("\n") else text + "\n")
    console.file.flush()
    return 0


def complete(parser: argparse.ArgumentParser) -> None:
    """When the shell asks for completions (argcomplete's ``_ARGCOMPLETE`` is set): print
    them and exit; otherwise return at once, without importing argcomplete."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    from argcomplete import autocomplete

    autocomplete(parser)
