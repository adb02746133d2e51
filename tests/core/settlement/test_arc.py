"""ArcBroadcaster and the WhatsOnChain UTXO source against fake ARC / WhatsOnChain servers on
127.0.0.1 (tests/core/settlement/arc_server.py), with real signed P2PKH transactions as payload."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from bsv import P2PKH, PrivateKey, Transaction, TransactionInput, TransactionOutput
from bsv.constants import Network

from asg_grpc.settings import ArcSettings, Settings, SettingsError
from asg_grpc.settlement.arc import ArcBroadcaster, SourceOutput, SourceOutputLookup
from asg_grpc.settlement.broadcast import BroadcastOutcome, Verdict
from asg_grpc.settlement.utxos import Utxo, UtxoSourceError, fetch_unspent
from tests.core.settlement.arc_server import Answer, FakeArc, Received, error_answer, tx_answer

API_KEY = "mainnet_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
FUNDING_SATS = 100_000


@dataclass(frozen=True)
class Payout:
    """A signed payout and what an EF encoder needs to know about the output it spends."""

    tx: Transaction
    sources: dict[tuple[str, int], SourceOutput]

    @property
    def raw(self) -> bytes:
        return bytes(self.tx.serialize())

    @property
    def txid(self) -> str:
        return str(self.tx.txid())

    def lookup(self, txid: str, vout: int) -> SourceOutput | None:
        return self.sources.get((txid, vout))


def signed_payout(signer: PrivateKey | None = None) -> Payout:
    """The wallet spends a 100,000-sat P2PKH output: 300 sats to a worker, the rest (less the
    fee) back to itself. `signer` other than the wallet's key makes the signature invalid."""
    wallet = PrivateKey()
    locking = P2PKH().lock(wallet.address())
    funding = Transaction(
        [],
        [
            TransactionOutput(P2PKH().lock(PrivateKey().address()), 1),
            TransactionOutput(locking, FUNDING_SATS),
        ],
    )
    worker = PrivateKey().address(network=Network.TESTNET)
    tx = Transaction(
        [
            TransactionInput(
                source_transaction=funding,
                source_txid=funding.txid(),
                source_output_index=1,
                unlocking_script_template=P2PKH().unlock(signer or wallet),
            )
        ],
        [TransactionOutput(P2PKH().lock(worker), 300), TransactionOutput(locking, FUNDING_SATS - 300 - 50)],
    )
    tx.sign()
    return Payout(tx, {(funding.txid(), 1): SourceOutput(FUNDING_SATS, bytes(locking.serialize()))})


@pytest.fixture
def payout() -> Payout:
    return signed_payout()


@pytest.fixture
def arc() -> Iterator[FakeArc]:
    server = FakeArc().start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def broadcaster(arc: FakeArc, payout: Payout) -> AsyncIterator[ArcBroadcaster]:
    b = ArcBroadcaster(arc.url, API_KEY, timeout=2.0, source_output=payout.lookup)
    yield b
    await b.close()


def scripted(arc: FakeArc, *answers: Answer) -> None:
    """Answer the n-th request with answers[n-1]; past the list, as a healthy ARC."""
    arc.script = lambda n, received: answers[n - 1] if n <= len(answers) else arc.default_answer(received)


# --- accepted -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_seen_on_network_is_accepted_and_arc_got_a_valid_extended_transaction(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout
) -> None:
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)

    assert outcome == BroadcastOutcome(Verdict.ACCEPTED, "SEEN_ON_NETWORK")
    [request] = arc.requests
    assert (request.method, request.path) == ("POST", "/v1/tx")
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["X-WaitFor"] == "SEEN_ON_NETWORK"
    assert request.body == payout.tx.to_ef()  # byte for byte what bsv-sdk's own EF encoder writes
    assert request.decoded is not None
    assert request.decoded.extended
    assert request.decoded.problem is None  # parsed by bsv-sdk and its scripts checked out
    assert request.decoded.txid == payout.txid
    assert request.decoded.sources == [(FUNDING_SATS, next(iter(payout.sources.values())).locking_script)]


@pytest.mark.asyncio
async def test_without_source_outputs_the_raw_transaction_is_sent(arc: FakeArc, payout: Payout) -> None:
    b = ArcBroadcaster(arc.url, API_KEY, timeout=2.0)
    try:
        outcome = await b.broadcast(payout.raw, payout.txid)
    finally:
        await b.close()

    assert outcome.verdict is Verdict.ACCEPTED
    [request] = arc.requests
    assert request.body == payout.raw
    assert request.decoded is not None and not request.decoded.extended
    assert request.decoded.txid == payout.txid


