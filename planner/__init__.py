"""Capacity planner: a multi-period MILP that decides which GPUs to buy, when and where
(see planner/README.md for the model and the pipeline)."""

SOLVERS = ("highs", "cbc")  # the MILP solvers the planner drives (planner/solve.py)
