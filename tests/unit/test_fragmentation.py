"""FGD fragmentation on hand-built nodes, with values worked out by hand."""

from __future__ import annotations

import numpy as np

from scheduler.core.model import WorkerRequest
from scheduler.core.placement.fleet import Fleet
from scheduler.core.placement.fragmentation import FragModel, Shape, TypicalShapes
from tests.builders import make_node


def test_node_fragmentation_matches_the_definition() -> None:
    fleet = Fleet([make_node("a", gpus=4, cpu_milli=8000), make_node("b", gpus=2, model="T4")])
    fleet.gpu_free[0] = [1000, 500, 200, 0]  # idle 1700
    typ = TypicalShapes(
        (
            Shape(1000, 600, 1, ()),  # fits GPU 0 only: frag = 500 + 200 = 700
            Shape(1000, 1000, 2, ()),  # needs 2 whole GPUs: does not fit: frag = 1700
            Shape(1000, 0, 0, ()),  # CPU-only: FGD counts all idle: 1700
            Shape(1000, 100, 1, ("T4",)),  # a's GPUs are H100: no access: 1700
        ),
        (0.4, 0.3, 0.2, 0.1),
    )
    model = FragModel(fleet, typ)
    f = model.frag(np.array([0, 1]))
    assert f[0] == 0.4 * 700 + 0.3 * 1700 + 0.2 * 1700 + 0.1 * 1700
    # b: two whole T4 GPUs, idle 2000; 600 fits (0), 2x1000 fits (0), CPU-only 2000, T4 100 fits (0)
    assert f[1] == 0.2 * 2000
    fleet.cpu_free[0] = 500  # no CPU for any shape: everything idle is fragment
    fleet.version[0] += 1
    assert model.frag(np.array([0]))[0] == 1700.0


def test_frag_after_share_agrees_with_recomputing() -> None:
    fleet = Fleet([make_node("a", gpus=3)])
    fleet.gpu_free[0] = [1000, 700, 300]
    typ = TypicalShapes((Shape(0, 600, 1, ()), Shape(0, 300, 1, ())), (0.5, 0.5))
    model = FragModel(fleet, typ)
    after = model.frag_after_share(np.array([0]), 0, 0, 400)[0]
    for g, expect_left in enumerate(([600, 700, 300], [1000, 300, 300], None)):
        if expect_left is None:
            assert after[g] == np.inf  # 400 does not fit GPU 2 (300 free)
            continue
        probe = Fleet([make_node("p", gpus=3)])
        probe.gpu_free[0] = expect_left
        assert after[g] == FragModel(probe, typ).frag(np.array([0]))[0]


def test_typical_shapes_cover_95_percent_and_sum_to_one() -> None:
    reqs = (
        [WorkerRequest(1000, 0, 1, 500)] * 90
        + [WorkerRequest(0, 0, 0)] * 6
        + [WorkerRequest(0, 0, 8)] * 4
    )
    typ = TypicalShapes.from_requests(reqs)
    assert typ.shapes == (Shape(1000, 500, 1, ()), Shape(0, 0, 0, ()))
    assert typ.weights == (90 / 96, 6 / 96)
