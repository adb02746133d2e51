"""The store's areas: each a small protocol of the operations one part of the core needs.

A service, the dispatcher or the settler types its store as the areas it calls (a Protocol
inheriting them where it needs several); `Store` (base.py) is all of them, what a backend
provides. Every method is one atomic unit: it either happens whole or raises and leaves nothing
behind. Reads are scoped to a customer so a backend cannot leak another customer's rows.
The area → methods table is in docs/storage.md (Areas).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from asg_grpc.domain.billing import UsageCounts
from asg_grpc.domain.customers import ApiKey, Customer, Registration
from asg_grpc.domain.dashboard import Counters, TaskQuery, TaskRows
from asg_grpc.domain.errors import DomainError
from asg_grpc.domain.jobs import Job, JobSpec
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.settlement import SettleableTask, WorkerPayment
from asg_grpc.domain.tasks import BatchProgress, LabelRecord, Task, TaskStatus
from asg_grpc.domain.webhooks import Webhook, WebhookSpec
from asg_grpc.domain.workers import Worker, WorkerRegistration
from asg_grpc.store.customer_records import KeyOwner
from asg_grpc.store.job_records import ChunkOutcome, ExportRow, IngestChunk, JobPage, JobWork
from asg_grpc.store.ledger_records import LedgerBlock, LedgerOutput, LedgerTx, NewLedgerTx, Outpoint
from asg_grpc.store.settlement_records import (
    OpenSettlement,
    SettlementIntent,
    TaskSettlement,
    WalletUtxo,
)
from asg_grpc.store.task_records import LabelingBatch, Submission, Submitted, TaskPage
from asg_grpc.store.webhook_records import (
    AttemptResult,
    DeliveryRecord,
    DueDelivery,
    EventRecord,
    HookTarget,
    NewDelivery,
)


class Customers(Protocol):
    """Billing and customers: accounts, API keys, tiers and the usage billing reads."""

    def create_customer(
        self,
        registration: Registration,
        *,
        tier: str,
        label_quota: int,
        key_hash: str,
        key_hint: str,
        now: float,
    ) -> Customer:
        """Raises EmailTaken when the (lower-cased) email is registered already."""
        ...

    def get_customer(self, customer_id: str) -> Customer | None: ...

    def revoke_key(self, key_hash: str, now: float) -> None:
        """The key stops authenticating at once (operator action)."""
        ...

    def rotate_key(
        self, old_key_hash: str, new_key_hash: str, new_key_hint: str, now: float, retire_at: float
    ) -> tuple[ApiKey, ApiKey]:
        """Adds a key to the old key's customer and makes the old one stop at `retire_at` (or
        earlier, if it was already due to), in one transaction; the new key and the old one.
        Raises Unauthenticated if the old key is not active, Conflict past MAX_ACTIVE_KEYS."""
        ...

    def active_keys(self, customer_id: str, now: float) -> list[ApiKey]:
        """The customer's keys that still authenticate, newest first."""
        ...

    def key_owner(self, key_hash: str) -> KeyOwner | None:
        """The customer owning an active (not revoked) key with this hash, with the tier that
        sets the key's rate limit."""
        ...

    def set_customer_tier(self, customer_id: str, tier: str, label_quota: int) -> Customer:
        """Raises NotFound for an unknown customer. Labels already reserved stay reserved."""
        ...

    def set_customer_consensus(self, customer_id: str, method: str | None) -> Customer:
        """The customer's default consensus method (None: the deployment's). Raises NotFound
        for an unknown customer."""
        ...

    def usage_counts(self, customer_id: str, start: float, end: float) -> list[UsageCounts]:
        """Per task type, over the whole months whose first second is in [start, end): tasks
        created and tasks failed (on rows without a tier), and tasks decided with a consensus
        with their labels (on a row per tier they were submitted on). From counters kept as
        tasks change (billing.usage_counts), without reading task rows."""
        ...

    def first_task_at(self, customer_id: str) -> float | None:
        """When the customer's first task was created, if it has any."""
        ...


