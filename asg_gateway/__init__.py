"""Python SDK for the ASG Refinery gateway: ``from asg_gateway import ASGGatewayClient``."""

from __future__ import annotations

from ._chain import (
    TaskPayout,
    VerifiedTaskReceipt,
    averify_task_receipt_document,
    verify_task_receipt_document,
)
from ._client import ASGGatewayClient, AsyncASGGatewayClient
from ._errors import (
    APIConnectionError,
    APIStatusError,
    ASGError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobTimeoutError,
    NoReceiptError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PollTimeoutError,
    QuotaExhaustedError,
    RateLimitError,
    ReceiptInvalid,
    ServerError,
    WebhookSignatureError,
)
from ._export import AsyncJobExport, JobExport
from ._receipts import (
    HeadersChainTracker,
    VerifiedOutput,
    VerifiedReceipt,
    averify_receipt_document,
    verify_receipt_document,
)
from ._version import __version__
from ._webhooks import sign_webhook, verify_webhook_signature

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "ASGError",
    "ASGGatewayClient",
    "AsyncASGGatewayClient",
    "AsyncJobExport",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "HeadersChainTracker",
    "JobExport",
    "JobTimeoutError",
    "NoReceiptError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PollTimeoutError",
    "QuotaExhaustedError",
    "RateLimitError",
    "ReceiptInvalid",
    "ServerError",
    "TaskPayout",
    "VerifiedOutput",
    "VerifiedReceipt",
    "VerifiedTaskReceipt",
    "WebhookSignatureError",
    "__version__",
    "averify_receipt_document",
    "averify_task_receipt_document",
    "sign_webhook",
    "verify_receipt_document",
    "verify_task_receipt_document",
    "verify_webhook_signature",
]
