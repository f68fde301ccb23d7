"""Each packing policy on hand-built nodes, with the exact expected placement."""

from __future__ import annotations

import pytest

from scheduler.core.actions import Launch
from scheduler.core.events import JobSubmitted
from scheduler.core.model import Topology
from scheduler.core.placement.fragmentation import Shape, TypicalShapes
from scheduler.policies.base import PolicyContext
from scheduler.policies.registry import PACKING, UnknownPolicy, make_packing
from tests.builders import make_job, make_node, make_state, occupy


def launch(state, job):  # type: ignore[no-untyped-def]
    acts = state.handle(JobSubmitted(state.now_s, job))
    launches = [a for a in acts if isinstance(a, Launch)]
    assert len(launches) == 1, acts
    return [(w.node, w.gpu_indices) for w in launches[0].placement.workers]


def test_registry_lists_every_policy_and_rejects_unknown_names() -> None:
    assert list(PACKING) == [
        "random",
        "dot_product",
        "gpu_clustering",
        "gpu_packing",
        "best_fit",
        "fgd",
        "topology",
        "frag_pack",
    ]
    with pytest.raises(
        UnknownPolicy, match="unknown packing policy 'nope'; known: random, dot_product"
    ):
        make_packing("nope", PolicyContext())


def test_fgd_without_typical_shapes_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs the workload's typical shapes"):
        make_packing("fgd", PolicyContext())


def test_best_fit_takes_the_tightest_node_and_gpu() -> None:
    state = make_state([make_node("a"), make_node("b"), make_node("c")], "best_fit")
    occupy(state, "b", {g: 0 for g in range(6)})  # b: 2 GPUs free
    occupy(state, "c", {g: 0 for g in range(4)} | {4: 300})  # c: 3.3 GPUs free, GPU 4 partial
    assert launch(state, make_job("j1")) == [("b", (6,))]
    # b now has one whole GPU left: still the tightest node for a sharing pod
    assert launch(state, make_job("j2", gpu_milli=200)) == [("b", (7,))]
    # 900 fits neither b (800 left) nor c's partial GPU 4 (300): c is tighter than a; GPU 5
    assert launch(state, make_job("j3", gpu_milli=900)) == [("c", (5,))]
    # 250 fits b's GPU 7 (800 free): b is still the tightest node
    assert launch(state, make_job("j4", gpu_milli=250)) == [("b", (7,))]
    # 600 fits neither b (550 left) nor c's GPUs 4 (300) and 5 (100): c's GPU 6, tighter than a
    assert launch(state, make_job("j5", gpu_milli=600)) == [("c", (6,))]


def test_dot_product_prefers_the_node_least_aligned_with_the_request() -> None:
    state = make_state([make_node("a"), make_node("b")], "dot_product")
    occupy(state, "a", {g: 0 for g in range(7)})  # a has 1 free GPU: smaller dot product
    assert launch(state, make_job("j", cpu_milli=8000)) == [("a", (7,))]


def test_gpu_clustering_keeps_sharing_pods_together() -> None:
    state = make_state([make_node("a"), make_node("b"), make_node("c")], "gpu_clustering")
    first = launch(state, make_job("s1", gpu_milli=300))
    # the node running only sharing pods scores base + 75, the empty ones base + 25
    assert launch(state, make_job("s2", gpu_milli=300)) == [(first[0][0], (0,))]
    # a whole-GPU pod is another class: an empty node (base + 25) beats the sharing node (base)
    whole = launch(state, make_job("w"))
    assert whole[0][0] != first[0][0] and whole[0][1] == (0,)


def test_gpu_packing_fills_used_gpus_before_opening_free_ones() -> None:
    state = make_state([make_node("a"), make_node("b")], "gpu_packing")
    occupy(state, "b", {3: 500})
    assert launch(state, make_job("s", gpu_milli=400)) == [("b", (3,))]
    # a whole GPU on a used node (b) beats opening the idle node a
    assert launch(state, make_job("w")) == [("b", (0,))]


def test_random_is_seeded_and_only_uses_feasible_nodes() -> None:
    def run(seed: int) -> list[str]:
        state = make_state([make_node(n, gpus=1) for n in "abcdef"], "random", seed=seed)
        return [launch(state, make_job(f"j{i}"))[0][0] for i in range(6)]

    assert run(1) == run(1)
    assert sorted(run(1)) == list("abcdef")  # each node has one GPU: all used exactly once