class Tasks(Protocol):
    """Tasks and labels: what customers submit, read, cancel, and the deadlines."""

    def submit(self, submissions: list[Submission], now: float) -> list[list[Submitted] | DomainError]:
        """Store many submissions in one transaction, each all or nothing on its own.

        A submission stores its new tasks and reserves their labels, replaying known
        idempotency keys. Its outcome is its tasks in order, or the DomainError that refused it
        whole: QuotaExhausted when the new tasks' thresholds do not fit in the customer's
        remaining quota, IdempotencyConflict when a key was used with another body.
        """
        ...

    def get_task(self, customer_id: str, task_id: str) -> Task | None: ...

    def list_tasks(
        self,
        customer_id: str,
        *,
        status: TaskStatus | None,
        batch_id: str | None,
        limit: int,
        after_task_id: str | None,
    ) -> TaskPage:
        """Newest first, starting after `after_task_id` (the last task of the previous page).
        Raises ValidationError naming `cursor` when that is not one of the customer's tasks."""
        ...

    def task_labels(self, task_id: str) -> list[LabelRecord]:
        """The labels of a task, oldest first (unscoped: call after an owned get_task)."""
        ...

    def batch_progress(self, customer_id: str, batch_id: str) -> BatchProgress | None:
        """The batch's tasks counted by status in one indexed read; None when the customer has
        no task in it (unknown, or another customer's batch)."""
        ...

    def cancel_task(self, customer_id: str, task_id: str, now: float) -> Task:
        """Ends an undecided task `cancelled` (again: unchanged). NotFound for another
        customer's or no task; NotReady once it was decided otherwise."""
        ...

    def expire_due(self, now: float, limit: int = 500) -> list[str]:
        """Ends the undecided tasks whose deadline is past (`expired`), soonest first; their ids."""
        ...


class Workers(Protocol):
    """Labelers: registration, token lookup, the dispatcher's roster."""

    def create_worker(self, registration: WorkerRegistration, *, token_hash: str, now: float) -> Worker: ...

    def worker_for_token(self, token_hash: str) -> Worker | None:
        """The worker owning an active token with this hash."""
        ...

    def workers(self) -> list[Worker]:
        """Every worker with an active token, in no set order: the dispatcher's roster, to
        tell when no worker is left who could label a task (docs/labeling.md)."""
        ...


class Dispatch(Protocol):
    """Leases and dispatch: the open tasks, the lease, the labeling batches, the consensus engine's state."""

    def open_tasks(self, *, after_seq: int, limit: int) -> list[OpenTask]:
        """Pending and in-progress tasks after `after_seq`, oldest first, with their labels and
        skips: what the dispatcher loads at start and as new tasks arrive."""
        ...

    def consensus_state(self) -> bytes | None:
        """The adaptive engine's last saved snapshot (JSON), or None before the first save."""
        ...

    def save_consensus_state(self, snapshot: bytes, now: float) -> None:
        """Replace the saved snapshot; written by the dispatching core only."""
        ...

    def dispatch_lease(self) -> tuple[str, float] | None:
        """Who dispatches for this store (owner, last heartbeat), if anyone."""
        ...

    def take_dispatch_lease(self, owner: str, now: float, expected: tuple[str, float] | None) -> bool:
        """Become the dispatcher if the lease is still `expected` (compare and set)."""
        ...

    def renew_dispatch_lease(self, owner: str, now: float) -> bool:
        """False when the lease is no longer ours."""
        ...

    def release_dispatch_lease(self, owner: str) -> None: ...

    def record_labeling(self, batch: LabelingBatch) -> set[str]:
        """Labels, skips and task state changes, all or nothing. Returns the ids of the batch's
        tasks that were closed meanwhile by another writer (cancelled, expired, decided): their
        state and labels were not written."""
        ...


