"""Queueing and admission: the team queues and the queue-order interface (``queues``),
quotas (``quota``) and admission against them (``admission``), fair share (``fairshare``),
priority classes (``priority``), attained-service levels (``levels``), EASY backfill
(``easy``) and start estimates (``backfill``)."""