def failing_lookup(txid: str, vout: int) -> SourceOutput | None:
    raise RuntimeError("store is busy")


@pytest.mark.parametrize("lookup", [lambda txid, vout: None, failing_lookup], ids=["unknown", "lookup-fails"])
@pytest.mark.asyncio
async def test_unknown_source_output_falls_back_to_the_raw_transaction(
    arc: FakeArc, payout: Payout, lookup: SourceOutputLookup
) -> None:
    b = ArcBroadcaster(arc.url, None, timeout=2.0, source_output=lookup)
    try:
        outcome = await b.broadcast(payout.raw, payout.txid)
    finally:
        await b.close()

    assert outcome.verdict is Verdict.ACCEPTED
    assert arc.requests[0].body == payout.raw
    assert "Authorization" not in arc.requests[0].headers  # no key configured, none sent


@pytest.mark.asyncio
async def test_async_source_output_lookup_is_awaited(arc: FakeArc, payout: Payout) -> None:
    async def lookup(txid: str, vout: int) -> SourceOutput | None:
        return payout.lookup(txid, vout)

    b = ArcBroadcaster(arc.url, API_KEY, timeout=2.0, source_output=lookup)
    try:
        outcome = await b.broadcast(payout.raw, payout.txid)
    finally:
        await b.close()

    assert outcome.verdict is Verdict.ACCEPTED
    assert arc.requests[0].decoded is not None and arc.requests[0].decoded.extended


@pytest.mark.asyncio
async def test_rebroadcast_after_a_restart_is_accepted(arc: FakeArc, payout: Payout) -> None:
    """The settler sends the recorded bytes again after a crash, from a new broadcaster."""
    for _ in range(2):
        b = ArcBroadcaster(arc.url, API_KEY, timeout=2.0, source_output=payout.lookup)
        try:
            assert (await b.broadcast(payout.raw, payout.txid)).verdict is Verdict.ACCEPTED
        finally:
            await b.close()
    assert [r.body for r in arc.requests] == [arc.requests[0].body] * 2


@pytest.mark.parametrize(
    "answer",
    [
        lambda txid: tx_answer(txid, "MINED"),
        lambda txid: tx_answer(txid, "STORED"),
        lambda txid: tx_answer(txid, "ANNOUNCED_TO_NETWORK"),  # ARC on a tx mined elsewhere
        lambda txid: tx_answer(txid, "ACCEPTED_BY_NETWORK"),
        lambda txid: tx_answer(txid, "REJECTED", extra_info="257: txn-already-known"),
        lambda txid: tx_answer(txid, "REJECTED", extra_info="Transaction already in the mempool"),
        lambda txid: error_answer(409, txid, "transaction already in block chain"),
    ],
    ids=["mined", "stored", "announced", "accepted", "txn-already-known", "in-mempool", "in-chain"],
)
@pytest.mark.asyncio
async def test_known_to_the_network_is_accepted(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout, answer: object
) -> None:
    scripted(arc, answer(payout.txid))  # type: ignore[operator]
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert outcome.verdict is Verdict.ACCEPTED, outcome


# --- rejected -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "extra", "words"),
    [
        (465, "arc error 465: fee is too low", "fee too low"),
        (463, "arc error 463: transaction is too small", "malformed"),
        (461, "arc error 461: script execution failed", "unlocking scripts"),
        (464, "arc error 464: transaction output 0 satoshis is invalid", "invalid outputs"),
        (400, "error parsing transaction from request: EOF", "bad request"),
    ],
)
@pytest.mark.asyncio
async def test_definitive_refusal_is_rejected_with_the_inputs_still_ours(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout, code: int, extra: str, words: str
) -> None:
    scripted(arc, error_answer(code, payout.txid, extra))
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert (outcome.verdict, outcome.inputs_spent) == (Verdict.REJECTED, False)
    assert f"ARC {code}" in outcome.detail
    assert words in outcome.detail.lower()
    assert extra in outcome.detail


