"""infra/k8s: every manifest parses, has the kinds and fields KubeRay and Kubernetes need, pins
its images, sets resources, runs every pod unprivileged as the image's non-root user, keeps
secrets in Secrets, lets only the intended peers reach MLflow and the Ray head, and points at
files that exist."""

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
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
# The Secrets the manifests read; docs/cluster.md says how to create each.
SECRETS = {"mpmae-ray-token", "mpmae-s3", "mpmae-mlflow-db", "mpmae-mlflow-auth",
           "mpmae-mlflow-client"}


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


def pod_specs(doc: dict) -> list[dict]:
    """Every pod spec in ``doc``: the mappings that list containers."""
    return [m for m in walk(doc) if "containers" in m]


def all_containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def pins() -> dict[str, str]:
    lines = (ROOT / "infra/docker/constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_every_document_is_a_known_kind_with_a_name():
    docs = documents()
    assert {name for name, _ in docs} >= {"raycluster.yaml", "rayjob-pretrain.yaml",
                                         "rayjob-sweep.yaml", "mlflow.yaml", "config.yaml",
                                         "network-policies.yaml"}
    for name, doc in docs:
        assert (doc["apiVersion"], doc["kind"]) in KINDS, name
        assert re.fullmatch(r"[a-z0-9-]+", doc["metadata"]["name"]), name


WORKLOADS = [pytest.param(name, doc, id=f"{name}:{doc['kind']}/{doc['metadata']['name']}")
             for name, doc in documents() if containers(doc)]


@pytest.mark.parametrize("name,doc", WORKLOADS)
def test_containers_pin_images_and_set_resources(name, doc):
    for container in [c for pod in pod_specs(doc) for c in all_containers(pod)]:
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
    # Exactly the Service's names on its port, and port-forwarding: no pattern at all, as
    # "mpmae-mlflow.*" also matched mpmae-mlflow.attacker.example.
    assert not [h for h in hosts if "*" in h or "?" in h or "[" in h], hosts
    assert set(hosts) == {"mpmae-mlflow:5000", "mpmae-mlflow.mpmae:5000",
                          "mpmae-mlflow.mpmae.svc:5000",
                          "mpmae-mlflow.mpmae.svc.cluster.local:5000",
                          "localhost:5000", "127.0.0.1:5000"}
    service = one("Service", "mpmae-mlflow")
    assert {f"{service['metadata']['name']}:{p['port']}" for p in service["spec"]["ports"]} <= (
        set(hosts))
    assert args["--artifacts-destination"].startswith("s3://")
    env = {e["name"]: e for e in container["env"]}
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri.startswith("postgresql://") and "$(MLFLOW_DB_PASSWORD)" in uri
    assert env["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mpmae-mlflow-db"
    assert "mpmae-mlflow-db" in uri  # the database Service
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["image"].endswith(f":{pins()['mlflow']}")


def test_mlflow_server_demands_a_login_with_credentials_from_a_secret():
    pod = one("Deployment", "mpmae-mlflow")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    for name, key in (("MLFLOW_AUTH_ADMIN_PASSWORD", "admin_password"),
                      ("MLFLOW_FLASK_SERVER_SECRET_KEY", "flask_secret_key")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "mpmae-mlflow-auth",
                                                          "key": key}
    # The auth config holds the database password: written at start into a memory volume
    # by the init container, mounted read-only into the server.
    config_path = env["MLFLOW_AUTH_CONFIG_PATH"]["value"]
    (init,) = pod["initContainers"]
    assert {e["name"]: e.get("value") for e in init["env"]}["MLFLOW_AUTH_CONFIG_PATH"] == (
        config_path)
    volumes = {v["name"]: v for v in pod["volumes"]}
    folder = config_path.rsplit("/", 1)[0]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"
    assert [m["name"] for m in init["volumeMounts"] if m["mountPath"] == folder] == [
        mount["name"]]


def test_ray_pods_log_in_to_mlflow_with_the_client_secret():
    for group in (one("RayCluster")["spec"]["headGroupSpec"],
                  *one("RayCluster")["spec"]["workerGroupSpecs"]):
        for container in containers(group):
            refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
            assert "mpmae-mlflow-client" in refs


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


# --- pods run unprivileged, as the user their image was built with -------------------------

# Ray containers keep a writable root: Ray unpacks each job's runtime env and Python its
# caches under /home/ray, which also holds the project, so no empty volume can replace it.
WRITABLE_ROOT = {"ray-head", "ray-worker"}
DOCKERFILES = {"YOUR-REGISTRY/mpmae": "Dockerfile", "YOUR-REGISTRY/mpmae-mlflow":
               "mlflow.Dockerfile"}

PODS = [pytest.param(pod, id=f"{name}:{doc['metadata']['name']}:{i}")
        for name, doc in documents() for i, pod in enumerate(pod_specs(doc))]


def dockerfile_user(image: str) -> tuple[int, int] | None:
    """The numeric uid:gid of the Dockerfile that builds ``image`` (None: not ours)."""
    dockerfile = DOCKERFILES.get(image.rpartition(":")[0])
    if dockerfile is None:
        return None
    text = (ROOT / "infra" / "docker" / dockerfile).read_text()
    uid, gid = re.findall(r"^USER (\d+):(\d+)$", text, re.M)[-1]
    return int(uid), int(gid)


@pytest.mark.parametrize("pod", PODS)
def test_every_pod_runs_as_its_images_non_root_user(pod):
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0 and security["runAsGroup"] != 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in all_containers(pod):
        user = dockerfile_user(container["image"])
        if user is not None:
            assert (security["runAsUser"], security["runAsGroup"]) == user, container["name"]


@pytest.mark.parametrize("pod", PODS)
def test_every_container_is_unprivileged_with_a_read_only_root_where_it_can(pod):
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in all_containers(pod):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert "privileged" not in security and "runAsUser" not in security
        if container["name"] in WRITABLE_ROOT:
            assert security["readOnlyRootFilesystem"] is False
            continue
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        if container in pod["containers"]:  # long-running: scratch space in an emptyDir
            (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]], container["name"]


def test_the_autoscaler_container_is_unprivileged_too():
    security = one("RayCluster")["spec"]["autoscalerOptions"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("job", ["mpmae-pretrain", "mpmae-sweep"])
def test_ray_job_submitters_are_ours_to_lock_down(job):
    template = one("RayJob", job)["spec"]["submitterPodTemplate"]
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "ray-submitter"
    assert template["spec"]["restartPolicy"] == "Never"
    # KubeRay fills in the `ray job submit` command: a command here would replace it.
    (container,) = template["spec"]["containers"]
    assert "command" not in container and "args" not in container


def test_the_config_map_holds_no_secrets():
    for key, value in one("ConfigMap", "mpmae-env")["data"].items():
        assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", key), key
        assert not re.search(r"://[^/@\s]+@", value), key  # user:password@ in a URI


# --- NetworkPolicies: who may connect to what ------------------------------------------------


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Kubernetes' label selector semantics (matchLabels and the set operators)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for rule in selector.get("matchExpressions", []):
        present, value = rule["key"] in labels, labels.get(rule["key"])
        if not {"In": present and value in rule.get("values", []),
                "NotIn": not present or value not in rule.get("values", []),
                "Exists": present, "DoesNotExist": not present}[rule["operator"]]:
            return False
    return True


def admits(pod_labels: dict[str, str], port: int, *, peer: dict[str, str],
           peer_namespace: dict[str, str] | None = None) -> bool:
    """Whether the policies let a pod with ``peer`` labels connect to ``port`` of a pod
    with ``pod_labels``. ``peer_namespace``: the peer namespace's labels, None for the
    policies' own namespace. A pod no policy selects is open (Kubernetes' default)."""
    policies = [d for _, d in documents() if d["kind"] == "NetworkPolicy"
                and selects(d["spec"]["podSelector"], pod_labels)]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            for source in rule.get("from", []):
                if "namespaceSelector" in source:
                    namespace_ok = selects(source["namespaceSelector"], peer_namespace or {
                        "kubernetes.io/metadata.name": "mpmae"})
                else:
                    namespace_ok = peer_namespace is None
                if namespace_ok and selects(source.get("podSelector", {}), peer):
                    return True
    return False


def template_labels(kind: str, name: str | None = None) -> dict[str, str]:
    return one(kind, name)["spec"]["template"]["metadata"]["labels"]


RAY_HEAD = one("RayCluster")["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]
RAY_WORKER = one("RayCluster")["spec"]["workerGroupSpecs"][0]["template"]["metadata"]["labels"]
SUBMITTER = one("RayJob", "mpmae-pretrain")["spec"]["submitterPodTemplate"]["metadata"]["labels"]
MLFLOW = template_labels("Deployment", "mpmae-mlflow")
DATABASE = template_labels("StatefulSet", "mpmae-mlflow-db")
CLIENT_NAMESPACE = {"kubernetes.io/metadata.name": "team-a", "mpmae.io/client": "true"}
OTHER_NAMESPACE = {"kubernetes.io/metadata.name": "team-b"}
OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}
STRANGER = {"app": "anything"}


def test_every_listening_pod_is_guarded_by_a_policy():
    for labels in (RAY_HEAD, RAY_WORKER, MLFLOW, DATABASE):
        assert not admits(labels, 1, peer=STRANGER, peer_namespace=OTHER_NAMESPACE), labels
        assert not admits(labels, 1, peer=STRANGER), labels


def test_mlflow_answers_ray_pods_and_client_namespaces_only():
    assert admits(MLFLOW, 5000, peer=RAY_HEAD)
    assert admits(MLFLOW, 5000, peer=RAY_WORKER)
    assert admits(MLFLOW, 5000, peer=STRANGER, peer_namespace=CLIENT_NAMESPACE)
    assert not admits(MLFLOW, 5000, peer=STRANGER)
    assert not admits(MLFLOW, 5000, peer=RAY_WORKER, peer_namespace=OTHER_NAMESPACE)
    assert not admits(MLFLOW, 5000, peer=DATABASE)
    assert not admits(MLFLOW, 22, peer=RAY_HEAD)


def test_the_database_answers_the_mlflow_server_only():
    assert admits(DATABASE, 5432, peer=MLFLOW)
    for peer in (RAY_HEAD, RAY_WORKER, SUBMITTER, STRANGER):
        assert not admits(DATABASE, 5432, peer=peer), peer
    assert not admits(DATABASE, 5432, peer=MLFLOW, peer_namespace=CLIENT_NAMESPACE)


def test_the_ray_head_answers_its_cluster_and_the_job_api_its_clients():
    assert admits(RAY_HEAD, 6379, peer=RAY_WORKER)
    assert admits(RAY_HEAD, 8265, peer=RAY_WORKER)
    assert admits(RAY_WORKER, 8076, peer=RAY_HEAD)
    assert admits(RAY_WORKER, 29500, peer=RAY_WORKER)  # NCCL between workers
    for peer, namespace in ((SUBMITTER, None), (OPERATOR, OTHER_NAMESPACE),
                            (STRANGER, CLIENT_NAMESPACE)):
        assert admits(RAY_HEAD, 8265, peer=peer, peer_namespace=namespace), peer
        assert not admits(RAY_HEAD, 6379, peer=peer, peer_namespace=namespace), peer
    for peer in (MLFLOW, DATABASE, STRANGER):
        assert not admits(RAY_HEAD, 8265, peer=peer), peer
        assert not admits(RAY_WORKER, 8076, peer=peer), peer
    assert not admits(RAY_HEAD, 8265, peer=STRANGER, peer_namespace=OTHER_NAMESPACE)
