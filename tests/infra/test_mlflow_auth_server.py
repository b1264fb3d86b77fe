"""infra/k8s/mlflow.yaml's server, run for real: its init container's auth config and its
container's flags (basic-auth app, exact --allowed-hosts) start `mlflow server` here, which
then refuses requests without credentials and Host headers outside the list."""

from __future__ import annotations

import base64
import configparser
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from infra_modules import ROOT
from mlflow_server import free_port, served

ADMIN_PASSWORD = "Adm1n-test-password-0123"
DB_PASSWORD = "db-password-0123"


def deployment_pod() -> dict:
    docs = yaml.safe_load_all((ROOT / "infra/k8s/mlflow.yaml").read_text())
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def literal_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.fixture(scope="module")
def auth_config(tmp_path_factory) -> Path:
    """The file the init container writes, written by its own command."""
    (init,) = deployment_pod()["initContainers"]
    path = tmp_path_factory.mktemp("auth") / "basic_auth.ini"
    env = {"PATH": os.environ["PATH"], "MLFLOW_DB_PASSWORD": DB_PASSWORD,
           "MLFLOW_AUTH_CONFIG_PATH": str(path)}
    subprocess.run(init["command"], env=env, check=True)
    return path


def test_init_container_writes_a_private_auth_config_naming_the_database(auth_config):
    assert stat.S_IMODE(auth_config.stat().st_mode) == 0o600
    parser = configparser.ConfigParser()
    parser.read(auth_config)
    section = parser["mlflow"]
    assert section["database_uri"] == (
        f"postgresql://mlflow:{DB_PASSWORD}@mpmae-mlflow-db:5432/mlflow")
    assert section["default_permission"] == "READ"
    # The admin password comes from the Secret through the environment, not this file.
    assert "admin_password" not in section


def get(url: str, host: str, user: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    if user:
        pair = base64.b64encode(f"{user}:{ADMIN_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {pair}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_manifest_server_demands_credentials_and_a_listed_host(auth_config, tmp_path):
    # The manifest's config with SQLite for the user store, as nothing else differs here.
    parser = configparser.ConfigParser()
    parser.read(auth_config)
    parser["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'auth.db'}"
    with (tmp_path / "basic_auth.ini").open("w") as f:
        parser.write(f)
    (container,) = deployment_pod()["containers"]
    port = free_port()
    kept = [a for a in container["args"]
            if not a.startswith(("--host=", "--port=", "--workers=",
                                 "--artifacts-destination="))]
    command = [str(Path(sys.executable).with_name("mlflow")), "server", *kept,
               "--host=127.0.0.1", f"--port={port}", "--workers=1",
               f"--artifacts-destination={tmp_path / 'artifacts'}"]
    manifest_env = literal_env(container)
    env = {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "basic_auth.ini"),
           "MLFLOW_AUTH_ADMIN_USERNAME": manifest_env["MLFLOW_AUTH_ADMIN_USERNAME"],
           "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-the-test"}
    url = f"http://127.0.0.1:{port}"
    # Generous: the auth app migrates two stores before it answers, on shared cores.
    with served(command, tmp_path, env, url, timeout_s=300):
        api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        admin = manifest_env["MLFLOW_AUTH_ADMIN_USERNAME"]
        assert get(api, "mpmae-mlflow:5000") == 401
        assert get(api, "mpmae-mlflow:5000", admin) == 200
        assert get(api, "mpmae-mlflow.mpmae.svc.cluster.local:5000", admin) == 200
        for host in ("mpmae-mlflow.attacker.example", "mpmae-mlflow.attacker.example:5000",
                     f"127.0.0.1:{port}"):
            assert get(api, host, admin) == 403, host
        assert get(f"{url}/health", "mpmae-mlflow:5000") == 200  # the probes need no login
