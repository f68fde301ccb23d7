"""Data residency in the live service: the fleet's regions, the config's ``residency`` rules
checked against them, a spec's ``data_region`` checked and turned into the core job's
``worker.regions``, and the service (HTTP and Ray Jobs API) keeping a job in its regions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scheduler.core.model import REGION_LABEL
from scheduler.runtime.api import make_app
from scheduler.runtime.api_server import ServiceBackend
from scheduler.runtime.config import (
    ConfigFileError,
    NodeSpec,
    ServiceConfig,
    fleet_regions,
    load_config,
    parse_fleet,
)
from scheduler.runtime.k8s.inventory import node_spec
from scheduler.runtime.k8s.settings import InventorySettings
from scheduler.runtime.residency import REGION_RULE, Residency
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.spec import parse_spec, to_job
from scheduler.runtime.views import JobState, SpecRejected
from tests.unit.runtime.fake_backend import VISION_TOKEN, make_auth
from tests.unit.runtime.test_service import Clock, FakeCluster, FakeLauncher

F = Path("fleet.yaml")
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "config"
FLEET = parse_fleet(
    {
        "nodes": [
            {"name": "us-0", "gpus": 4, "cpus": 8, "region": "US"},
            {"name": "cn-0", "gpus": 2, "cpus": 8, "labels": {REGION_LABEL: "CN"}},
        ]
    },
    F,
)


def spec(name: str, gpus: int = 2, team: str = "vision", **extra: Any) -> dict[str, Any]:
    return {"name": name, "team": team, "workers": 1, "gpus_per_worker": gpus,
            "entrypoint": "examples.driving_policy:train_loop", **extra}  # fmt: skip


# --- fleet -----------------------------------------------------------------------------------


def test_a_nodes_region_is_its_label_and_region_is_short_for_it() -> None:
    assert [(n.name, n.labels, n.region) for n in FLEET] == [
        ("us-0", ((REGION_LABEL, "US"),), "US"),
        ("cn-0", ((REGION_LABEL, "CN"),), "CN"),
    ]
    assert fleet_regions(FLEET) == ("CN", "US")
    both = {"name": "x", "region": "CN", "labels": {"rack": "r0", REGION_LABEL: "CN"}}
    assert parse_fleet({"nodes": [both]}, F)[0].labels == ((REGION_LABEL, "CN"), ("rack", "r0"))
    assert fleet_regions(parse_fleet({"nodes": [{"name": "plain"}]}, F)) == ()


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"name": "x", "region": "CN", "labels": {REGION_LABEL: "US"}},
            "nodes[0].region: must be the region of labels.gpuyard.io/region ('US'); give one "
            "of them (got 'CN')",
        ),
        ({"name": "x", "region": ""}, f"nodes[0].region: {REGION_RULE} (got '')"),
        (
            {"name": "x", "labels": {REGION_LABEL: "cn north"}},
            f"nodes[0].labels.gpuyard.io/region: {REGION_RULE} (got 'cn north')",
        ),
        (
            {"name": "x", "region": False},
            "nodes[0].region: Input should be a valid string; quote it in YAML (got False)",
        ),
    ],
)
def test_a_bad_node_region_is_named(node: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigFileError) as bad:
        parse_fleet({"nodes": [node]}, F)
    assert str(bad.value) == f"fleet.yaml: {message}"


def test_the_kubernetes_inventory_keeps_a_nodes_region_label() -> None:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81559",
        REGION_LABEL: "CN",
    }
    node = {
        "metadata": {"name": "k1", "labels": labels},
        "status": {"allocatable": {"cpu": "64", "memory": "512Gi"}},
    }
    got = node_spec(node, InventorySettings())
    assert isinstance(got, NodeSpec) and got.region == "CN"


# --- service config --------------------------------------------------------------------------


def test_residency_rules_are_read_in_order_and_checked_against_the_fleet(tmp_path: Path) -> None:
    f = tmp_path / "service.yaml"
    f.write_text("residency: {US: [US], CN: [CN], EU: [US, CN]}\nrequire_data_region: true\n")
    cfg = load_config(f)
    assert cfg.residency == (("US", ("US",)), ("CN", ("CN",)), ("EU", ("US", "CN")))
    assert cfg.require_data_region is True
    assert cfg.residency_for(FLEET) == Residency(
        ("CN", "US"), (("CN", ("CN",)), ("EU", ("CN", "US")), ("US", ("US",))), True
    )
    f.write_text("residency: {CN: [CN], EU: [EU, US]}\n")
    with pytest.raises(ConfigFileError) as bad:
        load_config(f).residency_for(FLEET)
    assert str(bad.value) == (
        f"{f}:1: residency.EU[0]: must be a region of the fleet's nodes: CN, US (got 'EU')"
    )
    plain = parse_fleet({"nodes": [{"name": "a"}]}, F)
    with pytest.raises(ConfigFileError) as bad:
        load_config(f).residency_for(plain)
    assert str(bad.value) == (
        f"{f}:1: residency.CN[0]: must be a region of the fleet's nodes: none: no fleet node "
        "has a gpuyard.io/region label (got 'CN')"
    )


def test_without_rules_each_fleet_region_is_processed_in_itself() -> None:
    residency = ServiceConfig().residency_for(FLEET)
    assert residency == Residency(("CN", "US"), None, False)
    assert residency.allowed() == {"CN": ("CN",), "US": ("US",)}


QUOTE = "Input should be a valid string; quote it in YAML"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "residency: {CN: []}",
            "residency.CN: List should have at least 1 item after validation, not 0 (got [])",
        ),
        ("residency: {CN: CN}", "residency.CN: Input should be a valid list (got 'CN')"),
        (
            "residency: {NO: [CN]}",
            f"residency.False: {QUOTE} (got False)",
        ),
        ("residency: {CN: [CN, 'x y']}", f"residency.CN[1]: {REGION_RULE} (got 'x y')"),
        ("residency: {CN: [CN, CN]}", "residency.CN[1]: give each node region once (got 'CN')"),
        ("residency: [CN]", "residency: Input should be a valid dictionary (got ['CN'])"),
        (
            "require_data_region: 1",
            "require_data_region: Input should be a valid boolean (got 1)",
        ),
    ],
)
def test_bad_residency_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "service.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigFileError) as bad:
        load_config(f)
    assert str(bad.value) == f"{f}:1: {message}"


def test_the_example_residency_config_suits_the_example_fleet() -> None:
    from scheduler.runtime.config import load_fleet

    fleet = load_fleet(EXAMPLES / "fleet-regions.yaml")
    assert [(n.name, n.region) for n in fleet] == [
        ("us-h100-0", "US"), ("us-h100-1", "US"), ("eu-h100", "EU"), ("cn-h20", "CN")
    ]  # fmt: skip
    residency = load_config(EXAMPLES / "residency.yaml").residency_for(fleet)
    assert residency.allowed() == {"CN": ("CN",), "EU": ("EU", "US"), "US": ("US",)}


# --- the spec --------------------------------------------------------------------------------

RULES = Residency(("CN", "US"), (("CN", ("CN",)), ("EU", ("CN", "US")), ("US", ("US",))))


def test_a_data_region_becomes_the_jobs_data_region_and_its_rules_node_regions() -> None:
    parsed = parse_spec(spec("eu", data_region="EU"), "api")
    job = to_job(parsed, "j-1", 0.0, regions=RULES.node_regions(parsed.data_region, "api"))
    assert (job.data_region, job.worker.regions) == ("EU", ("CN", "US"))
    # the default rule (no regions given): the data region itself
    default = to_job(parse_spec(spec("cn", data_region="CN"), "api"), "j-2", 0.0)
    assert (default.data_region, default.worker.regions) == ("CN", ("CN",))
    any_node = parse_spec(spec("any"), "api")
    plain = to_job(any_node, "j-3", 0.0, regions=RULES.node_regions(any_node.data_region, "api"))
    assert (plain.data_region, plain.worker.regions) == ("", ())


def test_an_unknown_or_missing_data_region_is_rejected_naming_the_field() -> None:
    with pytest.raises(SpecRejected) as bad:
        RULES.node_regions("IN", "request body")
    assert bad.value.errors == [
        {"loc": ("data_region",), "input": "IN", "source": "request body",
         "msg": "unknown data region 'IN'; allowed (the service config's residency): CN, EU, US"}
    ]  # fmt: skip
    with pytest.raises(SpecRejected) as bad:
        Residency(("CN", "US")).node_regions("EU", "api")
    assert bad.value.errors[0]["msg"] == "unknown data region 'EU'; allowed (the fleet): CN, US"
    with pytest.raises(SpecRejected) as bad:
        Residency().node_regions("EU", "api")
    assert bad.value.errors[0]["msg"] == (
        "unknown data region 'EU'; allowed (the fleet): none: no fleet node carries the label "
        "gpuyard.io/region"
    )
    with pytest.raises(SpecRejected) as bad:
        Residency(("CN", "US"), require=True).node_regions(None, "api")
    assert bad.value.errors == [
        {"loc": ("data_region",), "input": None, "source": "api",
         "msg": "required field is missing: this service requires the region where a job's "
                "data lives (require_data_region); allowed (the fleet): CN, US"}
    ]  # fmt: skip
    assert Residency(require=True).node_regions(None, "api") == ()  # a fleet without regions


def test_a_data_region_that_is_not_a_region_name_is_rejected_by_the_spec() -> None:
    with pytest.raises(SpecRejected) as bad:
        parse_spec(spec("x", data_region="cn north"), "api")
    assert bad.value.errors == [
        {"loc": ("data_region",), "msg": REGION_RULE, "input": "cn north", "source": "api"}
    ]
    with pytest.raises(SpecRejected) as bad:
        parse_spec(spec("x", data_region=86), "api")
    assert [(e["loc"], e["input"]) for e in bad.value.errors] == [(("data_region",), 86)]


# --- the service -----------------------------------------------------------------------------


def service(tmp_path: Path, **cfg: Any) -> tuple[SchedulerService, FakeLauncher, Clock]:
    launcher, cluster, clock = FakeLauncher(), FakeCluster(), Clock()
    cluster.alive = {n.name for n in FLEET}
    conf = ServiceConfig(state_dir=str(tmp_path), preemption=False, **cfg)
    svc = SchedulerService(conf, FLEET, launcher, cluster, simulated=True, clock=clock)
    svc.step()
    return svc, launcher, clock


def test_a_cn_job_waits_for_the_cn_node_while_the_us_node_is_idle(tmp_path: Path) -> None:
    svc, launcher, clock = service(tmp_path)
    first = svc.submit(spec("cn-a", data_region="CN"))
    assert [p.node for p in first.placement] == ["cn-0"] and first.data_region == "CN"
    second = svc.submit(spec("cn-b", data_region="CN"))
    assert (second.state, second.code) == (JobState.PENDING, "WAIT_CAPACITY")
    assert svc.core.jobs[second.job_id].worker.regions == ("CN",)
    launcher.of(first.job_id)[0].end("succeeded")
    clock.t += 5
    svc.step()
    ran = svc.get_job(second.job_id)
    assert ran.state is JobState.RUNNING and [p.node for p in ran.placement] == ["cn-0"]
    (run,) = launcher.of(second.job_id)
    assert run.req is not None and [w.ray_node_id for w in run.req.workers] == ["id-cn-0"]


def test_the_service_rejects_an_unknown_region_and_one_no_allowed_node_could_hold(
    tmp_path: Path,
) -> None:
    svc, *_ = service(tmp_path, residency=(("CN", ("CN",)), ("EU", ("US",))))
    with pytest.raises(SpecRejected) as bad:
        svc.submit(spec("in", data_region="IN"))
    assert bad.value.errors[0]["loc"] == ("data_region",)
    assert bad.value.errors[0]["msg"].endswith("allowed (the service config's residency): CN, EU")
    eu = svc.submit(spec("eu", data_region="EU"))
    assert eu.job_id == "job-000001" and [p.node for p in eu.placement] == ["us-0"]
    # 4 GPUs: the US node has them, but CN's only node has 2: the core's never-fits reason
    big = svc.submit(spec("big", gpus=4, data_region="CN"))
    assert (big.state, big.reason) == (
        JobState.REJECTED,
        "no node in region CN has 1000 CPU milli, 4096 MiB and 4 GPU(s)",
    )
    assert svc.get_job(big.job_id).data_region == "CN"


def test_require_data_region_refuses_a_spec_without_one(tmp_path: Path) -> None:
    svc, *_ = service(tmp_path, require_data_region=True)
    with pytest.raises(SpecRejected) as bad:
        svc.submit(spec("nowhere"))
    assert bad.value.errors[0]["loc"] == ("data_region",)
    assert svc.submit(spec("us", data_region="US")).placement[0].node == "us-0"


def test_http_and_ray_jobs_api_submissions_name_the_field(tmp_path: Path) -> None:
    svc, *_ = service(tmp_path)
    api = TestClient(make_app(ServiceBackend(svc), make_auth()))
    auth = {"Authorization": f"Bearer {VISION_TOKEN}"}
    r = api.post("/v1/jobs", json=spec("x", data_region="IN"), headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": ["body", "data_region"], "input": "IN", "source": "request body",
         "msg": "unknown data region 'IN'; allowed (the fleet): CN, US"}
    ]  # fmt: skip
    r = api.post("/v1/jobs", json=spec("ok", data_region="CN"), headers=auth)
    assert r.status_code == 201 and r.json()["data_region"] == "CN"
    assert r.json()["placement"][0]["node"] == "cn-0"
    ray = {"entrypoint": "python train.py", "entrypoint_num_gpus": 2,
           "metadata": {"gpuyard.data_region": "IN"}}  # fmt: skip
    r = api.post("/api/jobs/", json=ray, headers=auth)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "metadata", "gpuyard.data_region"]
    assert error["msg"] == "unknown data region 'IN'; allowed (the fleet): CN, US"
    ray["metadata"] = {"gpuyard.data_region": "US"}
    r = api.post("/api/jobs/", json=ray, headers=auth)
    assert r.status_code == 200, r.text
    job = svc.get_job(r.json()["job_id"])
    assert (job.data_region, [p.node for p in job.placement]) == ("US", ["us-0"])
    assert svc.core.jobs[job.job_id].worker.regions == ("US",)


def test_gpuyard_job_shows_the_data_region() -> None:
    from rich.console import Console

    from scheduler.cli.jobs import _print_job
    from scheduler.runtime.views import JobView

    view = JobView(job_id="job-000001", name="x", team="vision", priority=0,
                   state=JobState.PENDING, reason="waiting", submitted_at_s=0.0)  # fmt: skip
    for region, shown in ((None, False), ("CN", True)):
        console = Console(record=True, width=100)
        _print_job(view.model_copy(update={"data_region": region}), console)
        rows = [
            [c.strip() for c in line.split("│")[1:-1]]
            for line in console.export_text().splitlines()
        ]
        assert (["data region", "CN"] in rows) is shown
        assert ["priority", "0"] in rows
