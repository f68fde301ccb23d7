"""Building blocks of ``gpuyard simulate plan``: a plan's fleet as the scheduling core's nodes
(:mod:`simulations.plan_sim.fleet`), the planner's demand as a seeded job stream
(:mod:`simulations.plan_sim.jobs`), and the scenario's ``simulation:`` settings
(:mod:`simulations.plan_sim.settings`)."""

from simulations.plan_sim.fleet import (
    DEFAULT_SHAPES,
    SITE_LABEL,
    NodeShape,
    PlanFileError,
    Purchase,
    SiteFleet,
    SkuPool,
    installed_systems,
    node_shapes,
    read_purchases,
    site_nodes,
)
from simulations.plan_sim.jobs import (
    JobSizes,
    JobSizesError,
    JobStream,
    StreamTotal,
    Team,
    generate_jobs,
    load_job_sizes,
    site_jobs,
)
from simulations.plan_sim.settings import SettingsError, SimulationSettings

__all__ = [
    "DEFAULT_SHAPES",
    "SITE_LABEL",
    "JobSizes",
    "JobSizesError",
    "JobStream",
    "NodeShape",
    "PlanFileError",
    "Purchase",
    "SettingsError",
    "SimulationSettings",
    "SiteFleet",
    "SkuPool",
    "StreamTotal",
    "Team",
    "generate_jobs",
    "installed_systems",
    "load_job_sizes",
    "node_shapes",
    "read_purchases",
    "site_jobs",
    "site_nodes",
]
