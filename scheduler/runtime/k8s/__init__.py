"""Kubernetes integration of the live service.

* ``settings``: the ``k8s.yaml`` file (inventory and remediation settings);
* ``inventory``: GPU Feature Discovery labels of Kubernetes nodes -> the fleet
  (``scheduler.runtime.config.NodeSpec``); pure;
* ``remediation``: which nodes to cordon and taint, or to give back, from per-node GPU
  health, with hysteresis and a cap on how many nodes are out at once; pure;
* ``nodes``: the I/O over the ``kubernetes`` client (list, watch, patch Nodes, record
  Events);
* ``remediator``: the loop that reads health from the scheduler's API and applies the
  decisions through ``nodes``.
"""
