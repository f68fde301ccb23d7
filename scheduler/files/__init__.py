"""The scheduler's input files: the one validation layer (``document``: a YAML reader that
refuses duplicate keys, pydantic models, errors as ``file:line: field: msg (got value)``),
the small policy files (quotas, priority classes) shared by the service and the
simulations, and the registry of every input file's JSON Schema (``schemas``)."""
