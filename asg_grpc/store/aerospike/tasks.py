"""Task submission with idempotency, and a customer's tasks, on Aerospike.

Per submission: idempotency claims first (CREATE_ONLY, with a TTL), then the quota reserved
and the customer's task sequence advanced in one filtered `operate` on the customer record,
then each task CREATE_ONLY. The step-by-step invariants are in docs/storage-aerospike.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import operations as ops

from asg_grpc.domain import ids
from asg_grpc.domain.errors import (
    DomainError,
    IdempotencyConflict,
    QuotaExhausted,
    Unavailable,
    UnregisteredWebhook,
    ValidationError,
)
from asg_grpc.domain.tasks import (
    DEFAULT_CONSENSUS_METHOD,
    DEFAULT_LABOR,
    DEFAULT_MAX_LABELS,
    DEFAULT_TARGET_CONFIDENCE,
    BatchProgress,
    Settlement,
    Task,
    TaskSpec,
    TaskStatus,
    Verdict,
)
from asg_grpc.store.aerospike.connection import AerospikeUrl, Retry
from asg_grpc.store.aerospike.outbox import Outbox
from asg_grpc.store.aerospike.records import GEN_EQ, Records, ensure_index
from asg_grpc.store.aerospike.sequence import TaskSequence
from asg_grpc.store.task_records import Submission, Submitted, TaskPage

# Seconds a key replays its task (ASG_IDEMPOTENCY_TTL, read by Settings): the claim's record TTL.
IDEMPOTENCY_TTL = 86_400
# A claim this old whose task never appeared was left by a crash before the task write.
CLAIM_SECONDS = 30.0


@dataclass(slots=True)
class _Claim:
    task_id: str
    replay: bool  # the key named an earlier task


def _task(bins: dict[str, Any]) -> Task:
    expires_at = bins.get("expires")
    spec = TaskSpec(
        task_type=bins["type"],
        data_url=bins["url"],
        question=bins["question"],
        options=tuple(bins["options"]),
        consensus_threshold=bins["threshold"],
        callback_url=bins.get("callback"),
        idempotency_key=bins.get("ikey"),
        expires_in_seconds=None if expires_at is None else round(expires_at - bins["created"]),
        consensus_method=bins.get("cmethod", DEFAULT_CONSENSUS_METHOD),
        target_confidence=bins.get("ctarget", DEFAULT_TARGET_CONFIDENCE),
        max_labels=bins.get("maxlabels", DEFAULT_MAX_LABELS),
        gold_label=bins.get("gold"),
        labor=bins.get("labor", DEFAULT_LABOR),
    )
    decided_at = bins.get("decided")
    verdict = None
    if decided_at is not None:
        verdict = Verdict(
            bins.get("label"), bins["conf"], bins["wcount"], bins["acount"], bins.get("freason"), decided_at
        )
    return Task(
        bins["tid"],
        bins["owner"],
        TaskStatus(bins["status"]),
        spec,
        bins.get("batch"),
        bins["created"],
        bins["updated"],
        verdict=verdict,
        settlement=None if "settled" not in bins else Settlement(bins["txid"], bins["cost"], bins["settled"]),
        expires_at=expires_at,
    )


def due_ms(expires_at: float) -> int:
    """The `due` bin (integer: only integers are indexed): a deadline, floored to the ms."""
    return int(expires_at * 1000)


class AerospikeTasks:
    """submit, get_task and list_tasks of the Store protocol (asg_grpc/store/base.py)."""

    def __init__(
        self, client: Any, url: AerospikeUrl, *, retry: Retry | None = None, ttl: int = IDEMPOTENCY_TTL
    ) -> None:
        self._records = records = Records(client, url.namespace, retry)
        self._client = client
        self._ns = url.namespace
        self._customers = url.set_prefix + "customers"
        self._tasks = url.set_prefix + "tasks"
        self._idem = url.set_prefix + "idem"
        self._retry = records.retry
        self._ttl = ttl
        self._sequence = TaskSequence(records, url.set_prefix + "counters")
        self._toutbox = Outbox(records, url)
        ensure_index(records, "owner", aerospike.INDEX_STRING, f"{self._ns}_task_owner")
        ensure_index(records, "batch", aerospike.INDEX_STRING, f"{self._ns}_task_batch")

    # submit ------------------------------------------------------------------------------

    def submit(self, submissions: list[Submission], now: float) -> list[list[Submitted] | DomainError]:
        outcomes: list[list[Submitted] | DomainError] = []
        for submission in submissions:  # no shared transaction: each stands alone anyway
            try:
                outcomes.append(self._submit(submission, now))
            except DomainError as exc:
                outcomes.append(exc)
        return outcomes

    def _submit(self, submission: Submission, now: float) -> list[Submitted]:
        customer_id, specs, batch_id = submission.customer_id, submission.specs, submission.batch_id
        for url in {s.callback_url for s in specs if s.callback_url is not None}:
            if not self._toutbox.is_registered(customer_id, url):
                raise UnregisteredWebhook()
        task_ids = ids.new_ids("tsk", len(specs), now)
        claims = self._claim(customer_id, specs, task_ids, batch_id is not None, now)
        fresh = [i for i in range(len(specs)) if not claims[i].replay]
        tier, first_seq = None, 0
        if fresh:
            try:
                tier, first_seq = self._reserve(
                    customer_id, sum(specs[i].consensus_threshold for i in fresh), len(fresh)
                )
            except QuotaExhausted:
                self._release_claims(customer_id, specs, fresh)
                raise
        written = self.write_tasks(
            customer_id, [(claims[i].task_id, specs[i]) for i in fresh], batch_id, tier, first_seq, now
        )
        created = dict(zip(fresh, written, strict=True))
        out: list[Submitted] = []
        for index, claim in enumerate(claims):
            if index in created:
                out.append(Submitted(created[index], replayed=False))
                continue
            found = self._records.get(self._tasks, claim.task_id)
            if found is None:  # its submission is still writing it (or crashed: see _claim)
                raise Unavailable("the task of this idempotency key is being written; retry shortly")
            out.append(Submitted(_task(found[0]), replayed=True))
        return out

    def write_tasks(
        self,
        customer_id: str,
        specs: list[tuple[str, TaskSpec]],
        batch_id: str | None,
        tier: str | None,
        first_seq: int,
        now: float,
    ) -> list[Task]:
        """Step 3 (labels reserved, customer seqs `first_seq`… taken): each (task id, spec)
        CREATE_ONLY with its global sequence number, then counted. Also a job's lines (jobs.py)."""
        created: list[Task] = []
        if not specs:
            return created
        counts = self._toutbox.counts
        born: list[tuple[str, dict[str, Any]]] = []  # written by us now: counted all at once
        first_gseq = self._sequence.allocate(len(specs), now)
        writes: list[tuple[str, dict[str, Any]]] = []
        try:
            for offset, (task_id, spec) in enumerate(specs):
                task = Task(
                    task_id,
                    customer_id,
                    TaskStatus.PENDING,
                    spec,
                    batch_id,
                    now,
                    now,
                    expires_at=None if spec.expires_in_seconds is None else now + spec.expires_in_seconds,
                )
                created.append(task)
                bins = self._task_bins(task, first_seq + offset, tier)
                # `open`: indexed while the task is pending or in progress (dispatch reads it).
                bins["gseq"] = bins["open"] = first_gseq + offset
                if task.expires_at is not None:
                    bins["due"] = due_ms(task.expires_at)  # indexed until it is decided
                counts.born(bins)
                writes.append((task.task_id, bins))
            # One round trip for the whole submission: each record CREATE_ONLY.
            for (task_id, bins), created_now in zip(
                writes, self._records.create_many(self._tasks, writes), strict=True
            ):
                if created_now:
                    born.append((task_id, bins))
                else:  # an earlier try's record (a job's chunk replayed): counted on its own
                    counts.follow_up(task_id)
        finally:  # written, or never will be: either way no longer holding dispatch back
            self._sequence.done(first_gseq)
        counts.apply_born(customer_id, born)  # repair() finishes a crash's
        return created

    def _idem_key(self, customer_id: str, key: str) -> str:
        """Unambiguous: customer ids never hold a "/" (and a NUL would end the C string)."""
        return f"{customer_id}/{key}"

    def _claim(
        self, customer_id: str, specs: list[TaskSpec], task_ids: list[str], in_batch: bool, now: float
    ) -> list[_Claim]:
        """Each keyed spec's claim on its key: ours (a new task id) or an earlier one (replay).
        IdempotencyConflict, with our own new claims removed, when a key has another body."""
        claims = [_Claim(task_id, replay=False) for task_id in task_ids]
        mine: list[int] = []
        conflicts: list[int] = []
        for index, spec in enumerate(specs):
            if spec.idempotency_key is None:
                continue
            key = self._idem_key(customer_id, spec.idempotency_key)
            bins = {"tid": task_ids[index], "fp": spec.fingerprint(), "at": now}
            if self._records.create(self._idem, key, bins, ttl=self._ttl):
                mine.append(index)
                continue
            found = self._records.get(self._idem, key)
            if found is None:  # expired meanwhile: claim it after all
                if self._records.create(self._idem, key, bins, ttl=self._ttl):
                    mine.append(index)
                    continue
                found = self._records.get(self._idem, key)
                if found is None:
                    raise Unavailable("the store is busy; retry shortly")
            earlier, gen = found
            if earlier["fp"] != bins["fp"]:
                conflicts.append(index)
            elif (
                self._records.get(self._tasks, earlier["tid"]) is None
                and now - earlier["at"] >= CLAIM_SECONDS
            ):
                # A crash's leftover: its task was never written, so the key is ours now.
                try:
                    self._records.put(self._idem, key, bins, GEN_EQ, gen=gen, ttl=self._ttl)
                    mine.append(index)
                except aex.RecordGenerationError:
                    conflicts.append(index)
            else:
                claims[index] = _Claim(earlier["tid"], replay=True)
        if conflicts:
            self._release_claims(customer_id, specs, mine)
            raise IdempotencyConflict(
                f"tasks[{conflicts[0]}].idempotency_key" if in_batch else "idempotency_key"
            )
        return claims

    def _release_claims(self, customer_id: str, specs: list[TaskSpec], indexes: list[int]) -> None:
        for index in indexes:
            key = specs[index].idempotency_key
            if key is not None:
                self._records.remove(self._idem, self._idem_key(customer_id, key))

    def _reserve(self, customer_id: str, labels: int, tasks: int) -> tuple[str, int]:
        """One filtered operate: `reserved += labels` while it fits the quota, and the customer's
        task sequence advanced by `tasks`. The tier (it prices the tasks) and the first seq."""
        fits = exp.LE(exp.Add(exp.IntBin("reserved"), labels), exp.IntBin("quota")).compile()
        operations = [
            ops.increment("reserved", labels),
            ops.increment("seq", tasks),
            ops.read("tier"),
            ops.read("seq"),
        ]
        policy = {"expressions": fits, "exists": aerospike.POLICY_EXISTS_UPDATE}

        def operate() -> dict[str, Any]:
            _, _, bins = self._client.operate(
                (self._ns, self._customers, customer_id), operations, policy=policy
            )
            return dict(bins)

        try:
            bins = self._retry(operate)
        except (aex.FilteredOut, aex.RecordNotFound) as exc:
            raise self._quota_exhausted(customer_id, labels) from exc
        return bins["tier"], bins["seq"] - tasks + 1

    def _quota_exhausted(self, customer_id: str, labels: int) -> QuotaExhausted:
        """The refusal with its numbers, read just after the filtered operate refused."""

        def read() -> dict[str, Any]:
            _, _, bins = self._client.select((self._ns, self._customers, customer_id), ["quota", "reserved"])
            return dict(bins)

        try:
            bins = self._retry(read)
        except aex.RecordNotFound:
            bins = {}
        return QuotaExhausted(bins.get("quota", 0), bins.get("reserved", 0), labels, customer_id)

    def _task_bins(self, task: Task, seq: int, tier: str | None) -> dict[str, Any]:
        spec = task.spec
        bins: dict[str, Any] = {
            "tid": task.task_id,
            "owner": task.customer_id,
            "seq": seq,
            "status": task.status.value,
            "type": spec.task_type,
            "url": spec.data_url,
            "question": spec.question,
            "options": list(spec.options),
            "threshold": spec.consensus_threshold,
            "target": spec.consensus_threshold,
            "created": task.created_at,
            "updated": task.updated_at,
            "cd": 1,  # not counted yet (counters.py)
            # docs/quality.md; records written before these bins read as the defaults.
            "cmethod": spec.consensus_method,
            "ctarget": spec.target_confidence,
            "maxlabels": spec.max_labels,
        }
        optional = {
            "callback": spec.callback_url,
            "ikey": spec.idempotency_key,
            "batch": task.batch_id,
            "tier": tier,
            "expires": task.expires_at,
            "gold": spec.gold_label,
            "labor": None if spec.labor == DEFAULT_LABOR else spec.labor,  # absent: "any"
        }
        bins.update({name: value for name, value in optional.items() if value is not None})
        return bins

    # reads -------------------------------------------------------------------------------

    def get_task(self, customer_id: str, task_id: str) -> Task | None:
        found = self._records.get(self._tasks, task_id)
        if found is None or found[0]["owner"] != customer_id:
            return None
        return _task(found[0])

    def batch_progress(self, customer_id: str, batch_id: str) -> BatchProgress | None:
        """Through the `batch` secondary index, reading three bins of the batch's tasks (at
        most a job's worth); another customer's tasks are left out, as if absent."""
        query = self._client.query(self._ns, self._tasks)
        query.select("owner", "status", "created")
        query.where(predicates.equals("batch", batch_id))
        rows = [bins for _, _, bins in self._retry(query.results) if bins.get("owner") == customer_id]
        if not rows:
            return None
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return BatchProgress.of(batch_id, counts, min(r["created"] for r in rows))

    def list_tasks(
        self,
        customer_id: str,
        *,
        status: TaskStatus | None,
        batch_id: str | None,
        limit: int,
        after_task_id: str | None,
    ) -> TaskPage:
        """Newest first by the customer's sequence. Reads the customer's tasks through the
        `owner` secondary index and sorts them here: fine for groundwork, a per-customer
        bucketed index replaces it before large customers (docs/storage-aerospike.md)."""
        before = None
        if after_task_id is not None:
            found = self._records.get(self._tasks, after_task_id)
            if found is None or found[0]["owner"] != customer_id:
                raise ValidationError("cursor", "is not a cursor this API returned")
            before = found[0]["seq"]
        query = self._client.query(self._ns, self._tasks)
        query.where(predicates.equals("owner", customer_id))
        rows = [bins for _, _, bins in self._retry(query.results)]
        rows = [
            r
            for r in rows
            if (before is None or r["seq"] < before)
            and (status is None or r["status"] == status.value)
            and (batch_id is None or r.get("batch") == batch_id)
        ]
        rows.sort(key=lambda r: r["seq"], reverse=True)
        tasks = [_task(r) for r in rows[:limit]]
        return TaskPage(tasks, tasks[-1].task_id if len(rows) > limit else None)
