"""A customer proves a task was paid: the receipt of a task settled by simulated workers on a
real stack verifies through the SDK, tampering is caught, and the chain reads back it up."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asg_gateway import (
    ASGGatewayClient,
    AsyncASGGatewayClient,
    BadRequestError,
    ConflictError,
    NoReceiptError,
    NotFoundError,
    PollTimeoutError,
    ReceiptInvalid,
    verify_task_receipt_document,
)
from asg_grpc.devstack import Stack
from asg_grpc.domain.workers import p2pkh_address
from tests.conftest import make_stack, register
from tests.core.ledger.test_receipts import _join_beef, _split_beef

SPEC = {"question": "Animal?", "options": ["cat", "dog"]}
IMAGE = "image_classification"
WAIT = 60.0  # an upper bound on settlement + one block, far above the ~2 s it takes


def dev_worker_addresses(count: int) -> set[str]:
    """The payout addresses `Stack.dev_workers` registers (devstack.py)."""
    return {p2pkh_address(hashlib.sha256(f"dev-worker-{i}".encode()).digest()[:20]) for i in range(count)}


def submit(client: ASGGatewayClient, task_type: str = IMAGE) -> str:
    reply = client.submit_task(task_type, "https://example.com/cat.jpg", SPEC, consensus_threshold=3)
    return str(reply["task_id"])


@pytest.fixture(scope="module")
def chain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Blocks every 0.2 s; three simulated workers that take image tasks only, so a text task
    stays pending."""
    with make_stack(tmp_path_factory.mktemp("receipts"), ASG_BLOCK_INTERVAL="0.2") as stack:
        stack.start_workers(3, "--task-types", IMAGE)
        yield stack


@pytest.fixture(scope="module")
def owner_key(chain_stack: Stack) -> str:
    return str(register(chain_stack.base_url)["api_key"])


@pytest.fixture(scope="module")
def owner(chain_stack: Stack, owner_key: str) -> Iterator[ASGGatewayClient]:
    with ASGGatewayClient(owner_key, chain_stack.base_url) as client:
        yield client


@pytest.fixture(scope="module")
def settled(owner: ASGGatewayClient) -> dict[str, Any]:
    """A task labeled by the workers, settled and mined: its result and its receipt."""
    task_id = submit(owner)
    result = owner.wait_for_result(task_id, until="settled", timeout=WAIT, interval=0.1)
    receipt = owner.wait_for_receipt(task_id, timeout=WAIT, interval=0.1)
    return {"task_id": task_id, "result": result, "receipt": receipt}


@pytest.fixture(scope="module")
def trusted_headers(owner: ASGGatewayClient, settled: dict[str, Any]) -> dict[int, str]:
    height = settled["receipt"]["block"]["height"]
    body = owner.get_chain_headers(height, 1)
    return {h["height"]: h["header"] for h in body["headers"]}


# the receipt -----------------------------------------------------------------------------


def test_receipt_of_a_settled_task_verifies_through_the_sdk(
    owner: ASGGatewayClient, settled: dict[str, Any]
) -> None:
    result = settled["result"]

    verified = owner.verify_receipt(settled["task_id"])

    assert result["status"] == "settled"
    assert verified.task_id == settled["task_id"]
    assert verified.txid == result["settlement"]["bsv_txid"]
    assert verified.total_cost_sats == result["settlement"]["total_cost_sats"]
    agreeing = {
        label["worker_id"] for label in result["labels"] if label["option"] == result["consensus_label"]
    }
    assert {p.worker_id for p in verified.payouts} == agreeing
    assert {p.vout for p in verified.payouts} <= {o.vout for o in verified.outputs}
    assert {o.address for o in verified.outputs} <= dev_worker_addresses(3)


def test_waiting_for_verified_returns_before_the_payout(owner: ASGGatewayClient) -> None:
    task_id = submit(owner)

    result = owner.wait_for_result(task_id, timeout=WAIT, interval=0.1)

    assert result["status"] in ("verified", "settled")
    assert result["consensus_label"] in SPEC["options"]


def test_a_task_nobody_takes_times_out_naming_its_status(owner: ASGGatewayClient) -> None:
    task_id = submit(owner, "text_classification")  # the workers take image tasks only

    with pytest.raises(PollTimeoutError) as caught:
        owner.wait_for_receipt(task_id, timeout=0.5, interval=0.1)

    assert caught.value.last_status == "pending"
    assert "pending" in str(caught.value)


