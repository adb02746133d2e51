"""Errors the core raises, mapped once to gRPC codes in `asg_grpc.services.errors`.

DomainError
├── ValidationError        a field breaks a rule; names the field (INVALID_ARGUMENT)
│   └── UnregisteredWebhook
├── Unauthenticated        no key, unknown or revoked key (UNAUTHENTICATED)
├── PermissionDenied       authenticated but not allowed (PERMISSION_DENIED)
│   └── QuotaExhausted     the label quota cannot hold the request
├── NotFound               unknown id, or another customer's (NOT_FOUND)
├── Conflict               the request contradicts stored state (ALREADY_EXISTS)
│   ├── EmailTaken
│   └── IdempotencyConflict
├── NotReady               e.g. exporting a job before it completed (FAILED_PRECONDITION)
├── Unavailable            the store is busy (UNAVAILABLE)
└── LimitReached           a documented limit is reached (RESOURCE_EXHAUSTED, with
    │                      `retry-after` in the trailing metadata when it says when)
    └── RateLimited        the key is over its tier's rate limit
"""

from __future__ import annotations


class DomainError(Exception):
    """Root of the core's errors; `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(DomainError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field

    def at(self, prefix: str) -> ValidationError:
        """The same error located inside a container, e.g. `tasks[3].`."""
        return ValidationError(prefix + self.field, self.message[len(self.field) + 1 :])


class UnregisteredWebhook(ValidationError):
    """A task's, batch's or job's callback_url names no active webhook of the customer (seed
    004: it must match one). Says how to register it: the fix is a call away."""

    def __init__(self) -> None:
        super().__init__(
            "callback_url",
            "is not a registered webhook; register it first: POST /v1/webhooks"
            ' {"callback_url": "<this URL>", "secret": "<8 to 256 characters>"} (docs/webhooks.md)',
        )


class Unauthenticated(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class QuotaExhausted(PermissionDenied):
    """The label quota cannot hold the request. The message stays seed 004's "quota exhausted";
    the numbers (in labels) and the way out travel beside it, to the HTTP body and the SDK."""

    def __init__(self, limit: int, used: int, requested: int, customer_id: str) -> None:
        super().__init__("quota exhausted")
        self.limit = limit
        self.used = used
        self.requested = requested
        self.hint = quota_hint(limit, used, requested, customer_id)


def quota_hint(limit: int, used: int, requested: int, customer_id: str) -> str:
    """The way out of a quota refusal (docs/billing.md, "Changing a customer's tier")."""
    left = max(0, limit - used)
    who = customer_id or "CUSTOMER_ID"
    return (
        f"{requested} labels requested, {left} of {limit} left; an operator moves the customer to"
        f" a tier with a bigger quota: asg customer tier {who} pro (docs/billing.md)"
    )


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("email already registered")


class IdempotencyConflict(Conflict):
    def __init__(self, field: str = "idempotency_key") -> None:
        super().__init__(f"{field} was already used with a different request body")
        self.field = field


class Unavailable(DomainError):
    pass


class NotReady(DomainError):
    """The resource exists but is not in a state that allows the call yet (FAILED_PRECONDITION)."""


class LimitReached(DomainError):
    """A limit of docs/api.md's table is reached; `retry_after` is whole seconds, 0 when no wait
    helps by itself (a stream too many stays refused until another one closes)."""

    def __init__(self, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(LimitReached):
    """The key made more calls than its tier allows; `retry_after` is whole seconds (≥ 1)."""

    def __init__(self, retry_after: int, hint: str = "") -> None:
        message = f"rate limit exceeded: retry after {retry_after} s"
        super().__init__(f"{message}; {hint}" if hint else message, retry_after)


def rate_hint(tier: str, per_second: float, burst: int, customer_id: str) -> str:
    """The numbers and the way out of a customer's rate-limit refusal (docs/billing.md)."""
    way_out = (
        f"asg customer tier {customer_id or 'CUSTOMER_ID'} pro"
        if tier != "pro"
        else "a tier with a higher rate in ASG_TIERS"
    )
    return (
        f"the {tier} tier allows {per_second:g} calls per second per key (burst {burst});"
        f" an operator raises it by moving the customer: {way_out} (docs/billing.md)"
    )
