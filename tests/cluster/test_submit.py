"""`mpmae submit` against a real Ray head with token auth on (its own ports, temp dir, token)."""

from __future__ import annotations

import hashlib
import re
import textwrap
import time
from pathlib import Path

import pytest
from ray_head import free_ports, ray_head

from mpmae.cli import build_parser, main
from mpmae.cluster.auth import find_token
from mpmae.cluster.submit import (
    SubmitError,
    default_address,
    entrypoint_for,
    normalise_address,
    submit,
    tracking_note,
)
from mpmae.cluster.upload import (
    ALWAYS_EXCLUDED,
    UploadTooLargeError,
    plan_upload,
    upload_excludes,
)

# Ray's own log-tailing client trips an aiohttp deprecation; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")
REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-value-that-must-never-be-printed"
KEY_ID = "AKIA-KEY-ID-ALSO-SECRET"
MLFLOW_PASSWORD = "mlflow-pw-never-printed"

# Prints what the job sees: its args, which variables arrived (secrets only as a hash),
# where `mpmae` was imported from and what was uploaded.
ENVCHECK = textwrap.dedent("""
    import hashlib, os, sys
    import mpmae
    print("ARGV", sys.argv[1:])
    for name in ("MLFLOW_TRACKING_URI", "MPMAE_HOME", "UNRELATED_VARIABLE"):
        print("ENV", name, os.environ.get(name))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        value = os.environ.get(name)
        print("SHA", name, value and hashlib.sha256(value.encode()).hexdigest())
    print("LEAK", os.environ.get("AWS_SECRET_ACCESS_KEY"))  # a careless job: submit masks it
    print("MODULE", mpmae.__file__)
    print("FILES", sorted(os.listdir(".")))
    for folder, _, names in os.walk("."):
        for name in names:
            print("UPLOADED", os.path.join(folder, name))
    sys.exit(int(sys.argv[-1]) if sys.argv[1:] and sys.argv[-1].isdigit() else 0)
""")
# Things a project folder often holds that must never reach the cluster.
PRIVATE_FILES = (".env", "deploy/prod.env", ".aws/credentials", "keys/cluster.pem",
                 "world/dataset.json", "world/shard-0.parquet", "runs/r1/run.json",
                 "runs/r1/ckpt/model.pt", "weights.safetensors")


@pytest.fixture(scope="module")
def head():
    with ray_head() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project folder: a job script, a package, and things that must not upload."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "envcheck.py").write_text(ENVCHECK)
    (tmp_path / "platform" / "mpmae").mkdir(parents=True)
    (tmp_path / "platform" / "mpmae" / "__init__.py").write_text('"""uploaded copy"""\n')
    (tmp_path / ".gitignore").write_text("# local notes\nnotes/\n")
    for junk in ("notes/todo.txt", ".venv/bin/python", ".git/HEAD", "mlflow.db",
                 *PRIVATE_FILES):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("x")
    return tmp_path


