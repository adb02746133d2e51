"""Workers (labelers): registration rules, payout addresses, tokens.

A payout address is a Base58Check P2PKH address: version byte 0x00 (mainnet, "1…") or 0x6f
(testnet, "m…"/"n…"), a 20-byte key hash, and a 4-byte double-SHA-256 checksum.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from asg_grpc.domain import ids
from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.tasks import TASK_TYPES

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
P2PKH_VERSIONS = {"main": 0x00, "test": 0x6F}
MAX_NAME = 200
TOKEN_PREFIX = "wk_"


@dataclass(frozen=True, slots=True)
class Worker:
    worker_id: str
    name: str
    payout_address: str
    task_types: tuple[str, ...]
    created_at: float
    # Registered as a challenge gateway (docs/challenge.md): offered `labor: challenge` tasks.
    challenge_gateway: bool = False


@dataclass(frozen=True, slots=True)
class WorkerRegistration:
    name: str
    payout_address: str
    task_types: tuple[str, ...]
    challenge_gateway: bool = False

    def worker(self, now: float) -> Worker:
        """The worker this registration makes, with a new id: both stores store it as it is."""
        return Worker(
            worker_id=ids.new_id("wkr", now),
            name=self.name,
            payout_address=self.payout_address,
            task_types=self.task_types,
            created_at=now,
            challenge_gateway=self.challenge_gateway,
        )


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def b58check_decode(text: str) -> bytes:
    """The payload (version byte + data) of a Base58Check string; ValueError if malformed."""
    number = 0
    for char in text:
        if char not in _INDEX:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + _INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + body
    if len(raw) < 5 or _sha256d(raw[:-4])[:4] != raw[-4:]:
        raise ValueError("bad checksum")
    return raw[:-4]


def b58check_encode(payload: bytes) -> str:
    raw = payload + _sha256d(payload)[:4]
    number = int.from_bytes(raw, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _ALPHABET[rem] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + out


def p2pkh_address(key_hash: bytes, network: str = "main") -> str:
    return b58check_encode(bytes([P2PKH_VERSIONS[network]]) + key_hash)


def address_network(address: str) -> str | None:
    """ "main" or "test" for a valid P2PKH address, None otherwise."""
    try:
        payload = b58check_decode(address)
    except ValueError:
        return None
    if len(payload) != 21:
        return None
    for network, version in P2PKH_VERSIONS.items():
        if payload[0] == version:
            return network
    return None


def validate_worker(
    name: str, payout_address: str, task_types: list[str], challenge_gateway: bool = False
) -> WorkerRegistration:
    name = name.strip()
    if not name:
        raise ValidationError("name", "is required")
    if len(name) > MAX_NAME:
        raise ValidationError("name", f"must be at most {MAX_NAME} characters")
    if not payout_address:
        raise ValidationError("payout_address", "is required")
    if address_network(payout_address) is None:
        raise ValidationError("payout_address", "must be a valid BSV P2PKH address")
    for i, task_type in enumerate(task_types):
        if task_type not in TASK_TYPES:
            raise ValidationError(f"task_types[{i}]", f"must be one of {', '.join(TASK_TYPES)}")
    types = tuple(dict.fromkeys(task_types)) or TASK_TYPES
    return WorkerRegistration(name, payout_address, types, challenge_gateway)


def new_worker_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
