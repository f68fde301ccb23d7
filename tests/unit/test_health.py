"""Telemetry in the core: hot GPUs with hysteresis, XID and ECC drains, foreign memory,
lost and rejoining nodes, interrupted runs."""

from __future__ import annotations

from scheduler.core.actions import Launch, Preempt
from scheduler.core.events import (
    GpuHealthChanged,
    GpuTelemetry,
    JobInterrupted,
    JobSubmitted,
    NodeJoined,
    NodeLost,
    NodeUncordoned,
)
from scheduler.core.model import Job, WorkerRequest
from tests.builders import make_job, make_node, make_state


def reading(t: float, node: str, gpu: int, **kw: object) -> GpuTelemetry:
    fields: dict[str, object] = dict(
        memory_used_mib=0, memory_total_mib=81_920, utilization_pct=0.0, temperature_c=40.0
    )
    fields.update(kw)
    return GpuTelemetry(t, node, gpu, **fields)  # type: ignore[arg-type]


def kinds(actions: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(type(a).__name__, a.job_id) for a in actions]


def test_a_hot_gpu_takes_no_work_until_it_cools_below_the_hysteresis_band() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(reading(0, "a", 0, temperature_c=88.0))
    assert kinds(state.handle(JobSubmitted(1, make_job("j")))) == []
    state.handle(reading(2, "a", 0, temperature_c=84.0))  # below 87 but within 5 degrees
    assert state.pending == ("j",)
    assert state.health.why("a", 0) == ("hot",)
    assert kinds(state.handle(reading(3, "a", 0, temperature_c=82.0))) == [("Launch", "j")]


def test_xid_79_drains_the_node_the_job_moves_and_nothing_new_lands_there() -> None:
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)], policy="best_fit")
    acts = state.handle(JobSubmitted(0, make_job("j", gpus=2)))
    node = acts[0].placement.workers[0].node  # type: ignore[union-attr]
    other = "b" if node == "a" else "a"
    acts = state.handle(reading(5, node, 1, xids=(79,)))
    assert kinds(acts) == [("Preempt", "j"), ("Launch", "j")]
    assert acts[0].cause == f"drain {node}: XID 79 on GPU 1"
    assert isinstance(acts[1], Launch) and acts[1].placement.nodes == (other,)
    assert state.off[node] == {"drain"}
    # the other GPU of the drained node is healthy, but the node is cordoned
    assert kinds(state.handle(JobSubmitted(6, make_job("k", gpus=1)))) == []
    assert state.check_invariants() == []
    # an operator's all-clear for the one GPU: its mark goes, the node stays drained
    state.handle(GpuHealthChanged(7, node, 1, True))
    assert state.health.why(node, 1) == () and state.off[node] == {"drain"}
    # ... and for the node: it takes work again
    assert kinds(state.handle(NodeUncordoned(8, node))) == [("Launch", "k")]


def test_application_xids_do_not_drain_and_ecc_growth_does() -> None:
    state = make_state([make_node("a", gpus=1), make_node("b", gpus=1)])
    state.handle(JobSubmitted(0, make_job("j")))
    node = state.running["j"].workers[0].node
    assert state.handle(reading(1, node, 0, xids=(13, 43))) == []
    assert state.handle(reading(2, node, 0, ecc_uncorrected=0)) == []
    acts = state.handle(reading(3, node, 0, ecc_uncorrected=2))
    assert isinstance(acts[0], Preempt)
    assert acts[0].cause == f"drain {node}: 2 uncorrected ECC error(s) on GPU 0"
    # the same count read again is not a new error
    state.handle(NodeUncordoned(4, node), GpuHealthChanged(4, node, 0, True))
    assert state.handle(reading(5, node, 0, ecc_uncorrected=2)) == []


def test_foreign_memory_on_an_idle_gpu_counts_against_a_minimum_memory_request() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(reading(0, "a", 0, memory_used_mib=60_000))
    want = Job("j", WorkerRequest(1000, 1024, 1, min_gpu_memory_mib=40_000))
    assert state.handle(JobSubmitted(1, want)) == []
    assert kinds(state.handle(reading(2, "a", 0, memory_used_mib=1_000))) == [("Launch", "j")]
    # once our job runs there, its own memory use is not foreign
    state.handle(reading(3, "a", 0, memory_used_mib=70_000))
    assert int(state.fleet.gpu_mem_foreign_mib[0, 0]) == 1_000


