"""infra/k8s: every manifest parses, has the kinds and fields KubeRay and Kubernetes need, pins
its images, sets resources, keeps secrets in Secrets, and points at files that exist."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator

import pytest
import yaml
from infra_modules import ROOT

K8S = ROOT / "infra" / "k8s"
KINDS = {
    ("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("v1", "Service"),
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"),
    ("ray.io/v1", "RayCluster"), ("ray.io/v1", "RayJob"),
}
# The Secrets the manifests read; docs/cluster.md says how to create each.
SECRETS = {"mpmae-ray-token", "mpmae-s3", "mpmae-mlflow-db"}


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def one(kind: str, name: str | None = None) -> dict:
    (doc,) = [d for _, d in documents()
              if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return doc


def walk(node) -> Iterator[dict]:
    """Every mapping inside ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def containers(doc: dict) -> list[dict]:
    return [c for m in walk(doc) for c in m.get("containers", [])]


def pins() -> dict[str, str]:
    lines = (ROOT / "infra/docker/constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_every_document_is_a_known_kind_with_a_name():
    docs = documents()
    assert {name for name, _ in docs} >= {"raycluster.yaml", "rayjob-pretrain.yaml",
                                         "rayjob-sweep.yaml", "mlflow.yaml", "config.yaml"}
    for name, doc in docs:
        assert (doc["apiVersion"], doc["kind"]) in KINDS, name
        assert re.fullmatch(r"[a-z0-9-]+", doc["metadata"]["name"]), name


WORKLOADS = [pytest.param(name, doc, id=f"{name}:{doc['kind']}/{doc['metadata']['name']}")
             for name, doc in documents() if containers(doc)]


@pytest.mark.parametrize("name,doc", WORKLOADS)
def test_containers_pin_images_and_set_resources(name, doc):
    for container in containers(doc):
        image = container["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, (name, image)
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)


def test_ray_images_follow_the_project_and_ray_versions():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    for kind in ("RayCluster", "RayJob"):
        for _, doc in documents():
            if doc["kind"] == kind:
                assert {c["image"] for c in containers(doc)} == {
                    f"YOUR-REGISTRY/mpmae:{version}"}
    assert one("RayCluster")["spec"]["rayVersion"] == pins()["ray"]


def test_ray_cluster_autoscales_with_token_auth():
    spec = one("RayCluster")["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert spec["authOptions"] == {"mode": "token", "secretName": "mpmae-ray-token"}


def test_head_offers_cpus_for_drivers_and_nothing_to_train_on():
    head = one("RayCluster")["spec"]["headGroupSpec"]
    assert int(head["rayStartParams"]["num-cpus"]) >= 1
    assert "num-gpus" not in head["rayStartParams"]
    assert "accelerator_gpu" not in head["rayStartParams"].get("resources", "")
    for container in containers(head):
        assert "nvidia.com/gpu" not in container["resources"]["limits"]


def custom_resources(group: dict) -> dict[str, int]:
    # KubeRay's format: a JSON object inside a quoted string.
    return json.loads(json.loads(group["rayStartParams"]["resources"]))


def test_gpu_worker_groups_scale_from_zero_with_accelerator_gpu():
    groups = one("RayCluster")["spec"]["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert group["minReplicas"] == 0 and group["replicas"] == 0, group["groupName"]
        assert group["maxReplicas"] >= 1
        (container,) = containers(group)
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert gpus >= 1
        assert container["resources"]["requests"]["nvidia.com/gpu"] == str(gpus)
        assert custom_resources(group) == {"accelerator_gpu": gpus}


@pytest.mark.parametrize("job", ["mpmae-pretrain", "mpmae-sweep"])
def test_ray_jobs_run_the_same_cluster_and_clean_up(job):
    spec = one("RayJob", job)["spec"]
    assert spec["rayClusterSpec"] == one("RayCluster")["spec"], (
        "a RayJob's rayClusterSpec differs from raycluster.yaml's spec")
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0


def entrypoint(job: str) -> list[str]:
    return shlex.split(one("RayJob", job)["spec"]["entrypoint"])


def config_argument(argv: list[str]) -> str:
    return argv[argv.index("--config") + 1]


def test_pretrain_job_runs_files_that_exist():
    argv = entrypoint("mpmae-pretrain")
    assert argv[:2] == ["python", "jobs/pretrain.py"]
    assert (ROOT / argv[1]).is_file()
    assert config_argument(argv) == "jobs/configs/mmearth64_atto.yaml"
    assert (ROOT / config_argument(argv)).is_file()


def test_sweep_job_runs_the_tune_entrypoint_with_a_config_under_jobs_configs():
    argv = entrypoint("mpmae-sweep")
    assert argv[:2] == ["python", "jobs/tune.py"]
    assert (ROOT / argv[1]).is_file()
    assert config_argument(argv).startswith("jobs/configs/")
    assert config_argument(argv).endswith(".yaml")


def test_mlflow_server_uses_postgres_s3_and_knows_its_host_names():
    deployment = one("Deployment", "mpmae-mlflow")
    (container,) = containers(deployment)
    args = dict(a.split("=", 1) for a in container["args"])
    hosts = args["--allowed-hosts"].split(",")
    assert {"mpmae-mlflow", "mpmae-mlflow:*", "mpmae-mlflow.*"} <= set(hosts)
    assert one("Service", "mpmae-mlflow")["metadata"]["name"] in hosts
    assert args["--artifacts-destination"].startswith("s3://")
    env = {e["name"]: e for e in container["env"]}
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri.startswith("postgresql://") and "$(MLFLOW_DB_PASSWORD)" in uri
    assert env["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mpmae-mlflow-db"
    assert "mpmae-mlflow-db" in uri  # the database Service
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["image"].endswith(f":{pins()['mlflow']}")


def test_postgres_keeps_its_data_and_takes_its_password_from_a_secret():
    statefulset = one("StatefulSet", "mpmae-mlflow-db")
    assert statefulset["spec"]["volumeClaimTemplates"]
    (container,) = containers(statefulset)
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mpmae-mlflow-db"
    assert "readinessProbe" in container


@pytest.mark.parametrize("kind,name", [("Deployment", "mpmae-mlflow"),
                                       ("StatefulSet", "mpmae-mlflow-db")])
def test_services_select_their_pods_and_ports(kind, name):
    workload = one(kind, name)
    service = one("Service", name)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for c in containers(workload) for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_secrets_are_referenced_never_inlined():
    referenced = set()
    for name, doc in documents():
        assert doc["kind"] != "Secret", name
        for mapping in walk(doc):
            for key in ("secretKeyRef", "secretRef"):
                if key in mapping:
                    referenced.add(mapping[key]["name"])
            if "name" in mapping and "value" in mapping and re.search(
                    r"KEY|SECRET|PASSWORD|TOKEN", str(mapping["name"])):
                pytest.fail(f"{name}: {mapping['name']} has a literal value")
    referenced.add(one("RayCluster")["spec"]["authOptions"]["secretName"])
    assert referenced == SECRETS
    text = "".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    guide = (ROOT / "docs" / "cluster.md").read_text()
    for secret in SECRETS:
        assert f"kubectl create secret generic {secret}" in guide, secret


def test_config_maps_and_service_accounts_that_pods_use_are_defined():
    defined = {(d["kind"], d["metadata"]["name"]) for _, d in documents()}
    for name, doc in documents():
        for mapping in walk(doc):
            if "configMapRef" in mapping:
                assert ("ConfigMap", mapping["configMapRef"]["name"]) in defined, name
            if "serviceAccountName" in mapping:
                assert ("ServiceAccount", mapping["serviceAccountName"]) in defined, name
