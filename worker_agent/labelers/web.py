"""A person in a browser: the agent serves a local labeling page and waits for their answer.

The agent still holds the Work stream; this labeler only puts the question on a page at
http://127.0.0.1:PORT/ and turns a click or a key press into the Answer or Skip the session
waits for. As in the terminal, one question is on screen at a time and one nobody answers
within the idle time is handed back (a skip), so a person who walked away holds no task.

The page learns what changed by long-polling `GET /api/state` (an etag per state); the state
also carries the agent's counters (labels acked, sats earned) and whether the stream is up,
so the page shows "reconnecting" while the agent is between sessions. A stream that drops
withdraws the question on screen (the core hands it out again); answers already sent are the
session's business, as with every labeler.

Only loopback is served, and every request must name this page's own host (no DNS
rebinding); answers are JSON posts from the page's own origin, which a foreign page cannot
send without a CORS preflight this server never grants.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from aiohttp import web

from asg_grpc.v1 import labeling_pb2
from worker_agent.errors import ConfigError
from worker_agent.labelers.base import Answer, Decision, Skip
from worker_agent.labelers.fetch import MAX_BYTES, fetch_text, new_client
from worker_agent.labelers.interactive import IDLE, TEXT_TYPES
from worker_agent.stats import Stats

log = logging.getLogger("worker_agent.web")

HOST = "127.0.0.1"
LONG_POLL_SECONDS = 20.0  # a state request with nothing new answers after this long
STATS_POLL_SECONDS = 0.25  # counters change without telling us: looked at this often
SKIPPED = "skipped by labeler"
STATIC = {  # path → (file in worker_agent/web_static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
# Images come from the task's data_url, anywhere; everything else only from this page.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src http: https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class _Question:
    number: int
    assignment: labeling_pb2.Assignment
    answer: asyncio.Future[Decision]
    answer_by: float | None  # epoch seconds, for the page's countdown
    text: str = ""
    text_error: str = ""
    truncated: bool = False
    text_loading: bool = False

    def view(self) -> dict[str, Any]:
        a = self.assignment
        kind = "text" if a.task_type in TEXT_TYPES else "other"
        if a.task_type == "image_classification":
            kind = "image"
        return {
            "id": self.number,
            "task_id": a.task_id,
            "task_type": a.task_type,
            "question": a.label_spec.question,
            "options": list(a.label_spec.options),
            "data_url": a.data_url,
            "image_url": a.data_url if kind == "image" and _showable_image(a.data_url) else "",
            "kind": kind,
            "text": self.text,
            "text_error": self.text_error,
            "text_loading": self.text_loading,
            "truncated_at_kib": MAX_BYTES // 1024 if self.truncated else 0,
            "answer_by": self.answer_by,
        }


@dataclass
class _Session:
    """What this person did on the page since the agent started (the counters live in Stats)."""

    answered: int = 0
    skipped: int = 0
    handed_back: int = 0
    last_event: str = ""
    last_paid: str = ""
    events: int = 0  # bumps on every change the counters do not show
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class WebLabeler:
    name = "web"
    can_finish_quickly = False

    def __init__(
        self,
        port: int = 8765,
        answer_timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._port = port
        self._idle = answer_timeout or None  # 0: wait for the person as long as the lease lasts
        self._client = client
        self._owns_client = client is None
        self._stats = Stats()  # replaced by the agent's own (attach); a bare labeler still works
        self._lock = asyncio.Lock()
        self._current: _Question | None = None
        self._numbers = 0
        self._session = _Session()
        self._runner: web.AppRunner | None = None
        self._static = {
            path: (importlib.resources.files("worker_agent.web_static").joinpath(name).read_bytes(), ctype)
            for path, (name, ctype) in STATIC.items()
        }
        self.url = ""

    def attach(self, stats: Stats) -> None:
        """Show the agent's counters and connection state on the page."""
        self._stats = stats

    async def start(self) -> str:
        """Serve the page on 127.0.0.1; ConfigError when the port is taken. Returns the URL."""
        app = web.Application(middlewares=[self._guard])
        for path in STATIC:
            app.router.add_get(path, self._file)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/answer", self._answer)
        app.router.add_post("/api/skip", self._skip)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._port, reuse_address=False)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"--web-port / ASG_WORKER_WEB_PORT: cannot listen on {HOST}:{self._port}: {exc.strerror}"
            ) from None
        self._runner = runner
        self._port = int(runner.addresses[0][1])  # the real one, when 0 asked for any
        self.url = f"http://{HOST}:{self._port}/"
        log.info("labeling page", extra={"url": self.url})
        return self.url

    async def label(self, assignment: labeling_pb2.Assignment) -> Decision:
        async with self._lock:
            loop = asyncio.get_running_loop()
            self._numbers += 1
            answer_by = _answer_by(assignment, self._idle)
            q = _Question(self._numbers, assignment, loop.create_future(), answer_by)
            q.text_loading = assignment.task_type in TEXT_TYPES
            self._current = q
            self._bump()
            fetching = asyncio.create_task(self._fetch(q)) if q.text_loading else None
            try:
                decision = await asyncio.wait_for(asyncio.shield(q.answer), self._idle)
            except TimeoutError:
                self._session.handed_back += 1
                self._note(f"No answer within {self._idle:g} s: task {assignment.task_id} went back.")
                return Skip(IDLE)
            except asyncio.CancelledError:
                self._note(f"Task {assignment.task_id} was withdrawn by the core.")
                raise
            finally:
                self._current = None
                if fetching is not None:
                    fetching.cancel()
                self._bump()
            if isinstance(decision, Answer):
                self._session.answered += 1
                self._note(f"Sent {decision.option!r} for task {assignment.task_id}.")
            else:
                self._session.skipped += 1
                self._note(f"Skipped task {assignment.task_id}.")
            return decision

    def done(self, task_id: str, outcome: str) -> None:
        return None  # nothing is queued here

    def paid(self, line: str) -> None:
        self._session.last_paid = line
        self._bump()

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None and self._owns_client:
            await self._client.aclose()

    # --- state -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready values."""
        s = self._stats
        if s.connected:
            connection = "connected"
        elif s.worker_id or s.reconnects:
            connection = "reconnecting"
        else:
            connection = "connecting"
        q = self._current
        return {
            "connection": connection,
            "worker_id": s.worker_id,
            "labels_done": s.labels_acked,
            "sats_earned": s.sats_earned,
            "payments": s.payments,
            "answered": self._session.answered,
            "skipped": self._session.skipped,
            "handed_back": self._session.handed_back,
            "last_event": self._session.last_event,
            "last_paid": self._session.last_paid,
            "event": self._session.events,
            "question": q.view() if q is not None and not q.answer.done() else None,
        }

    def _bump(self) -> None:
        self._session.events += 1
        self._session.changed.set()
        self._session.changed = asyncio.Event()

    def _note(self, text: str) -> None:
        self._session.last_event = text

    async def _fetch(self, q: _Question) -> None:
        if self._client is None:
            self._client = new_client()
        got = await fetch_text(self._client, q.assignment.data_url)
        q.text, q.text_error, q.truncated, q.text_loading = got.text, got.error, got.truncated, False
        self._bump()

    def _decide(self, body: dict[str, Any], skip: bool) -> web.Response:
        number = body.get("question_id")
        if not isinstance(number, int) or isinstance(number, bool):
            return _json({"error": "question_id: required, an integer"}, status=400)
        q = self._current
        if q is None or q.number != number or q.answer.done():
            return _json(
                {"error": "question_id: that question is no longer open (answered, withdrawn, handed back)"},
                status=409,
            )
        if skip:
            q.answer.set_result(Skip(SKIPPED))
            return _json({"ok": True})
        option = body.get("option")
        options = list(q.assignment.label_spec.options)
        if not isinstance(option, str) or option not in options:
            return _json({"error": f"option: must be one of {options}"}, status=400)
        q.answer.set_result(Answer(option))
        return _json({"ok": True})

    # --- HTTP --------------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Only this page's own host, and JSON posts only from its own origin."""
        own = {f"{HOST}:{self._port}", f"localhost:{self._port}"}
        if request.host not in own:
            return _json({"error": "Host: this page answers only on its loopback address"}, status=421)
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc not in own:
                return _json({"error": "Origin: answers come only from the labeling page"}, status=403)
            if request.content_type != "application/json":
                return _json({"error": "Content-Type: must be application/json"}, status=415)
        response = await handler(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _file(self, request: web.Request) -> web.Response:
        body, ctype = self._static[request.path]
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def _state(self, request: web.Request) -> web.Response:
        """The state now if it differs from the page's `since` etag, else when it changes."""
        since = request.query.get("since", "")
        deadline = time.monotonic() + LONG_POLL_SECONDS
        while True:
            body = orjson.dumps(self.snapshot())
            etag = hashlib.sha256(body).hexdigest()[:16]
            left = deadline - time.monotonic()
            if etag != since or left <= 0:
                return web.Response(
                    body=b'{"etag":"' + etag.encode() + b'","state":' + body + b"}",
                    content_type="application/json",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._session.changed.wait(), min(STATS_POLL_SECONDS, left))

    async def _answer(self, request: web.Request) -> web.Response:
        return self._decide(await _body(request), skip=False)

    async def _skip(self, request: web.Request) -> web.Response:
        return self._decide(await _body(request), skip=True)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _answer_by(a: labeling_pb2.Assignment, idle: float | None) -> float | None:
    """When the question is handed back: the idle time or the lease, whichever ends first."""
    ends = [time.time() + idle] if idle is not None else []
    if a.HasField("lease_deadline") and a.lease_deadline.seconds > 0:
        ends.append(a.lease_deadline.ToSeconds())
    return min(ends) if ends else None


def _showable_image(url: str) -> bool:
    """http(s) images, and data: images; anything else is shown as a URL, not loaded."""
    scheme = urlsplit(url).scheme.lower()
    return scheme in ("http", "https") or (scheme == "data" and url[5:].lower().startswith("image/"))
