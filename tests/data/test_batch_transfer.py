"""How batches reach the training device: on the CPU as views of the blocks in Ray's
object store (no copy), to a CUDA device through pinned host memory."""

import math
import sys
from pathlib import Path

import pytest
import torch

from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.normalise import S2_LEVEL_COLUMN
from mpmae.data.stream.tile_dataset import TileDataset, pins_memory, torch_batches
from mpmae.modalities import resolve_pretext

pytestmark = pytest.mark.ray
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> TileDataset:
    """Blocks of ~1 MB or more: Ray returns objects under 100 KB inline, not in plasma."""
    root = tmp_path_factory.mktemp("transfer") / "world"
    synthesize(str(root), tiles=160, size=32, seed=2, downstream_tiles=0, tiles_per_shard=64,
               progress=lambda _: None)
    return TileDataset.open(str(root))


def object_store_ranges() -> list[tuple[int, int]]:
    """The address ranges where this process maps Ray's object store (plasma)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if "plasma" in line:
            start, end = line.split()[0].split("-")
            ranges.append((int(start, 16), int(end, 16)))
    return ranges


def batch_size_within_blocks(ds: TileDataset) -> int:
    """A batch size that divides every row group, so that no batch spans two blocks."""
    sizes = [tiles for groups in ds.row_groups("train").values() for tiles in groups]
    return math.gcd(*sizes)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
def test_cpu_batches_are_views_of_the_object_store(ray_local, world):
    ds = world
    batch = batch_size_within_blocks(ds)
    assert batch >= 2
    pretext = resolve_pretext("all")
    batches = list(torch_batches(ds.read("train", pretext, seed=0, crop=24), batch,
                                  device="cpu"))
    ranges = object_store_ranges()
    assert batches and ranges
    for b in batches:
        assert b["sentinel2"].shape[-1] == 24
        for name, t in b.items():
            if name != S2_LEVEL_COLUMN:  # made by the collate step
                assert any(lo <= t.data_ptr() < hi for lo, hi in ranges), name


def test_only_an_explicit_cuda_device_pins_host_memory():
    assert pins_memory("cuda") and pins_memory(torch.device("cuda", 0)) and pins_memory("cuda:1")
    assert not pins_memory("cpu") and not pins_memory(torch.device("cpu"))
    assert not pins_memory("auto")


@CUDA
def test_cuda_batches_arrive_on_the_gpu_holding_the_cpu_tiles(ray_local, world):
    ds = world
    pretext = resolve_pretext("all")

    def epoch(device: str) -> tuple[set, list[int]]:
        """Where the tensors are, and a checksum per tile (blocks come in any order)."""
        batches = list(torch_batches(ds.read("train", pretext, seed=3, crop=24), 4,
                                     device=device, drop_last=False))
        devices = {t.device.type for b in batches for t in b.values()}
        sums = [int(s) for b in batches for s in b["sentinel2"].long().sum((1, 2, 3)).cpu()]
        return devices, sorted(sums)

    (cpu_devices, cpu_sums), (gpu_devices, gpu_sums) = epoch("cpu"), epoch("cuda")
    assert cpu_devices == {"cpu"} and gpu_devices == {"cuda"}
    assert gpu_sums == cpu_sums
