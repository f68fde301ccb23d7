"""``python -m scheduler.cli ...`` is ``gpuyard ...``."""

from scheduler.cli.main import run

run()
