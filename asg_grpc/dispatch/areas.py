"""The store areas dispatch uses (asg_grpc/store/areas.py)."""

from __future__ import annotations

from typing import Protocol

from asg_grpc.store.areas import Dispatch, Tasks, Workers


class DispatcherStore(Dispatch, Tasks, Workers, Protocol):
    """Open tasks, labeling batches and the lease; the deadlines it expires (Tasks.expire_due);
    the worker roster it checks before closing a task nobody is left for."""
