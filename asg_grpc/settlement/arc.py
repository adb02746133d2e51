"""Broadcasting payouts to ARC (bitcoin-sv/arc, `POST /v1/tx`) for testnet and mainnet.

ARC's answer is folded into the settler's three verdicts (docs/arc.md has the full table):

* ACCEPTED: ARC holds the transaction for relay (STORED … SEEN_ON_NETWORK, MINED), including a
  second submission of the same bytes, which ARC answers with the status it already has.
* REJECTED: ARC or the nodes refused the transaction for good (bad scripts, fee too low,
  malformed, a conflicting spend); `inputs_spent` when another transaction spent its inputs.
* RETRY: anything undecided — 5xx, 429, timeouts, refused connections, a double spend that is
  not resolved yet (ARC keeps both competitors until one is mined), a status ARC may still move
  on from. Sending the same bytes again can never pay twice, so doubt always lands here.

The transaction goes as binary (`application/octet-stream`). With a `source_output` lookup it
goes in Extended Format (BRC-30: each input carries the satoshis and locking script it spends),
which ARC validates without fetching parents; without one, as the raw transaction, which ARC
extends itself by looking the parents up (and answers 460 if it cannot).

aiohttp rather than httpx: the core already talks HTTP with aiohttp (webhooks/worker.py), so
one client library, one event-loop integration and one set of timeout semantics.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import aiohttp
import orjson
from bsv import Transaction
from bsv.utils import Writer

from asg_grpc.settings import DEFAULT_ARC_TIMEOUT, ArcSettings
from asg_grpc.settlement.broadcast import BroadcastOutcome, Verdict

log = logging.getLogger("asg.settlement.arc")

USER_AGENT = "asg-refinery-settlement/1"
DEFAULT_WAIT_FOR = "SEEN_ON_NETWORK"  # X-WaitFor: ARC answers once the nodes have it, or at its timeout
MAX_RESPONSE_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 500
EF_MARKER = bytes.fromhex("0000000000ef")

# txStatus values (ARC's TransactionDetails enum) after which ARC keeps and relays the transaction.
ACCEPTED_STATUSES = frozenset(
    {
        "STORED",
        "ANNOUNCED_TO_NETWORK",
        "REQUESTED_BY_NETWORK",
        "SENT_TO_NETWORK",
        "ACCEPTED_BY_NETWORK",
        "SEEN_ON_NETWORK",
        "MINED",
    }
)
# Terminal refusals in txStatus. REJECTED is ARC's; the others are what bsv-sdk's ARC client
# treats as terminal, for deployments that report them.
REJECTED_STATUSES = frozenset({"REJECTED", "ERROR", "INVALID", "MALFORMED"})
# HTTP/ARC error codes that refuse this transaction for good (pkg/api/status.go, doc/errors.md).
REJECTING_CODES: Mapping[int, str] = {
    400: "bad request (the transaction bytes did not parse)",
    422: "unprocessable transaction",
    461: "unlocking scripts do not validate",
    462: "invalid inputs",
    463: "malformed transaction",
    464: "invalid outputs",
    465: "fee too low",
    466: "conflicting transaction: another transaction spends the same outputs",
    467: "mined ancestors not found in BEEF",
    468: "invalid BUMPs in BEEF",
    469: "merkle roots do not validate",
    471: "input frozen (policy)",
    472: "input frozen (consensus)",
    473: "cumulative fee too low",
    474: "transaction too large",
}
CONFLICT_CODE = 466
# How nodes and ARC word "I have it already" (bitcoind reject reasons, ARC's extraInfo).
ALREADY_KNOWN = (
    "already known",
    "txn-already-known",
    "already in the mempool",
    "already in mempool",
    "txn-already-in-mempool",
    "already in block chain",
    "already in the block chain",
    "already mined",
    "transaction already exists",
)
# How they word "the inputs are spent elsewhere".
INPUTS_SPENT = (
    "double spend",
    "double-spend",
    "doublespend",
    "txn-mempool-conflict",
    "already spent",
    "inputs spent",
)
# Nodes say "missing inputs" also when a parent is not known *yet*: not a verdict on the inputs.
# Marking them lost would strand the wallet; the same bytes are sent again instead.
INPUTS_MISSING = ("missing inputs", "missingorspent")


class SourceOutput(NamedTuple):
    """The output an input spends, as Extended Format carries it."""

    satoshis: int
    locking_script: bytes


# (txid, vout) → the output, or None when unknown; may be a coroutine function.
SourceOutputLookup = Callable[[str, int], SourceOutput | Awaitable[SourceOutput | None] | None]


def txid_of(raw_tx: bytes) -> str:
    """The display txid: double SHA-256 of the bytes, byte-reversed."""
    return hashlib.sha256(hashlib.sha256(raw_tx).digest()).digest()[::-1].hex()


def extended_format(tx: Transaction, sources: list[SourceOutput]) -> bytes:
    """BRC-30 Extended Format: the raw layout with a marker after the version and, after each
    input's sequence, the satoshis and locking script of the output it spends."""
    writer = Writer()
    writer.write_uint32_le(tx.version)
    writer.write(EF_MARKER)
    writer.write_var_int_num(len(tx.inputs))
    for tx_input, source in zip(tx.inputs, sources, strict=True):
        writer.write(bytes.fromhex(tx_input.source_txid)[::-1])
        writer.write_uint32_le(tx_input.source_output_index)
        script = tx_input.unlocking_script.serialize()
        writer.write_var_int_num(len(script))
        writer.write(script)
        writer.write_uint32_le(tx_input.sequence)
        writer.write_uint64_le(source.satoshis)
        writer.write_var_int_num(len(source.locking_script))
        writer.write(source.locking_script)
    writer.write_var_int_num(len(tx.outputs))
    for output in tx.outputs:
        writer.write(output.serialize())
    writer.write_uint32_le(tx.locktime)
    data: bytes = writer.to_bytes()
    return data


