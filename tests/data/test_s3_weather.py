"""mpmae's own S3 reads in bad weather: infra/local/s3_proxy.py in front of a real S3 endpoint
(moto) throttles (503 SlowDown), resets connections or is down. Retries get through a storm;
a throttle is reported as one, never as a damaged shard or an unreachable store; an endpoint
that stays down is one line naming it, in bounded time."""

from __future__ import annotations

import importlib.util
import pickle
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mpmae.cli import main
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.retry_tally import RetryTally
from mpmae.data.stream.row_group_source import Expected, RowGroup, read_row_groups
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.data.verify import verify_dataset
from mpmae.modalities import resolve_pretext
from mpmae.storage import StorageError, resolve, retry_counts

pytestmark = pytest.mark.s3
INFRA_MODULES = Path(__file__).resolve().parents[1] / "infra" / "infra_modules.py"


def _s3_proxy():
    spec = importlib.util.spec_from_file_location("infra_modules", INFRA_MODULES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load("infra/local/s3_proxy.py")


s3_proxy = _s3_proxy()


@pytest.fixture
def world(s3_endpoint, s3_bucket):
    """32 tiles in 6 shards (4 train, val, test), written straight to the endpoint (no weather)."""
    uri = f"{s3_bucket}/world"
    synthesize(uri, tiles=32, size=16, seed=0, downstream_tiles=0, tiles_per_shard=8,
               storage=s3_endpoint, progress=lambda _: None)
    return uri


@pytest.fixture
def proxied(s3_endpoint):
    """Starts a proxy with the weather given; yields (proxy, options pointing at it)."""
    started = []

    def start(weather, seed: int = 0, **options):
        proxy = s3_proxy.S3Proxy(s3_endpoint.endpoint_url, weather, seed=seed)
        started.append(proxy)
        return proxy, replace(s3_endpoint, endpoint_url=proxy.start(), **options)

    yield start
    for proxy in started:
        proxy.stop()


def _cli_env(monkeypatch, opts) -> None:
    for name, value in opts.as_env().items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_verify_gets_through_a_storm(proxied, world, seed):
    proxy, opts = proxied(s3_proxy.Weather(latency_s=0, slowdown=0.15, reset=0.05), seed=seed)
    summary = verify_dataset(world, opts, progress=lambda _: None)
    assert summary.startswith(f"verified {world}: 6 shards, 32 tiles")
    assert proxy.counts.slowdowns + proxy.counts.resets > 0  # the storm did blow


def test_layers_and_counts_sdk_attempts_inside_our_rounds_outside(proxied, world):
    proxy, opts = proxied(s3_proxy.Weather(latency_s=0, slowdown=1.0), retries=2)
    loc = resolve(world, opts).join("dataset.json")
    for where in (loc, pickle.loads(pickle.dumps(loc))):  # as a Ray read task gets it
        before, requests = retry_counts(), proxy.counts.requests
        with pytest.raises(StorageError, match=r"throttled .*\(HTTP 503\) after up to 6 "
                                               r"attempt.*raise storage\.retries"):
            where.read_bytes()
        # 3 rounds of ours, each 2 SDK attempts of one HEAD: the retry strategy survived
        # pickling (pyarrow's own pickle would bring back its default of 3 attempts).
        assert proxy.counts.requests - requests == 6
        after = retry_counts()
        assert after["throttled"] - before["throttled"] == 2
        assert after["failed"] - before["failed"] == 1
    # The filesystem alone (Ray Train's storage_filesystem): one SDK round, 2 attempts.
    requests = proxy.counts.requests
    with pytest.raises(OSError, match="503"):
        pickle.loads(pickle.dumps(loc.fs)).get_file_info(loc.path)
    assert proxy.counts.requests - requests == 2


def test_a_throttled_shard_is_not_called_damaged(proxied, world):
    proxy, opts = proxied(s3_proxy.Weather(latency_s=0), retries=2)
    lines = []

    def progress(line: str) -> None:  # the first shard read fine; the storm starts now
        lines.append(line)
        proxy.weather = s3_proxy.Weather(latency_s=0, slowdown=1.0)

    with pytest.raises(StorageError) as raised:
        verify_dataset(world, opts, progress=progress)
    text = str(raised.value)
    assert "throttled" in text and "part-" in text
    assert "damaged" not in text and "cannot reach" not in text
    assert len(lines) == 1 and lines[0].endswith(": ok")


def test_throttled_verify_exits_2_saying_throttled(proxied, world, monkeypatch, capsys):
    _, opts = proxied(s3_proxy.Weather(latency_s=0, slowdown=1.0), retries=2)
    _cli_env(monkeypatch, opts)
    assert main(["data", "verify", world]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "throttled" in err
    assert "damaged" not in err and "cannot reach" not in err


@pytest.mark.parametrize("verb", ["verify", "inspect"])
def test_a_store_that_stays_down_is_one_line_naming_it(proxied, world, monkeypatch, capsys,
                                                       verb):
    _, opts = proxied(s3_proxy.Weather(latency_s=0, down=True), retries=3, timeout=2.0)
    _cli_env(monkeypatch, opts)
    began = time.monotonic()
    assert main(["data", verb, world]) == 2
    # The SDK's waits between 3 attempts are at most 1 s and 2 s; a reset costs no timeout.
    assert time.monotonic() - began < 10
    err = capsys.readouterr().err
    assert err.startswith(f"mpmae: error: cannot reach {world}/dataset.json: the S3 endpoint "
                          f"{opts.endpoint_url} did not answer after up to 3 attempt(s)")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert opts.secret_access_key not in err


def test_verify_counts_the_operations_it_tried_again(proxied, world):
    # One SDK attempt per request, so every 503 reaches mpmae's own rounds and is counted.
    # The proxy's faults are seeded: with seed 1 some 503s come, never 3 on one operation.
    proxy, opts = proxied(s3_proxy.Weather(latency_s=0, slowdown=0.2), seed=1, retries=1)
    summary = verify_dataset(world, opts, progress=lambda _: None)
    assert summary.startswith(f"verified {world}: 6 shards")
    assert "operation(s) tried again after S3 throttling" in summary
    assert proxy.counts.slowdowns > 0


def test_a_throttled_row_group_is_not_skipped_as_damaged(proxied, world):
    # data.on_bad_shard=skip leaves damaged row groups out; a throttle is not damage.
    proxy, opts = proxied(s3_proxy.Weather(latency_s=0), retries=2)
    dataset = TileDataset.open(world, opts)
    layout = {shard: tuple(groups) for shard, groups in dataset.row_groups("train").items()}
    shard = sorted(layout)[0]
    group = RowGroup(shard, 0, layout[shard][0])
    proxy.weather = s3_proxy.Weather(latency_s=0, slowdown=1.0, calm=1)  # opens, then reads
    with pytest.raises(StorageError, match="throttled"):
        read_row_groups(dataset.root, Expected(layout, dataset.manifest.schema()), [group],
                        ["sentinel2"], skip_bad=True)


@pytest.mark.ray
def test_the_read_tasks_send_their_retries_to_the_runs_tally(ray_local, proxied, world):
    # Read tasks run in Ray worker processes: their retries count there, out of a training
    # run's sight, unless they send them on. Two GETs of the train shards are throttled
    # (one SDK attempt each, so each one reaches mpmae's rounds); opening reads no shard in
    # this process (a listing), so the throttles land in the read tasks.
    proxy, opts = proxied(s3_proxy.Weather(latency_s=0), retries=1)
    dataset = TileDataset.open(world, opts)
    dataset.row_groups("train")
    tally = RetryTally.start()
    here = retry_counts()
    proxy.weather = s3_proxy.Weather(latency_s=0, throttle_reads=2, read_paths="/train/")
    data = dataset.read("train", resolve_pretext("S2"), retry_tally=tally)
    tiles = sum(len(b["sentinel2"]) for b in data.iter_batches(batch_size=None))  # all read
    assert tiles == dataset.manifest.split_tiles("train") and proxy.counts.slowdowns == 2
    assert retry_counts() == here  # none of them in this process
    # pyarrow reads the 503's body as SlowDown (throttled) or, on a ranged GET, as
    # SERVICE_UNAVAILABLE (a server error, as botocore counts it): one of the two.
    total = tally.total()
    assert total["throttled"] + total["server_error"] == 2 and total["failed"] == 0
