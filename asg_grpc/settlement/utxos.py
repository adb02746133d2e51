"""The platform wallet's coins on testnet/mainnet, from WhatsOnChain, for a wallet funded from
outside (`ASG_WALLET_WIF`): the core learns them once and tracks them itself from then on.

`GET {base}/v1/bsv/{main|test}/address/{address}/unspent/all` answers
`{"address", "script", "result": [{"height", "tx_pos", "tx_hash", "value",
"isSpentInMempoolTx", "status"}], "error"}` with confirmed and unconfirmed outputs together.
Outputs already spent by a mempool transaction are left out: spending them again would be
refused as a double spend.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
import orjson

from asg_grpc.settings import DEFAULT_WOC_URL

WOC_NETWORKS = {"mainnet": "main", "testnet": "test"}
MAX_PAGES = 100  # 1000 confirmed outputs a page: a wallet with more should consolidate
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_TXID = re.compile(r"[0-9a-f]{64}")


class UtxoSourceError(Exception):
    """WhatsOnChain did not give a usable answer; nothing was learnt, try again later."""


class Utxo(NamedTuple):
    txid: str
    vout: int
    satoshis: int


async def fetch_unspent(
    address: str,
    network: str,
    base_url: str = DEFAULT_WOC_URL,
    *,
    timeout: float = 30.0,
    api_key: str | None = None,
) -> list[Utxo]:
    """Every unspent output of `address` (`network`: testnet or mainnet), each once."""
    if network not in WOC_NETWORKS:
        raise ValueError(f"WhatsOnChain serves testnet and mainnet, not {network!r}")
    url = f"{base_url.rstrip('/')}/v1/bsv/{WOC_NETWORKS[network]}/address/{quote(address)}/unspent/all"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = api_key  # WhatsOnChain's scheme: the bare key
    found: dict[tuple[str, int], Utxo] = {}
    token: str | None = None
    seen_tokens: set[str] = set()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            for _ in range(MAX_PAGES):
                params = {"token": token} if token else None
                body = await _get(session, url, headers, params)
                page = _parse(body, address)
                for utxo in page:
                    found.setdefault((utxo.txid, utxo.vout), utxo)
                # Confirmed outputs past the first 1000 come in pages behind a token.
                token = str(body.get("nextPageToken") or "") or None
                if token is None or token in seen_tokens or not body.get("result"):
                    return list(found.values())
                seen_tokens.add(token)
    except TimeoutError as exc:
        raise UtxoSourceError(f"WhatsOnChain did not answer within {timeout:g}s") from exc
    except aiohttp.ClientError as exc:
        raise UtxoSourceError(f"WhatsOnChain unreachable: {type(exc).__name__}: {exc}") from exc
    raise UtxoSourceError(f"WhatsOnChain listed more than {MAX_PAGES} pages of outputs for {address}")


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], params: dict[str, str] | None
) -> dict[str, Any]:
    async with asyncio.timeout(session.timeout.total):
        async with session.get(url, headers=headers, params=params, allow_redirects=False) as response:
            text = await response.content.read(MAX_RESPONSE_BYTES)
            status = response.status
    if status != 200:
        raise UtxoSourceError(f"WhatsOnChain answered {status}: {text[:200].decode('utf-8', 'replace')}")
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UtxoSourceError("WhatsOnChain answered with something that is not JSON") from exc
    if not isinstance(body, dict):
        raise UtxoSourceError("WhatsOnChain's answer is not the documented object")
    return body


def _parse(body: dict[str, Any], address: str) -> list[Utxo]:
    if body.get("error"):
        raise UtxoSourceError(f"WhatsOnChain error for {address}: {body['error']}")
    result = body.get("result")
    if not isinstance(result, list):
        raise UtxoSourceError("WhatsOnChain's answer has no result list")
    utxos = []
    for item in result:
        try:
            txid, vout, sats = item["tx_hash"], item["tx_pos"], item["value"]
        except (KeyError, TypeError) as exc:
            raise UtxoSourceError(f"WhatsOnChain listed an output without {exc}") from exc
        valid = isinstance(txid, str) and _TXID.fullmatch(txid.lower())
        if not valid or type(vout) is not int or type(sats) is not int or vout < 0 or sats <= 0:
            raise UtxoSourceError(f"WhatsOnChain listed a malformed output: {item!r}")
        if item.get("isSpentInMempoolTx") is True:
            continue
        utxos.append(Utxo(txid.lower(), vout, sats))
    return utxos
