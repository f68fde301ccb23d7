"""The pure remediation decisions: cordon, hysteresis, the share limit, ownership."""

from scheduler.runtime.k8s.remediation import (
    Cordon,
    Memory,
    NodeHealth,
    NodeState,
    Refuse,
    Uncordon,
    cordon_limit,
    decide,
    health_from_view,
    node_state,
    taint_value,
)
from scheduler.runtime.k8s.settings import RemediationSettings
from tests.unit.k8s.nodes import gpu_node, node_view

POLICY = RemediationSettings(
    max_cordoned_share=0.25, min_cordon_allowed=1, healthy_checks=3, healthy_for_s=60.0
)
BAD = NodeHealth("n0", ("GPU 3: xid 79",))


def fleet(n: int, **states: NodeState) -> dict[str, NodeState]:
    out = {f"n{i}": NodeState(f"n{i}") for i in range(n)}
    out.update(states)
    return out


def test_an_unhealthy_node_is_cordoned_once() -> None:
    actions, mem = decide(0.0, [BAD], fleet(8), Memory(), POLICY)
    assert actions == [Cordon("n0", "GPU 3: xid 79")]
    owned = fleet(8, n0=NodeState("n0", unschedulable=True, ours=True, tainted=True))
    assert decide(10.0, [BAD], owned, mem, POLICY)[0] == []


def test_a_half_undone_cordon_of_ours_is_redone() -> None:
    half = fleet(8, n0=NodeState("n0", unschedulable=False, ours=True, tainted=True))
    assert decide(0.0, [BAD], half, Memory(), POLICY)[0] == [Cordon("n0", "GPU 3: xid 79")]


def test_give_back_needs_n_healthy_checks_spanning_m_seconds() -> None:
    owned = fleet(8, n0=NodeState("n0", unschedulable=True, ours=True, tainted=True))
    ok = [NodeHealth("n0")]
    mem = Memory()
    for t in (0.0, 10.0, 20.0):  # 3 checks but only 20 s
        actions, mem = decide(t, ok, owned, mem, POLICY)
        assert actions == []
    actions, mem = decide(60.0, ok, owned, mem, POLICY)
    assert actions == [Uncordon("n0", "GPUs healthy for 4 checks over 60 s")]
    assert mem.streaks == {}


def test_an_unhealthy_check_restarts_the_streak() -> None:
    owned = fleet(8, n0=NodeState("n0", unschedulable=True, ours=True, tainted=True))
    mem = Memory()
    _, mem = decide(0.0, [NodeHealth("n0")], owned, mem, POLICY)
    _, mem = decide(10.0, [NodeHealth("n0")], owned, mem, POLICY)
    _, mem = decide(20.0, [BAD], owned, mem, POLICY)
    assert "n0" not in mem.streaks
    for t in (100.0, 110.0):
        actions, mem = decide(t, [NodeHealth("n0")], owned, mem, POLICY)
        assert actions == []
    assert mem.streaks["n0"] == (2, 100.0)


def test_never_uncordons_a_node_it_did_not_cordon() -> None:
    theirs = fleet(4, n0=NodeState("n0", unschedulable=True, ours=False))
    mem = Memory()
    for t in range(0, 1000, 100):
        actions, mem = decide(float(t), [NodeHealth("n0")], theirs, mem, POLICY)
        assert actions == []
    # and an unhealthy node someone else cordoned is theirs to manage
    assert decide(0.0, [BAD], theirs, Memory(), POLICY)[0] == []


def test_opted_out_and_unknown_nodes_are_left_alone() -> None:
    nodes = fleet(4, n0=NodeState("n0", opted_out=True))
    assert decide(0.0, [BAD, NodeHealth("zz", ("GPU 0: ecc",))], nodes, Memory(), POLICY)[0] == []


def test_the_share_limit_refuses_and_records_why_once() -> None:
    assert cordon_limit(8, POLICY) == 2 and cordon_limit(3, POLICY) == 1
    strict = RemediationSettings(max_cordoned_share=0.25, min_cordon_allowed=0)
    assert cordon_limit(3, strict) == 0
    sick = [NodeHealth(f"n{i}", ("GPU 0: xid 79",) * (1 + (i == 2))) for i in range(4)]
    actions, mem = decide(0.0, sick, fleet(8), Memory(), POLICY)
    # worst first (n2 has two failing readings), then by name; the rest refused
    assert actions[:2] == [
        Cordon("n2", "GPU 0: xid 79; GPU 0: xid 79"),
        Cordon("n0", "GPU 0: xid 79"),
    ]
    assert [type(a) for a in actions[2:]] == [Refuse, Refuse]
    assert actions[2] == Refuse(
        "n1",
        "not cordoned although GPU 0: xid 79: 2 of 8 GPU nodes are already cordoned by "
        "gpuyard, the limit is 2",
    )
    owned = fleet(8, **{n: NodeState(n, True, True, True) for n in ("n0", "n2")})
    actions, mem = decide(10.0, sick, owned, mem, POLICY)
    assert actions == []  # refusals are recorded once per reason


def test_a_give_back_frees_room_in_the_same_check() -> None:
    owned = fleet(4, n0=NodeState("n0", True, True, True))
    mem = Memory(streaks={"n0": (2, 0.0)})
    actions, _ = decide(
        100.0, [NodeHealth("n0"), NodeHealth("n1", ("GPU 1: ecc",))], owned, mem, POLICY
    )
    assert actions == [
        Uncordon("n0", "GPUs healthy for 3 checks over 100 s"),
        Cordon("n1", "GPU 1: ecc"),
    ]


def test_health_from_node_views() -> None:
    triggers = ("xid", "ecc", "drain", "operator")
    assert health_from_view(node_view("a"), triggers) == NodeHealth("a")
    assert health_from_view(node_view("a", alive=False), triggers) is None
    assert health_from_view(node_view("a", {1: ["hot"]}), triggers) == NodeHealth(
        "a"
    )  # not a trigger
    got = health_from_view(
        node_view("a", {1: ["ecc", "xid 48"], 5: ["operator"]}, off=["drain"]), triggers
    )
    assert got == NodeHealth(
        "a", ("node drained", "GPU 1: ecc", "GPU 1: xid 48", "GPU 5: operator")
    )


def test_node_state_and_taint_value() -> None:
    n = gpu_node("a")
    n["metadata"]["annotations"] = {"gpuyard.io/cordoned-by": "gpuyard"}
    n["spec"] = {
        "unschedulable": True,
        "taints": [{"key": "gpuyard.io/gpu-unhealthy", "effect": "NoSchedule"}],
    }
    assert node_state(n) == NodeState("a", True, True, True, False)
    n2 = gpu_node("b", **{"gpuyard.io/remediation": "off"})
    assert node_state(n2) == NodeState("b", opted_out=True)
    assert taint_value("GPU 3: xid 79; GPU 4: ecc") == "GPU-3-xid-79-GPU-4-ecc"
    assert len(taint_value("x" * 100)) == 63 and taint_value("::") == "unhealthy"
