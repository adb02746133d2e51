"""Persistence: one small protocol per area (areas.py), `Store` their composition (base.py), one
package per backend."""

from asg_grpc.store.base import Store
from asg_grpc.store.task_records import Submission, Submitted

__all__ = ["Store", "Submission", "Submitted"]
