"""Job-trace loaders, gang mapping, the queue replay driver and its outputs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from scheduler.cli import main
from simulations.queue import gang_of, replay_queue, summarize
from simulations.traces.errors import TraceError
from simulations.traces.jobs import TraceJob, load_jobs, load_philly

PHILLY = "timestamp,duration,num_gpus,gpu_time,cluster\n"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"


def test_philly_rows_become_jobs_relative_to_the_first_submission(tmp_path: Path) -> None:
    p = tmp_path / "p.csv"
    p.write_text(
        PHILLY + "2017-10-09 07:01:55,66.0,1,66.0,t1\n2017-10-09 07:00:00,10.0,8,80.0,t2\n"
    )
    assert load_philly(p) == [
        TraceJob("philly-000003", "t2", 8, 0.0, 10.0),
        TraceJob("philly-000002", "t1", 1, 115.0, 66.0),
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "2017-13-09 07:01:55,66.0,1,66.0,t1",
            "column 'timestamp': '2017-13-09 07:01:55' is not allowed (a time as YYYY-MM-DD HH:MM:SS)",
        ),
        (
            "2017-10-09 07:01:55,66.0,0,66.0,t1",
            "column 'num_gpus': '0' is not allowed (an integer in 1..4096)",
        ),
        (
            "2017-10-09 07:01:55,-5,1,66.0,t1",
            "column 'duration': '-5' is not allowed (a number >= 0.0)",
        ),
        ("2017-10-09 07:01:55,5,1,66.0,", "column 'cluster': '' is not allowed"),
    ],
)
def test_a_malformed_philly_row_names_file_line_and_value(
    tmp_path: Path, row: str, message: str
) -> None:
    p = tmp_path / "p.csv"
    p.write_text(PHILLY + "2017-10-09 07:00:00,10.0,8,80.0,t2\n" + row + "\n")
    with pytest.raises(TraceError) as err:
        load_philly(p)
    assert str(err.value).startswith(f"{p}:3: {message}")


def test_an_unknown_header_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(TraceError, match="a Philly header"):
        load_jobs(p)


def test_gangs_use_the_fewest_equal_workers_that_fit_a_node() -> None:
    def shape(n: int) -> tuple[int, int]:
        g = gang_of(TraceJob("j", "t", n, 0.0, 1.0), 8)
        return g.num_workers, g.worker.gpus

    assert [shape(n) for n in (1, 8, 12, 16, 24, 128)] == [
        (1, 1),
        (1, 8),
        (2, 6),
        (2, 8),
        (3, 8),
        (16, 8),
    ]


def test_replay_starts_and_ends_jobs_exactly() -> None:
    jobs = [
        TraceJob("a", "t1", 4, 0.0, 100.0),
        TraceJob("b", "t1", 4, 10.0, 50.0),
        TraceJob("c", "t2", 1, 20.0, 10.0),
        TraceJob("huge", "t2", 16, 30.0, 10.0),
    ]
    run = replay_queue(jobs, gpus=4, gpus_per_node=4, queue="fifo", backfill="none")
    got = {r.job_id: (r.start_s, r.end_s) for r in run.records}
    assert got["a"] == (0.0, 100.0) and got["b"] == (100.0, 150.0) and got["c"] == (150.0, 160.0)
    assert math.isnan(got["huge"][0]) and run.rejected == 1
    s = summarize(run)
    assert (s.jobs, s.avg_jct_s, s.avg_wait_s, s.makespan_s) == (
        3,
        (100 + 140 + 140) / 3,
        (0 + 90 + 130) / 3,
        160.0,
    )
    assert s.gpu_util_pct == pytest.approx(100 * (400 + 200 + 10) / (4 * 160))
    greedy = replay_queue(jobs, gpus=4, gpus_per_node=4, queue="fifo", backfill="greedy")
    assert {r.job_id: r.start_s for r in greedy.records}["c"] == 150.0  # nothing free before


def test_simulate_queue_cli_writes_the_three_outputs(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,num_gpu,submit_time,duration\n0,1,0,100\n1,4,10,50\n2,2,20,30\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "simulate",
                "queue",
                "--trace",
                str(trace),
                "--gpus",
                "4",
                "--gpus-per-node",
                "4",
                "--policy",
                "fifo,sjf",
                "--backfill",
                "easy",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    with (out / "jobs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "policy",
        "job_id",
        "team",
        "num_gpus",
        "submit_s",
        "start_s",
        "end_s",
        "preemptions",
    ]
    assert [(r["policy"], r["job_id"], r["start_s"]) for r in rows[:3]] == [
        ("fifo+easy", "tiresias-0", "0.0"),
        ("fifo+easy", "tiresias-1", "100.0"),
        ("fifo+easy", "tiresias-2", "20.0"),
    ]
    with (out / "summary.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header == ["policy", "jobs", "avg_jct_s", "p50_jct_s", "p95_jct_s", "p99_jct_s", "avg_wait_s", "p95_wait_s",
                      "makespan_s", "gpu_util_pct", "jain_fairness", "preemptions", "lost_gpu_h", "wall_s"]  # fmt: skip
    assert (out / "jct_cdf.png").stat().st_size > 5_000


@pytest.mark.trace
@pytest.mark.skipif(
    not (SHARED / "tiresias" / "60_job.csv").exists(), reason="../shared/traces is not present"
)
def test_the_tiresias_60_job_trace_replays_with_every_policy(tmp_path: Path) -> None:
    jobs = load_jobs(SHARED / "tiresias" / "60_job.csv")
    for q in ("fifo", "priority", "sjf", "las", "drf"):
        run = replay_queue(jobs, 16, 4, q, "easy")
        assert all(not math.isnan(r.start_s) and r.start_s >= r.submit_s for r in run.records)


def test_quota_file_errors_name_the_path_value_and_what_is_allowed(tmp_path: Path) -> None:
    from scheduler.files.quota_file import QuotaFileError, load_quotas

    def bad(text: str) -> str:
        p = tmp_path / "q.yaml"
        p.write_text(text)
        with pytest.raises(QuotaFileError) as err:
            load_quotas(p, known_teams=["a", "b"], models=["GPU"])
        return str(err.value).removeprefix(f"{p}:")

    assert (
        bad("quotas:\n  - {team: zz, nominal_gpus: 1}\n")
        == "2: quotas[0].team: must be a team of the workload: a, b (got 'zz')"
    )
    assert (
        bad("quotas:\n  - {team: a, nominal_gpus: -2}\n")
        == "2: quotas[0].nominal_gpus: Input should be greater than or equal to 0 (got -2)"
    )
    assert (
        bad("quotas:\n  - {team: a, nominal_gpus: .nan}\n")
        == "2: quotas[0].nominal_gpus: Input should be a finite number (not NaN or infinite) (got nan)"
    )
    assert (
        bad("quotas:\n  - {team: a, nominal_gpus: 1, gpu_model: H100}\n")
        == "2: quotas[0].gpu_model: must be '*' or one of GPU (got 'H100')"
    )
    assert (
        bad("quotas:\n  - {team: a, nominal_gpus: 1}\ncohorts:\n  c: [a, b]\n")
        == "4: cohorts.c[1]: must be a team with a quota: a (got 'b')"
    )
    assert (
        bad("quotas:\n  - {team: a, nominal_gpus: 1}\n  - {team: a, nominal_gpus: 2}\n")
        == "3: quotas[1].team: team 'a' already has a quota for GPU model '*' (quotas[0]); one "
        "quota per team and GPU model (got 'a')"
    )
    assert (
        bad("quotas:\n  - {team: a, nominal_gpus: 1, nominal_gpus: 2}\n")
        == "2: quotas[0].nominal_gpus: key 'nominal_gpus' is given more than once (first on "
        "line 2); give each key once (got 'nominal_gpus')"
    )
    assert bad("quotas: []\n") == (
        "1: quotas: List should have at least 1 item after validation, not 0 (got [])"
    )
    good = tmp_path / "ok.yaml"
    good.write_text(
        "quotas:\n  - {team: a, nominal_gpus: 2, borrowing_limit_gpus: 1}\n  - {team: b, nominal_gpus: 2}\ncohorts:\n  c: [a, b]\n"
    )
    cfg = load_quotas(good, known_teams=["a", "b"])
    assert cfg.cohorts == (("a", "c"), ("b", "c")) and cfg.quotas[0].borrowing_limit_gpus == 1.0


def test_a_preempted_job_resumes_from_its_checkpoint_in_the_replay() -> None:
    from scheduler.core.queueing.quota import Quota, QuotaConfig
    from simulations.queue import QueueOptions

    quotas = QuotaConfig((Quota("a", "*", 2), Quota("b", "*", 2)), (("a", "c"), ("b", "c")))
    jobs = [TraceJob("a1", "a", 4, 0.0, 100.0), TraceJob("b1", "b", 2, 25.0, 10.0)]
    opts = QueueOptions(backfill="none", quotas=quotas, preemption=True, checkpoint_interval_s=10.0)
    run = replay_queue(jobs, 4, 4, "fifo", options=opts)
    got = {r.job_id: r for r in run.records}
    # a1 borrows b's quota; b1 reclaims it at 25; a1 keeps 20 s (checkpoint at 20), loses 5 s x 4
    assert (got["b1"].start_s, got["b1"].end_s) == (25.0, 35.0)
    assert got["a1"].preemptions == 1 and got["a1"].end_s == 35.0 + 80.0
    assert got["a1"].ran_s == 25.0 + 80.0 and run.lost_gpu_h == pytest.approx(20.0 / 3600)
