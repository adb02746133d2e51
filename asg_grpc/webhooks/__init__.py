"""Webhook delivery (worker.py: outbox fan-out and delivery) and the guard on URLs the core
calls (urlguard.py). Only the guard is re-exported here, so services can import it without
pulling in the worker."""

from __future__ import annotations

from asg_grpc.webhooks.urlguard import PrivateURL, check_public_url

__all__ = ["PrivateURL", "check_public_url"]