def test_a_lost_node_requeues_its_jobs_and_takes_work_again_when_it_joins() -> None:
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)])
    state.handle(JobSubmitted(0, make_job("j", gpus=2)), JobSubmitted(0, make_job("k", gpus=2)))
    node = state.running["j"].workers[0].node
    acts = state.handle(NodeLost(10, node, "raylet died"))
    assert kinds(acts) == [("Preempt", "j")]
    assert acts[0].cause == f"{node} lost (raylet died)"
    assert state.pending == ("j",)
    acts = state.handle(NodeJoined(20, node))
    assert kinds(acts) == [("Launch", "j")]
    assert state.check_invariants() == []


def test_an_interrupted_run_is_requeued_and_relaunched() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(JobSubmitted(0, make_job("j")))
    acts = state.handle(JobInterrupted(5, "j", "runner died"))
    assert kinds(acts) == [("Preempt", "j"), ("Launch", "j")]
    assert state.preemptions["j"] == 1
    assert state.handle(JobInterrupted(6, "unknown")) == []


def test_after_a_gpu_reset_new_ecc_errors_drain_the_node_again() -> None:
    state = make_state([make_node("a", gpus=1), make_node("b", gpus=1)])
    state.handle(reading(0, "a", 0, ecc_uncorrected=5))  # drained: 5 errors
    state.handle(NodeUncordoned(1, "a"))
    state.handle(JobSubmitted(2, make_job("j")), JobSubmitted(2, make_job("k")))
    assert sorted(n for j in "jk" for n in state.running[j].nodes) == ["a", "b"]
    on_a = "j" if state.running["j"].nodes == ("a",) else "k"
    # the reset set the volatile count back to 0: no error, and 0 is the new baseline
    assert state.handle(reading(3, "a", 0, ecc_uncorrected=0)) == []
    # one new error: below the old maximum of 5, but growth over the last reading
    acts = state.handle(reading(4, "a", 0, ecc_uncorrected=1))
    assert kinds(acts) == [("Preempt", on_a)]
    assert acts[0].cause == "drain a: 1 uncorrected ECC error(s) on GPU 0"
    assert state.off["a"] == {"drain"} and state.health.why("a", 0) == ("ecc",)


def test_uncordon_clears_xid_ecc_and_operator_marks_and_the_node_takes_work_again() -> None:
    state = make_state([make_node("a", gpus=4)])
    state.handle(
        reading(0, "a", 0, xids=(79,)),
        reading(0, "a", 1, ecc_uncorrected=2),
        GpuHealthChanged(0, "a", 2, False),
    )
    assert [state.health.why("a", g) for g in range(3)] == [("xid 79",), ("ecc",), ("operator",)]
    assert state.handle(JobSubmitted(1, make_job("j", gpus=4))) == []
    acts = state.handle(NodeUncordoned(2, "a"))
    assert kinds(acts) == [("Launch", "j")]
    assert [state.health.why("a", g) for g in range(4)] == [(), (), (), ()]
    assert state.off["a"] == set() and state.fleet.gpu_healthy[0].all()
    # the baseline is the last reading: the same count again is no new error
    assert state.handle(reading(3, "a", 1, ecc_uncorrected=2)) == []


def test_uncordon_leaves_a_hot_gpu_out_until_it_cools() -> None:
    state = make_state([make_node("a", gpus=1)])
    state.handle(reading(0, "a", 0, temperature_c=95.0, xids=(48,)))
    assert state.health.why("a", 0) == ("hot", "xid 48")
    state.handle(JobSubmitted(1, make_job("j")))
    assert state.handle(NodeUncordoned(2, "a")) == []
    assert state.health.why("a", 0) == ("hot",) and state.pending == ("j",)
    assert kinds(state.handle(reading(3, "a", 0, temperature_c=80.0))) == [("Launch", "j")]
