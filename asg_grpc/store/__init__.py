"""Persistence: one `Store` protocol (base.py), one module per backend."""

from asg_grpc.store.base import Store, Submission, Submitted

__all__ = ["Store", "Submission", "Submitted"]
