"""`mpmae pretrain` on a multi-node Ray cluster on this machine: a head and two worker nodes
(separate raylets, each with its own object store; token auth on), one training worker per
node, the tiles streamed from S3 (moto). With ``data.record_tiles`` every worker writes the
ids of the tiles it trained on to the run folder, which is what these tests count.

The tests share one cluster (starting one costs 20-30 s here); the node-loss test leaves
it with two worker nodes again (the replacement in place of the lost one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ray_head import TRAIN_RESOURCE, Cluster, RayHead, multinode_cluster

from mpmae.data.format.manifest import read_manifest
from mpmae.data.sources.synth import synthesize
from mpmae.storage import Location, StorageOptions, resolve
from mpmae.train.resume import stored_checkpoints
from mpmae.train.tile_record import RECORD_DIR

pytestmark = [pytest.mark.ray, pytest.mark.s3]
PLATFORM = Path(__file__).resolve().parents[2] / "platform"
WORKERS, BATCH = 2, 4
TINY = ["model.img_size=16", f"train.batch_size={BATCH}", "train.log_every=1",
        "train.figure_every=0", f"scaling.num_workers={WORKERS}", "scaling.cpus_per_worker=0.5",
        "scaling.data_cpus=0.5", f"scaling.accelerator_resource={TRAIN_RESOURCE}",
        "mlflow.system_metrics=false", "data.record_tiles=true", "run_name=t"]


@pytest.fixture(scope="module")
def cluster():
    with multinode_cluster(WORKERS) as started:
        yield started


def _world(bucket: str, storage: StorageOptions) -> Location:
    """A synthetic world on S3: its train split is 74 tiles in 10 shards, so one epoch is
    9 steps of 2 workers × 4 tiles, and 74 mod 8 = 2 tiles are left out of it (the
    workers' equal shards of 37 tiles end in a partial batch, dropped)."""
    synthesize(f"{bucket}/world", tiles=96, size=16, seed=5, downstream_tiles=0,
               tiles_per_shard=8, storage=storage, progress=lambda _: None)
    return resolve(f"{bucket}/world", storage)


def _train_tiles(world: Location) -> list[str]:
    manifest = read_manifest(world)
    return [tile for shard in manifest.shards("train")
            for tile in pq.read_table(world.join(shard.path).path, columns=["tile_id"],
                                      filesystem=world.fs).column("tile_id").to_pylist()]


def _pretrain(head: RayHead, bucket: str, storage: StorageOptions, tmp_path: Path,
              *overrides: str) -> subprocess.Popen:
    """The `mpmae pretrain` command, in a process of its own joined to the cluster (this
    process may hold a local Ray of other tests)."""
    items = [f"data.uri={bucket}/world", f"storage.root={bucket}/runs",
             f"storage.endpoint_url={storage.endpoint_url}",
             f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
             f"scaling.address={head.gcs_address}", *TINY, *overrides]
    env = {**head.client_env(), **storage.as_env(), "MPMAE_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(PLATFORM)}
    return subprocess.Popen(
        [sys.executable, "-m", "mpmae.cli", "pretrain",
         *[arg for item in items for arg in ("--set", item)]],
        env=env, stdout=(tmp_path / "driver.out").open("wb"), stderr=subprocess.STDOUT)


def _finished(driver: subprocess.Popen, tmp_path: Path, timeout_s: float = 300) -> None:
    code = driver.wait(timeout=timeout_s)
    assert code == 0, (tmp_path / "driver.out").read_text()[-4000:]


def _records(run_dir: Location) -> list[dict]:
    """Every tile record of the run, in step order (attempts apart)."""
    folder = run_dir.join(RECORD_DIR)
    records = [json.loads(folder.join(name).read_bytes()) for name in folder.list_files(".json")]
    return sorted(records, key=lambda r: (r["step"], r["rank"], r["attempt"]))


def _read_task_nodes(head: RayHead, since: float) -> set[str]:
    """The nodes on which the stream's read tasks started after ``since`` (a time.time())
    ran, from the head's task events."""
    request = urllib.request.Request(f"{head.address}/api/v0/tasks?limit=10000&detail=1",
                                     headers={"Authorization": f"Bearer {head.token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        tasks = json.load(answer)["data"]["result"]["result"]
    return {t["node_id"] for t in tasks if t["name"].startswith("ReadTileRowGroups")
            and t.get("node_id") and (t.get("start_time_ms") or 0) >= since * 1000}


def test_one_epoch_on_two_nodes_trains_every_tile_once(cluster: Cluster, s3_endpoint,
                                                       s3_bucket, tmp_path):
    world = _world(s3_bucket, s3_endpoint)
    epoch = _train_tiles(world)
    steps, left_out = divmod(len(epoch), WORKERS * BATCH)
    nodes, started = list(cluster.workers), time.time()
    driver = _pretrain(cluster.head, s3_bucket, s3_endpoint, tmp_path,
                       f"train.max_steps={steps}", "train.checkpoint_every=4")
    _finished(driver, tmp_path)
    read_nodes = _read_task_nodes(cluster.head, since=started)
    run_dir = resolve(f"{s3_bucket}/runs/t", s3_endpoint)
    records = _records(run_dir)
    # One training worker on each worker node (the head offers no accelerator).
    node_of_rank = {r["rank"]: r["node_id"] for r in records}
    assert sorted(node_of_rank.values()) == sorted(n.node_id for n in nodes)
    assert all(len({r["node_id"] for r in records if r["rank"] == rank}) == 1
               for rank in node_of_rank)
    # Exactly once, each tile to one worker. Blocks in flight blur only where a stream
    # starts mid-epoch (a resume skips whole row groups, not the blocks read ahead); this
    # epoch is read from its start, so the bound here is the epoch's last partial global
    # batch alone: tiles mod (workers × batch) left out, none twice.
    seen = [tile for r in records for tile in r["tiles"]]
    assert len(seen) == len(set(seen)) == steps * WORKERS * BATCH
    assert set(seen) <= set(epoch) and len(set(epoch) - set(seen)) == left_out
    # The read tasks ran on more than one node.
    assert len(read_nodes) >= 2, read_nodes
    assert stored_checkpoints(run_dir)[0].step == steps


def _wait_for_step(run_dir: Location, step: int, driver: subprocess.Popen,
                   timeout_s: float = 240) -> list[dict]:
    """The tile records once a worker has recorded ``step`` (the names say the steps)."""
    folder = run_dir.join(RECORD_DIR)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and driver.poll() is None:
        if any(int(name[-11:-5]) >= step for name in folder.list_files(".json")):
            return _records(run_dir)
        time.sleep(0.5)
    raise AssertionError(f"the run never reached step {step} (driver exit {driver.poll()})")


def test_a_lost_node_restarts_the_workers_from_the_last_checkpoint(cluster: Cluster,
                                                                   s3_endpoint, s3_bucket,
                                                                   tmp_path):
    world = _world(s3_bucket, s3_endpoint)
    steps = len(_train_tiles(world)) // (WORKERS * BATCH)  # one epoch
    every = 2
    run_dir = resolve(f"{s3_bucket}/runs/t", s3_endpoint)
    nodes = list(cluster.workers)
    driver = _pretrain(cluster.head, s3_bucket, s3_endpoint, tmp_path,
                       f"train.max_steps={steps}", f"train.checkpoint_every={every}",
                       "scaling.max_failures=1")
    # Past the step-4 checkpoint, into the next interval: mid-epoch.
    first = _wait_for_step(run_dir, 5, driver)
    lost = next(n for n in nodes if n.node_id == _node_of(first, rank=1))
    replacement = cluster.replace(lost)  # the node a cluster's autoscaler would bring
    _finished(driver, tmp_path)
    records = _records(run_dir)
    before = {r["attempt"] for r in first}
    lost_run = [r for r in records if r["attempt"] in before]
    again = [r for r in records if r["attempt"] not in before]
    survivor = next(n.node_id for n in nodes if n is not lost)
    assert {r["node_id"] for r in again} == {survivor, replacement.node_id}
    # The restarted group went on from the last checkpoint (step 4, or step 2 where the
    # node went before the step-4 one was in), not from step 1, and finished the epoch.
    resumed_from = min(r["step"] for r in again) - 1
    assert resumed_from >= every and resumed_from % every == 0, resumed_from
    assert resumed_from >= max(r["step"] for r in lost_run) - every
    assert max(r["step"] for r in again) == steps
    assert stored_checkpoints(run_dir)[0].step == steps
    # Seen twice: the tiles the lost group trained on after that checkpoint (at most one
    # checkpoint interval: 2 steps × 2 workers × 4 tiles), and, of those before it, only
    # ones from blocks the checkpoint fell inside: a resume skips whole row groups in the
    # epoch's order, but blocks arrive as reads finish and each shuffles its row groups.
    kept = {t for r in lost_run if r["step"] <= resumed_from for t in r["tiles"]}
    redone = {t for r in lost_run if r["step"] > resumed_from for t in r["tiles"]}
    later = [t for r in again for t in r["tiles"]]
    assert len(later) == len(set(later))  # none twice within the restarted group
    in_flight = {t for block in _epoch_blocks(world) if block & kept and block - kept
                 for t in block}
    assert len(redone) <= every * WORKERS * BATCH
    assert kept & set(later) <= in_flight
    twice = (kept | redone) & set(later)
    assert len(twice) <= every * WORKERS * BATCH + len(in_flight), (len(twice), len(in_flight))


def _epoch_blocks(world: Location, seed: int = 0) -> list[set[str]]:
    """The tiles of each block of the stream's first epoch, in its order (the run's
    train.seed): read here, with the source the run streamed from."""
    from ray.data import DataContext

    from mpmae.data.stream.row_group_source import RowGroupSource
    from mpmae.data.stream.tile_dataset import TileDataset

    dataset = TileDataset.open(world)
    schema = dataset.manifest.schema()
    source = RowGroupSource(world, dataset.row_groups("train"),
                            pa.schema([schema.field("tile_id")]), seed=seed)
    return [set(block.column("tile_id").to_pylist())
            for task in source.get_read_tasks(source.num_tasks, data_context=DataContext())
            for block in task()]


def _node_of(records: list[dict], rank: int) -> str:
    return next(r["node_id"] for r in records if r["rank"] == rank)
