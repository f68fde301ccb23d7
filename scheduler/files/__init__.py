"""The scheduler's small YAML policy files (quotas, priority classes), shared by the live
service and the simulations; errors name the file, the YAML path, the value and what is
allowed."""
