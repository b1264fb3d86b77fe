import pytest

from mpmae.storage import StorageError, StorageOptions, resolve


def test_local_paths_and_file_uris_resolve_to_the_same_place(tmp_path):
    a, b = resolve(tmp_path), resolve(f"file://{tmp_path}")
    assert a.path == b.path == str(tmp_path.resolve())
    target = a.join("x", "y.bin")
    target.write_bytes_atomic(b"data")
    assert target.read_bytes() == b"data" and a.list_files() == ["x/y.bin"]
    assert not list(tmp_path.glob("x/*.tmp-*"))


def test_s3_round_trip_on_a_real_endpoint(s3_endpoint, s3_bucket):
    loc = resolve(f"{s3_bucket}/prefix", s3_endpoint)
    assert loc.path == f"{s3_bucket[5:]}/prefix"
    loc.join("a", "b.txt").write_bytes_atomic(b"hello")
    assert loc.join("a", "b.txt").read_bytes() == b"hello"
    assert loc.list_files(".txt") == ["a/b.txt"]
    with pytest.raises(FileNotFoundError):
        loc.join("missing").read_bytes()


def test_unreachable_store_names_the_endpoint_but_never_the_secret():
    opts = StorageOptions(endpoint_url="http://127.0.0.1:9", region="us-east-1",
                          access_key_id="AKIDSECRETID", secret_access_key="very-secret-key",
                          retries=2)
    with pytest.raises(StorageError) as info:
        resolve("s3://bucket/x", opts).join("dataset.json").read_bytes()
    text = str(info.value)
    assert "127.0.0.1:9" in text and "s3://bucket/x" in text
    assert "very-secret-key" not in text and "AKIDSECRETID" not in text
    assert "very-secret-key" not in repr(opts)


def test_options_fall_back_to_standard_aws_variables(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:1234")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    opts = StorageOptions.from_env(region="us-west-2")
    assert opts.endpoint_url == "http://localhost:1234" and opts.region == "us-west-2"
    assert opts.as_env()["AWS_ENDPOINT_URL"] == "http://localhost:1234"


def test_unsupported_schemes_are_rejected():
    with pytest.raises(ValueError, match="unsupported storage URI"):
        resolve("gs://bucket/x")


def test_relative_file_uris_resolve_under_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = str(tmp_path / "runs" / "x")
    assert resolve("file://runs/x").path == expected  # not host "runs", path /x
    assert resolve("file:runs/x").path == expected
    assert resolve("runs/x").path == expected
    assert resolve("file://localhost/srv/y").path == "/srv/y"


def test_a_local_write_failure_names_the_path_not_aws(tmp_path, capsys):
    from mpmae.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["data", "synth", str(blocker / "world"), "--tiles", "8", "--size", "8",
                 "--downstream-tiles", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mpmae: error: cannot access {blocker}/world/") and err.count("\n") == 1
    assert "AWS" not in err and "permissions" in err


def test_retries_and_timeout_come_from_config_else_the_environment(monkeypatch):
    from mpmae.storage import StorageConfig

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("MPMAE_S3_TIMEOUT", "3.5")
    opts = StorageConfig().options()
    assert (opts.retries, opts.timeout) == (4, 3.5)
    opts = StorageConfig(retries=7, timeout=9).options()
    assert (opts.retries, opts.timeout) == (7, 9)
    env = opts.as_env()  # what another process (an MLflow server, a job) gets
    assert env["AWS_MAX_ATTEMPTS"] == "7" and env["AWS_RETRY_MODE"] == "standard"
    assert env["MPMAE_S3_TIMEOUT"] == "9"
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    monkeypatch.delenv("MPMAE_S3_TIMEOUT")
    assert (StorageConfig().options().retries, StorageConfig().options().timeout) == (10, 20)


def test_bad_retry_settings_name_their_key_or_variable(monkeypatch):
    from mpmae.config import ConfigError, load_config
    from mpmae.train.config import PretrainConfig

    with pytest.raises(ConfigError, match=r"^storage\.retries: must be 1 or more"):
        load_config(PretrainConfig, None, ["storage.retries=-1"])
    with pytest.raises(ConfigError, match=r"^storage\.timeout: must be above 0"):
        load_config(PretrainConfig, None, ["storage.timeout=-2"])
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match=r"AWS_MAX_ATTEMPTS must be a number above 0"):
        StorageOptions.from_env()


def test_a_pickled_local_location_still_reads(tmp_path):
    import pickle

    loc = resolve(tmp_path).join("f.bin")
    loc.write_bytes_atomic(b"x")
    assert pickle.loads(pickle.dumps(loc)).read_bytes() == b"x"
