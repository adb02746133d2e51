"""The gateway's errors, each mapped once to an HTTP status (`STATUS`, used by app.py).

ChallengeGatewayError
 ├── BadRequest             400  malformed JSON or request target
 ├── Unauthorized           401  no or wrong dashboard credentials
 ├── Forbidden              403  cross-origin dashboard write, revoked/unknown gateway key
 ├── NotFound               404
 ├── PayloadTooLarge        413
 ├── UnsupportedMediaType   415  a write without a JSON content type
 ├── InvalidField           422  a field's value breaks its rule (names the field)
 └── TooManyRequests        429  with Retry-After
"""

from __future__ import annotations


class ChallengeGatewayError(Exception):
    """The root: its message is what the client is told in `{"error": ...}`."""

    status = 500


class BadRequest(ChallengeGatewayError):
    status = 400


class Unauthorized(ChallengeGatewayError):
    status = 401


class Forbidden(ChallengeGatewayError):
    status = 403


class NotFound(ChallengeGatewayError):
    status = 404


class PayloadTooLarge(ChallengeGatewayError):
    status = 413


class UnsupportedMediaType(ChallengeGatewayError):
    status = 415


class InvalidField(ChallengeGatewayError):
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TooManyRequests(ChallengeGatewayError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
