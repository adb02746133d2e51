"""A real HTTPS webhook receiver on 127.0.0.1 for the tests: records every request and answers
as the test scripts it (a status, optionally after a delay)."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


# (status, seconds to wait before answering), given the 1-based number of the request
Script = Callable[[int], tuple[int, float]]


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made by the openssl CLI: (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Receiver:
    """`start()` serves on `port` (0: a free one, kept across restarts); `stop()` closes it.
    HTTPS with `cert` and `key`, plain HTTP without (for the in-process worker tests)."""

    def __init__(
        self, cert: Path | None = None, key: Path | None = None, script: Script | None = None, port: int = 0
    ) -> None:
        self.script: Script = script or (lambda n: (200, 0.0))
        self.port = port
        self.requests: list[Received] = []
        self._cert, self._key = cert, key
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body, time.time()))
                    n = len(receiver.requests)
                status, delay = receiver.script(n)
                if delay and receiver._closing.wait(delay):
                    return
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._closing.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self._cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._cert, self._key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """The first `count` requests, once that many arrived; fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(self.requests)} of {count} requests in {timeout}s")
            time.sleep(0.02)
        return self.requests[:count]
