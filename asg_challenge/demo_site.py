"""A tiny real site for `asg dev` to put the challenge gateway in front of: two HTML pages and a
JSON endpoint, served by the standard library's threaded HTTP server. It stands in for a
customer's site so the README can show the whole path (docs/challenge.md, "Trying it")."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Demo shop</title></head>
<body><h1>{title}</h1><p>{text}</p>
<p><a href="/">Home</a> · <a href="/products">Products</a> · <a href="/api/products">JSON</a></p>
</body></html>
"""
PRODUCTS: list[dict[str, str | int]] = [
    {"id": 1, "name": "Tabby cat poster", "price": 12},
    {"id": 2, "name": "Beagle mug", "price": 9},
]
PAGES = {
    "/": ("Welcome", "This is the demo site behind asg-challenge."),
    "/products": ("Products", ", ".join(str(p["name"]) for p in PRODUCTS)),
}


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-site"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: `asg dev` shares its terminal with the whole stack

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/products":
            self._send(200, json.dumps(PRODUCTS).encode(), "application/json")
        elif path in PAGES:
            title, text = PAGES[path]
            self._send(200, PAGE.format(title=title, text=text).encode(), "text/html; charset=utf-8")
        else:
            self._send(404, json.dumps({"error": "not found"}).encode(), "application/json")

    do_HEAD = do_GET


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-request (a benchmark's end) is not the site's error


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """The site listening on host:port (0 = a free port), serving from a daemon thread."""
    server = DemoServer((host, port), DemoHandler)
    threading.Thread(target=server.serve_forever, name="demo-site", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m asg_challenge.demo_site", description=__doc__)
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8091", help="listen address")
    a = p.parse_args(argv)
    host, _, port = str(a.listen).rpartition(":")
    try:
        server = serve(host or "127.0.0.1", int(port))
    except (OSError, ValueError) as exc:
        print(f"demo-site: --listen {a.listen}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
