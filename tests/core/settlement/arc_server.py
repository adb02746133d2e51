"""A fake ARC and a fake WhatsOnChain on 127.0.0.1: real HTTP servers on real sockets that
record every request and answer as the test scripts them.

The fake ARC speaks bitcoin-sv/arc's `POST /v1/tx`: it reads the body as raw or Extended
Format (BRC-30) bytes with bsv-sdk, checks the unlocking scripts when EF carries the spent
outputs (as ARC's validator does), and answers with ARC's JSON shapes — `TransactionResponse`
on 200, `ErrorFields` (`status`, `title`, `detail`, `extraInfo`, `txid`) with the HTTP status
equal to `status` otherwise (pkg/api/arc.yaml, pkg/api/status.go). A transaction it has
accepted once is answered with its stored status again, as ARC does on a second submission.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from bsv import Script, Transaction, TransactionInput, TransactionOutput
from bsv.utils import Reader

from asg_grpc.ledger.errors import TransactionRejected
from asg_grpc.ledger.rules import Spendable, check_scripts, parse

EF_MARKER = bytes.fromhex("0000000000ef")
TIMESTAMP = "2026-11-22T20:00:00.000000000Z"

# pkg/api/status.go: code → (title, detail)
ARC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request seems to be malformed and cannot be processed"),
    409: ("Generic error", "Transaction could not be processed"),
    460: ("Not extended format", "Transaction is not in extended format, missing input scripts"),
    461: ("Malformed transaction", "Transaction is malformed and cannot be processed"),
    462: ("Invalid inputs", "Transaction is invalid because the inputs are non-existent or spent"),
    463: ("Malformed transaction", "Transaction is malformed and cannot be processed"),
    464: ("Invalid outputs", "Transaction is invalid because the outputs are non-existent or invalid"),
    465: ("Fee too low", "Fees are too low"),
    466: (
        "Conflicting tx found",
        "Transaction is valid, but there is a conflicting tx in the block template",
    ),
}


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    delay: float = 0.0  # seconds before answering
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decoded:
    """What the fake understood of a body: the transaction, whether it came as EF, the spent
    outputs EF carried, and why it could not be used (None: well-formed, scripts check out)."""

    tx: Transaction | None
    extended: bool
    sources: list[tuple[int, bytes]]
    problem: str | None

    @property
    def txid(self) -> str | None:
        return None if self.tx is None else self.tx.txid()


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    decoded: Decoded | None
    at: float


def decode(body: bytes) -> Decoded:
    """Raw or Extended Format bytes → a bsv-sdk Transaction; EF's scripts are checked."""
    if body[4:10] != EF_MARKER:
        try:
            return Decoded(parse(body), False, [], None)
        except TransactionRejected as exc:
            return Decoded(None, False, [], exc.reason)
    try:
        reader = Reader(body)
        version = reader.read_uint32_le()
        reader.read(6)
        inputs, sources = [], []
        for _ in range(reader.read_var_int_num() or 0):
            source_txid = reader.read(32)[::-1].hex()
            vout = reader.read_uint32_le()
            unlocking = reader.read(reader.read_var_int_num() or 0)
            sequence = reader.read_uint32_le()
            satoshis = reader.read_uint64_le()
            locking = reader.read(reader.read_var_int_num() or 0)
            inputs.append(TransactionInput(None, source_txid, vout, Script(unlocking), sequence=sequence))
            sources.append((satoshis, locking))
        outputs = [TransactionOutput.from_hex(reader) for _ in range(reader.read_var_int_num() or 0)]
        tx = Transaction(inputs, outputs, version=version, locktime=reader.read_uint32_le())
        if not reader.eof() or any(o is None for o in outputs):
            return Decoded(None, True, sources, "trailing or missing bytes in EF")
    except Exception as exc:
        return Decoded(None, True, [], f"EF does not parse ({exc})")
    outpoints = [(i.source_txid, i.source_output_index) for i in tx.inputs]
    spent = {o: Spendable(s, script) for o, (s, script) in zip(outpoints, sources, strict=True)}
    try:
        check_scripts(tx, outpoints, spent)
    except TransactionRejected as exc:
        return Decoded(tx, True, sources, exc.reason)
    return Decoded(tx, True, sources, None)


def tx_answer(
    txid: str, tx_status: str, *, extra_info: str = "", competing: list[str] | None = None
) -> Answer:
    """ARC's 200 TransactionResponse."""
    body: dict[str, Any] = {
        "blockHash": "",
        "blockHeight": 0,
        "extraInfo": extra_info,
        "merklePath": "",
        "status": 200,
        "timestamp": TIMESTAMP,
        "title": "OK",
        "txStatus": tx_status,
        "txid": txid,
    }
    if competing is not None:
        body["competingTxs"] = competing
    return Answer(200, body)


def error_answer(code: int, txid: str | None, extra_info: str = "") -> Answer:
    """ARC's ErrorFields, with the HTTP status equal to `status`."""
    title, detail = ARC_ERRORS[code]
    return Answer(
        code,
        {
            "type": f"https://bitcoin-sv.github.io/arc/#/errors?id=_{code}",
            "title": title,
            "status": code,
            "detail": detail,
            "instance": None,
            "txid": txid,
            "extraInfo": extra_info,
        },
    )


# given the 1-based request number and what was received → the answer
Scripted = Callable[[int, Received], Answer]


class FakeArc:
    """`start()` serves on a free port; `stop()` closes it. Without a script it behaves like a
    healthy ARC: well-formed transactions are SEEN_ON_NETWORK (and stay so on resubmission),
    bad scripts get 461, unparsable bytes 400."""

    def __init__(self, script: Scripted | None = None) -> None:
        self.script = script
        self.requests: list[Received] = []
        self.known: dict[str, str] = {}  # txid → txStatus, as ARC's store keeps it
        self.port = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def default_answer(self, received: Received) -> Answer:
        decoded = received.decoded
        if decoded is None or decoded.tx is None:
            return error_answer(400, None, (decoded.problem if decoded else None) or "no transaction")
        txid = decoded.tx.txid()
        if decoded.problem is not None:
            return error_answer(461, txid, decoded.problem)
        with self._lock:
            status = self.known.setdefault(txid, "SEEN_ON_NETWORK")
        return tx_answer(txid, status)

    def start(self) -> FakeArc:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self, method: str) -> Received:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                decoded = decode(body) if method == "POST" and parts.path == "/v1/tx" else None
                received = Received(
                    method, parts.path, parse_qs(parts.query), dict(self.headers), body, decoded, time.time()
                )
                with fake._lock:
                    fake.requests.append(received)
                return received

            def _answer(self, received: Received) -> None:
                n = len(fake.requests)
                answer = fake.script(n, received) if fake.script else fake.default_answer(received)
                if answer.delay and fake._closing.wait(answer.delay):
                    return
                payload = answer.body if isinstance(answer.body, bytes) else orjson.dumps(answer.body)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def do_POST(self) -> None:
                self._answer(self._record("POST"))

            def do_GET(self) -> None:
                self._answer(self._record("GET"))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._closing.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
