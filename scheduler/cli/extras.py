"""Which extra of ``pip install 'gpuyard[EXTRA]'`` brings which module.

``pip install gpuyard`` installs what every command needs (numpy, PyYAML, pydantic, rich,
argcomplete, requests); each kind of user adds the extra of the commands they run:

* ``planner``: ``gpuyard plan`` (PuLP, HiGHS, matplotlib), no torch and no Ray;
* ``sim``: ``gpuyard simulate ...``, ``demo-packing`` (matplotlib);
* ``service``: ``up``, ``down``, ``demo``, ``k8s up`` and a local ``working_dir`` in
  ``submit`` (Ray, torch, NVML, FastAPI, uvicorn, prometheus-client);
* ``k8s``: ``k8s inventory|remediate`` (the Kubernetes client);
* ``all``: every one of them.

A command imports its modules when it runs, never while the parser is built, so a missing
extra fails only the commands that need it: ``main`` turns the ``ModuleNotFoundError`` into
one line naming the extra (:func:`missing_extra_message`). ``tests/unit/test_extras.py`` keeps
this table, pyproject.toml's extras and the modules' imports in step.
"""

from __future__ import annotations

# module (top-level import name) -> the extras that install it, the one to suggest first
MODULE_EXTRAS: dict[str, tuple[str, ...]] = {
    "pulp": ("planner",),
    "highspy": ("planner",),
    "matplotlib": ("sim", "planner"),
    "ray": ("service",),
    "torch": ("service",),
    "pynvml": ("service",),  # the nvidia-ml-py distribution
    "fastapi": ("service",),
    "starlette": ("service",),  # comes with fastapi
    "uvicorn": ("service",),
    "prometheus_client": ("service",),
    "kubernetes": ("k8s",),
}

# a command's own extra, where a module is in more than one (matplotlib: plan's plots are the
# planner's, simulate's are sim's)
COMMAND_EXTRA: dict[str, str] = {
    "plan": "planner",
    "simulate": "sim",
    "demo-packing": "sim",
    "up": "service",
    "down": "service",
    "demo": "service",
    "k8s": "k8s",
}


def extra_for(module: str, command: str) -> str | None:
    """The extra that installs ``module`` (a dotted name is taken at its top level) for
    ``command`` (its first word), or None for a module that no extra installs."""
    extras = MODULE_EXTRAS.get(module.partition(".")[0])
    if not extras:
        return None
    own = COMMAND_EXTRA.get(command.partition(" ")[0])
    return own if own in extras else extras[0]


def missing_extra_message(e: ModuleNotFoundError, command: str) -> str | None:
    """``gpuyard up needs the service extra: pip install 'gpuyard[service]' (missing module:
    ray)``, or None where the missing module is none of an extra's (a broken install or a bug:
    the caller lets the error through)."""
    module = (e.name or "").partition(".")[0]
    extra = extra_for(module, command)
    if extra is None:
        return None
    return (
        f"gpuyard {command} needs the {extra} extra: pip install 'gpuyard[{extra}]' "
        f"(missing module: {module})"
    )


def command_words(args: object) -> str:
    """``k8s inventory``, ``simulate packing``, ``journal verify``, ``plan``: the subcommands
    that argparse put in ``args``."""
    words = [getattr(args, "command", None) or ""]
    for dest in ("what", "k8s_command", "journal_command"):
        value = getattr(args, dest, None)
        if isinstance(value, str) and value:
            words.append(value)
    return " ".join(w for w in words if w)
