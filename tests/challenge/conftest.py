"""The challenge gateway's harness: a real upstream (stdlib ThreadingHTTPServer that echoes what
it received and counts hits) and `asg-challenge` as a process on a free port."""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

PASSWORD = "correct-horse-battery"
USER = "admin"
BIN = Path(sys.executable).parent / "asg-challenge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


UPSTREAM_DATE = "Mon, 01 Jan 2001 00:00:00 GMT"  # the Date `/dated…` answers with


@dataclass
class Upstream:
    url: str
    hits: list[dict[str, Any]] = field(default_factory=list)

    def count(self, path_prefix: str = "/") -> int:
        return sum(1 for h in self.hits if h["path"].startswith(path_prefix))


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body_in = self.rfile.read(length) if length else b""
            seen = {k.lower(): v for k, v in self.headers.items()}
            body = body_in.decode("latin-1")
            hit = {"method": self.command, "path": self.path, "headers": seen, "body": body}
            up.hits.append(hit)
            if self.path.startswith("/slow"):
                time.sleep(3)
            if self.path.startswith("/redir"):
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            out = json.dumps(hit).encode()
            if self.path.startswith(("/dated", "/undated")):  # a Date of its own, or none
                self.send_response_only(200)
                if self.path.startswith("/dated"):
                    self.send_header("Date", UPSTREAM_DATE)
            else:
                self.send_response(200)  # with the server's Date of now
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.send_header("Set-Cookie", "site=1; Path=/")
            self.send_header("Set-Cookie", "cg_pass=forged; Path=/")
            self.send_header("Keep-Alive", "timeout=5")
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _reply

    return Echo


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Upstream("")))
    up = Upstream(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(up)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield up
    server.shutdown()
    server.server_close()


@dataclass
class Gateway:
    url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Any = None
    verify: bool = True  # False for a TLS listener with a self-signed test certificate

    def dash(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/dashboard/api", auth=(USER, PASSWORD), timeout=10.0, verify=self.verify
        )

    def config(self, **values: Any) -> dict[str, Any]:
        with self.dash() as d:
            r = d.post("/config", json=values)
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out


def start_gateway(tmp: Path, upstream_url: str, **env: str) -> Gateway:
    port = free_port()
    data = tmp / "data"
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASG_CHALLENGE_")},
        "ASG_CHALLENGE_DASHBOARD_USER": USER,
        "ASG_CHALLENGE_DASHBOARD_PASSWORD": PASSWORD,
        "ASG_CHALLENGE_TRUSTED_PROXIES": "127.0.0.0/8",
        "ASG_CHALLENGE_EXPLORE": "0",
        **env,
    }
    log = (tmp / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN), "--listen", f"127.0.0.1:{port}", "--upstream", upstream_url, "--data-dir", str(data)],
        env=full, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    tls = "ASG_CHALLENGE_TLS_CERT" in env
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"asg-challenge exited: {(tmp / 'gateway.log').read_text()}")
        try:
            metrics = f"{url}/dashboard/api/metrics"
            ready = httpx.get(metrics, auth=(USER, PASSWORD), timeout=1, verify=not tls)
            if ready.status_code == 200:
                return Gateway(url, proc, data, log, verify=not tls)
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    log.close()
    raise RuntimeError("asg-challenge did not start in 20 s")


def stop_gateway(gw: Gateway) -> None:
    gw.proc.terminate()
    try:
        gw.proc.wait(10)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait(5)
    if gw.log is not None:
        gw.log.close()


@pytest.fixture
def gateway(tmp_path: Path, upstream: Upstream) -> Iterator[Gateway]:
    """A gateway of its own per test (state: config, sessions, datasets)."""
    gw = start_gateway(tmp_path, upstream.url)
    yield gw
    stop_gateway(gw)


