"""``las`` as Tiresias's discretised 2D-LAS (``scheduler/policies/queue_las.py``): its 60-job
trace against Tiresias's own simulator, and each of its rules (fit-first scan, demotion of a
running job at the crossing with the core's wake-up, a just-demoted job behind the waiting
ones, starvation promotion) on small cases, snapshots included."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scheduler.core.actions import Action, Launch, Preempt
from scheduler.core.events import JobSubmitted, Tick
from scheduler.core.snapshot import restore, take
from scheduler.core.state import ClusterState, CoreConfig
from scheduler.policies.base import PolicyContext
from scheduler.policies.queue_fifo import FifoOrder
from scheduler.policies.queue_las import DEFAULT_THRESHOLDS_GPU_S, LasOrder
from scheduler.policies.registry import make_packing
from scheduler.runtime.codec import decode_snapshot, encode_snapshot
from simulations.queue import QueueOptions, QueueRun, replay_queue
from simulations.traces.jobs import TraceJob, load_jobs
from tests.builders import make_job, make_node

TRACE = Path(__file__).resolve().parents[3] / "shared" / "traces" / "tiresias" / "60_job.csv"
needs_trace = pytest.mark.skipif(not TRACE.exists(), reason="../shared/traces is not present")

# Tiresias's simulator (SymbioticLab/Tiresias 959f9b0, simulator/run_sim.py, run under
# Python 3 with sys.maxint -> sys.maxsize and py2 integer division kept) on this trace:
#   --cluster_spec (1 switch, 2 nodes, 4 GPUs each) --scheme=count --schedule=dlas-gpu
# start:end of job 0..59 (its job.csv). 0 preemptions, 0 demotions; average JCT 42,916 / 60 s.
# --schedule=fifo: average JCT 93,389 / 60 s. dlas, dlas-gpu-1/2/4/8 and fjf give the same.
TIRESIAS_DLAS_GPU = (
    "0:164,3271:3418,53:180,79:200,99:220,3418:3556,176:297,204:328,227:382,252:378,282:512,"
    "311:679,337:468,3556:3752,401:522,434:614,471:614,522:644,614:803,614:739,614:1150,614:740,"
    "645:768,3752:3873,740:861,733:854,768:889,3873:3994,827:979,861:982,892:1033,918:1039,"
    "3994:4119,973:1094,4119:4424,1042:1163,1163:1286,1100:1221,1139:1260,1165:1286,1221:1343,"
    "1260:1383,1286:1549,1286:1495,1315:1473,1347:1468,1381:1502,4424:4545,4545:4671,1471:3271,"
    "1499:1625,1537:1667,1625:1746,1612:1733,1746:1917,4671:4806,1701:1834,1917:2045,2045:2167,"
    "1779:1901"
)


def avg_jct_s(run: QueueRun) -> float:
    return sum(r.end_s - r.submit_s for r in run.records) / len(run.records)


def names(actions: list[Action], kind: type) -> list[str]:
    return [a.job_id for a in actions if isinstance(a, kind)]


def core(queue: LasOrder | FifoOrder, gpus: int = 1, **config: Any) -> ClusterState:
    return ClusterState(
        [make_node("n", gpus=gpus)],
        make_packing("best_fit", PolicyContext()),
        CoreConfig(**{"preemption": True, "backfill": "none", **config}),
        queue,
    )


# ------------------------------------------------------------- the 60-job trace
@pytest.mark.trace
@needs_trace
def test_las_halves_fifo_on_the_60_job_trace_without_a_preemption_as_tiresias() -> None:
    jobs = load_jobs(TRACE)
    fifo = replay_queue(jobs, 8, 4, "fifo", "none", QueueOptions())
    las = replay_queue(jobs, 8, 4, "las", "none", QueueOptions(preemption=True))
    assert avg_jct_s(fifo) == 93_389 / 60  # 1,556.5 s: Tiresias's fifo to the second
    assert avg_jct_s(las) == 43_505 / 60  # 725.1 s
    assert avg_jct_s(las) < 0.5 * avg_jct_s(fifo)
    # exactly the preemptions and demotions Tiresias makes on this trace: none. No job reaches
    # the 3,250 GPU-s threshold (the most is job 34: 8 GPUs x 305 s), so all stay in level 0
    assert [r.job_id for r in las.records if r.preemptions] == []
    service = {r.job_id: r.ran_s * r.num_gpus for r in las.records}
    assert [j for j, s in service.items() if s >= DEFAULT_THRESHOLDS_GPU_S[0]] == []
    assert max(service.items(), key=lambda kv: kv[1]) == ("tiresias-34", 2440.0)
    assert all(r.ran_s == r.duration_s for r in las.records)  # nothing lost, nothing redone
    # starvation: promotion is only for demoted jobs that wait (none here); what waits longest
    # is the 8-GPU jobs, until the arrivals stop: the longest wait is job 5's, shorter than
    # FIFO's longest
    waits = {r.job_id: r.start_s - r.submit_s for r in las.records}
    assert max(waits.items(), key=lambda kv: kv[1]) == ("tiresias-5", 3286.0)
    assert max(r.start_s - r.submit_s for r in fifo.records) == 3875.0


@pytest.mark.trace
@needs_trace
def test_with_tiresias_s_count_placement_every_job_starts_and_ends_as_in_tiresias() -> None:
    jobs = load_jobs(TRACE)
    opt = QueueOptions(preemption=True, one_gpu_workers=True)
    las = replay_queue(jobs, 8, 4, "las", "none", opt)
    expected = [tuple(float(x) for x in pair.split(":")) for pair in TIRESIAS_DLAS_GPU.split(",")]
    assert [(r.start_s, r.end_s) for r in las.records] == expected
    assert avg_jct_s(las) == 42_916 / 60  # 715.3 s
    fifo = replay_queue(jobs, 8, 4, "fifo", "none", QueueOptions(one_gpu_workers=True))
    assert avg_jct_s(fifo) == 93_389 / 60


# ------------------------------------------------------------------ the rules
def test_defaults_are_two_levels_at_tiresias_s_threshold() -> None:
    las = LasOrder()
    assert las.thresholds == (3250.0,) and not las.promotes
    assert [las.next_rank_change_gpu_s(s) for s in (0.0, 3249.9, 3250.0)] == [
        3250.0,
        3250.0,
        math.inf,
    ]
    assert math.isinf(las.promote_after_s(100.0))
    assert LasOrder(promote_knob=2.0).promote_after_s(100.0) == 200.0
    with pytest.raises(
        ValueError, match=r"promote_knob must be a number > 0 or None \(off\), got 0"
    ):
        LasOrder(promote_knob=0)


def test_a_job_that_does_not_fit_holds_back_no_one_behind_it() -> None:
    for queue, started in ((FifoOrder(), []), (LasOrder(), ["small"])):
        s = core(queue, gpus=4)
        s.handle(JobSubmitted(0, make_job("a", gpus=2)))
        s.handle(JobSubmitted(1, make_job("wide", gpus=4, submitted_at_s=1)))
        acts = s.handle(JobSubmitted(2, make_job("small", gpus=1, submitted_at_s=2)))
        assert names(acts, Launch) == started  # strict FIFO waits; LAS scans fit-first


def test_the_core_asks_to_wake_when_a_running_job_crosses_the_threshold() -> None:
    s = core(LasOrder((100.0,)), gpus=4)
    s.handle(JobSubmitted(0, make_job("a", gpus=2)), JobSubmitted(0, make_job("b", gpus=2)))
    assert math.isinf(s.next_wake_s())  # nobody waits: a crossing would change nothing
    s.handle(JobSubmitted(10, make_job("c", gpus=4, submitted_at_s=10)))
    assert s.next_wake_s() == 50.0  # 100 GPU-s on 2 GPUs
    acts = s.handle(Tick(50.0))
    assert names(acts, Preempt) == ["a", "b"] and names(acts, Launch) == ["c"]
    assert s.pending == ("a", "b")
    off = core(LasOrder((100.0,)), gpus=4, preemption=False)
    off.handle(JobSubmitted(0, make_job("a", gpus=4)), JobSubmitted(1, make_job("c")))
    assert math.isinf(off.next_wake_s())  # without preemption a demotion changes nothing


def test_the_replay_preempts_at_the_crossing_not_at_the_next_event() -> None:
    jobs = [TraceJob("long", "t", 1, 0.0, 5000.0), TraceJob("short", "t", 1, 100.0, 50.0)]
    opt = QueueOptions(preemption=True, checkpoint_interval_s=1.0)
    run = replay_queue(jobs, 1, 1, "las", "none", opt)
    long, short = run.records
    # long reaches 3,250 GPU-s at t = 3,250: short, waiting since 100, takes the GPU then
    assert (short.start_s, short.end_s) == (3250.0, 3300.0)
    assert (long.start_s, long.end_s, long.preemptions) == (0.0, 5050.0, 1)


def test_a_job_demoted_at_this_instant_goes_behind_those_waiting_in_its_level() -> None:
    s = core(LasOrder((10.0,)))
    s.handle(JobSubmitted(0, make_job("p")))
    s.handle(JobSubmitted(5, make_job("r", submitted_at_s=5)))
    acts = s.handle(Tick(s.next_wake_s()))  # t = 10: p demoted, r (level 0) takes over
    assert (s.now_s, names(acts, Preempt), names(acts, Launch)) == (10.0, ["p"], ["r"])
    acts = s.handle(Tick(s.next_wake_s()))  # t = 20: r demoted; p waits in level 1 already
    assert (s.now_s, names(acts, Preempt), names(acts, Launch)) == (20.0, ["r"], ["p"])
    assert math.isinf(s.next_wake_s())  # two levels: nothing more to cross
    acts = s.handle(Tick(25.0))  # p is no longer new to level 1: r waits for it
    assert names(acts, Preempt) == []


def promotion_core() -> ClusterState:
    """a runs 0-10, is demoted and preempted by b at 10 (b runs 10-20); with knob 1 a has
    waited as long as it ran at 20."""
    s = core(LasOrder((10.0,), promote_knob=1.0))
    s.handle(JobSubmitted(0, make_job("a")))
    s.handle(JobSubmitted(5, make_job("b", submitted_at_s=5)))
    s.handle(Tick(s.next_wake_s()))
    return s


def test_a_demoted_job_that_waited_knob_times_its_run_is_promoted() -> None:
    s = promotion_core()
    assert (s.now_s, s.pending, s.next_wake_s()) == (10.0, ("a",), 20.0)
    acts = s.handle(Tick(20.0))
    # a is back in level 0 (service counted afresh) and preempts b, demoted at this instant
    assert (names(acts, Preempt), names(acts, Launch)) == (["b"], ["a"])
    assert s.levels.promotions == {"a": 1} and s.levels.service_gpu_s("a") == 0.0
    assert s.attained_gpu_s["a"] == 10.0  # what it received stays
    assert s.next_wake_s() == 30.0  # a crosses again, b's promotion is due: both at 30
    acts = s.handle(Tick(30.0))
    assert (names(acts, Preempt), names(acts, Launch)) == (["a"], ["b"])
    assert s.levels.promotions == {"a": 1, "b": 1}


def test_a_snapshot_keeps_a_waiting_job_s_promotion() -> None:
    s = promotion_core()
    snap = take(s)
    (a,) = snap.pending
    assert (a.progress.waiting_since_s, a.progress.waited_s) == (10.0, 0.0)
    copy = restore(
        decode_snapshot(json.loads(json.dumps(encode_snapshot(snap), allow_nan=False))),
        make_packing("best_fit", PolicyContext()),
        s.config,
        LasOrder((10.0,), promote_knob=1.0),
    )
    assert copy.next_wake_s() == s.next_wake_s() == 20.0
    for t in (20.0, 30.0, 40.0):
        assert copy.handle(Tick(t)) == s.handle(Tick(t))
        assert take(copy) == take(s)


def test_a_snapshot_written_before_promotions_existed_still_reads() -> None:
    s = promotion_core()
    s.handle(Tick(20.0))
    old = encode_snapshot(take(s))
    for live in (*old["pending"], *old["running"]):
        for field in ("level_base_gpu_s", "waited_s", "waiting_since_s", "promotions"):
            del live["progress"][field]
    back = decode_snapshot(old)
    assert all(p.progress.promotions == 0 for p in (*back.pending, *back.running))
