"""The ``gpuyard`` command (``scheduler.cli.main``)."""

from scheduler.cli.main import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
