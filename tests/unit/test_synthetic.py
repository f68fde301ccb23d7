"""Synthetic mixes (``simulations/synthetic.py``) and ``gpuyard simulate mixes``: seeded and
byte-for-byte reproducible, true to their own spec, loadable through the Alibaba loaders
unchanged, and the harness's CSV columns exactly as documented."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.cli import main
from simulations.mixes_experiment import MIXES_COLUMNS, summary_columns
from simulations.synthetic import (
    Mix,
    MixSpec,
    apportion,
    families,
    family,
    generate,
    write_mix,
)
from simulations.traces.alibaba import TracePod, load_nodes, load_pods


def fits_somewhere(mix: Mix, pod: TracePod) -> bool:
    return any(
        len(n.gpus) >= pod.num_gpu
        and n.cpu_milli >= pod.cpu_milli
        and n.memory_mib >= pod.memory_mib
        and (not pod.gpu_spec or n.gpus[0].model in pod.gpu_spec)
        for n in mix.nodes
    )


def test_same_spec_and_seed_give_identical_files_and_another_seed_does_not(
    tmp_path: Path,
) -> None:
    spec = family("hard_case", seed=42)
    a = write_mix(generate(spec), tmp_path / "a")
    b = write_mix(generate(spec), tmp_path / "b")
    c = write_mix(generate(replace(spec, seed=43)), tmp_path / "c")
    assert [p.name for p in a] == ["hard_case_s42_nodes.csv", "hard_case_s42_pods.csv"]
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    for x, z in zip(a, c, strict=True):
        assert x.read_bytes() != z.read_bytes()


def test_families_are_many_distinct_and_cover_the_asked_cases() -> None:
    names = [s.name for s in families()]
    assert len(names) >= 20 and len(set(names)) == len(names)
    for must in ("alibaba_like", "hard_case", "whole_node_gangs", "sharing_heavy", "cpu_bound",
                 "memory_bound", "single_model", "many_models", "pinned_heavy", "small_fleet",
                 "large_fleet"):  # fmt: skip
        assert must in names
    sizes = [s.nodes for s in families()]
    assert min(sizes) == 64 and max(sizes) == 2000
    assert all(s.seed == 7 for s in families(7))
    with pytest.raises(ValueError, match="unknown mix 'nope'; known: alibaba_like"):
        family("nope")


@pytest.mark.parametrize("spec", families(42), ids=lambda s: s.name)
def test_every_family_keeps_its_own_constraints(spec: MixSpec) -> None:
    mix = generate(spec)
    # fleet: node counts by size, models per size, CPU and memory scaled with GPUs
    assert len(mix.nodes) == spec.nodes
    by_size = Counter(len(n.gpus) for n in mix.nodes)
    total_w = sum(w for _, w in spec.node_sizes)
    for g, w in spec.node_sizes:
        assert abs(by_size[g] / spec.nodes - w / total_w) <= 1 / spec.nodes + 1e-9
    for n in mix.nodes:
        g = len(n.gpus)
        assert {x.model for x in n.gpus} <= {m for m, _ in spec.size_models[g]}
        assert len({x.model for x in n.gpus}) == 1
        assert (n.cpu_milli, n.memory_mib) == (
            g * spec.cpu_per_gpu_milli,
            g * spec.memory_per_gpu_mib,
        )
    fleet_models = {n.gpus[0].model for n in mix.nodes}
    # pods: class shares, sizes and fractions from the spec, demand as asked
    gpu_pods = [p for p in mix.pods if p.num_gpu]
    one = [p for p in gpu_pods if p.num_gpu == 1]
    demand = sum(p.gpu_request_milli for p in gpu_pods)
    gang = sum(p.gpu_request_milli for p in gpu_pods if p.num_gpu > 1)
    assert abs(gang / demand - spec.gang_share) <= 0.03
    assert {p.num_gpu for p in gpu_pods if p.num_gpu > 1} <= {g for g, _ in spec.gang_sizes}
    shared = [p for p in one if p.gpu_milli < 1000]
    assert abs(len(shared) / max(1, len(one)) - spec.sharing_share) <= 0.01
    assert {p.gpu_milli for p in shared} <= {m for m, _ in spec.sharing_milli}
    assert abs(1 - len(gpu_pods) / len(mix.pods) - spec.cpu_only_share) <= 0.01
    assert spec.demand_pct - 1 <= demand / mix.total_gpus / 10 <= spec.demand_pct + 3
    pinned = [p for p in gpu_pods if p.gpu_spec]
    assert abs(len(pinned) / len(gpu_pods) - spec.pinned_share) <= 0.01
    assert all(len(p.gpu_spec) == 1 and p.gpu_spec[0] in fleet_models for p in pinned)
    assert not any(p.gpu_spec for p in mix.pods if not p.num_gpu)
    if spec.pin_models:  # a pod goes to the preferred models whenever one can hold it
        preferred = {m for m, _ in spec.pin_models}
        assert sum(p.gpu_spec[0] in preferred for p in pinned) >= 0.9 * len(pinned)
    # CPU and memory per requested GPU, relative to the nodes' (caps only lower it)
    for pressure, ask, per in (
        (spec.cpu_pressure, [p.cpu_milli for p in gpu_pods], spec.cpu_per_gpu_milli),
        (spec.memory_pressure, [p.memory_mib for p in gpu_pods], spec.memory_per_gpu_mib),
    ):
        ratio = np.mean(
            [a / (p.gpu_request_milli / 1000 * per) for a, p in zip(ask, gpu_pods, strict=True)]
        )
        assert abs(ratio - pressure) <= 0.1 * pressure
    # no pod is larger than the largest node it may use
    for p in mix.pods:
        assert fits_somewhere(mix, p), p


@pytest.mark.parametrize("spec", families(42), ids=lambda s: s.name)
def test_the_csv_files_load_back_to_the_same_mix(spec: MixSpec, tmp_path: Path) -> None:
    mix = generate(spec)
    nodes_csv, pods_csv = write_mix(mix, tmp_path)
    assert tuple(load_nodes(nodes_csv)) == mix.nodes
    assert tuple(load_pods(pods_csv)) == mix.pods


def test_apportion_splits_exactly_by_largest_remainder() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [0.5, 0.25, 0.25]) == [3, 2, 2]  # 3.5, 1.75, 1.75
    assert sum(apportion(1213, [0.509, 0.045, 0.427, 0.02])) == 1213


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": 0}, "nodes=0 is not allowed (at least 1)"),
        ({"gang_share": 1.5}, "gang_share=1.5 is not allowed (a fraction in 0..1)"),
        ({"gang_sizes": ((16, 1.0),)}, "gang_sizes=((16, 1.0),) is not allowed (distinct values in 2..8"),
        ({"sharing_milli": ((1000, 1.0),)}, "sharing_milli=((1000, 1.0),) is not allowed"),
        ({"pin_models": (("B200", 1.0),)}, "pin_models=(('B200', 1.0),) is not allowed (models of the fleet"),
        ({"node_sizes": ((8, 1.0), (3, 1.0))}, "models=") ,
        ({"cpu_pressure": 0.0}, "cpu_pressure=0.0 is not allowed (a number > 0)"),
        ({"name": "a b"}, "name='a b' is not allowed"),
    ],
)  # fmt: skip
def test_a_bad_spec_names_the_field_value_and_what_is_allowed(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=r"^mix '.*': ") as err:
        replace(MixSpec("m"), **change)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_simulate_mixes_writes_exactly_the_documented_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mixes"
    argv = ["simulate", "mixes", "--policy", "best_fit,fgd,frag_pack", "--mixes", "small_fleet",
            "--seeds", "42-43", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    with open(out / "mixes.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == MIXES_COLUMNS == (
        "mix", "policy", "seed", "unallocated_pct_at_100", "unallocated_pct_at_130", "wall_s",
    )  # fmt: skip
    assert [r[:3] for r in rows[1:]] == [
        ["small_fleet", p, s] for p in ("best_fit", "fgd", "frag_pack") for s in ("42", "43")
    ]
    u100 = {(r[1], r[2]): float(r[3]) for r in rows[1:]}
    with open(out / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert tuple(summary[0]) == summary_columns(["best_fit", "fgd", "frag_pack"]) == (
        "mix", "seeds", "best_fit_at_100", "fgd_at_100", "frag_pack_at_100", "best_of_six",
        "best_of_six_at_100", "fgd_gap", "frag_pack_gap",
    )  # fmt: skip
    (row,) = summary
    med = {
        p: float(np.median([u100[(p, "42")], u100[(p, "43")]]))
        for p in ("best_fit", "fgd", "frag_pack")
    }
    best = min(("best_fit", "fgd"), key=lambda p: med[p])  # frag_pack is not one of the six
    assert row["mix"] == "small_fleet" and row["seeds"] == "2" and row["best_of_six"] == best
    assert float(row["best_of_six_at_100"]) == pytest.approx(med[best], abs=0.005)
    assert float(row["fgd_gap"]) == pytest.approx(med["fgd"] - med[best], abs=0.01)
    assert float(row["frag_pack_gap"]) == pytest.approx(med["frag_pack"] - med[best], abs=0.01)
    assert "wrote" in capsys.readouterr().out


def test_a_mix_written_as_csv_replays_through_simulate_packing_to_the_same_figures(
    tmp_path: Path,
) -> None:
    base = ["--mixes", "hard_case", "--nodes", "24", "--seeds", "42"]
    assert main(["simulate", "mix-csv", *base, "--out", str(tmp_path / "csv")]) == 0
    assert main(["simulate", "mixes", *base, "--policy", "best_fit,fgd", "--quiet",
                 "--out", str(tmp_path / "mixes")]) == 0  # fmt: skip
    assert main(["simulate", "packing", "--nodes", str(tmp_path / "csv" / "hard_case_s42_nodes.csv"),
                 "--trace", str(tmp_path / "csv" / "hard_case_s42_pods.csv"), "--policy", "best_fit,fgd",
                 "--seeds", "42", "--out", str(tmp_path / "packing"), "--quiet"]) == 0  # fmt: skip
    with open(tmp_path / "mixes" / "mixes.csv", newline="") as f:
        ours = [
            (r["policy"], r["unallocated_pct_at_100"], r["unallocated_pct_at_130"])
            for r in csv.DictReader(f)
        ]
    with open(tmp_path / "packing" / "summary.csv", newline="") as f:
        theirs = [
            (r["policy"], r["unallocated_pct_at_100"], r["unallocated_pct_at_130"])
            for r in csv.DictReader(f)
        ]
    assert ours == theirs


def test_unknown_mixes_and_a_missing_out_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "mixes", "--mixes", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown mix 'nope'" in capsys.readouterr().err
    assert main(["simulate", "mixes", "--mixes", "hard_case"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    assert main(["simulate", "mixes", "--list"]) == 0
    assert "hard_case" in capsys.readouterr().out


MODELS = ("H800", "A100", "L40S", "T4", "X1")


@st.composite
def mix_specs(draw: st.DrawFn) -> MixSpec:
    sizes = draw(st.lists(st.integers(1, 16), min_size=1, max_size=4, unique=True))
    weights = [draw(st.floats(0.05, 1.0)) for _ in sizes]
    models = tuple(
        (g, tuple((m, draw(st.floats(0.1, 1.0))) for m in draw(
            st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True))))
        for g in sizes
    )  # fmt: skip
    largest = max(sizes)
    gang_sizes: tuple[tuple[int, float], ...] = ((2, 1.0),)
    gang_share = 0.0
    if largest >= 2:
        gs = draw(st.lists(st.integers(2, largest), min_size=1, max_size=4, unique=True))
        gang_sizes = tuple((g, draw(st.floats(0.1, 1.0))) for g in gs)
        gang_share = draw(st.floats(0.0, 1.0))
    fleet = sorted({m for _, ms in models for m, _ in ms})
    pins = draw(st.lists(st.sampled_from(fleet), max_size=2, unique=True))
    return MixSpec(
        name="prop",
        seed=draw(st.integers(0, 2**32 - 1)),
        nodes=draw(st.integers(1, 30)),
        node_sizes=tuple(zip(sizes, weights, strict=True)),
        models=models,
        cpu_per_gpu_milli=draw(st.integers(1, 64_000)),
        memory_per_gpu_mib=draw(st.integers(1, 1 << 20)),
        gang_share=gang_share,
        gang_sizes=gang_sizes,
        sharing_share=draw(st.floats(0.0, 1.0)),
        sharing_milli=tuple(
            (m, 1.0)
            for m in draw(st.lists(st.integers(1, 999), min_size=1, max_size=3, unique=True))
        ),
        pinned_share=draw(st.floats(0.0, 1.0)),
        pin_models=tuple((m, 1.0) for m in pins),
        cpu_only_share=draw(st.floats(0.0, 0.9)),
        cpu_pressure=draw(st.floats(0.01, 4.0)),
        memory_pressure=draw(st.floats(0.01, 4.0)),
        demand_pct=draw(st.floats(1.0, 200.0)),
        pods=draw(st.sampled_from([0, 0, 1, 7, 50])),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=mix_specs())
def test_any_valid_spec_generates_files_the_loaders_read_back_exactly(
    spec: MixSpec, tmp_path: Path
) -> None:
    mix = generate(spec)
    nodes_csv, pods_csv = write_mix(mix, tmp_path, stem="prop")
    assert tuple(load_nodes(nodes_csv)) == mix.nodes
    assert tuple(load_pods(pods_csv)) == mix.pods
    assert len(mix.nodes) == spec.nodes and mix.pods
    assert any(p.num_gpu for p in mix.pods)
    for p in mix.pods:
        assert fits_somewhere(mix, p), p
