"""``make bench``: every benchmark of BENCHMARKS.md, in one place apart from the product code.

* ``report.py``: the report (``python -m simulations.bench``): the machine, the command, the
  sections, "met"/"not met" beside each target; ``--sections`` reruns some and keeps the rest;
* ``planner.py``: the planner's section on a generated instance (``python -m
  simulations.bench.planner``);
* ``service.py``: the live service on a local Ray cluster (``python -m
  simulations.bench.service``): submit -> first step, bursts through the API, restart time,
  telemetry sampling;
* ``byo.py``: submit -> first step of teams' own code (a working-dir job and a script job)
  against a bare ``ray job submit``.
"""
