"""Temporary AWS credentials (key pair + AWS_SESSION_TOKEN) reach S3 through both clients
we use: the token is sent on the wire (x-amz-security-token), as S3 requires for them."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from mpmae.storage import StorageOptions, fsspec_filesystem, resolve

TOKEN = "FwoGZXIvYXdzEXAMPLE-session-token"


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with 404 and keeps each request's headers."""

    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, *args) -> None:  # keep the test's output clean
        pass


@pytest.fixture
def recording_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_session_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    opts = StorageOptions.from_env()
    assert opts.session_token == TOKEN
    assert opts.as_env()["AWS_SESSION_TOKEN"] == TOKEN
    assert TOKEN not in repr(opts)


def test_pyarrow_and_s3fs_send_the_session_token(recording_endpoint, monkeypatch):
    endpoint, seen = recording_endpoint
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)  # only the options may supply it
    opts = StorageOptions(endpoint_url=endpoint, region="us-east-1", access_key_id="ASIAKEY",
                          secret_access_key="temporary-secret", session_token=TOKEN)
    location = resolve("s3://bucket/some/object", opts)
    assert not location.exists()  # pyarrow: a HEAD/GET answered 404
    pyarrow_requests = len(seen)
    assert pyarrow_requests and all(h.get("x-amz-security-token") == TOKEN for h in seen)
    assert not fsspec_filesystem(location).exists("bucket/some/object")
    assert len(seen) > pyarrow_requests
    assert all(h.get("x-amz-security-token") == TOKEN for h in seen[pyarrow_requests:])
