"""The kustomize overlays, rendered by a real kustomize (tests/k8s_tools.py) and validated
offline: built-in kinds against Kubernetes' OpenAPI schemas (kubernetes-validate, strict:
unknown fields are errors), KubeRay custom resources against the CRDs' openAPIV3Schema in
../shared/k8s/crds (made strict the same way), the ServiceMonitor against the fields of
monitoring.coreos.com/v1 it uses. Then what the manifests must say: least-privilege RBAC,
GPU worker groups, the config the service loads, and where checkpoints go: a ReadWriteMany
claim mounted at one path in the head and every worker group, or (s3-checkpoints) S3 with
the credentials from a Secret and no shared volume."""

from __future__ import annotations

import copy
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scheduler.files.priority_file import load_priority_classes
from scheduler.files.quota_file import load_quotas
from scheduler.runtime.auth import load_token_file
from scheduler.runtime.config import ServiceConfig, load_config
from scheduler.runtime.k8s.settings import parse_k8s_settings
from tests.k8s_tools import kustomize_command, render
from tests.unit.k8s.test_monitoring import prometheus_rule_errors

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT.parent / "shared" / "k8s" / "crds"
K8S_VERSION = "1.33"
OVERLAYS = ("dev-cpu", "gpu-prod", "s3-checkpoints")
SHARED = ("dev-cpu", "gpu-prod")  # checkpoints on the RWX claim gpuyard-checkpoints
CHECKPOINTS = "/mnt/gpuyard/checkpoints"  # storage_path, and the claim's mount everywhere
CLAIM = "gpuyard-checkpoints"
CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume")
STORAGE = {
    "dev-cpu": CHECKPOINTS,
    "gpu-prod": CHECKPOINTS,
    "s3-checkpoints": "s3://gpuyard/checkpoints",
}
S3_ENV = {  # name -> optional (secretKeyRef into the Secret gpuyard-s3)
    "AWS_ACCESS_KEY_ID": False,
    "AWS_SECRET_ACCESS_KEY": False,
    "AWS_ENDPOINT_URL": True,  # MinIO, Ceph RGW...; absent for AWS S3
    "AWS_DEFAULT_REGION": True,
}

# ServiceMonitor (monitoring.coreos.com/v1): the fields used here, strict, from the
# Prometheus Operator API reference (no CRD of it is available offline)
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "additionalProperties": False, "properties": {
                    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                    "any": {"type": "boolean"}}},
                "jobLabel": {"type": "string"},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "port": {"type": "string"}, "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": {"type": "string", "pattern": "^(0|(([0-9]+)(ms|s|m|h))+)$"},
                        "scrapeTimeout": {"type": "string"}}}},
            },
        },
    },
}  # fmt: skip


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(render(ROOT / "k8s" / "overlays" / overlay)) if d)


def strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever it lists properties and does not
    preserve unknown fields: what the API server does with fieldValidation=Strict."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    return schema


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict openAPIV3Schema of ``kind`` at ``api_version`` from its CRD file."""
    group, version = api_version.split("/")
    path = CRDS / f"{group}_{kind.lower()}s.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 60,000 lines
    crd = yaml.load(path.read_text(), Loader=loader)
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    return dict(strict(schema))


def by_kind(
    docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None
) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def test_which_kustomize() -> None:
    cmd, what = kustomize_command()
    print(f"kustomize: {what}: {' '.join(cmd)}")
    assert cmd[-1] in ("kustomize", "build")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_validates(overlay: str) -> None:
    if not CRDS.is_dir():
        pytest.fail(f"the KubeRay CRDs are not at {CRDS} (../shared/k8s/crds)")
    docs = rendered(overlay)
    kinds = sorted(d["kind"] for d in docs)
    claims = ["PersistentVolumeClaim"] * (2 if overlay in SHARED else 1)  # state, checkpoints
    volumes = ["PersistentVolume"] if overlay == "dev-cpu" else []  # kind: a host directory
    assert kinds == sorted([
        "Namespace", "ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "Role", "RoleBinding", "ConfigMap", *claims, *volumes, "RayCluster", "Service",
        "Service", "PodDisruptionBudget", "PodDisruptionBudget", "NetworkPolicy",
        "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ConfigMap"])  # fmt: skip
    # (../monitoring: the alerts and the Grafana dashboard's ConfigMap, test_monitoring.py)
    for doc in docs:
        where = f"{overlay}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].startswith("ray.io/"):
            schema = crd_schema(doc["apiVersion"], doc["kind"])
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
            assert not errors, f"{where}: " + "; ".join(
                f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
            )
        elif doc["kind"] == "PrometheusRule":  # the Prometheus Operator's CRD schema
            assert not prometheus_rule_errors(doc), f"{where}: {prometheus_rule_errors(doc)}"
        elif doc["apiVersion"].startswith("monitoring.coreos.com/"):
            jsonschema.validate(doc, SERVICE_MONITOR)
        else:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == "gpuyard", where


def test_strict_validation_catches_a_misspelt_field() -> None:
    (rc,) = by_kind(rendered("gpu-prod"), "RayCluster")
    bad = copy.deepcopy(rc)
    bad["spec"]["workerGroupSpecs"][0]["replica"] = 3
    schema = crd_schema("ray.io/v1", "RayCluster")
    assert any("replica" in e.message for e in jsonschema.Draft7Validator(schema).iter_errors(bad))
    svc = copy.deepcopy(by_kind(rendered("gpu-prod"), "Service")[0])
    svc["spec"]["port"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, K8S_VERSION, strict=True)


def test_rbac_is_least_privilege() -> None:
    docs = rendered("gpu-prod")
    (cr,) = by_kind(docs, "ClusterRole")
    assert cr["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]}
    ]
    (role,) = by_kind(docs, "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}
    ]
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "gpuyard", "namespace": "gpuyard"}
        ]
    worker_sa = [
        s for s in by_kind(docs, "ServiceAccount") if s["metadata"]["name"] == "gpuyard-ray-worker"
    ]
    assert worker_sa[0]["automountServiceAccountToken"] is False


def test_gpu_worker_groups() -> None:
    (rc,) = by_kind(rendered("gpu-prod"), "RayCluster")
    assert rc["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    groups = {g["groupName"]: g for g in rc["spec"]["workerGroupSpecs"]}
    assert sorted(groups) == ["h100", "h20"]
    for name, product in (("h100", "NVIDIA-H100-80GB-HBM3"), ("h20", "NVIDIA-H20")):
        pod = groups[name]["template"]["spec"]
        assert pod["nodeSelector"] == {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product,
        }
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        assert not any(t["key"].startswith("gpuyard.io/") for t in pod["tolerations"])
        (c,) = pod["containers"]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert c["image"] == "registry.example.com/gpuyard/gpuyard:0.1.0-cu128"
        env = {e["name"]: e for e in c["env"]}
        assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        assert yaml.safe_load(env["RAY_OVERRIDE_LABELS"]["value"]) == {
            "gpuyard.io/node": "$(NODE_NAME)"
        }
        assert groups[name]["labels"] == {"gpuyard.io/gpu-model": name.upper()}
        assert pod["automountServiceAccountToken"] is False
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == "gpuyard"
    ray_head, remediator = head["containers"]
    assert "gpuyard k8s up --address 127.0.0.1:6379" in ray_head["args"][0]
    assert ray_head["envFrom"] == [{"secretRef": {"name": "gpuyard-tokens"}}]
    assert remediator["command"][:3] == ["gpuyard", "k8s", "remediate"]


def test_dev_cpu_has_no_gpus_and_simulates() -> None:
    (rc,) = by_kind(rendered("dev-cpu"), "RayCluster")
    (group,) = rc["spec"]["workerGroupSpecs"]
    assert group["rayStartParams"] == {"num-gpus": "4", "num-cpus": "2"}
    c = group["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"name": "GPUYARD_UP_ARGS", "value": "--simulated"} in head["env"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_is_what_the_service_loads(overlay: str, tmp_path: Path) -> None:
    (cm,) = by_kind(rendered(overlay), "ConfigMap", "gpuyard-config")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    raw = yaml.safe_load(cm["data"]["service.yaml"])
    assert raw["storage_path"] == STORAGE[overlay]
    knows_storage = "storage_path" in {f.name for f in fields(ServiceConfig)}
    if not knows_storage:  # a service from before shared checkpoints: the key is new there
        del raw["storage_path"]
        (tmp_path / "service.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "service.yaml")
    assert (cfg.api_host, cfg.api_port, cfg.state_dir) == ("0.0.0.0", 8000, "/var/lib/gpuyard")
    if knows_storage:
        assert cfg.storage_path == STORAGE[overlay]
    load_quotas(tmp_path / "quotas.yaml")
    load_priority_classes(tmp_path / "priority-classes.yaml")
    settings = parse_k8s_settings(yaml.safe_load(cm["data"]["k8s.yaml"]), tmp_path / "k8s.yaml")
    # the example Secret supplies every token_env the token file names, and nothing else
    secret = yaml.safe_load((ROOT / "k8s" / "base" / "secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    wanted = {e["token_env"] for e in yaml.safe_load(cm["data"]["tokens.yaml"])["tokens"]}
    assert wanted == set(secret["stringData"])
    entries = load_token_file(tmp_path / "tokens.yaml", secret["stringData"])
    assert sorted(e.principal.name for e in entries) == ["mapping", "ops", "perception", "planning"]
    (rc,) = by_kind(rendered(overlay), "RayCluster")
    # the core plans the CPUs and memory the worker pods really get
    for g in rc["spec"]["workerGroupSpecs"]:
        model = g["labels"]["gpuyard.io/gpu-model"]
        pod = settings.inventory.worker_pod[model]
        limits = g["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert str(pod.cpus) == limits["cpu"] and f"{pod.memory_gib:g}Gi" == limits["memory"]


# --- checkpoint storage ----------------------------------------------------------------------


def ray_pods(rc: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group, pod spec, Ray container) of the head and of every worker group."""
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]
    out = [("head", head, next(c for c in head["containers"] if c["name"] == "ray-head"))]
    for g in rc["spec"]["workerGroupSpecs"]:
        pod = g["template"]["spec"]
        out.append(
            (g["groupName"], pod, next(c for c in pod["containers"] if c["name"] == "ray-worker"))
        )
    return out