@pytest.mark.asyncio
async def test_invalid_signature_is_rejected_by_arc_validation(arc: FakeArc) -> None:
    """No scripted answer: the fake validates the EF scripts as ARC does and answers 461."""
    bad = signed_payout(signer=PrivateKey())
    b = ArcBroadcaster(arc.url, API_KEY, timeout=2.0, source_output=bad.lookup)
    try:
        outcome = await b.broadcast(bad.raw, bad.txid)
    finally:
        await b.close()
    assert (outcome.verdict, outcome.inputs_spent) == (Verdict.REJECTED, False)
    assert "ARC 461" in outcome.detail


@pytest.mark.parametrize(
    "answer",
    [
        lambda txid: error_answer(466, txid),
        lambda txid: tx_answer(txid, "REJECTED", extra_info="double spend attempted"),
        lambda txid: tx_answer(txid, "REJECTED", extra_info="258: txn-mempool-conflict"),
    ],
    ids=["466-conflict", "lost-double-spend", "mempool-conflict"],
)
@pytest.mark.asyncio
async def test_double_spend_is_rejected_with_inputs_spent(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout, answer: object
) -> None:
    scripted(arc, answer(payout.txid))  # type: ignore[operator]
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert (outcome.verdict, outcome.inputs_spent) == (Verdict.REJECTED, True), outcome


@pytest.mark.parametrize("extra", ["Missing inputs", "16: bad-txns-inputs-missingorspent"])
@pytest.mark.asyncio
async def test_missing_inputs_is_sent_again_not_taken_as_spent(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout, extra: str
) -> None:
    """A parent still propagating looks the same: marking the inputs lost would strand the wallet."""
    scripted(arc, tx_answer(payout.txid, "REJECTED", extra_info=extra))
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert (outcome.verdict, outcome.inputs_spent) == (Verdict.RETRY, False), outcome


@pytest.mark.asyncio
async def test_plain_rejection_leaves_the_inputs_ours(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout
) -> None:
    scripted(arc, tx_answer(payout.txid, "REJECTED", extra_info="mandatory-script-verify-flag-failed"))
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert (outcome.verdict, outcome.inputs_spent) == (Verdict.REJECTED, False)
    assert "mandatory-script-verify-flag-failed" in outcome.detail


@pytest.mark.asyncio
async def test_answer_for_another_txid_is_rejected(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout
) -> None:
    other = signed_payout().txid
    scripted(arc, tx_answer(other, "SEEN_ON_NETWORK"))
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert outcome.verdict is Verdict.REJECTED
    assert other in outcome.detail and "not ours" in outcome.detail


@pytest.mark.asyncio
async def test_bytes_that_do_not_hash_to_the_txid_are_not_sent(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout
) -> None:
    outcome = await broadcaster.broadcast(payout.raw, signed_payout().txid)
    assert outcome.verdict is Verdict.REJECTED
    assert payout.txid in outcome.detail
    assert arc.requests == []


# --- retry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.asyncio
async def test_server_error_is_retry_and_the_same_bytes_succeed_next_time(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout, status: int
) -> None:
    scripted(arc, Answer(status, b"<html>bad gateway</html>"))

    first = await broadcaster.broadcast(payout.raw, payout.txid)
    second = await broadcaster.broadcast(payout.raw, payout.txid)

    assert first.verdict is Verdict.RETRY and f"ARC {status}" in first.detail
    assert second.verdict is Verdict.ACCEPTED
    assert arc.requests[0].body == arc.requests[1].body


@pytest.mark.asyncio
async def test_rate_limit_is_retry_with_the_wait(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout
) -> None:
    scripted(arc, Answer(429, {"status": 429, "title": "Too many requests"}, headers={"Retry-After": "7"}))
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert outcome.verdict is Verdict.RETRY
    assert "retry after 7s" in outcome.detail