class Settlement(Protocol):
    """The settlement outbox: the platform wallet, payouts recorded before broadcast, their outcome."""

    def add_wallet_utxos(self, utxos: list[WalletUtxo]) -> int:
        """Funding outputs of the platform wallet; known ones are left as they are."""
        ...

    def wallet_utxos(self, limit: int) -> list[WalletUtxo]:
        """Spendable outputs, largest first."""
        ...

    def wallet_utxo_satoshis(self, txid: str, vout: int) -> int | None:
        """The amount of a wallet output, whatever its state."""
        ...

    def wallet_balance(self) -> dict[str, int]:
        """Satoshis by UTXO state (available, reserved, pending, spent, lost)."""
        ...

    def settleable_tasks(self, limit: int) -> list[SettleableTask]:
        """Verified tasks in no payout yet, oldest first, with their agreeing workers."""
        ...

    def record_settlement(self, intent: SettlementIntent, now: float) -> None:
        """Before broadcasting: the transaction, its payouts, its tasks and inputs taken, its
        change pending; all or nothing (Conflict when a task or input was taken meanwhile)."""
        ...

    def open_settlements(self) -> list[OpenSettlement]:
        """Recorded, not known to be accepted: to broadcast (again), oldest first."""
        ...

    def settlement_accepted(self, settlement_id: str, now: float) -> list[WorkerPayment]:
        """Tasks settled with their task.settled events, inputs spent, change available; what
        each worker got ([] when it was recorded accepted already)."""
        ...

    def settlement_rejected(self, settlement_id: str, detail: str, inputs_spent: bool, now: float) -> None:
        """Tasks back to waiting, inputs available again (lost when spent elsewhere)."""
        ...

    def settlement_attempted(self, settlement_id: str, detail: str) -> None: ...

    def task_settlement(self, customer_id: str, task_id: str) -> TaskSettlement | None:
        """How the customer's task was (or is being) paid; None before its payout is recorded."""
        ...


class Webhooks(Protocol):
    """Webhooks: registrations, the event outbox, deliveries."""

    def create_webhook(
        self, webhook_id: str, customer_id: str, spec: WebhookSpec, sealed_secret: bytes, now: float
    ) -> Webhook:
        """Stores `sealed_secret`, never `spec.secret`. Raises Conflict when the URL is registered
        already or the customer has the most."""
        ...

    def seal_webhook_secrets(self, seal: Callable[[str, str], bytes]) -> int:
        """Seals every secret still stored in clear (from before secrets were sealed) with
        `seal(webhook_id, secret)`; how many. Run when the core starts."""
        ...

    def list_webhooks(self, customer_id: str) -> list[Webhook]: ...

    def delete_webhook(self, customer_id: str, webhook_id: str, now: float) -> None:
        """Raises NotFound for an unknown or foreign id; pending deliveries are abandoned."""
        ...

    def list_deliveries(self, customer_id: str, webhook_id: str, limit: int) -> list[DeliveryRecord]:
        """Newest first; NotFound for an unknown or foreign webhook."""
        ...

    def pending_events(self, limit: int) -> list[EventRecord]:
        """Outbox events not fanned out to deliveries yet, oldest first."""
        ...

    def hook_targets(self, customer_id: str) -> list[HookTarget]:
        """The customer's active webhooks."""
        ...

    def fan_out(self, event_seqs: list[int], deliveries: list[NewDelivery], now: float) -> None: ...

    def due_deliveries(self, now: float, limit: int, exclude: set[str]) -> list[DueDelivery]: ...

    def record_attempts(self, attempts: list[AttemptResult], now: float) -> None: ...