def test_a_task_that_paid_nobody_has_no_receipt_to_wait_for(owner: ASGGatewayClient) -> None:
    task_id = submit(owner, "text_classification")
    owner.cancel_task(task_id)

    with pytest.raises(NoReceiptError, match="cancelled"):
        owner.wait_for_receipt(task_id, timeout=WAIT, interval=0.1)
    assert owner.wait_for_result(task_id, until="settled", timeout=1)["status"] == "cancelled"


def test_the_async_client_waits_for_the_same_receipt(
    chain_stack: Stack, owner_key: str, settled: dict[str, Any]
) -> None:
    async def wait() -> Any:
        async with AsyncASGGatewayClient(owner_key, chain_stack.base_url) as client:
            return await client.wait_for_receipt(settled["task_id"], timeout=WAIT, interval=0.1)

    assert asyncio.run(wait())["txid"] == settled["receipt"]["txid"]


def test_the_async_client_verifies_the_same_receipt(
    chain_stack: Stack, owner_key: str, settled: dict[str, Any]
) -> None:
    async def verify() -> Any:
        async with AsyncASGGatewayClient(owner_key, chain_stack.base_url) as client:
            return await client.verify_receipt(settled["task_id"])

    verified = asyncio.run(verify())

    assert verified.txid == settled["receipt"]["txid"]
    assert verified.block_height == settled["receipt"]["block"]["height"]


def _set_first_output_amount(r: dict[str, Any]) -> None:
    r["outputs"][0]["satoshis"] += 1


def _set_txid(r: dict[str, Any]) -> None:
    r["txid"] = "00" * 32
    r["bsv_txid"] = "00" * 32


def _break_merkle_path(r: dict[str, Any]) -> None:
    bumps, txs = _split_beef(bytes.fromhex(r["beef"]))
    path = bumps[txs[-1][1]]
    sibling = next(leaf for leaf in path.path[0] if not leaf.get("txid") and "hash_str" in leaf)
    sibling["hash_str"] = "11" * 32
    r["beef"] = _join_beef(bumps, txs).hex()


def _overpay_a_payout(r: dict[str, Any]) -> None:
    payout = r["payouts"][0]
    output = next(o for o in r["outputs"] if o["vout"] == payout["vout"])
    payout["sats"] = output["satoshis"] + 1


def _payout_on_an_unproven_output(r: dict[str, Any]) -> None:
    r["payouts"][0]["vout"] = max(o["vout"] for o in r["outputs"]) + 1