@pytest.mark.parametrize(
    "answer",
    [
        lambda txid: tx_answer(txid, "DOUBLE_SPEND_ATTEMPTED", competing=["ab" * 32]),
        lambda txid: tx_answer(txid, "SEEN_ON_NETWORK", competing=["ab" * 32]),
        lambda txid: tx_answer(txid, "SEEN_IN_ORPHAN_MEMPOOL"),
        lambda txid: tx_answer(txid, "MINED_IN_STALE_BLOCK"),
        lambda txid: tx_answer(txid, "QUEUED"),
        lambda txid: error_answer(460, txid, "parent transaction not found"),
        lambda txid: error_answer(409, txid, "metamorph: context deadline exceeded"),
        lambda txid: Answer(200, {"status": 200, "title": "OK"}),
        lambda txid: Answer(401, b""),
        lambda txid: Answer(302, b"", headers={"Location": "http://example.invalid/v1/tx"}),
    ],
    ids=[
        "double-spend-undecided",
        "seen-with-competitor",
        "orphan",
        "stale-block",
        "queued",
        "460-parents-unknown",
        "409-generic",
        "200-without-txid",
        "401-bad-key",
        "redirect",
    ],
)
@pytest.mark.asyncio
async def test_undecided_answer_is_retry(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout, answer: object
) -> None:
    """Nothing final yet: replacing the transaction now could pay twice if it still wins."""
    scripted(arc, answer(payout.txid))  # type: ignore[operator]
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert outcome.verdict is Verdict.RETRY, outcome
    assert len(arc.requests) == 1  # a redirect is not followed


@pytest.mark.asyncio
async def test_double_spend_attempt_names_the_competitor(
    arc: FakeArc, broadcaster: ArcBroadcaster, payout: Payout
) -> None:
    scripted(arc, tx_answer(payout.txid, "DOUBLE_SPEND_ATTEMPTED", competing=["cd" * 32]))
    outcome = await broadcaster.broadcast(payout.raw, payout.txid)
    assert "cd" * 32 in outcome.detail


@pytest.mark.asyncio
async def test_no_answer_in_time_is_retry(arc: FakeArc, payout: Payout) -> None:
    scripted(arc, Answer(200, b"", delay=5.0))
    b = ArcBroadcaster(arc.url, API_KEY, timeout=0.3, source_output=payout.lookup)
    started = time.monotonic()
    try:
        outcome = await b.broadcast(payout.raw, payout.txid)
    finally:
        await b.close()
    assert outcome.verdict is Verdict.RETRY
    assert "within 0.3s" in outcome.detail
    assert time.monotonic() - started < 2.0


@pytest.mark.asyncio
async def test_connection_refused_is_retry(payout: Payout) -> None:
    gone = FakeArc().start()
    gone.stop()  # the port is free again: nothing listens
    b = ArcBroadcaster(gone.url, API_KEY, timeout=2.0)
    try:
        outcome = await b.broadcast(payout.raw, payout.txid)
    finally:
        await b.close()
    assert outcome.verdict is Verdict.RETRY
    assert "unreachable" in outcome.detail


# --- the API key ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_api_key_goes_in_the_authorization_header_and_nowhere_else(
    arc: FakeArc, payout: Payout, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Answer(465, {"status": 465, "title": "Fee too low", "detail": "", "extraInfo": ""})

    def answer(n: int, received: Received) -> Answer:
        if n == 1:  # a careless ARC that echoes the credentials back in its error text
            echo.body["extraInfo"] = f"bad fee; request had {received.headers['Authorization']}"
            return echo
        if n == 2:
            return Answer(503, b"")
        return Answer(200, b"", delay=5.0)

    arc.script = answer
    b = ArcBroadcaster(arc.url, API_KEY, timeout=0.3, source_output=payout.lookup)
    try:
        outcomes = [await b.broadcast(payout.raw, payout.txid) for _ in range(3)]
    finally:
        await b.close()

    assert arc.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert [o.verdict for o in outcomes] == [Verdict.REJECTED, Verdict.RETRY, Verdict.RETRY]
    assert "ARC broadcast rejected" in caplog.text  # the outcomes were logged ...
    assert all(API_KEY not in o.detail for o in outcomes)  # ... without the key
    assert API_KEY not in caplog.text
    assert all(API_KEY not in str(r.__dict__) for r in caplog.records)
    assert API_KEY not in repr(b)
    assert API_KEY not in repr(ArcSettings("https://arc.example.com", API_KEY))


# --- settings -------------------------------------------------------------------------------


