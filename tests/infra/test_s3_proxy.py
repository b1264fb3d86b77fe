"""infra/local/s3_proxy.py in front of a real S3 endpoint (moto): it forwards what S3 clients
send (boto3, pyarrow's AWS SDK) unchanged, delays each request, and answers the faults it is
told to — 503 SlowDown, connection resets, an outage — counted."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from infra_modules import load
from pyarrow import fs

pytestmark = pytest.mark.s3
s3_proxy = load("infra/local/s3_proxy.py")


@pytest.fixture
def proxied(s3_endpoint, s3_bucket):
    """Start a proxy with the weather a test gives; yields a function that does so."""
    started = []

    def start(weather, seed: int = 0):
        proxy = s3_proxy.S3Proxy(s3_endpoint.endpoint_url, weather, seed=seed)
        started.append(proxy)
        return proxy, proxy.start()

    yield start
    for proxy in started:
        proxy.stop()


def client(endpoint: str, s3_endpoint, attempts: int = 1):
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=s3_endpoint.access_key_id,
        aws_secret_access_key=s3_endpoint.secret_access_key,
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}))


def test_clear_weather_forwards_every_request_after_the_latency(proxied, s3_endpoint,
                                                                 s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.2))
    s3 = client(endpoint, s3_endpoint)
    bucket = s3_bucket.removeprefix("s3://")
    body = bytes(range(256)) * 1000
    s3.put_object(Bucket=bucket, Key="a/blob", Body=body)
    began = time.monotonic()
    assert s3.get_object(Bucket=bucket, Key="a/blob")["Body"].read() == body
    assert time.monotonic() - began >= 0.2
    assert s3.head_object(Bucket=bucket, Key="a/blob")["ContentLength"] == len(body)
    assert proxy.counts.requests == proxy.counts.forwarded == 3


def test_pyarrow_writes_and_reads_parquet_through_it(proxied, s3_endpoint, s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0))
    host = endpoint.removeprefix("http://")
    filesystem = fs.S3FileSystem(
        endpoint_override=host, scheme="http", region="us-east-1",
        access_key=s3_endpoint.access_key_id, secret_key=s3_endpoint.secret_access_key)
    table = pa.table({"x": list(range(50_000))})
    path = f"{s3_bucket.removeprefix('s3://')}/t.parquet"
    pq.write_table(table, path, filesystem=filesystem, row_group_size=10_000)
    assert pq.read_table(path, filesystem=filesystem).equals(table)
    assert proxy.counts.forwarded >= 3 and proxy.counts.slowdowns == proxy.counts.resets == 0


def test_slowdown_is_a_503_that_s3_clients_recognise(proxied, s3_endpoint, s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0, slowdown=1.0))
    with pytest.raises(ClientError) as raised:
        client(endpoint, s3_endpoint).head_bucket(Bucket=s3_bucket.removeprefix("s3://"))
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert proxy.counts.slowdowns == 1 and proxy.counts.forwarded == 0


def test_a_slowdown_answers_head_without_a_body(proxied):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0, slowdown=1.0))
    connection = http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=10)
    for method in ("HEAD", "GET"):  # one kept-alive connection: a stray body would garble
        connection.request(method, "/bucket/key")
        answer = connection.getresponse()
        assert answer.status == 503
        body = answer.read()
        assert (body == b"") if method == "HEAD" else b"<Code>SlowDown</Code>" in body
    assert proxy.counts.slowdowns == 2


def test_calm_weather_lets_requests_through_before_it_strikes(proxied):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0))
    proxy.weather = s3_proxy.Weather(latency_s=0.0, slowdown=1.0, calm=2)
    connection = http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=10)
    statuses = []
    for _ in range(4):
        connection.request("GET", "/")
        answer = connection.getresponse()
        answer.read()
        statuses.append(answer.status)
    assert statuses[2:] == [503, 503] and 503 not in statuses[:2]


def test_a_reset_drops_the_connection(proxied):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0, reset=1.0))
    connection = http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=10)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        connection.request("GET", "/")
        connection.getresponse()
    assert proxy.counts.resets == 1


def test_retrying_clients_get_through_a_storm_and_an_outage_ends(proxied, s3_endpoint,
                                                                  s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0, slowdown=0.15, reset=0.05), seed=1)
    s3 = client(endpoint, s3_endpoint, attempts=12)
    bucket = s3_bucket.removeprefix("s3://")
    for i in range(20):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=str(i).encode())
        assert s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read() == str(i).encode()
    assert proxy.counts.slowdowns > 0 and proxy.counts.resets > 0
    assert proxy.counts.forwarded == 40

    proxy.weather = s3_proxy.Weather(latency_s=0.0, down=True)
    with pytest.raises(Exception, match=r"(?i)connection"):
        client(endpoint, s3_endpoint).get_object(Bucket=bucket, Key="k0")
    proxy.weather = s3_proxy.Weather(latency_s=0.0)
    assert client(endpoint, s3_endpoint).get_object(Bucket=bucket, Key="k0")["Body"].read() == b"0"


def test_the_script_prints_its_endpoint_and_its_counts(s3_endpoint, s3_bucket, tmp_path):
    script = s3_proxy.__file__
    log = tmp_path / "requests.jsonl"
    bucket = s3_bucket.removeprefix("s3://")
    process = subprocess.Popen(
        [sys.executable, script, "--upstream", s3_endpoint.endpoint_url, "--latency-ms", "1",
         "--slowdown", "0", "--fail-writes", "1", "--write-fault", "507",
         "--request-log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = json.loads(process.stdout.readline())["endpoint"]
        s3 = client(endpoint, s3_endpoint)
        s3.head_bucket(Bucket=s3_bucket.removeprefix("s3://"))
        with pytest.raises(ClientError, match="InsufficientStorage"):
            s3.put_object(Bucket=s3_bucket.removeprefix("s3://"), Key="k", Body=b"k")
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0
    counts = json.loads(errors.splitlines()[-1])["counts"]
    assert counts["forwarded"] == 1 and counts["failed_writes"] == 1
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["method"], r["path"]) for r in logged] == [("HEAD", f"/{bucket}"),
                                                          ("PUT", f"/{bucket}/k")]
    assert logged[0]["t"] <= logged[1]["t"]


@pytest.mark.parametrize(("fault", "status", "code"), [("500", 500, "InternalError"),
                                                        ("507", 507, "InsufficientStorage")])
def test_failing_writes_break_puts_under_a_prefix_while_reads_go_through(
        proxied, s3_endpoint, s3_bucket, fault, status, code):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0))
    s3 = client(endpoint, s3_endpoint)
    bucket = s3_bucket.removeprefix("s3://")
    s3.put_object(Bucket=bucket, Key="ckpt/old", Body=b"old")
    proxy.weather = s3_proxy.Weather(latency_s=0.0, fail_writes=-1, write_fault=fault,
                                     write_paths="/ckpt/")
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="ckpt/new", Body=b"new" * 1000)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert raised.value.response["Error"]["Code"] == code
    s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")  # another prefix: written
    assert s3.get_object(Bucket=bucket, Key="ckpt/old")["Body"].read() == b"old"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == ["ckpt/old", "elsewhere/x"]  # the failed PUT never landed
    assert proxy.counts.failed_writes == 1


def test_failing_writes_break_multipart_parts_for_a_number_of_writes(proxied, s3_endpoint,
                                                                    s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0))
    s3 = client(endpoint, s3_endpoint)
    bucket = s3_bucket.removeprefix("s3://")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    proxy.weather = s3_proxy.Weather(latency_s=0.0, fail_writes=2)
    part = {"Bucket": bucket, "Key": "big", "UploadId": upload, "PartNumber": 1,
            "Body": b"p" * 1000}
    for _ in range(2):  # two writes fail, then the budget is spent
        with pytest.raises(ClientError, match="InternalError"):
            s3.upload_part(**part)
    etag = s3.upload_part(**part)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload,
                                 MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]})
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"p" * 1000
    assert proxy.counts.failed_writes == 2


def test_failing_writes_by_reset_drop_the_connection(proxied, s3_endpoint, s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0, fail_writes=1,
                                               write_fault="reset"))
    with pytest.raises(Exception, match=r"(?i)connection"):
        client(endpoint, s3_endpoint).put_object(Bucket=s3_bucket.removeprefix("s3://"),
                                                 Key="k", Body=b"k")
    assert proxy.counts.failed_writes == 1


def test_throttled_reads_are_a_counted_few_gets_under_a_prefix(proxied, s3_endpoint,
                                                               s3_bucket):
    proxy, endpoint = proxied(s3_proxy.Weather(latency_s=0.0))
    s3 = client(endpoint, s3_endpoint)
    bucket = s3_bucket.removeprefix("s3://")
    for key in ("train/a", "val/b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    proxy.weather = s3_proxy.Weather(latency_s=0.0, throttle_reads=2, read_paths="/train/")
    assert s3.head_object(Bucket=bucket, Key="train/a")["ContentLength"] == 1  # not a GET
    assert s3.get_object(Bucket=bucket, Key="val/b")["Body"].read() == b"x"  # elsewhere
    for _ in range(2):
        with pytest.raises(ClientError, match="SlowDown"):
            s3.get_object(Bucket=bucket, Key="train/a")
    assert s3.get_object(Bucket=bucket, Key="train/a")["Body"].read() == b"x"  # spent
    assert proxy.counts.slowdowns == 2


def test_a_write_fault_the_proxy_cannot_make_is_refused():
    with pytest.raises(ValueError, match="write_fault must be one of 500, 507, reset"):
        s3_proxy.Weather(fail_writes=1, write_fault="404")
