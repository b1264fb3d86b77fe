"""``mpmae evaluate s3://BUCKET/runs/RUN/encoder DATASET``: an encoder release on S3 (the
folder ``mpmae pretrain`` exports to an S3 storage root), read through the storage layer
from a real S3 endpoint (moto); what is missing or unreachable is one line naming the URI."""

from __future__ import annotations

import json
import time

import mlflow
import pytest
import torch
from geobench_layout import eurosat_like
from mlflow_server import free_port

from mpmae.cli import main
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import build_encoder, save_encoder
from mpmae.model.release import CONFIG_FILE, WEIGHTS_FILE
from mpmae.storage import StorageOptions, resolve

pytestmark = pytest.mark.s3

NORMALISATION = {"l1c": {"mean": [1000.0] * 12, "std": [400.0] * 12}}


def _upload_release(tmp_path, uri: str, opts: StorageOptions,
                    skip: tuple[str, ...] = ()) -> torch.nn.Module:
    """A random atto release written locally, then put file by file at ``uri`` as the
    export does (``skip``: files left out); returns the encoder."""
    encoder = build_encoder("atto")
    folder = save_encoder(encoder, tmp_path / "release", metadata={
        "input_bands": list(S2_INPUT_BANDS), "normalisation": NORMALISATION})
    target = resolve(uri, opts)
    for file in sorted(folder.iterdir()):
        if file.name not in skip:
            target.join(file.name).write_bytes_atomic(file.read_bytes())
    return encoder


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """The endpoint and credentials in the AWS_* variables, as a user sets them."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    for name, value in s3_endpoint.as_env().items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


def test_an_s3_release_opens_with_its_weights_and_bands(tmp_path, s3_env, s3_bucket):
    uri = f"{s3_bucket}/runs/demo-1/encoder"
    original = _upload_release(tmp_path, uri, s3_env)

    encoder = open_encoder(uri, storage=StorageOptions.from_env())

    assert encoder.name == uri and encoder.input_bands == S2_INPUT_BANDS
    assert encoder.normalisation == NORMALISATION
    assert encoder.tags == {"mpmae.encoder_source": uri}
    mine, theirs = encoder.module.state_dict(), original.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_the_library_loads_an_s3_release_as_the_run_summary_says(tmp_path, s3_env,
                                                                  s3_bucket):
    # `mpmae pretrain` on an S3 storage root ends with: mpmae.load_encoder('s3://…/encoder')
    import mpmae
    from mpmae.model.release import ReleaseNotFoundError

    uri = f"{s3_bucket}/runs/demo-1/encoder"
    original = _upload_release(tmp_path, uri, s3_env)
    loaded = mpmae.load_encoder(uri)
    assert loaded.release_config["input_bands"] == list(S2_INPUT_BANDS)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 original.state_dict().values(), strict=True))
    with pytest.raises(ReleaseNotFoundError, match=rf"^{s3_bucket}/runs/none/encoder/"
                                                   rf"{CONFIG_FILE} not found"):
        mpmae.load_encoder(f"{s3_bucket}/runs/none/encoder")


@pytest.mark.ray
def test_evaluate_scores_an_s3_release(ray_local, tmp_path, s3_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    uri = f"{s3_bucket}/runs/demo-1/encoder/"  # a trailing slash is the same folder
    _upload_release(tmp_path, uri, s3_env)
    out = tmp_path / "results.json"

    assert main(["evaluate", uri, str(eurosat_like(tmp_path)), "--protocol", "knn",
                 "--results", str(out), "--set", "mlflow.system_metrics=false"]) == 0

    [row] = json.loads(out.read_text())["results"]
    assert row["encoder"] == uri and row["protocol"] == "knn" and 0 <= row["value"] <= 1
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("mpmae-evaluate").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["mpmae.encoder_source"] == uri.rstrip("/")
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(("case", "expected"), [
    ("no-folder", "{runs}/nope/encoder holds no encoder release (config.json not found)"),
    ("no-weights", "{runs}/demo-1/encoder holds config.json but no model.safetensors"),
    ("damaged-weights", "{runs}/demo-1/encoder/model.safetensors is not a readable "
                        "safetensors file"),
    ("run-name", "{runs}/demo-1/encoder holds config.json but no model.safetensors"),
])
def test_a_bad_s3_release_is_one_line_naming_it(tmp_path, s3_env, s3_bucket, capsys, case,
                                                expected):
    runs = f"{s3_bucket}/{case}/runs"  # the bucket's name is shared by every case
    release = f"{runs}/demo-1/encoder"
    _upload_release(tmp_path, release, s3_env, skip=(WEIGHTS_FILE,))
    if case == "damaged-weights":
        resolve(release, s3_env).join(WEIGHTS_FILE).write_bytes_atomic(b"not safetensors")
    spec = {"no-folder": f"{runs}/nope/encoder", "run-name": "demo-1"}.get(case, release)

    assert main(["evaluate", spec, str(eurosat_like(tmp_path)), "--protocol", "knn",
                 "--set", f"storage.root={runs}"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: " + expected.format(runs=runs))
    assert err.count("\n") == 1 and s3_env.secret_access_key not in err


def test_an_unreachable_endpoint_is_one_line_naming_the_uri(tmp_path, s3_endpoint,
                                                            monkeypatch, capsys):
    # Nothing listens on the port: every attempt is refused at once.
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_MAX_ATTEMPTS": "2",
                        "MPMAE_S3_TIMEOUT": "2", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": s3_endpoint.access_key_id,
                        "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_access_key}.items():
        monkeypatch.setenv(name, value)
    uri = "s3://bucket/runs/demo-1/encoder"
    began = time.monotonic()

    assert main(["evaluate", uri, str(eurosat_like(tmp_path))]) == 2

    # Bounded, not hung: 2 refused attempts and the SDK's one wait (at most 1 s) between.
    assert time.monotonic() - began < 60
    err = capsys.readouterr().err
    assert err.startswith(f"mpmae: error: cannot reach {uri}/{CONFIG_FILE}: the S3 endpoint "
                          f"{endpoint} did not answer after up to 2 attempt(s)")
    assert err.count("\n") == 1 and s3_endpoint.secret_access_key not in err
