"""S3 weather on loopback: a proxy in front of an S3 endpoint (moto) that delays every request,
answers a share of them ``503 SlowDown`` and resets a share of connections — what a real S3
does at its request-rate limits, and what a laptop's moto never does. It can also fail
writes only (PUT and POST: objects, multipart parts and their completion) with a 500, a 507
or a reset, for a number of them or until the weather changes, e.g. only under one prefix:
a store that serves reads while writes break, as a full or failing one does; and throttle
a counted number of GETs (under a prefix), so a test knows how many retries to expect.

    python infra/local/s3_proxy.py --upstream http://127.0.0.1:9000 --port 9100 \\
        --latency-ms 30 --slowdown 0.15 --reset 0.05
    python infra/local/s3_proxy.py --upstream … --fail-writes -1 --write-fault 507 \\
        --write-paths '/runs/.*/checkpoint_'

Clients then use ``http://127.0.0.1:9100`` as their endpoint. Faults are drawn from a seeded
generator, so a run is repeatable; each request is counted by what happened to it. In a test
or a benchmark, ``S3Proxy(upstream, Weather(...)).start()`` runs it on a thread instead, and
``proxy.weather`` can be changed while it runs (``Weather(down=True)``: an outage).
``--request-log FILE`` (``request_log=``) writes each request as a JSON line, its arrival
time (``time.time()``), method and path: what a client asked, and when.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

COPY_CHUNK = 1 << 16
NO_BODY_STATUS = {204, 304}
WRITE_METHODS = (b"PUT", b"POST")
WRITE_FAULTS = ("500", "507", "reset")


def error_answer(status: str, code: str, message: str) -> bytes:
    """An S3 error answer: the status line, and the XML body S3 clients parse."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>s3-proxy</RequestId></Error>").encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


SLOWDOWN = error_answer("503 Slow Down", "SlowDown", "Please reduce your request rate.")
WRITE_ERRORS = {
    "500": error_answer("500 Internal Server Error", "InternalError",
                        "We encountered an internal error. Please try again."),
    "507": error_answer("507 Insufficient Storage", "InsufficientStorage",
                        "The store has no space left for this object."),
}


@dataclass(frozen=True)
class Weather:
    """What the proxy does to each request."""

    latency_s: float = 0.03  # added before each answer, like a far-away endpoint
    slowdown: float = 0.0  # share of requests answered 503 SlowDown (not forwarded)
    reset: float = 0.0  # share of requests whose connection is reset (TCP RST)
    down: bool = False  # an outage: every connection is reset
    calm: int = 0  # requests forwarded untouched once this weather is set, before it strikes
    fail_writes: int = 0  # writes (PUT, POST) that fail once it strikes; -1: every one
    write_fault: str = "500"  # how they fail: "500" InternalError, "507", "reset"
    write_paths: str = ""  # a regex a write's path must match to fail ("": any path)
    throttle_reads: int = 0  # GETs answered 503 SlowDown once it strikes, before any other
    read_paths: str = ""  # a regex a throttled GET's path must match ("": any path)

    def __post_init__(self) -> None:
        if self.write_fault not in WRITE_FAULTS:
            raise ValueError(f"write_fault must be one of {', '.join(WRITE_FAULTS)}, "
                             f"got {self.write_fault!r}")
        if self.fail_writes < -1:
            raise ValueError(f"fail_writes must be -1 (every write) or more, got "
                             f"{self.fail_writes}")
        if self.throttle_reads < 0:
            raise ValueError(f"throttle_reads must be 0 or more, got {self.throttle_reads}")
        re.compile(self.write_paths)  # a bad pattern fails here, not at the first request
        re.compile(self.read_paths)


@dataclass
class Counts:
    requests: int = 0
    forwarded: int = 0
    slowdowns: int = 0
    resets: int = 0
    failed_writes: int = 0  # writes answered with the weather's write fault