@pytest.fixture
def tls_gateway(tmp_path: Path, upstream: Upstream) -> Iterator[Gateway]:
    """A gateway on its own TLS listener, a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    gw = start_gateway(
        tmp_path, upstream.url, ASG_CHALLENGE_TLS_CERT=str(cert), ASG_CHALLENGE_TLS_KEY=str(key)
    )
    yield gw
    stop_gateway(gw)


def text_dataset(gw: Gateway, items: list[dict[str, Any]], name: str = "animals") -> str:
    with gw.dash() as d:
        ds = d.post("/item-datasets", json={"name": name, "modality": "text"})
        assert ds.status_code == 201, ds.text
        r = d.post(f"/item-datasets/{ds.json()['id']}/items", json=items)
        assert r.status_code == 201, r.text
        dataset_id: str = ds.json()["id"]
        return dataset_id


BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/150.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml",
    "Accept-Language": "en-GB,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "none",
    "Sec-Ch-Ua": '"Chromium";v="150"',
}


GOLD = [
    {"text": "gold-cat: a tabby on a sofa", "options": ["cat", "dog"], "gold_label": "cat"},
    {"text": "gold-dog: a beagle with a ball", "options": ["cat", "dog"], "gold_label": "dog"},
]
UNKNOWN = {"text": "mystery: something furry", "options": ["cat", "dog"], "external_id": "=cmd|'/c calc'!A1"}


def slots_of(page: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """The challenge id and each slot's text and options, read from the page as a user would."""
    cid = re.search(r'name="challenge_id" value="([0-9a-f]+)"', page)
    assert cid, page[:500]
    slots = []
    for fs in re.findall(r'<fieldset class="cg-item".*?</fieldset>', page, re.S):
        text = re.search(r'<p class="cg-text">(.*?)</p>', fs, re.S)
        options = re.findall(r'type="radio" name="a\d+" value="([^"]*)"', fs)
        slots.append((html.unescape(text.group(1)) if text else "", [html.unescape(o) for o in options]))
    return cid.group(1), slots


def answers_for(slots: list[tuple[str, list[str]]], unknown: str) -> dict[str, str]:
    """What a careful human answers: the gold items right, `unknown` for the mystery item."""
    out = {}
    for i, (text, options) in enumerate(slots):
        if text.startswith("gold-"):
            out[f"a{i}"] = text.split(":")[0].removeprefix("gold-")
        elif text.startswith("mystery"):
            out[f"a{i}"] = unknown
        else:
            out[f"a{i}"] = options[0]
    return out


def client(gw: Gateway, net: str = "10.1.0.7", **headers: str) -> httpx.Client:
    """A browser-like client arriving from `net` via the trusted loopback proxy."""
    return httpx.Client(
        base_url=gw.url,
        headers={**BROWSER_HEADERS, "X-Forwarded-For": net, **headers},
        timeout=10,
        verify=gw.verify,
    )


def solve(c: httpx.Client, path: str, unknown: str = "cat") -> httpx.Response:
    """Fetch `path`, get its challenge page, wait like a human, answer it as `answers_for` does."""
    page = c.get(path)
    assert page.status_code == 200 and "A quick check" in page.text, page.text[:300]
    cid, slots = slots_of(page.text)
    time.sleep(0.7)
    return c.post("/.cg/answer", data={"challenge_id": cid, "redir": path, **answers_for(slots, unknown)})


def solve_in_browser(page: Any, url: str, unknown: str = "cat") -> Any:
    """What a person does in Chromium: open `url`, see the check, answer it as `answers_for`
    does (gold right, `unknown` for the mystery item), take a moment, press Continue. Returns
    the response of the page the browser lands on."""
    page.goto(url)
    assert page.locator("h1").inner_text() == "A quick check", page.content()[:300]
    _, slots = slots_of(page.content())
    for name, value in answers_for(slots, unknown).items():
        page.check(f'input[name="{name}"][value="{value}"]')
    page.wait_for_timeout(700)  # longer than MIN_DWELL (0.6 s), as a reader's eyes would be
    with page.expect_navigation() as landed:
        page.click("#cg-submit")
    return landed.value
