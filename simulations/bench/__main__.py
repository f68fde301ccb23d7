"""``python -m simulations.bench``: write BENCHMARKS.md (``report.py``)."""

from simulations.bench.report import main

raise SystemExit(main())