class Headers(dict):
    """Lower-cased header names of one HTTP message head."""

    @classmethod
    def parse(cls, head: bytes) -> tuple[str, Headers]:
        first, *lines = head.decode("latin-1").split("\r\n")
        headers = cls()
        for line in lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return first, headers

    def closes(self) -> bool:
        return self.get("connection", "").lower() == "close"


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """One message head up to its blank line; None at a clean end of the connection."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None


async def copy_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None,
                    headers: Headers, until_eof: bool) -> None:
    """Copy (or, with no writer, drop) one message body framed as ``headers`` say."""
    def put(data: bytes) -> None:
        if writer is not None:
            writer.write(data)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            put(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    put(trailer)
                put(b"\r\n")
                return
            put(await reader.readexactly(size + 2))
            if writer is not None:
                await writer.drain()
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            data = await reader.readexactly(min(left, COPY_CHUNK))
            left -= len(data)
            put(data)
            if writer is not None:
                await writer.drain()
    elif until_eof:
        while data := await reader.read(COPY_CHUNK):
            put(data)
            if writer is not None:
                await writer.drain()


def _method_and_path(head: bytes) -> tuple[bytes, str]:
    method, _, rest = head.partition(b" ")
    return method, rest.split(b" ", 1)[0].decode("latin-1")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, as a dropped connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class S3Proxy:
    """The proxy on its own event loop thread; ``start()`` gives its endpoint URL."""

    def __init__(self, upstream: str, weather: Weather, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0, request_log: str = "") -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.counts = Counts()
        self.weather = weather
        self._bind = (host, port)
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="s3-proxy")
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._request_log = open(request_log, "a") if request_log else None  # noqa: SIM115

    def start(self) -> str:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        host, port = future.result(timeout=10)
        return f"http://{host}:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self._request_log is not None:
            self._request_log.close()

    async def _listen(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, *self._bind)
        return self._server.sockets[0].getsockname()[:2]

    async def _close(self) -> None:
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def weather(self) -> Weather:
        return self._weather

    @weather.setter
    def weather(self, weather: Weather) -> None:
        self._weather, self._set_at = weather, self.counts.requests
        self._writes_failed = self._reads_throttled = 0

    def _draw(self, head: bytes) -> str:
        weather = self.weather
        if self.counts.requests - self._set_at <= weather.calm:
            return "forward"
        if weather.down:
            return "reset"
        if self._fails_write(weather, head):
            self._writes_failed += 1
            return "write"
        if self._throttles_read(weather, head):
            self._reads_throttled += 1
            return "slowdown"
        roll = self._random.random()
        if roll < weather.reset:
            return "reset"
        return "slowdown" if roll < weather.reset + weather.slowdown else "forward"

    def _fails_write(self, weather: Weather, head: bytes) -> bool:
        """Whether this request is a write the weather fails (its budget not spent)."""
        if not weather.fail_writes or (weather.fail_writes != -1
                                       and self._writes_failed >= weather.fail_writes):
            return False
        method, path = _method_and_path(head)
        return method in WRITE_METHODS and re.search(weather.write_paths, path) is not None

    def _throttles_read(self, weather: Weather, head: bytes) -> bool:
        """Whether this request is one of the GETs the weather throttles (a counted few:
        a test knows exactly how many retries its clients must make)."""
        if self._reads_throttled >= weather.throttle_reads:
            return False
        method, path = _method_and_path(head)
        return method == b"GET" and re.search(weather.read_paths, path) is not None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: list = []  # one connection to the endpoint, opened on the first forward
        self._connections.add(asyncio.current_task())
        try:
            while await self._one_request(reader, writer, upstream):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client or the endpoint went away mid-message: so does this connection
        finally:
            for _, up_writer in upstream:
                up_writer.close()
            writer.close()
            self._connections.discard(asyncio.current_task())

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           upstream: list) -> bool:
        """Serve one request; False when the connection is done."""
        head = await read_head(reader)
        if head is None:
            return False
        _, headers = Headers.parse(head)
        self.counts.requests += 1
        if self._request_log is not None:
            method, path = _method_and_path(head)
            self._request_log.write(json.dumps({"t": time.time(), "method": method.decode(),
                                                "path": path}) + "\n")
        if headers.get("expect", "").lower() == "100-continue":
            # Answered here so that the client sends its body; the endpoint never sees it.
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = b"".join(line for line in head.splitlines(keepends=True)
                            if not line.lower().startswith(b"expect:"))
        fault = self._draw(head)
        await asyncio.sleep(self.weather.latency_s)
        if fault == "write":
            self.counts.failed_writes += 1
            if self.weather.write_fault == "reset":
                reset(writer)
                return False
            await copy_body(reader, None, headers, until_eof=False)
            writer.write(WRITE_ERRORS[self.weather.write_fault])
            await writer.drain()
            return not headers.closes()
        if fault == "reset":
            self.counts.resets += 1
            reset(writer)
            return False
        if fault == "slowdown":
            self.counts.slowdowns += 1
            await copy_body(reader, None, headers, until_eof=False)
            # An answer to HEAD has the headers of a body but no body (HTTP/1.1).
            writer.write(SLOWDOWN[: SLOWDOWN.index(b"\r\n\r\n") + 4]
                         if head.startswith(b"HEAD ") else SLOWDOWN)
            await writer.drain()
            return not headers.closes()
        self.counts.forwarded += 1
        return await self._forward(head, headers, reader, writer, upstream)

    async def _forward(self, head: bytes, headers: Headers, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, upstream: list) -> bool:
        if not upstream:
            upstream.append(await asyncio.open_connection(*self.upstream))
        up_reader, up_writer = upstream[0]
        up_writer.write(head)
        await copy_body(reader, up_writer, headers, until_eof=False)
        await up_writer.drain()
        answer = await read_head(up_reader)
        if answer is None:
            raise ConnectionResetError("the endpoint closed the connection")
        status_line, answer_headers = Headers.parse(answer)
        writer.write(answer)
        status = int(status_line.split()[1])
        if head.split(b" ", 1)[0] != b"HEAD" and status not in NO_BODY_STATUS \
                and status >= 200:
            await copy_body(up_reader, writer, answer_headers, until_eof=True)
        await writer.drain()
        return not (headers.closes() or answer_headers.closes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the S3 endpoint, http://host:port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--slowdown", type=float, default=0.0, help="share answered 503")
    parser.add_argument("--reset", type=float, default=0.0, help="share of connections reset")
    parser.add_argument("--fail-writes", type=int, default=0,
                        help="writes (PUT, POST) that fail; -1: every one")
    parser.add_argument("--write-fault", choices=WRITE_FAULTS, default="500")
    parser.add_argument("--write-paths", default="", help="regex a failing write's path matches")
    parser.add_argument("--throttle-reads", type=int, default=0,
                        help="the first N GETs answered 503 SlowDown")
    parser.add_argument("--read-paths", default="", help="regex a throttled GET's path matches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--request-log", default="", help="a JSON line per request, to FILE")
    args = parser.parse_args(argv)
    weather = Weather(args.latency_ms / 1000, args.slowdown, args.reset,
                      fail_writes=args.fail_writes, write_fault=args.write_fault,
                      write_paths=args.write_paths, throttle_reads=args.throttle_reads,
                      read_paths=args.read_paths)
    proxy = S3Proxy(args.upstream, weather, args.host, args.port, args.seed, args.request_log)
    print(json.dumps({"endpoint": proxy.start(), "weather": asdict(weather)}), flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    proxy.stop()
    print(json.dumps({"counts": asdict(proxy.counts)}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
