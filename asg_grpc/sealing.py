"""Sealing every secret the core keeps in its store: never in plain text at rest.

Job credentials (S3 keys, until the manifest is read) and webhook signing secrets (for as long as
the webhook lives). AES-256-GCM with a key from ASG_SEALING_KEY (base64 of 32 bytes) or, when
unset, generated once into <data dir>/sealing_key (mode 0600). A sealed value is bound to what
it belongs to (the job or webhook id, as associated data): copied onto another row it does not
open.
"""

from __future__ import annotations

import base64
import binascii
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asg_grpc.domain.jobs import S3Credentials
from asg_grpc.secret_file import read_or_create
from asg_grpc.settings import Settings, SettingsError

NONCE_BYTES = 12


class SealBroken(Exception):
    """A sealed value does not open with this key (another key, or altered bytes)."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def for_settings(cls, settings: Settings) -> Sealer:
        if settings.sealing_key is not None:
            raw = settings.sealing_key
        else:
            raw = read_or_create(
                settings.data_dir / "sealing_key", lambda: base64.b64encode(os.urandom(32)).decode()
            )
        try:
            key = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise SettingsError("ASG_SEALING_KEY must be base64 (of 32 random bytes)") from None
        if len(key) != 32:
            raise SettingsError(f"ASG_SEALING_KEY must decode to 32 bytes, got {len(key)}")
        return cls(key)

    def seal(self, plain: bytes, bound_to: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, bound_to.encode())

    def open(self, sealed: bytes, bound_to: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], bound_to.encode())
        except InvalidTag:
            raise SealBroken("the sealed value does not open with this core's sealing key") from None


def seal_credentials(sealer: Sealer, job_id: str, credentials: S3Credentials) -> bytes:
    plain = orjson.dumps(
        {
            "access_key_id": credentials.access_key_id,
            "secret_access_key": credentials.secret_access_key,
            "region": credentials.region,
            "endpoint_url": credentials.endpoint_url,
        }
    )
    return sealer.seal(plain, job_id)


def open_credentials(sealer: Sealer, job_id: str, sealed: bytes) -> S3Credentials:
    return S3Credentials(**orjson.loads(sealer.open(sealed, job_id)))


def seal_webhook_secret(sealer: Sealer, webhook_id: str, secret: str) -> bytes:
    return sealer.seal(secret.encode(), webhook_id)


def open_webhook_secret(sealer: Sealer, webhook_id: str, sealed: bytes) -> str:
    return sealer.open(sealed, webhook_id).decode()
