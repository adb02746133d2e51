"""Real servers the core reads manifests from, for the tests:

* `S3Server`: moto's standalone S3-compatible server as its own process (`moto_server`), used
  with boto3 over HTTP exactly as the core uses it;
* `HttpsManifestServer`: files over HTTPS (self-signed certificate for 127.0.0.1, trusted by a
  core started with SSL_CERT_FILE=<cert>), honouring Range requests like a CDN.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx

from asg_grpc.devstack import free_addr
from tests.core.webhooks.receiver import make_cert

ACCESS_KEY_ID = "AKIAMANIFESTREADER01"
SECRET_ACCESS_KEY = "manifest-secret-8c1f7e2a9b4d"  # searched for in logs and the database
REGION = "us-east-1"


class S3Server:
    """`with S3Server() as s3:` starts moto_server on a free port and stops it after."""

    def __init__(self) -> None:
        self.addr = free_addr()
        self.endpoint_url = f"http://{self.addr}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def __enter__(self) -> S3Server:
        host, port = self.addr.split(":")
        moto = shutil.which("moto_server", path=os.path.dirname(sys.executable))
        assert moto is not None, "moto[server] is a dev dependency: moto_server should be installed"
        self._proc = subprocess.Popen(
            [moto, "-H", host, "-p", port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.endpoint_url, timeout=1.0)
                return self
            except httpx.HTTPError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)

    def client(self) -> Any:
        """A boto3 S3 client for this server (one, closed with the server)."""
        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
                region_name=REGION,
            )
        return self._client

    def put(self, bucket: str, key: str, body: bytes) -> str:
        """Store a manifest (creating the bucket if needed); returns its s3:// URL."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"

    def credentials(self, **changes: str) -> dict[str, str]:
        """The `s3_credentials` object of POST /v1/jobs for this server."""
        return {
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "region": REGION,
            "endpoint_url": self.endpoint_url,
            **changes,
        }


_RANGE = re.compile(r"bytes=(\d+)-$")


class HttpsManifestServer:
    """Serves `files[name]` at /name over HTTPS; records each request's Range header. Over
    plain HTTP with no `cert_dir` (a developer's local server, for development mode)."""

    def __init__(self, cert_dir: Path | None) -> None:
        self.cert, self.key = make_cert(cert_dir) if cert_dir is not None else (None, None)
        self.files: dict[str, bytes] = {}
        self.encodings: dict[str, str] = {}  # name → Content-Encoding to answer with
        self.ranges: list[str | None] = []
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> HttpsManifestServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.ranges.append(self.headers.get("Range"))
                body = owner.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                status, start = 200, 0
                match = _RANGE.match(self.headers.get("Range") or "")
                if match:
                    start = int(match[1])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                encoding = owner.encodings.get(self.path.lstrip("/"))
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert, self.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, name: str) -> str:
        assert self._server is not None
        scheme = "https" if self.cert is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/{name}"
