"""Capacity planner (a multi-period MILP over GPU purchases); built in a later issue."""