def _other_txid_for_the_task(r: dict[str, Any]) -> None:
    r["bsv_txid"] = "ab" * 32


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_set_first_output_amount, "satoshis, the receipt claims"),
        (_set_txid, "beef holds transaction .*, the receipt names"),
        (_break_merkle_path, "merkle path does not lead to the merkle root"),
        (_overpay_a_payout, "add up to .* sats, the output pays"),
        (_payout_on_an_unproven_output, "is not among the verified outputs"),
        (_other_txid_for_the_task, "bsv_txid .* is not the proven"),
    ],
)
def test_a_tampered_receipt_is_refused(
    settled: dict[str, Any],
    trusted_headers: dict[int, str],
    tamper: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    receipt = copy.deepcopy(settled["receipt"])
    assert verify_task_receipt_document(receipt, trusted_headers, settled["task_id"]).payouts
    tamper(receipt)

    with pytest.raises(ReceiptInvalid, match=reason):
        verify_task_receipt_document(receipt, trusted_headers, settled["task_id"])


def test_a_receipt_presented_for_another_task_is_refused(
    settled: dict[str, Any], trusted_headers: dict[int, str]
) -> None:
    with pytest.raises(ReceiptInvalid, match="receipt is for task"):
        verify_task_receipt_document(settled["receipt"], trusted_headers, "tsk_other")


def test_another_customers_task_has_no_receipt(chain_stack: Stack, settled: dict[str, Any]) -> None:
    stranger = register(chain_stack.base_url)["api_key"]

    with ASGGatewayClient(stranger, chain_stack.base_url) as client, pytest.raises(NotFoundError) as caught:
        client.get_receipt(settled["task_id"])

    assert caught.value.status == 404
    assert caught.value.message == "task not found"


def test_a_task_not_settled_yet_answers_409(owner: ASGGatewayClient) -> None:
    task_id = submit(owner, "text_classification")  # no worker takes text tasks here

    with pytest.raises(ConflictError) as caught:
        owner.get_receipt(task_id)

    assert caught.value.status == 409
    assert caught.value.message == "task is not settled yet (status pending); its receipt follows settlement"


def test_the_receipt_needs_an_api_key(chain_stack: Stack, settled: dict[str, Any]) -> None:
    reply = httpx.get(f"{chain_stack.base_url}/v1/tasks/{settled['task_id']}/receipt", timeout=10)

    assert reply.status_code == 401


# headers and transactions ------------------------------------------------------------------


def test_headers_form_a_chain_whose_merkle_roots_match(
    owner: ASGGatewayClient, settled: dict[str, Any]
) -> None:
    body = owner.get_chain_headers(0, 2000)
    headers = body["headers"]

    assert [h["height"] for h in headers] == list(range(len(headers)))
    assert body["tip_height"] == headers[-1]["height"]
    previous = "00" * 32
    for h in headers:
        raw = bytes.fromhex(h["header"])
        assert len(raw) == 80
        assert raw[4:36][::-1].hex() == previous
        assert raw[36:68][::-1].hex() == h["merkle_root"]
        assert hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex() == h["hash"]
        previous = h["hash"]
    block = settled["receipt"]["block"]
    assert headers[block["height"]]["header"] == block["header"]


def test_headers_past_the_tip_are_an_empty_list(owner: ASGGatewayClient, settled: dict[str, Any]) -> None:
    tip = owner.get_chain_headers(0, 1)["tip_height"]

    assert owner.get_chain_headers(tip + 1)["headers"] == []


@pytest.mark.parametrize("query", ["count=0", "count=2001", "from=-1", "from=x"])
def test_a_bad_headers_query_answers_400(chain_stack: Stack, owner_key: str, query: str) -> None:
    reply = httpx.get(
        f"{chain_stack.base_url}/v1/chain/headers?{query}",
        headers={"Authorization": f"Bearer {owner_key}"},
        timeout=10,
    )

    assert reply.status_code == 400, reply.text


def test_the_payout_transaction_pays_the_workers_addresses(
    owner: ASGGatewayClient, settled: dict[str, Any]
) -> None:
    receipt = settled["receipt"]

    tx = owner.get_chain_transaction(receipt["txid"])

    assert tx["txid"] == receipt["txid"]
    assert tx["block_height"] == receipt["block"]["height"]
    assert tx["block_hash"] == receipt["block"]["hash"]
    assert tx["fee"] > 0
    by_vout = {o["vout"]: o for o in tx["outputs"]}
    for output in receipt["outputs"]:
        assert by_vout[output["vout"]]["satoshis"] == output["satoshis"]
        assert by_vout[output["vout"]]["address"] == output["address"]
    assert {o["address"] for o in receipt["outputs"]} <= dev_worker_addresses(3)
    assert (
        hashlib.sha256(hashlib.sha256(bytes.fromhex(tx["hex"])).digest()).digest()[::-1].hex() == tx["txid"]
    )


def test_an_unknown_transaction_is_404_and_a_malformed_txid_400(owner: ASGGatewayClient) -> None:
    with pytest.raises(NotFoundError):
        owner.get_chain_transaction("ab" * 32)
    with pytest.raises(BadRequestError, match="txid must be 64 hex characters"):
        owner.get_chain_transaction("not-a-txid")


# before the block ---------------------------------------------------------------------------


def test_a_settled_task_whose_payout_is_not_mined_answers_409(tmp_path: Path) -> None:
    """A stack whose miner would wait an hour: the task settles, no block comes."""
    with make_stack(tmp_path, ASG_BLOCK_INTERVAL="3600") as stack:
        stack.start_workers(3, "--task-types", IMAGE)
        with ASGGatewayClient(register(stack.base_url)["api_key"], stack.base_url) as client:
            task_id = submit(client)
            result = client.poll_result(task_id, timeout=WAIT, interval=0.1)
            deadline = time.monotonic() + WAIT
            while result["status"] != "settled" and time.monotonic() < deadline:
                time.sleep(0.1)
                result = client.get_result(task_id)
            assert result["status"] == "settled"

            with pytest.raises(ConflictError) as caught:
                client.get_receipt(task_id)
            tx = client.get_chain_transaction(result["settlement"]["bsv_txid"])

    assert caught.value.message.endswith("is not mined yet; retry in a few seconds")
    assert tx["block_height"] is None and tx["block_hash"] is None
