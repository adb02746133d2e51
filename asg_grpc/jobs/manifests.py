"""Reading a manifest as a stream of bytes from where a previous read stopped.

https:// manifests with aiohttp (a Range request when resuming), s3:// manifests with boto3
(its blocking calls in a thread). Neither reads more than the manifest size limit, and the
whole manifest never sits in memory: it arrives in chunks of CHUNK_BYTES.

Errors carry messages safe to show the customer: they name the status or the S3 error code,
never the credentials.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from asg_grpc.domain.errors import ValidationError
from asg_grpc.domain.jobs import JobSpec, S3Credentials, S3Location
from asg_grpc.wire.urls import NoPublicAddress, UrlGuard

CHUNK_BYTES = 1024 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
USER_AGENT = "asg-refinery-jobs/1"
# S3 answers that no retry can fix; anything else (5xx, throttling, network) is worth retrying.
_S3_PERMANENT = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "InvalidBucketName",
    "NoSuchBucket",
    "NoSuchKey",
    "SignatureDoesNotMatch",
    "AuthorizationHeaderMalformed",
    "PermanentRedirect",
    "InvalidObjectState",
    "403",
    "404",
}


class ManifestUnreadable(Exception):
    """The manifest cannot be read and retrying will not help; the message is the job's reason."""


class ManifestUnavailable(Exception):
    """A failure that may pass (5xx, throttling, a dropped connection): worth another try."""


class ManifestTooLarge(ManifestUnreadable):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the manifest is larger than the limit of {limit} bytes")


class ManifestReader:
    """Opens manifests; one per core, sharing an HTTP connection pool."""

    def __init__(self, *, allow_private_urls: bool, max_bytes: int, dev_mode: bool = False) -> None:
        self._urls = UrlGuard(allow_private_urls, dev_mode=dev_mode)
        self._max_bytes = max_bytes
        # The system's authorities (OpenSSL honours SSL_CERT_FILE, as for webhook deliveries).
        self._ssl = ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def read(self, spec: JobSpec, credentials: S3Credentials | None, offset: int) -> AsyncIterator[bytes]:
        """The manifest's bytes from `offset` on, in chunks."""
        location = spec.s3
        if location is not None:
            assert credentials is not None, "an s3:// job has credentials (validate_job)"
            return self._read_s3(location, credentials, offset)
        return self._read_https(spec.manifest_url, offset)

    async def _guard(self, url: str, field: str, *, http_anywhere: bool = False) -> None:
        try:
            await self._urls.check(url, field, http_anywhere=http_anywhere)
        except ValidationError as exc:
            raise ManifestUnreadable(exc.message) from None

    def _check_size(self, total: int | None) -> None:
        if total is not None and total > self._max_bytes:
            raise ManifestTooLarge(self._max_bytes)

    async def _read_https(self, url: str, offset: int) -> AsyncIterator[bytes]:
        await self._guard(url, "manifest_url")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=self._urls.connector(),
                timeout=aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT),
                # Offsets count the bytes as stored: a transparently unzipped body would make
                # every resumed Range land somewhere else.
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                auto_decompress=False,
            )
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            # Redirects are not followed: the guard checked this URL's host, not another's.
            async with self._session.get(url, headers=headers, allow_redirects=False, ssl=self._ssl) as resp:
                skip = 0
                if resp.status == 416 and offset:  # resuming exactly at the end
                    return
                if resp.status == 200:
                    skip = offset  # the server ignored the Range: drop what was read before
                elif resp.status != 206 or not offset:
                    _refuse_http(resp.status)
                elif not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    raise ManifestUnreadable(
                        f"manifest_url answered a range other than the one asked for (bytes {offset}-)"
                    )
                encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise ManifestUnreadable(
                        f"manifest_url is served with Content-Encoding {encoding}: serve it uncompressed"
                    )
                length = resp.content_length
                self._check_size(None if length is None else length + offset - skip)
                read = offset
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    read += len(chunk)
                    self._check_size(read)
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
                raise ManifestUnreadable(f"manifest_url failed TLS verification: {exc}") from None
            if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, NoPublicAddress):
                raise ManifestUnreadable("manifest_url resolves to a private or loopback address") from None
            raise ManifestUnavailable(f"manifest_url could not be read: {type(exc).__name__}") from None

    async def _read_s3(
        self, location: S3Location, credentials: S3Credentials, offset: int
    ) -> AsyncIterator[bytes]:
        if credentials.endpoint_url is not None:
            await self._guard(credentials.endpoint_url, "s3_credentials.endpoint_url", http_anywhere=True)
        try:
            client = await asyncio.to_thread(_s3_client, credentials)
        except (BotoCoreError, ValueError) as exc:  # a region or endpoint botocore refuses
            raise ManifestUnreadable(
                f"s3_credentials were refused by the S3 client: {type(exc).__name__}"
            ) from None
        args: dict[str, Any] = {"Bucket": location.bucket, "Key": location.key}
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            reply = await asyncio.to_thread(client.get_object, **args)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            if code == "InvalidRange" and offset:  # resuming exactly at the end
                return
            message = f"s3://{location.bucket}/{location.key} could not be read: S3 answered {code}"
            if code in _S3_PERMANENT:
                raise ManifestUnreadable(message) from None
            raise ManifestUnavailable(message) from None
        except BotoCoreError as exc:
            raise ManifestUnavailable(
                f"s3://{location.bucket}/{location.key} could not be read: {type(exc).__name__}"
            ) from None
        body = reply["Body"]
        encoding = str(reply.get("ContentEncoding") or "identity").strip().lower()
        if encoding not in ("", "identity"):
            body.close()
            raise ManifestUnreadable(
                f"s3://{location.bucket}/{location.key} is stored with Content-Encoding {encoding}:"
                " store it uncompressed"
            )
        try:
            self._check_size(reply.get("ContentLength", 0) + offset)
            read = offset
            while True:
                try:
                    chunk = await asyncio.to_thread(body.read, CHUNK_BYTES)
                except (BotoCoreError, OSError) as exc:
                    raise ManifestUnavailable(
                        f"s3://{location.bucket}/{location.key} stopped while reading: {type(exc).__name__}"
                    ) from None
                if not chunk:
                    return
                read += len(chunk)
                self._check_size(read)
                yield chunk
        finally:
            body.close()


def _s3_client(credentials: S3Credentials) -> Any:
    return boto3.session.Session().client(
        "s3",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=credentials.region,
        endpoint_url=credentials.endpoint_url,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"max_attempts": 3, "mode": "standard"},
            user_agent_extra=USER_AGENT,
        ),
    )


def _refuse_http(status: int) -> None:
    message = f"manifest_url answered HTTP {status}"
    if 300 <= status < 400:
        raise ManifestUnreadable(message + " (redirects are not followed: use the final URL)")
    if status == 429 or status >= 500:
        raise ManifestUnavailable(message)
    raise ManifestUnreadable(message)
