"""``frag_pack`` (our robust packing policy) on tiny hand-built fleets: exact placements and
exact score vectors."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler.core.actions import Launch
from scheduler.core.events import JobSubmitted
from scheduler.core.model import Job, WorkerRequest
from scheduler.core.placement.fragmentation import Shape, TypicalShapes
from scheduler.core.state import ClusterState
from scheduler.policies.base import PolicyContext
from scheduler.policies.frag_pack import TIEBREAK_MILLI, FragPackPacking, demand_weighted
from tests.builders import make_job, make_node, make_state, occupy

# by pod count: 80 % two-GPU pods, 15 % one-GPU pods, 5 % whole-node (8-GPU) pods;
# by GPU demand: 1.6 : 0.15 : 0.4 (the 8-GPU pods carry 19 % of the GPUs asked for)
GANG_MIX = TypicalShapes(
    (Shape(0, 1000, 2, ()), Shape(0, 1000, 1, ()), Shape(0, 1000, 8, ())), (0.8, 0.15, 0.05)
)


def launch(state: ClusterState, job: Job) -> list[tuple[str, tuple[int, ...]]]:
    acts = state.handle(JobSubmitted(state.now_s, job))
    launches = [a for a in acts if isinstance(a, Launch)]
    assert len(launches) == 1, acts
    return [(w.node, w.gpu_indices) for w in launches[0].placement.workers]


def two_nodes(policy: str, seed: int) -> ClusterState:
    """``big``: a free 8-GPU node; ``part``: an 8-GPU node with 2 GPUs free."""
    state = make_state([make_node("big"), make_node("part")], policy, seed=seed, typical=GANG_MIX)
    occupy(state, "part", {g: 0 for g in range(6)})
    return state


def test_demand_weights_are_count_weights_times_gpus_asked() -> None:
    typ = TypicalShapes(
        (Shape(0, 1000, 2, ()), Shape(0, 500, 1, ()), Shape(4000, 0, 0, ())), (0.5, 0.3, 0.2)
    )
    w = demand_weighted(typ)
    assert w.shapes == typ.shapes[:2]  # the CPU-only shape is dropped
    assert w.weights == pytest.approx((1.0 / 1.3, 0.3 / 1.3))  # a sharing pod: one GPU


@pytest.mark.parametrize("seed", range(4))
def test_small_pod_goes_to_the_partly_used_node_keeping_the_free_8_gpu_node_whole(
    seed: int,
) -> None:
    # FGD (count weights): breaking `big` costs 0.05 * 7000 = 350 milli, taking one of part's two
    # GPUs strands the last one for the 2-GPU pods: 0.85 * 1000 - 0.05 * 2000 = 750; FGD breaks
    # the whole node. By GPU demand the 8-GPU shape weighs 0.4 / 2.15: breaking `big` costs 1302.
    assert launch(two_nodes("frag_pack", seed), make_job("one"))[0][0] == "part"
    assert launch(two_nodes("fgd", seed), make_job("one"))[0][0] == "big"


def test_score_vector_by_hand() -> None:
    state = two_nodes("frag_pack", 0)
    policy = FragPackPacking(PolicyContext(typical=GANG_MIX))
    req = WorkerRequest(1000, 1024, 1, 1000, ())
    s = policy.score(state.fleet, req, np.array([0, 1], dtype=np.int64))
    w2, w8 = 1.6 / 2.15, 0.4 / 2.15
    # slack after placing (64 cores per node, 1 core asked): 0.5 * 63/128 + 0.5 * GPUs left / 8
    slack_big = 0.5 * 63 / 128 + 0.5 * 7 / 8
    slack_part = 0.5 * 63 / 128 + 0.5 * 1 / 8
    big = -7000 * w8 - TIEBREAK_MILLI * slack_big  # 8-GPU shape no longer fits: 7000 stranded
    part = 2000 * w8 - 1000 * (w2 + w8) - TIEBREAK_MILLI * slack_part
    assert s == pytest.approx([big, part])
    assert s[1] > s[0]


def test_best_fit_breaks_ties_that_fgd_leaves_to_chance() -> None:
    # one shape (1 whole GPU): every placement keeps it placeable, so the gain is 0 everywhere;
    # frag_pack takes the tightest node every time, fgd whichever node ranks first
    typ = TypicalShapes((Shape(0, 1000, 1, ()),), (1.0,))
    for seed in range(6):
        nodes = [make_node("a", gpus=4), make_node("b", gpus=4), make_node("c", gpus=4)]
        state = make_state(nodes, "frag_pack", seed=seed, typical=typ)
        occupy(state, "b", {0: 0, 1: 0})
        occupy(state, "c", {0: 0})
        assert launch(state, make_job("one")) == [("b", (2,))]


def test_unpinned_pod_pays_for_the_model_pinned_pods_need() -> None:
    typ = TypicalShapes((Shape(0, 1000, 1, ("T4",)), Shape(0, 1000, 2, ())), (0.5, 0.5))
    for seed in range(6):
        nodes = [make_node("t", gpus=4, model="T4"), make_node("h", gpus=4, model="H100")]
        state = make_state(nodes, "frag_pack", seed=seed, typical=typ)
        occupy(state, "h", {0: 0, 1: 0})
        policy = FragPackPacking(PolicyContext(typical=typ))
        w = policy.scarcity(state.fleet)
        t4, h100 = state.fleet.model_id["T4"], state.fleet.model_id["H100"]
        # T4: pinned demand 500 of 1500 milli, T4 is half the GPUs -> (1/3) / (1/2)
        assert w[t4] == pytest.approx(2 / 3) and w[h100] == 0.0
        assert launch(state, make_job("any")) == [("h", (2,))]


def test_policy_is_cacheable() -> None:
    assert FragPackPacking.cacheable and not FragPackPacking.gang_aware
