"""A dataset larger than the object store streams whole: Ray Data back-pressures (and spills
if it must), it never fails. A Ray of its own in a child process, with the smallest object
store Ray allows; the epoch's decoded tiles are about twice that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
PLATFORM = Path(__file__).resolve().parents[2] / "platform"
STORE_BYTES = 80 * 2**20  # Ray refuses less than 75 MiB

EPOCH = """
import json, sys
import ray
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import resolve_pretext

ray.init(address="local", num_cpus=2, object_store_memory=int(sys.argv[2]),
         include_dashboard=False, logging_level="ERROR")
ds = TileDataset.open(sys.argv[1])
data = ds.read("train", resolve_pretext("all"), extra_columns=("tile_id",))
ids, nbytes = [], 0
for batch in data.iter_batches(batch_size=256, batch_format="numpy"):
    ids.extend(batch["tile_id"])
    nbytes += sum(v.nbytes for v in batch.values())
print(json.dumps({"tiles": len(ids), "unique": len(set(ids)), "bytes": nbytes,
                  "epoch": ds.manifest.split_tiles("train")}))
ray.shutdown()
"""


def test_an_epoch_larger_than_the_object_store_streams_whole(tmp_path):
    from mpmae.data.sources.synth import synthesize

    world = tmp_path / "world"
    synthesize(str(world), tiles=12_000, size=16, seed=0, downstream_tiles=0,
               tiles_per_shard=500, progress=lambda _: None)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLATFORM),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", EPOCH, str(world), str(STORE_BYTES)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["bytes"] > 1.5 * STORE_BYTES, seen  # the epoch does not fit in the store
    assert seen["tiles"] == seen["unique"] == seen["epoch"], seen  # every tile, once
