"""ray-cluster.yaml's node types as a one-machine autoscaling config (Ray's fake provider).

    python infra/local/fake_cluster.py --gcs-address 127.0.0.1:PORT --out fake.yaml
    RAY_FAKE_CLUSTER=1 ray start --head --port=PORT --autoscaling-config=fake.yaml ...

The head then starts "worker nodes" as extra raylets on this machine when tasks ask for
resources that only a worker type has, and stops them when they are idle: the same
autoscaling decisions as on AWS, without a cloud. Fake nodes have no CUDA, so each worker
type keeps its custom ``accelerator_gpu`` count and drops ``GPU``; CPUs and node counts are
cut down to what one small machine can hold. Only the standard library and PyYAML are used,
so tests can import this file by path.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "ray-cluster.yaml"
# The fake provider registers the head under this node type, whatever the config calls it.
FAKE_HEAD_TYPE = "ray.head.default"
# Everything the autoscaler reads from a config; the fake provider runs no commands and
# syncs no files, but validation and the monitor still expect these keys.
EMPTY_FIELDS: dict[str, Any] = {
    "auth": {},
    "docker": {},
    "file_mounts": {},
    "cluster_synced_files": [],
    "file_mounts_sync_continuously": False,
    "rsync_exclude": [],
    "rsync_filter": [],
    "initialization_commands": [],
    "setup_commands": [],
    "head_setup_commands": [],
    "worker_setup_commands": [],
    "head_start_ray_commands": [],
    "worker_start_ray_commands": [],
}


def load_cluster(path: Path = CLUSTER_YAML) -> dict[str, Any]:
    """The cluster launcher config at ``path``."""
    return yaml.safe_load(path.read_text())


def worker_types(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The node types other than the head."""
    head = cluster["head_node_type"]
    return {k: v for k, v in cluster["available_node_types"].items() if k != head}


def head_resources(cluster: dict[str, Any]) -> dict[str, int]:
    """The head's advertised resources; start the fake head with the same ones."""
    return dict(cluster["available_node_types"][cluster["head_node_type"]]["resources"])


def fake_worker(node_type: dict[str, Any], *, cpus: int, max_workers: int,
                object_store_bytes: int) -> dict[str, Any]:
    """One worker type scaled down to a process group on this machine."""
    resources = {k: v for k, v in node_type["resources"].items() if k not in ("CPU", "GPU")}
    resources.update(CPU=cpus, object_store_memory=object_store_bytes)
    return {
        "resources": resources,
        "node_config": {},
        "min_workers": node_type.get("min_workers", 0),
        "max_workers": min(node_type.get("max_workers", max_workers), max_workers),
    }


def fake_config(
    cluster: dict[str, Any],
    *,
    gcs_address: str,
    worker_cpus: int = 1,
    max_workers_per_type: int = 2,
    object_store_bytes: int = 200 * 1024**2,
    idle_timeout_minutes: float | None = None,
) -> dict[str, Any]:
    """A fake-multinode autoscaling config with ``cluster``'s head and worker types.

    ``gcs_address`` is the head's ``HOST:PORT`` (fake workers join it there). Each fake
    worker gets ``worker_cpus`` CPUs and a small object store, since they all share this
    machine; at most ``max_workers_per_type`` nodes of each type are started.
    """
    workers = {
        name: fake_worker(node_type, cpus=worker_cpus, max_workers=max_workers_per_type,
                          object_store_bytes=object_store_bytes)
        for name, node_type in worker_types(cluster).items()
    }
    head = {"resources": head_resources(cluster), "node_config": {}, "max_workers": 0}
    timeout = cluster["idle_timeout_minutes"] if idle_timeout_minutes is None \
        else idle_timeout_minutes
    return {
        **copy.deepcopy(EMPTY_FIELDS),
        "cluster_name": f"{cluster['cluster_name']}-fake",
        "max_workers": sum(w["max_workers"] for w in workers.values()),
        "upscaling_speed": cluster.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": timeout,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            # The fake provider names nodes by id and has no SSH to update or check them.
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "head_node_type": FAKE_HEAD_TYPE,
        "available_node_types": {FAKE_HEAD_TYPE: head, **workers},
    }


def head_start_flags(cluster: dict[str, Any]) -> list[str]:
    """``ray start --head`` flags that give the fake head the real head's resources."""
    resources = head_resources(cluster)
    return [f"--num-cpus={resources.get('CPU', 0)}", f"--num-gpus={resources.get('GPU', 0)}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gcs-address", required=True, help="the head's HOST:PORT")
    parser.add_argument("--out", type=Path, required=True, help="config file to write")
    parser.add_argument("--cluster", type=Path, default=CLUSTER_YAML)
    parser.add_argument("--worker-cpus", type=int, default=1)
    parser.add_argument("--max-workers-per-type", type=int, default=2)
    parser.add_argument("--idle-timeout-minutes", type=float, default=None,
                        help="default: the cluster's own")
    args = parser.parse_args(argv)
    cluster = load_cluster(args.cluster)
    config = fake_config(cluster, gcs_address=args.gcs_address, worker_cpus=args.worker_cpus,
                         max_workers_per_type=args.max_workers_per_type,
                         idle_timeout_minutes=args.idle_timeout_minutes)
    args.out.write_text(yaml.safe_dump(config, sort_keys=False))
    port = args.gcs_address.rsplit(":", 1)[1]
    print(f"wrote {args.out}; start the head with:\n  RAY_FAKE_CLUSTER=1 ray start --head "
          f"--port={port} --autoscaling-config={args.out} {' '.join(head_start_flags(cluster))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