def typical(*shapes: tuple[int, int, int]) -> TypicalShapes:
    return TypicalShapes(
        tuple(Shape(0, m, n, ()) for m, n, _ in shapes), tuple(p / 100 for _, _, p in shapes)
    )


def test_fgd_fills_the_gap_that_no_typical_pod_could_use() -> None:
    typ = typical((600, 1, 100))
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)], "fgd", typical=typ)
    occupy(state, "a", {0: 0, 1: 500})  # a: a 500 gap a 600 pod can never use
    occupy(state, "b", {0: 0})  # b: one free GPU
    assert launch(state, make_job("s", gpu_milli=500)) == [("a", (1,))]


def test_fgd_picks_the_gpu_that_keeps_a_typical_pod_placeable() -> None:
    typ = typical((600, 1, 100))
    state = make_state([make_node("a", gpus=2)], "fgd", typical=typ)
    occupy(state, "a", {0: 700})  # GPU 0 has 700 free, GPU 1 is whole
    # a 300 pod on GPU 0 leaves 400 (useless to a 600 pod): gain 0 vs. GPU 1 leaving 700 and 700
    # frag before: GPU0 700>=600 fits -> 0; on GPU 0: left (400, 1000): 400 is frag; on GPU 1:
    # left (700, 700): none frag -> GPU 1 wins
    assert launch(state, make_job("s", gpu_milli=300)) == [("a", (1,))]


def test_frag_pack_fills_the_gap_too() -> None:
    typ = typical((600, 1, 100))
    state = make_state([make_node("a", gpus=2), make_node("b", gpus=2)], "frag_pack", typical=typ)
    occupy(state, "a", {0: 0, 1: 500})
    occupy(state, "b", {0: 0})
    assert launch(state, make_job("s", gpu_milli=500)) == [("a", (1,))]


def test_topology_puts_a_gang_on_the_fewest_nodes_and_one_nvlink_domain() -> None:
    nodes = [make_node("x", domains=2), make_node("y", domains=2), make_node("z", domains=2)]
    state = make_state(nodes, "topology")
    occupy(state, "y", {g: 0 for g in range(4)})  # y: domain 1 free (GPUs 4-7)
    occupy(state, "z", {g: 0 for g in range(4, 8)})  # z: domain 0 free (GPUs 0-3)
    occupy(state, "x", {1: 0})  # x: 7 free, domain 0 has 3, domain 1 has 4
    # a 2 x 4-GPU gang: x could host one worker, y one, z one; best fit = y and z, 4 GPUs each
    placed = launch(state, make_job("g", gpus=4, workers=2))
    assert sorted(placed) == [("y", (4, 5, 6, 7)), ("z", (0, 1, 2, 3))]
    # a 4-GPU worker on x takes its free NVLink domain 1, not GPUs spread over both
    assert launch(state, make_job("one", gpus=4)) == [("x", (4, 5, 6, 7))]


def test_same_nvlink_gang_lands_inside_one_domain() -> None:
    state = make_state([make_node("x", domains=2)], "best_fit")
    occupy(state, "x", {0: 0})
    placed = launch(state, make_job("n", gpus=2, workers=2, topology=Topology.SAME_NVLINK))
    assert placed == [("x", (4, 5)), ("x", (6, 7))]


def test_frag_pack_keeps_unpinned_pods_off_the_model_pinned_pods_need() -> None:
    typ = TypicalShapes((Shape(0, 1000, 1, ("T4",)), Shape(0, 1000, 2, ())), (0.5, 0.5))
    chosen = set()
    for seed in range(6):
        nodes = [make_node("t", gpus=4, model="T4"), make_node("h", gpus=4, model="H100")]
        state = make_state(nodes, "frag_pack", seed=seed, typical=typ)
        occupy(state, "h", {0: 0, 1: 0})  # h: two free H100s; t: four free T4s
        # FGD's gain is 0 on both nodes (a tie left to the random rank); the T4 scarcity charge
        # (weight 2/3 per milli-GPU) sends the unpinned pod to h every time
        chosen.add(launch(state, make_job("any"))[0])
    assert chosen == {("h", (2,))}
    fgd = {launch(make_state_with(seed, typ), make_job("any"))[0][0] for seed in range(6)}
    assert fgd == {"t", "h"}  # plain FGD goes either way


def make_state_with(seed: int, typ: TypicalShapes):  # type: ignore[no-untyped-def]
    state = make_state(
        [make_node("t", gpus=4, model="T4"), make_node("h", gpus=4, model="H100")],
        "fgd",
        seed=seed,
        typical=typ,
    )
    occupy(state, "h", {0: 0, 1: 0})
    return state