def claim_mounts(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """Where ``container`` mounts the claim gpuyard-checkpoints."""
    names = {
        v["name"]
        for v in pod.get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == CLAIM
    }
    return [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in names]


@pytest.mark.parametrize("overlay", SHARED)
def test_checkpoints_are_on_a_rwx_claim_mounted_alike_in_the_head_and_every_worker_group(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    claims = {d["metadata"]["name"]: d for d in by_kind(docs, "PersistentVolumeClaim")}
    assert claims[CLAIM]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claims["gpuyard-state"]["spec"]["accessModes"] == ["ReadWriteOnce"]  # the journal
    (rc,) = by_kind(docs, "RayCluster")
    pods = ray_pods(rc)
    assert len(pods) == 1 + len(rc["spec"]["workerGroupSpecs"]) >= 2
    for group, pod, container in pods:
        assert claim_mounts(pod, container) == [CHECKPOINTS], group
        (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == CHECKPOINTS)
        assert not mount.get("readOnly", False), group
        assert pod["securityContext"]["fsGroup"] == 100, group  # the ray user's group writes
    (cm,) = by_kind(docs, "ConfigMap", "gpuyard-config")
    assert yaml.safe_load(cm["data"]["service.yaml"])["storage_path"] == CHECKPOINTS


def test_gpu_prod_names_a_storage_class_for_the_rwx_claim() -> None:
    claims = {
        d["metadata"]["name"]: d for d in by_kind(rendered("gpu-prod"), "PersistentVolumeClaim")
    }
    assert claims[CLAIM]["spec"]["storageClassName"] == "nfs-csi"
    assert "storageClassName" not in claims["gpuyard-state"]["spec"]  # the default class


def test_dev_cpu_shares_one_host_directory_among_the_kind_nodes() -> None:
    docs = rendered("dev-cpu")
    (pv,) = by_kind(docs, "PersistentVolume")
    claim = next(
        d for d in by_kind(docs, "PersistentVolumeClaim") if d["metadata"]["name"] == CLAIM
    )
    assert claim["spec"]["volumeName"] == pv["metadata"]["name"]
    assert claim["spec"]["storageClassName"] == pv["spec"]["storageClassName"]
    assert pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pv["spec"]["capacity"]["storage"] == claim["spec"]["resources"]["requests"]["storage"]
    kind = yaml.safe_load((ROOT / "k8s" / "overlays" / "dev-cpu" / "kind-cluster.yaml").read_text())
    workers = [n for n in kind["nodes"] if n["role"] == "worker"]
    mounts = {
        (m["hostPath"], m["containerPath"]) for n in workers for m in n.get("extraMounts", [])
    }
    assert len(workers) == 2 and all(n.get("extraMounts") for n in workers)
    assert len(mounts) == 1  # every node: the same host directory
    ((_, in_node),) = mounts
    assert pv["spec"]["hostPath"]["path"] == in_node


def test_the_s3_overlay_has_no_shared_volume_and_the_credentials_from_a_secret() -> None:
    docs = rendered("s3-checkpoints")
    assert [d["metadata"]["name"] for d in by_kind(docs, "PersistentVolumeClaim")] == [
        "gpuyard-state"
    ]
    (rc,) = by_kind(docs, "RayCluster")
    for group, pod, container in ray_pods(rc):
        assert claim_mounts(pod, container) == [], group
        assert all(
            v.get("persistentVolumeClaim", {}).get("claimName") != CLAIM for v in pod["volumes"]
        ), group
        assert all(m["mountPath"] != CHECKPOINTS for m in container["volumeMounts"]), group
        env = {e["name"]: e for e in container["env"]}
        for name, optional in S3_ENV.items():
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("gpuyard-s3", name), (group, name)
            assert ref.get("optional", False) is optional, (group, name)
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]
    (remediator,) = (c for c in head["containers"] if c["name"] == "remediator")
    assert not any(e["name"].startswith("AWS_") for e in remediator["env"])  # needs none
    (cm,) = by_kind(docs, "ConfigMap", "gpuyard-config")
    assert yaml.safe_load(cm["data"]["service.yaml"])["storage_path"].startswith("s3://")
    secret = yaml.safe_load(
        (ROOT / "k8s" / "overlays" / "s3-checkpoints" / "secret.example.yaml").read_text()
    )
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    assert secret["metadata"]["name"] == "gpuyard-s3" and set(secret["stringData"]) == set(S3_ENV)


def test_the_s3_overlay_is_gpu_prod_but_for_the_checkpoint_storage() -> None:
    """The same cluster as gpu-prod once the checkpoint volume, its mounts and the S3
    environment are taken out of both; the same config but for storage_path."""

    def without_storage(rc: dict[str, Any]) -> dict[str, Any]:
        rc = copy.deepcopy(rc)
        for _, pod, container in ray_pods(rc):
            pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "checkpoints"]
            container["volumeMounts"] = [
                m for m in container["volumeMounts"] if m["name"] != "checkpoints"
            ]
            container["env"] = [e for e in container["env"] if e["name"] not in S3_ENV]
        return rc

    (prod,) = by_kind(rendered("gpu-prod"), "RayCluster")
    (s3,) = by_kind(rendered("s3-checkpoints"), "RayCluster")
    assert without_storage(s3) == without_storage(prod)
    (prod_cm,) = by_kind(rendered("gpu-prod"), "ConfigMap", "gpuyard-config")
    (s3_cm,) = by_kind(rendered("s3-checkpoints"), "ConfigMap", "gpuyard-config")
    assert {k: v for k, v in s3_cm["data"].items() if k != "service.yaml"} == {
        k: v for k, v in prod_cm["data"].items() if k != "service.yaml"
    }
    prod_cfg = yaml.safe_load(prod_cm["data"]["service.yaml"])
    s3_cfg = yaml.safe_load(s3_cm["data"]["service.yaml"])
    assert {**s3_cfg, "storage_path": None} == {**prod_cfg, "storage_path": None}
