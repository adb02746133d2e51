"""Task submission with idempotency, and a customer's tasks, on Aerospike.

Per submission: idempotency claims first (CREATE_ONLY, with a TTL), then the quota reserved
and the customer's task sequence advanced in one filtered `operate` on the customer record,
then each task CREATE_ONLY. The step-by-step invariants are in docs/storage-aerospike.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aerospike
from aerospike import exception as aex
from aerospike import predicates
from aerospike_helpers import expressions as exp
from aerospike_helpers.batch.records import BatchRecords, Write
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


@dataclass(slots=True)
class _Plan:
    """One submission of a group on its way in: its claims, the specs that make new tasks."""

    submission: Submission
    claims: list[_Claim]
    fresh: list[int]  # indexes of the specs that are not replays
    tier: str | None = None
    first_seq: int = 0  # the customer's seq of the first new task
    created: list[Task] = field(default_factory=list)

    @property
    def labels(self) -> int:
        return sum(self.submission.specs[i].consensus_threshold for i in self.fresh)


@dataclass(frozen=True, slots=True)
class _Batch:
    """New tasks of one customer to write: labels reserved, customer and global numbers taken."""

    customer_id: str
    specs: list[tuple[str, TaskSpec]]
    batch_id: str | None
    tier: str | None
    first_seq: int
    first_gseq: int


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
        """A group commit's submissions, each standing alone (as on SQLite) but sharing round
        trips: claims per submission (only keyed specs make any), then one batch for every
        customer's reservation and the group's numbers, one batch write of every new task,
        the numbers released, and the counting per customer (docs/storage-aerospike.md)."""
        outcomes: list[list[Submitted] | DomainError | None] = [None] * len(submissions)
        plans: list[tuple[int, _Plan]] = []
        for index, submission in enumerate(submissions):
            try:
                plans.append((index, self._plan(submission, now)))
            except DomainError as exc:
                outcomes[index] = exc
        fresh = [(index, plan) for index, plan in plans if plan.fresh]
        first_gseq = self._reserve_group(fresh, outcomes, now) if fresh else None
        if first_gseq is not None:
            gseq = first_gseq
            batches: list[tuple[int, _Batch]] = []
            for index, plan in fresh:
                specs = [(plan.claims[i].task_id, plan.submission.specs[i]) for i in plan.fresh]
                if outcomes[index] is None:
                    submission = plan.submission
                    batches.append(
                        (
                            index,
                            _Batch(
                                submission.customer_id,
                                specs,
                                submission.batch_id,
                                plan.tier,
                                plan.first_seq,
                                gseq,
                            ),
                        )
                    )
                gseq += len(specs)  # a refused submission's numbers stay a gap
            born: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            try:
                written, born = self._write([batch for _, batch in batches], now)
                by_index = dict(fresh)
                for (index, _), tasks in zip(batches, written, strict=True):
                    by_index[index].created = tasks
            except DomainError as exc:  # unreachable: the reservations stay (the known gap)
                for index, _ in batches:
                    outcomes[index] = exc
            finally:  # written, or never will be: either way no longer holding dispatch back
                self._sequence.done(first_gseq)
            for customer_id, records in born.items():
                self._toutbox.counts.apply_born(customer_id, records)  # repair() finishes a crash's
        for index, plan in plans:
            if outcomes[index] is None:
                try:
                    outcomes[index] = self._answer(plan)
                except DomainError as exc:
                    outcomes[index] = exc
        return [outcome for outcome in outcomes if outcome is not None]

    def _plan(self, submission: Submission, now: float) -> _Plan:
        """Step 1 for one submission: its callback URLs checked and its keys claimed."""
        customer_id, specs = submission.customer_id, submission.specs
        for url in {s.callback_url for s in specs if s.callback_url is not None}:
            if not self._toutbox.is_registered(customer_id, url):
                raise UnregisteredWebhook()
        task_ids = ids.new_ids("tsk", len(specs), now)
        claims = self._claim(customer_id, specs, task_ids, submission.batch_id is not None, now)
        return _Plan(submission, claims, [i for i in range(len(specs)) if not claims[i].replay])

    def _answer(self, plan: _Plan) -> list[Submitted]:
        created = dict(zip(plan.fresh, plan.created, strict=True))
        out: list[Submitted] = []
        for index, claim in enumerate(plan.claims):
            if index in created:
                out.append(Submitted(created[index], replayed=False))
                continue
            found = self._records.get(self._tasks, claim.task_id)
            if found is None:  # its submission is still writing it (or crashed: see _claim)
                raise Unavailable("the task of this idempotency key is being written; retry shortly")
            out.append(Submitted(_task(found[0]), replayed=True))
        return out

    def _reserve_group(
        self, fresh: list[tuple[int, _Plan]], outcomes: list[list[Submitted] | DomainError | None], now: float
    ) -> int | None:
        """Step 2 for the group in one batch: per customer one filtered `operate` reserving the
        labels of all its submissions (and advancing its task sequence by their tasks), plus the
        global numbers of every new task of the group (sequence.py). A customer whose
        submissions do not fit together has them reserved one by one, each standing alone;
        a refused one gets QuotaExhausted (claims removed). The first global number, or None
        when the store could not be reached (those submissions get Unavailable)."""
        by_customer: dict[str, list[tuple[int, _Plan]]] = {}
        for index, plan in fresh:
            by_customer.setdefault(plan.submission.customer_id, []).append((index, plan))
        total = sum(len(plan.fresh) for _, plan in fresh)
        writes = [
            Write(
                self._records.key(self._customers, customer_id),
                self._reservation(sum(p.labels for _, p in group), sum(len(p.fresh) for _, p in group)),
                policy=self._fits(sum(p.labels for _, p in group)),
            )
            for customer_id, group in by_customer.items()
        ]
        writes.append(Write(self._sequence.key, self._sequence.allocation(total, now)))
        try:
            answer = self._retry(lambda: self._client.batch_write(BatchRecords(writes)))
        except Unavailable as exc:
            for index, _ in fresh:
                outcomes[index] = exc
            return None
        *rows, numbers = answer.batch_records
        for (customer_id, group), row in zip(by_customer.items(), rows, strict=True):
            if row.result == 0:
                bins = row.record[2]
                seq = int(bins["seq"]) - sum(len(p.fresh) for _, p in group) + 1
                for _, plan in group:
                    plan.tier, plan.first_seq = bins["tier"], seq
                    seq += len(plan.fresh)
                continue
            for index, plan in group:  # alone, in order: as if the group had come one by one
                try:
                    if row.result not in (aex.FilteredOut.code, aex.RecordNotFound.code):
                        raise Unavailable("the store is busy; retry shortly")
                    if len(group) == 1:
                        raise self._quota_exhausted(customer_id, plan.labels)
                    plan.tier, plan.first_seq = self._reserve(customer_id, plan.labels, len(plan.fresh))
                except QuotaExhausted as exc:
                    self._release_claims(customer_id, plan.submission.specs, plan.fresh)
                    outcomes[index] = exc
                except DomainError as exc:
                    outcomes[index] = exc
        if numbers.result == 0:
            return self._sequence.first(numbers.record[2], total)
        try:  # the counter's write alone was refused (busy): once more on its own
            return self._sequence.allocate(total, now)
        except Unavailable as exc:
            for index, _ in fresh:
                outcomes[index] = outcomes[index] or exc
            return None

    def write_tasks(
        self,
        customer_id: str,
        specs: list[tuple[str, TaskSpec]],
        batch_id: str | None,
        tier: str | None,
        first_seq: int,
        now: float,
    ) -> list[Task]:
        """Step 3 alone (labels reserved, customer seqs `first_seq`… taken): each (task id,
        spec) CREATE_ONLY with its global number, then counted. For a job's lines (jobs.py)."""
        if not specs:
            return []
        first_gseq = self._sequence.allocate(len(specs), now)
        try:
            [created], born = self._write(
                [_Batch(customer_id, specs, batch_id, tier, first_seq, first_gseq)], now
            )
        finally:  # written, or never will be: either way no longer holding dispatch back
            self._sequence.done(first_gseq)
        for owner, tasks in born.items():
            self._toutbox.counts.apply_born(owner, tasks)  # repair() finishes a crash's
        return created

    def _write(
        self, batches: list[_Batch], now: float
    ) -> tuple[list[list[Task]], dict[str, list[tuple[str, dict[str, Any]]]]]:
        """Every batch's tasks CREATE_ONLY in one batch write (chunked by Records): the tasks
        per batch, and per customer the records written now (to count all at once)."""
        counts = self._toutbox.counts
        created: list[list[Task]] = []
        writes: list[tuple[str, dict[str, Any]]] = []
        owners: list[str] = []
        for batch in batches:
            tasks: list[Task] = []
            for offset, (task_id, spec) in enumerate(batch.specs):
                task = Task(
                    task_id,
                    batch.customer_id,
                    TaskStatus.PENDING,
                    spec,
                    batch.batch_id,
                    now,
                    now,
                    expires_at=None if spec.expires_in_seconds is None else now + spec.expires_in_seconds,
                )
                tasks.append(task)
                bins = self._task_bins(task, batch.first_seq + offset, batch.tier)
                # `open`: indexed while the task is pending or in progress (dispatch reads it).
                bins["gseq"] = bins["open"] = batch.first_gseq + offset
                if task.expires_at is not None:
                    bins["due"] = due_ms(task.expires_at)  # indexed until it is decided
                counts.born(bins)
                writes.append((task_id, bins))
                owners.append(batch.customer_id)
            created.append(tasks)
        born: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for (task_id, bins), owner, created_now in zip(
            writes, owners, self._records.create_many(self._tasks, writes), strict=True
        ):
            if created_now:
                born.setdefault(owner, []).append((task_id, bins))
            else:  # an earlier try's record (a job's chunk replayed): counted on its own
                counts.follow_up(task_id)
        return created, born

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

    @staticmethod
    def _reservation(labels: int, tasks: int) -> list[Any]:
        """`reserved += labels` and the customer's task sequence advanced by `tasks`, reading
        back the tier (it prices the tasks) and the sequence."""
        return [
            ops.increment("reserved", labels),
            ops.increment("seq", tasks),
            ops.read("tier"),
            ops.read("seq"),
        ]

    @staticmethod
    def _fits(labels: int) -> dict[str, Any]:
        """The reservation's policy: only while `reserved + labels <= quota`, on a customer."""
        fits = exp.LE(exp.Add(exp.IntBin("reserved"), labels), exp.IntBin("quota")).compile()
        return {"expressions": fits, "exists": aerospike.POLICY_EXISTS_UPDATE}

    def _reserve(self, customer_id: str, labels: int, tasks: int) -> tuple[str, int]:
        """One submission's reservation alone (jobs.py's lines; a group that did not fit
        together): the tier and the first seq, QuotaExhausted when it does not fit."""
        operations, policy = self._reservation(labels, tasks), self._fits(labels)

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