class ArcBroadcaster:
    """A `Broadcaster` over one ARC endpoint. `close()` once, when the settler stops.

    `url` is ARC's base (the part before `/v1/tx`); `api_key` goes out as `Authorization:
    Bearer …` and nowhere else. `source_output`, when given, resolves each input's spent
    output so the body is Extended Format; an input it cannot resolve sends the raw bytes."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_ARC_TIMEOUT,
        source_output: SourceOutputLookup | None = None,
        wait_for: str | None = DEFAULT_WAIT_FOR,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/v1/tx"
        self._api_key = api_key or None
        self._timeout = timeout
        self._source_output = source_output
        self._wait_for = wait_for
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ArcBroadcaster({self._endpoint!r}, api_key={'set' if self._api_key else 'unset'})"

    @classmethod
    def from_settings(
        cls, settings: ArcSettings, *, source_output: SourceOutputLookup | None = None
    ) -> ArcBroadcaster:
        return cls(settings.arc_url, settings.api_key, timeout=settings.timeout, source_output=source_output)

    async def broadcast(self, raw_tx: bytes, txid: str) -> BroadcastOutcome:
        outcome = await self._broadcast(raw_tx, txid)
        level = logging.INFO if outcome.verdict is Verdict.ACCEPTED else logging.WARNING
        log.log(
            level,
            "ARC broadcast %s",
            outcome.verdict.value,
            extra={"txid": txid, "detail": outcome.detail, "inputs_spent": outcome.inputs_spent},
        )
        return outcome

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _broadcast(self, raw_tx: bytes, txid: str) -> BroadcastOutcome:
        actual = txid_of(raw_tx)
        if actual != txid.lower():
            # The settler's record disagrees with its own bytes: sending them could pay a
            # transaction nobody tracks.
            return BroadcastOutcome(Verdict.REJECTED, f"raw_tx hashes to {actual}, not the expected {txid}")
        try:
            body = await self._body(raw_tx)
        except ValueError as exc:
            return BroadcastOutcome(Verdict.REJECTED, f"malformed transaction: {exc}")
        try:
            async with asyncio.timeout(self._timeout):
                status, payload = await self._post(body)
        except TimeoutError:
            return BroadcastOutcome(Verdict.RETRY, f"no answer from ARC within {self._timeout:g}s")
        except aiohttp.ClientError as exc:
            return BroadcastOutcome(
                Verdict.RETRY, self._scrub(f"ARC unreachable: {type(exc).__name__}: {exc}")
            )
        outcome = interpret(status, payload, txid)
        return BroadcastOutcome(outcome.verdict, self._scrub(outcome.detail), outcome.inputs_spent)

    async def _body(self, raw_tx: bytes) -> bytes:
        """Extended Format when every input's source output is known, else the raw bytes."""
        if self._source_output is None:
            return raw_tx
        try:
            tx = Transaction.from_hex(raw_tx)
        except Exception as exc:  # bsv-sdk raises assorted errors on garbage
            raise ValueError(f"the bytes do not parse ({exc})") from exc
        if tx is None or tx.serialize() != raw_tx:
            raise ValueError("the bytes are not exactly one transaction")
        sources: list[SourceOutput] = []
        for tx_input in tx.inputs:
            outpoint = f"{tx_input.source_txid}:{tx_input.source_output_index}"
            try:
                answer = self._source_output(tx_input.source_txid, tx_input.source_output_index)
                found = await answer if inspect.isawaitable(answer) else answer
            except Exception:  # a failing lookup must not stop the payout: ARC can extend it
                log.exception(
                    "source output lookup failed; sending the raw transaction", extra={"outpoint": outpoint}
                )
                return raw_tx
            if found is None:
                log.info(
                    "source output unknown; sending the raw transaction for ARC to extend",
                    extra={"outpoint": outpoint},
                )
                return raw_tx
            sources.append(SourceOutput(int(found[0]), bytes(found[1])))
        return extended_format(tx, sources)

    async def _post(self, body: bytes) -> tuple[int, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout), headers={"User-Agent": USER_AGENT}
            )
        headers = {"Content-Type": "application/octet-stream", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self._wait_for:
            headers["X-WaitFor"] = self._wait_for
        # No redirects: the bearer key goes to the configured host only.
        async with self._session.post(
            self._endpoint, data=body, headers=headers, allow_redirects=False
        ) as response:
            text = await response.content.read(MAX_RESPONSE_BYTES)
            retry_after = response.headers.get("Retry-After")
        payload: Any
        try:
            payload = orjson.loads(text) if text.strip() else None
        except orjson.JSONDecodeError:
            payload = text.decode("utf-8", "replace")
        if retry_after and response.status in (429, 503) and isinstance(payload, dict):
            payload.setdefault("retryAfter", retry_after)
        return response.status, payload

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text[:MAX_DETAIL_CHARS]


def interpret(status: int, payload: Any, txid: str) -> BroadcastOutcome:
    """One ARC answer → a verdict. Pure, so the table in docs/arc.md is this function."""
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    # ARC answers errors with the HTTP status equal to the body's `status`; a proxy that says
    # 200 around an ARC error body is read by the body.
    code = status
    if 200 <= status < 300 and not body.get("txStatus") and isinstance(body.get("status"), int):
        code = body["status"]
    answered = str(body.get("txid") or "").lower()
    if answered and answered != txid.lower():
        return BroadcastOutcome(
            Verdict.REJECTED, f"ARC answered for txid {answered}, not {txid}: the broadcast is not ours"
        )
    extra = str(body.get("extraInfo") or "")
    words = " ".join(str(body.get(k) or "") for k in ("extraInfo", "detail", "title")).lower()
    if any(phrase in words for phrase in ALREADY_KNOWN):
        return BroadcastOutcome(Verdict.ACCEPTED, _describe("already known to the network", code, body))
    if any(phrase in words for phrase in INPUTS_MISSING):
        return BroadcastOutcome(Verdict.RETRY, _describe("inputs not (yet) known to the network", code, body))
    if 200 <= code < 300:
        return _interpret_status(body, payload)
    if code in REJECTING_CODES:
        spent = code == CONFLICT_CODE or any(p in extra.lower() for p in INPUTS_SPENT)
        return BroadcastOutcome(Verdict.REJECTED, _describe(REJECTING_CODES[code], code, body), spent)
    if code == 460:
        # Raw bytes whose parents ARC could not find (yet): a parent still propagating is
        # found later; EF (a `source_output` lookup) avoids the question altogether.
        return BroadcastOutcome(
            Verdict.RETRY, _describe("ARC could not find the parent transactions", code, body)
        )
    if code in (401, 403):
        return BroadcastOutcome(
            Verdict.RETRY, _describe("ARC refused the API key (check ASG_ARC_API_KEY)", code, body)
        )
    if code == 429:
        after = body.get("retryAfter")
        wait = f"; retry after {after}s" if after else ""
        return BroadcastOutcome(Verdict.RETRY, _describe(f"ARC rate limit{wait}", code, body))
    if 300 <= code < 400:
        return BroadcastOutcome(
            Verdict.RETRY, _describe("ARC answered with a redirect (check ASG_ARC_URL)", code, body)
        )
    if code >= 500:
        return BroadcastOutcome(Verdict.RETRY, _describe("ARC unavailable", code, body))
    # 404 (wrong URL), 408, 409 generic error, anything unlisted: the transaction may be fine.
    text = payload if isinstance(payload, str) else ""
    return BroadcastOutcome(
        Verdict.RETRY, _describe(f"unexpected ARC answer {text[:100]}".strip(), code, body)
    )


def _interpret_status(body: dict[str, Any], payload: Any) -> BroadcastOutcome:
    """A 2xx answer whose txid, if any, is ours."""
    tx_status = str(body.get("txStatus") or "")
    if not body.get("txid") or not tx_status:
        shown = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        return BroadcastOutcome(Verdict.RETRY, f"ARC 2xx without txid/txStatus: {shown[:200]}")
    extra = str(body.get("extraInfo") or "")
    competing = body.get("competingTxs") or []
    if tx_status in ACCEPTED_STATUSES and not (competing and tx_status != "MINED"):
        return BroadcastOutcome(Verdict.ACCEPTED, _with_extra(tx_status, extra))
    if tx_status in REJECTED_STATUSES:
        spent = any(p in extra.lower() for p in INPUTS_SPENT)
        return BroadcastOutcome(Verdict.REJECTED, _with_extra(tx_status, extra), spent)
    if competing or tx_status == "DOUBLE_SPEND_ATTEMPTED":
        # Not final: ARC keeps every competitor until one is mined, then REJECTs the others.
        # Re-sending the same bytes later gets MINED or REJECTED; replacing now could pay twice.
        names = ", ".join(str(c) for c in competing) or "unknown"
        return BroadcastOutcome(Verdict.RETRY, _with_extra(f"{tx_status}; competing: {names}", extra))
    # SEEN_IN_ORPHAN_MEMPOOL, MINED_IN_STALE_BLOCK, UNKNOWN, QUEUED, RECEIVED, or a new status.
    return BroadcastOutcome(Verdict.RETRY, _with_extra(f"{tx_status} (not final)", extra))


def _with_extra(text: str, extra: str) -> str:
    return f"{text}: {extra}" if extra else text


def _describe(what: str, code: int, body: dict[str, Any]) -> str:
    parts = [f"ARC {code}: {what}"]
    for key in ("title", "detail", "extraInfo"):
        value = body.get(key)
        if value:
            parts.append(str(value))
    return " — ".join(parts)[:MAX_DETAIL_CHARS]
