"""Named priority classes: resolution, the YAML loader's errors, and their effect in a replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.core.queueing.priority import PriorityClasses, UnknownPriorityClass
from scheduler.files.priority_file import PriorityFileError, load_priority_classes
from simulations.queue import QueueOptions, replay_queue
from simulations.traces.jobs import TraceJob

CLASSES = {"production": 1000, "research": 100, "preemptible": 0}


def test_a_job_gets_its_named_class_else_its_teams_else_the_default() -> None:
    pc = PriorityClasses(CLASSES, {"perception": "production"}, "research")
    assert pc.value("perception") == 1000
    assert pc.value("planning") == 100
    assert pc.value("perception", "preemptible") == 0
    assert PriorityClasses(CLASSES).value("anyone") == 0
    with pytest.raises(UnknownPriorityClass, match=r"'urgent'; known: production \(1000\), "):
        pc.value("perception", "urgent")
    with pytest.raises(UnknownPriorityClass, match="default class of team 'x'"):
        PriorityClasses(CLASSES, {"x": "gold"})


def test_priority_file_errors_name_the_path_line_value_and_what_is_allowed(
    tmp_path: Path,
) -> None:
    f = tmp_path / "p.yaml"
    cases = {
        "classes: {a: high}\n": "1: classes.a: Input should be a valid integer (got 'high')",
        "classes: {a: 1}\ndefault: b\n": "2: default: must be one of the classes: a (got 'b')",
        "classes: {a: 1}\nteams: {t9: a}\n": "2: teams.t9: must be a team of the workload: t1, t2 (got 't9')",
        "classes: {a: 1}\nteams: {t1: b}\n": "2: teams.t1: must be one of the classes: a (got 'b')",
        "classes: {}\n": "1: classes: Dictionary should have at least 1 item after validation, not 0 (got {})",
        "classes: {a: 1}\ntiers: 3\n": "2: tiers: unknown field 'tiers' (did you mean 'teams'?); allowed fields: classes, default, teams (got 3)",
        "classes: {a: 1}\nclasses: {b: 2}\n": "2: classes: key 'classes' is given more than once (first on line 1); give each key once (got 'classes')",
        "classes: {a: 10000000000}\n": "1: classes.a: Input should be less than or equal to 1000000000 (got 10000000000)",
        "classes: {a: 1.5}\n": "1: classes.a: Input should be a valid integer (got 1.5)",
    }  # fmt: skip
    for text, message in cases.items():
        f.write_text(text)
        with pytest.raises(PriorityFileError) as e:
            load_priority_classes(f, known_teams=["t1", "t2"])
        assert str(e.value) == f"{f}:{message}"
    f.write_text("classes: {high: 10, low: 1}\ndefault: low\nteams: {t1: high}\n")
    pc = load_priority_classes(f, known_teams=["t1", "t2"])
    assert (pc.value("t1"), pc.value("t2")) == (10, 1)


def test_a_production_teams_job_preempts_a_research_job_in_the_replay() -> None:
    classes = PriorityClasses(CLASSES, {"prod": "production"}, "research")
    jobs = [TraceJob("r1", "lab", 4, 0.0, 100.0), TraceJob("p1", "prod", 4, 30.0, 10.0)]
    opts = QueueOptions(preemption=True, checkpoint_interval_s=20.0, priority_classes=classes)
    run = replay_queue(jobs, 4, 4, "priority", options=opts)
    got = {r.job_id: r for r in run.records}
    assert (got["p1"].start_s, got["p1"].end_s) == (30.0, 40.0)
    # r1 kept its checkpoint at 20 s and reruns the remaining 80 s after p1
    assert got["r1"].preemptions == 1 and got["r1"].end_s == 40.0 + 80.0
    plain = replay_queue(jobs, 4, 4, "priority", options=QueueOptions(preemption=True))
    assert {r.job_id: r.start_s for r in plain.records}["p1"] == 100.0  # equal priorities