def test_settings_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ASG_BSV_NETWORK": "testnet",
            "ASG_ARC_URL": "https://arc.example.com/",
            "ASG_ARC_API_KEY": API_KEY,
            "ASG_ARC_TIMEOUT": "12.5",
            "ASG_WOC_URL": "http://127.0.0.1:9999",
        }
    )
    assert settings.arc == ArcSettings("https://arc.example.com", API_KEY, 12.5, "http://127.0.0.1:9999")
    only_url = Settings.from_env({"ASG_BSV_NETWORK": "mainnet", "ASG_ARC_URL": "https://arc.example.com"})
    assert only_url.arc is not None and only_url.arc.woc_url == "https://api.whatsonchain.com"
    # The local ledger needs no ARC: its variables are not read, so they cannot be refused.
    assert Settings.from_env({"ASG_ARC_TIMEOUT": "soon"}).arc is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "ASG_ARC_URL"),
        ({"ASG_ARC_URL": "arc.example.com"}, "ASG_ARC_URL"),
        ({"ASG_ARC_URL": "https://arc.example.com", "ASG_WOC_URL": "ftp://woc"}, "ASG_WOC_URL"),
        ({"ASG_ARC_URL": "https://arc.example.com", "ASG_ARC_TIMEOUT": "soon"}, "ASG_ARC_TIMEOUT"),
        ({"ASG_ARC_URL": "https://arc.example.com", "ASG_ARC_TIMEOUT": "0"}, "ASG_ARC_TIMEOUT"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({"ASG_BSV_NETWORK": "testnet", **env})


# --- WhatsOnChain UTXOs ---------------------------------------------------------------------

ADDRESS = "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8"


def woc_item(txid: str, vout: int, value: int, spent: bool = False) -> dict[str, object]:
    return {
        "height": 861499,
        "tx_pos": vout,
        "tx_hash": txid,
        "value": value,
        "isSpentInMempoolTx": spent,
        "status": "confirmed",
    }


def woc_page(*items: dict[str, object], token: str | None = None) -> Answer:
    body: dict[str, object] = {"address": ADDRESS, "script": "ab" * 32, "result": list(items), "error": ""}
    if token:
        body["nextPageToken"] = token
    return Answer(200, body)


@pytest.mark.asyncio
async def test_unspent_outputs_come_from_the_documented_endpoint(arc: FakeArc) -> None:
    scripted(
        arc,
        woc_page(
            woc_item("aa" * 32, 1, 154),
            woc_item("bb" * 32, 0, 100, spent=True),
            woc_item("CC" * 32, 99, 1000),
        ),
    )
    utxos = await fetch_unspent(ADDRESS, "testnet", base_url=arc.url)

    assert utxos == [Utxo("aa" * 32, 1, 154), Utxo("cc" * 32, 99, 1000)]  # spent in mempool: left out
    assert [(r.method, r.path) for r in arc.requests] == [
        ("GET", f"/v1/bsv/test/address/{ADDRESS}/unspent/all")
    ]


@pytest.mark.asyncio
async def test_unspent_outputs_follow_the_next_page_token(arc: FakeArc) -> None:
    scripted(
        arc,
        woc_page(woc_item("aa" * 32, 0, 500), token="page-2"),
        woc_page(woc_item("aa" * 32, 0, 500), woc_item("bb" * 32, 3, 700)),
    )
    utxos = await fetch_unspent(ADDRESS, "mainnet", base_url=arc.url)

    assert utxos == [Utxo("aa" * 32, 0, 500), Utxo("bb" * 32, 3, 700)]  # each outpoint once
    assert arc.requests[0].path == f"/v1/bsv/main/address/{ADDRESS}/unspent/all"
    assert arc.requests[1].query == {"token": ["page-2"]}


@pytest.mark.parametrize(
    "answer",
    [
        Answer(500, b"upstream down"),
        Answer(200, b"not json"),
        Answer(200, {"result": [], "error": "address is invalid"}),
        Answer(200, {"result": [{"tx_hash": "zz", "tx_pos": 0, "value": 5}], "error": ""}),
        Answer(200, {"result": [{"tx_pos": 0, "value": 5}], "error": ""}),
    ],
    ids=["5xx", "not-json", "woc-error", "bad-txid", "missing-field"],
)
@pytest.mark.asyncio
async def test_unusable_whatsonchain_answer_raises(arc: FakeArc, answer: Answer) -> None:
    scripted(arc, answer)
    with pytest.raises(UtxoSourceError):
        await fetch_unspent(ADDRESS, "testnet", base_url=arc.url)


@pytest.mark.asyncio
async def test_unspent_outputs_need_a_public_network() -> None:
    with pytest.raises(ValueError, match="local"):
        await fetch_unspent(ADDRESS, "local")