class Jobs(Protocol):
    """Batch jobs: manifests read in chunks into tasks, and their export."""

    def create_job(
        self, job_id: str, customer_id: str, spec: JobSpec, sealed_credentials: bytes | None, now: float
    ) -> Job:
        """A pending job; ValidationError naming callback_url when that is not an active webhook."""
        ...

    def get_job(self, customer_id: str, job_id: str) -> Job | None:
        """With its counts (tasks by status now) and first errors."""
        ...

    def list_jobs(self, customer_id: str, *, limit: int, after_job_id: str | None) -> JobPage:
        """Newest first, after `after_job_id` (ValidationError naming `cursor` when that is not
        one of the customer's jobs)."""
        ...

    def jobs_to_ingest(self) -> list[JobWork]:
        """Pending and ingesting jobs, oldest first, with where their reading stopped."""
        ...

    def jobs_labeling(self) -> list[str]: ...

    def start_ingesting(self, job_id: str, now: float) -> None: ...

    def ingest_chunk(self, job_id: str, chunk: IngestChunk, now: float) -> ChunkOutcome:
        """The chunk's tasks, bad lines and progress, all or nothing. Lines are taken in order
        while their tasks fit the quota; the first that does not fails the job there (tasks
        before it kept). The last chunk moves the job to labeling (or failed, with no tasks).
        Conflict when the job is not ingesting."""
        ...

    def fail_job(self, job_id: str, reason: str, now: float) -> None:
        """Failed with `reason`, credentials erased, job.failed event; no-op once ended."""
        ...

    def complete_job(self, job_id: str, now: float) -> bool:
        """Labeling → completed with its job.completed event; False if it was not labeling."""
        ...

    def first_open_line(self, job_id: str, from_line: int) -> int | None: ...

    def export_rows(self, job_id: str, after_line: int, limit: int) -> list[ExportRow]: ...


class Ledger(Protocol):
    """The local ledger: transactions, the UTXO set, blocks."""

    def ledger_outputs(self, outpoints: list[Outpoint]) -> dict[Outpoint, LedgerOutput]:
        """The ledger's outputs at these outpoints, spent or not; unknown ones are absent."""
        ...

    def ledger_unspent(self, locking_script: bytes, limit: int) -> list[LedgerOutput]:
        """Unspent outputs locked by exactly this script, largest first (mined or not)."""
        ...

    def ledger_transaction(self, txid: str) -> LedgerTx | None: ...

    def ledger_accept(self, tx: NewLedgerTx, now: float) -> list[LedgerOutput | Outpoint]:
        """Record tx and mark its inputs spent, all or nothing. [] when recorded (now or
        before); else the unknown (Outpoint) and already spent (LedgerOutput) inputs, nothing
        written."""
        ...

    def ledger_record_genesis(self, tx: NewLedgerTx, now: float) -> str:
        """Record the genesis transaction unless there is one; the genesis txid either way."""
        ...

    def ledger_unmined(self, limit: int) -> list[str]:
        """Txids accepted but not mined, in acceptance order (parents before children)."""
        ...

    def ledger_tip(self) -> LedgerBlock | None: ...

    def ledger_block(self, height: int) -> LedgerBlock | None: ...

    def ledger_add_block(
        self, block: LedgerBlock, coinbase: NewLedgerTx, paths: list[tuple[str, bytes]]
    ) -> bool:
        """Append the block, its coinbase and each (txid, merkle path) as mined in it, all or
        nothing; False when it does not extend the tip or a transaction is mined already."""
        ...


class Dashboard(Protocol):
    """The dashboard: counters kept in the transactions that change tasks, and its task list."""

    def dashboard_counters(self, customer_id: str, since_day: str) -> Counters:
        """The customer's counters, per-day counts from `since_day` (YYYY-MM-DD) on; a read
        of counter rows only, whatever the number of tasks."""
        ...

    def status_totals(self) -> dict[str, int]:
        """Tasks by status over all customers, summed from the same counters (for /metrics):
        one row per customer and status read, never the tasks."""
        ...

    def dashboard_tasks(self, customer_id: str, query: TaskQuery) -> TaskRows:
        """One page of the customer's tasks and how many match; from indexes (no table scan)."""
        ...
