"""Preemption: what stopping a job costs and the victim selection (``cost``), and the search
for victims that let a waiting job start (``reclaim``)."""
