"""Who gets which share of the work (docs/quality.md, "Gold share and traffic caps").

Two rules the dispatcher applies to every offer, kept here as in-memory counts of the labels
each worker gave since this core started dispatching:

* **Gold share**: a worker whose labels hold less than `gold_share` gold is offered an open
  gold task first; otherwise gold tasks come after every other task it may take, so gold is
  about that share of each worker's labels while gold exists, and a gold task still finds a
  worker when nothing else is open.
* **Customer share cap**: once a customer's tasks have `customer_share_min_labels` labels, a
  worker holding at least `customer_share_cap` of them is offered none of that customer's tasks
  until others catch up. A cap below what the workers at hand can share would stop the work,
  so the cap in force is never below twice an equal share (`2 / n` for the `n` workers who
  labeled that customer's tasks): with one or two workers it never bites.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asg_grpc.domain.labeling import OpenTask

# The message a capped worker's agent is shown (WorkNotice.message).
CAPPED = (
    "you gave {share:.0%} of one customer's labels, above the {cap:.0%} one worker may "
    "give; its tasks go to other workers until they catch up"
)


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    gold_share: float = 0.05  # ASG_GOLD_SHARE: 0 turns gold preference off
    customer_share_cap: float = 0.25  # ASG_CUSTOMER_SHARE_CAP: 1 turns the cap off
    customer_share_min_labels: int = 100  # ASG_CUSTOMER_SHARE_MIN_LABELS


@dataclass(slots=True)
class _Customer:
    labels: int = 0
    by_worker: dict[str, int] = field(default_factory=dict)


class Traffic:
    def __init__(self, settings: TrafficSettings) -> None:
        self.settings = settings
        self._labels: dict[str, int] = {}  # worker → labels given
        self._gold: dict[str, int] = {}  # worker → of them, on gold tasks
        self._customers: dict[str, _Customer] = {}
        # Open gold tasks in memory, oldest first (load order is seq order).
        self.gold_tasks: dict[str, OpenTask] = {}

    # bookkeeping ----------------------------------------------------------------------------

    def loaded(self, task: OpenTask) -> None:
        if task.gold is not None:
            self.gold_tasks[task.task_id] = task

    def forget(self, task: OpenTask) -> None:
        self.gold_tasks.pop(task.task_id, None)

    def labeled(self, worker: str, task: OpenTask) -> None:
        self._labels[worker] = self._labels.get(worker, 0) + 1
        if task.gold is not None:
            self._gold[worker] = self._gold.get(worker, 0) + 1
        customer = self._customers.get(task.customer_id)
        if customer is None:
            customer = self._customers[task.customer_id] = _Customer()
        customer.labels += 1
        customer.by_worker[worker] = customer.by_worker.get(worker, 0) + 1

    # the rules ------------------------------------------------------------------------------

    def wants_gold(self, worker: str) -> bool:
        """Whether one more gold label keeps the worker's gold at or under its share."""
        if not self.gold_tasks:
            return False
        return self._gold.get(worker, 0) < self.settings.gold_share * (self._labels.get(worker, 0) + 1)

    def capped(self, worker: str, customer_id: str) -> bool:
        """Whether the worker holds too large a share of the customer's labels to get more."""
        customer = self._customers.get(customer_id)
        if customer is None or customer.labels < self.settings.customer_share_min_labels:
            return False
        return customer.by_worker.get(worker, 0) >= self.cap(customer) * customer.labels

    def cap(self, customer: _Customer) -> float:
        return max(self.settings.customer_share_cap, 2 / max(1, len(customer.by_worker)))

    def capped_message(self, worker: str, customer_id: str) -> str:
        customer = self._customers[customer_id]
        share = customer.by_worker.get(worker, 0) / customer.labels
        return CAPPED.format(share=share, cap=self.cap(customer))

    def gold_share_of(self, worker: str) -> float:
        """The share of the worker's labels that were gold (0 before any label)."""
        labels = self._labels.get(worker, 0)
        return self._gold.get(worker, 0) / labels if labels else 0.0