def user_env(token: str) -> dict[str, str]:
    return {
        "RAY_AUTH_TOKEN": token,
        "MLFLOW_TRACKING_URI": f"http://mpmae:{MLFLOW_PASSWORD}@mlflow.example:5000",
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "MPMAE_HOME": "/data/mpmae",
        "UNRELATED_VARIABLE": "stays home",
    }


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def job_table(head) -> str:
    """Everything Ray's Job API tells anyone who can reach the dashboard about jobs."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(head.address,
                                 headers={"Authorization": f"Bearer {head.token}"})
    return repr([job.model_dump() for job in client.list_jobs()])


@pytest.mark.ray
def test_job_runs_with_env_and_upload_and_secrets_stay_home(head, project, capsys):
    rc = submit(head.address, ["envcheck", "--flag", "two words"], working_dir=str(project),
                env=user_env(head.token))
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "ARGV ['--flag', 'two words']" in out
    # The tracking server's address travels, its password does not.
    assert "ENV MLFLOW_TRACKING_URI http://mlflow.example:5000" in out
    assert "ENV MPMAE_HOME /data/mpmae" in out
    assert "ENV UNRELATED_VARIABLE None" in out
    assert "SHA AWS_SECRET_ACCESS_KEY None" in out and "SHA AWS_ACCESS_KEY_ID None" in out
    assert "environment passed on: MLFLOW_TRACKING_URI, MPMAE_HOME" in out
    assert ("withheld (secrets): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, the password in "
            "MLFLOW_TRACKING_URI") in out
    # The package came from the upload (py_modules), not from the local install.
    module = re.search(r"MODULE (\S+)", out).group(1)
    assert not module.startswith((str(project), str(REPO)))
    files = re.search(r"FILES (.+)", out).group(1)
    assert "'jobs'" in files and "'platform'" in files
    for excluded in ("notes", ".venv", ".git", "mlflow.db"):
        assert f"'{excluded}'" not in files
    uploaded = set(re.findall(r"UPLOADED \./(\S+)", out))
    assert "jobs/envcheck.py" in uploaded
    assert not uploaded & set(PRIVATE_FILES), uploaded & set(PRIVATE_FILES)
    # What submit measured beforehand is what arrived.
    assert f"uploading {len(uploaded)} files, 0.0 MiB" in out
    assert f"ray job logs --address {head.address} --follow raysubmit_" in out
    assert "SUCCEEDED" in out
    table = job_table(head)
    for secret in (SECRET, KEY_ID, MLFLOW_PASSWORD, head.token):
        assert secret not in out and secret not in err
        assert secret not in table


@pytest.mark.ray
def test_forward_secrets_sends_them_with_a_warning_and_masks_echoes(head, project, capsys):
    rc = submit(head.address, ["envcheck"], working_dir=str(project),
                env=user_env(head.token), forward_secrets=True)
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert f"SHA AWS_SECRET_ACCESS_KEY {sha(SECRET)}" in out
    assert f"SHA AWS_ACCESS_KEY_ID {sha(KEY_ID)}" in out
    assert "LEAK ***" in out
    assert "ENV MLFLOW_TRACKING_URI http://mpmae:***@mlflow.example:5000" in out
    assert "WARNING: --forward-secrets copies AWS_ACCESS_KEY_ID" in out
    assert SECRET in job_table(head)  # what the warning is about, and what the default avoids
    for secret in (SECRET, KEY_ID, MLFLOW_PASSWORD, head.token):
        assert secret not in out and secret not in err


def test_an_argument_holding_a_password_is_refused(project):
    with pytest.raises(SubmitError, match=r"holds a password.*--forward-secrets") as e:
        submit("http://127.0.0.1:9", ["envcheck", "--set",
                                      f"mlflow.tracking_uri=https://u:{MLFLOW_PASSWORD}@h"],
               working_dir=str(project), env={})
    assert MLFLOW_PASSWORD not in str(e.value)


def test_an_oversized_upload_is_refused_naming_its_largest_file(project):
    (project / "notes.bin").write_bytes(b"x" * 300_000)
    with pytest.raises(UploadTooLargeError, match=r"over --max-upload-mb 0\.1.*notes\.bin"):
        submit("http://127.0.0.1:9", ["envcheck"], working_dir=str(project), env={},
               max_upload_mb=0.1)


@pytest.mark.ray
def test_failed_job_gives_nonzero_exit(head, project, capsys):
    assert submit(head.address, ["envcheck", "3"], working_dir=str(project),
                  env=user_env(head.token)) == 1
    assert "FAILED" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.parametrize(("code", "line"), [
    (75, "mpmae: preempted at step 3 (checkpoint in s3://b/runs/r); run the same command to "
         "resume"),
    (2, "mpmae: error: cannot reach s3://b/world/dataset.json: the S3 endpoint … did not "
        "answer")])
def test_a_job_that_ends_with_our_line_passes_it_and_its_code_on(head, project, capsys,
                                                                code, line):
    # A wrapper that resubmits preempted jobs must tell 75 from a failure; the user
    # reads what went wrong last, not Ray's "entrypoint command failed".
    (project / "jobs" / "ours.py").write_text(textwrap.dedent(f"""
        import sys
        print("step 3/9")
        print({line!r}, file=sys.stderr)
        sys.exit({code})
    """))
    assert submit(head.address, ["ours"], working_dir=str(project),
                  env=user_env(head.token)) == code
    out, err = capsys.readouterr()
    assert "step 3/9" in out
    verdict, last = err.strip().splitlines()[-2:]
    assert verdict.endswith(f" FAILED: Job entrypoint command failed with exit code {code}")
    assert last == line


def test_our_last_line_is_found_across_chunks():
    from mpmae.cluster.submit import OurLastLine

    ours = OurLastLine()
    for chunk in ("step 1\nmpmae: err", "or: first\nnoise\n", "mpmae: error: sec", "ond"):
        ours.feed(chunk)
    assert ours.line == "mpmae: error: second"  # the unterminated last line counts
    ours.feed("\nmore noise\n")
    assert ours.line == "mpmae: error: second"


@pytest.mark.ray
def test_no_wait_prints_how_to_follow(head, project, capsys):
    from ray.job_submission import JobSubmissionClient

    assert submit(head.address, ["envcheck"], working_dir=str(project), wait=False,
                  env=user_env(head.token)) == 0
    out = capsys.readouterr().out
    job_id = re.search(r"Job submitted: (\S+)", out).group(1)
    assert f"{head.address}/#/jobs/{job_id}" in out
    client = JobSubmissionClient(head.address,
                                 headers={"Authorization": f"Bearer {head.token}"})
    deadline = time.monotonic() + 60
    while str(client.get_job_status(job_id).value) != "SUCCEEDED":
        assert time.monotonic() < deadline, client.get_job_logs(job_id)
        time.sleep(0.5)


@pytest.mark.ray
def test_missing_token_is_explained(head, project, tmp_path):
    env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "no-token-here")}
    with pytest.raises(SubmitError, match="requires an authentication token and none was found"
                                          r".*ray get-auth-token"):
        submit(head.address, ["envcheck"], working_dir=str(project), env=env)


@pytest.mark.ray
def test_wrong_token_is_explained_without_echoing_it(head, project):
    with pytest.raises(SubmitError, match=r"rejected the token from \$RAY_AUTH_TOKEN") as e:
        submit(head.address, ["envcheck"], working_dir=str(project),
               env={"RAY_AUTH_TOKEN": "not-the-token-0123"})
    assert "not-the-token-0123" not in str(e.value)


def test_unreachable_address_names_it(project):
    address = f"http://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(SubmitError, match=re.escape(f"cannot reach the Ray Job API at {address}")):
        submit(address, ["envcheck"], working_dir=str(project), env={})


def test_unknown_verb_lists_the_submittable_ones(project):
    with pytest.raises(SubmitError, match=r"no jobs/train\.py .* from there: envcheck"):
        entrypoint_for(project, ["train"])
    assert entrypoint_for(project, ["envcheck", "--set", "name=a b"]) == (
        "python jobs/envcheck.py --set 'name=a b'")


def test_excludes_cover_ignore_files_and_local_state(project):
    (project / ".rayignore").write_text("big-data/\n")
    patterns = upload_excludes(project)
    assert patterns[: len(ALWAYS_EXCLUDED)] == list(ALWAYS_EXCLUDED)
    assert {"notes/", "big-data/", ".venv/", ".git/", "mlflow.db*", ".env", ".aws/",
            "/world/", "/runs/r1/"} <= set(patterns)
    assert "# local notes" not in patterns


def test_a_ray_without_its_packaging_helpers_still_gets_the_excludes(project, monkeypatch):
    import sys

    from mpmae.ray_fixes import guard

    monkeypatch.setitem(sys.modules, "ray._private.runtime_env.packaging", None)
    guard.reset()
    try:
        with pytest.warns(UserWarning, match="upload_walk' is off"):
            assert plan_upload(project) is None
        assert set(ALWAYS_EXCLUDED) <= set(upload_excludes(project))
    finally:
        guard.reset()


def test_repo_job_entrypoints_are_thin_files():
    assert not (REPO / "jobs" / "__init__.py").exists()
    for verb in ("pretrain", "tune"):
        assert f'main(["{verb}", *sys.argv[1:]])' in (REPO / "jobs" / f"{verb}.py").read_text()
    assert entrypoint_for(REPO, ["pretrain", "--config", "jobs/configs/demo.yaml"]) == (
        "python jobs/pretrain.py --config jobs/configs/demo.yaml")


def test_token_lookup_order(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert find_token("explicit", {"RAY_AUTH_TOKEN": "env"}).value == "explicit"
    assert find_token(None, {"RAY_AUTH_TOKEN": "env"}).source == "$RAY_AUTH_TOKEN"
    from_file = find_token(None, {"RAY_AUTH_TOKEN_PATH": str(token_file)})
    assert (from_file.value, from_file.source) == ("from-file", str(token_file))
    assert "from-file" not in repr(from_file)
    assert find_token(None, {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")}).value is None


def test_addresses():
    assert normalise_address("head:8265/") == "http://head:8265"
    with pytest.raises(SubmitError, match="not a Job API address"):
        normalise_address("ray://head:10001")
    assert default_address(None, {"RAY_ADDRESS": "head:6379"}) == "http://127.0.0.1:8265"
    assert default_address(None, {"RAY_ADDRESS": "http://h:8265"}) == "http://h:8265"
    assert default_address("http://x:1", {"RAY_API_SERVER_ADDRESS": "http://y:2"}) == "http://x:1"


def test_tracking_notes():
    assert "not set" in tracking_note("", "http://head:8265")
    assert "local store" in tracking_note("sqlite:///mlflow.db", "http://head:8265")
    assert tracking_note("sqlite:///mlflow.db", "http://127.0.0.1:8265") is None
    assert tracking_note("http://mlflow:5000", "http://head:8265") is None


def test_parser_passes_everything_after_the_verb_through():
    args = build_parser().parse_args([
        "submit", "--address", "http://h:8265", "--no-wait", "pretrain",
        "--config", "jobs/configs/demo.yaml", "--set", "model.size=tiny"])
    assert (args.address, args.wait, args.verb) == ("http://h:8265", False, "pretrain")
    assert args.args == ["--config", "jobs/configs/demo.yaml", "--set", "model.size=tiny"]
    assert (args.forward_secrets, args.max_upload_mb) == (False, 100.0)


def test_the_command_line_hands_its_flags_to_submit(project, capsys):
    address = f"http://127.0.0.1:{free_ports(1)[0]}"
    argv = ["submit", "--address", address, "--working-dir", str(project)]
    assert main([*argv, "envcheck"]) == 2
    assert f"cannot reach the Ray Job API at {address}" in capsys.readouterr().err
    (project / "notes.bin").write_bytes(b"x" * 300_000)
    assert main([*argv, "--max-upload-mb", "0.1", "envcheck"]) == 2
    assert "over --max-upload-mb 0.1" in capsys.readouterr().err
