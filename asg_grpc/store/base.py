"""`Store`: every area of asg_grpc/store/areas.py, what a backend provides.

Callers type their dependency as the areas they use, not as `Store`; the core opens one
`Store` (open.py) and hands it to each of them.
"""

from __future__ import annotations

from typing import Protocol

from asg_grpc.store.areas import (
    Customers,
    Dashboard,
    Dispatch,
    Jobs,
    Ledger,
    Settlement,
    Tasks,
    Webhooks,
    Workers,
)

AREAS: tuple[type, ...] = (Customers, Tasks, Workers, Dispatch, Settlement, Webhooks, Jobs, Ledger, Dashboard)


class Store(Customers, Tasks, Workers, Dispatch, Settlement, Webhooks, Jobs, Ledger, Dashboard, Protocol):
    def close(self) -> None: ...


def store_methods() -> list[str]:
    """The names of the Store protocol's methods, area by area (close last)."""
    names = [
        name
        for area in AREAS
        for name, member in vars(area).items()
        if not name.startswith("_") and callable(member)
    ]
    return [*names, "close"]
