"""What every store does with workers, labels and decisions: a decided task's verdict and
labels after a restart, a worker's first label kept, labels for a task closed meanwhile refused,
two stores racing one decision (one wins), cancelling and deadlines giving back the unused quota."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace

import pytest

from asg_grpc.domain import consensus
from asg_grpc.domain.errors import NotFound, NotReady
from asg_grpc.domain.labeling import OpenTask
from asg_grpc.domain.tasks import TaskStatus
from asg_grpc.domain.workers import WorkerRegistration
from asg_grpc.store.task_records import LabelingBatch, Submission
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register
from tests.store.contract.test_tasks import SPEC, spec

THRESHOLD = SPEC.consensus_threshold


def submit(store: object, customer_id: str, count: int = 1, **changes: object) -> list[str]:
    specs = [replace(spec(n), **changes) for n in range(count)]  # type: ignore[arg-type]
    [done] = store.submit([Submission(customer_id, specs, None)], time.time())  # type: ignore[attr-defined]
    return [s.task.task_id for s in done]


def open_task(store: object, task_id: str) -> OpenTask:
    [task] = [t for t in store.open_tasks(after_seq=0, limit=100) if t.task_id == task_id]  # type: ignore[attr-defined]
    return task


def deciding(task: OpenTask, options: list[str], now: float) -> LabelingBatch:
    """The batch a dispatcher writes when these workers' labels decide the task."""
    task.labels = {f"wkr_{i}": option for i, option in enumerate(options)}
    winner = max(set(options), key=options.count)
    task.outcome = consensus.Decided(winner, len(options), options.count(winner))
    task.status = TaskStatus.VERIFIED
    labels = [(task.task_id, f"wkr_{i}", option, now + i / 1000) for i, option in enumerate(options)]
    return LabelingBatch(now=now, labels=labels, skips=[], tasks=[task])


def test_a_worker_token_finds_its_worker_after_a_restart(open_store: OpenStore) -> None:
    store = open_store()
    worker = store.create_worker(
        WorkerRegistration("Lin", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", ("image_classification",)),
        token_hash="tok-1",
        now=time.time(),
    )
    again = open_store()
    assert again.worker_for_token("tok-1") == worker
    assert worker.task_types == ("image_classification",) and worker.worker_id.startswith("wkr_")
    assert again.worker_for_token("tok-unknown") is None


def test_the_roster_lists_every_registered_worker_after_a_restart(open_store: OpenStore) -> None:
    store = open_store()
    assert store.workers() == []
    made = [
        store.create_worker(
            WorkerRegistration(name, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", types),
            token_hash=f"tok-{name}",
            now=time.time(),
        )
        for name, types in (("Ann", ("image_classification",)), ("Bo", ("sentiment", "moderation")))
    ]
    gateway = store.create_worker(
        WorkerRegistration("Cy", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", ("sentiment",), True),
        token_hash="tok-Cy",
        now=time.time(),
    )
    again = open_store()
    assert sorted(again.workers(), key=lambda w: w.name) == [*made, gateway]
    assert [w.challenge_gateway for w in (*made, gateway)] == [False, False, True]
    assert again.worker_for_token("tok-Cy") == gateway


def test_a_decided_task_keeps_its_verdict_and_labels_after_a_restart(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    [task_id] = submit(store, customer_id)
    now = time.time()
    assert store.record_labeling(deciding(open_task(store, task_id), ["yes", "no", "yes"], now)) == set()
    store = open_store()
    task = store.get_task(customer_id, task_id)
    assert task.status is TaskStatus.VERIFIED
    assert task.verdict is not None
    assert (task.verdict.label, task.verdict.worker_count, task.verdict.agreement_count) == ("yes", 3, 2)
    assert task.verdict.confidence == pytest.approx(2 / 3) and task.verdict.decided_at == now
    labels = store.task_labels(task_id)
    assert [(r.worker_id, r.option) for r in labels] == [("wkr_0", "yes"), ("wkr_1", "no"), ("wkr_2", "yes")]
    assert [t.task_id for t in store.open_tasks(after_seq=0, limit=10)] == []
    # Deciding consumed the reservation: nothing is given back.
    assert store.get_customer(customer_id).labels_reserved == THRESHOLD


@pytest.mark.parametrize("reason", ["no_consensus", "no_challenge_gateway"])
def test_a_failed_task_keeps_the_reason_it_failed_for(open_store: OpenStore, reason: str) -> None:
    """`failure_reason` is the outcome's: `no_challenge_gateway` for a `labor: challenge` task
    too few challenge gateways could label (dispatch/labor.py), else `no_consensus`."""
    store = open_store()
    customer_id = register(store)
    [task_id] = submit(store, customer_id)
    task = open_task(store, task_id)
    batch = deciding(task, ["yes"], time.time())
    task.outcome, task.status = consensus.NoConsensus(1, reason), TaskStatus.FAILED
    assert store.record_labeling(batch) == set()
    got = open_store().get_task(customer_id, task_id)
    assert got.status is TaskStatus.FAILED and got.verdict is not None
    assert (got.verdict.failure_reason, got.verdict.worker_count) == (reason, 1)


def test_labels_in_progress_keep_a_workers_first_and_load_back(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    [task_id] = submit(store, customer_id)
    task = open_task(store, task_id)
    task.status = TaskStatus.IN_PROGRESS
    now = time.time()
    batch = LabelingBatch(
        now=now,
        labels=[(task_id, "wkr_a", "yes", now), (task_id, "wkr_a", "no", now + 1)],
        skips=[(task_id, "wkr_b", "unsure", now)],
        tasks=[task],
    )
    assert store.record_labeling(batch) == set()
    # A label for the same worker again (two dispatchers overlapping) keeps the first.
    later = LabelingBatch(now=now + 2, labels=[(task_id, "wkr_a", "no", now + 2)], skips=[], tasks=[])
    assert store.record_labeling(later) == set()
    loaded = open_task(open_store(), task_id)
    assert (loaded.status, loaded.labels) == (TaskStatus.IN_PROGRESS, {"wkr_a": "yes"})
    assert loaded.skipped == {"wkr_b"}
    assert [(r.worker_id, r.option) for r in store.task_labels(task_id)] == [("wkr_a", "yes")]


def test_labels_for_a_task_closed_meanwhile_are_refused(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    [task_id] = submit(store, customer_id)
    task = open_task(store, task_id)
    store.cancel_task(customer_id, task_id, time.time())
    closed = open_store().record_labeling(deciding(task, ["yes", "yes", "yes"], time.time()))
    assert closed == {task_id}
    assert store.task_labels(task_id) == []
    assert store.get_task(customer_id, task_id).status is TaskStatus.CANCELLED


def test_two_stores_deciding_one_task_decide_it_once(open_store: OpenStore) -> None:
    customer_id = register(open_store())
    [task_id] = submit(open_store(), customer_id)
    stores = [open_store(), open_store()]
    tasks = [open_task(stores[i], task_id) for i in range(2)]
    now = time.time()
    batches = [deciding(tasks[0], ["yes"] * 3, now), deciding(tasks[1], ["no"] * 3, now + 0.5)]
    closed: list[set[str]] = [set(), set()]
    barrier = threading.Barrier(2)

    def decide(index: int) -> None:
        barrier.wait()
        closed[index] = stores[index].record_labeling(batches[index])

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(c) for c in closed) == [0, 1]
    winner = 0 if closed[0] == set() else 1
    task = open_store().get_task(customer_id, task_id)
    assert task.verdict.label == ["yes", "no"][winner]
    assert {r.option for r in stores[0].task_labels(task_id)} == {["yes", "no"][winner]}


def test_cancelling_gives_back_the_unused_quota_once(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    other = register(store, email="bob@example.com", key="key-bob")
    [task_id, kept] = submit(store, customer_id, 2)
    task = open_task(store, task_id)
    task.status = TaskStatus.IN_PROGRESS
    now = time.time()
    store.record_labeling(LabelingBatch(now, [(task_id, "wkr_a", "yes", now)], [], [task]))
    with pytest.raises(NotFound):
        store.cancel_task(other, task_id, now)
    cancelled = store.cancel_task(customer_id, task_id, now + 1)
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.verdict is not None
    assert (cancelled.verdict.worker_count, cancelled.verdict.failure_reason) == (1, "cancelled")
    again = open_store().cancel_task(customer_id, task_id, now + 2)  # a no-op
    assert again == cancelled
    # One label was collected (billed and paid); the other two of its three come back, once.
    assert store.get_customer(customer_id).labels_reserved == 2 * THRESHOLD - (THRESHOLD - 1)
    assert [t.task_id for t in store.open_tasks(after_seq=0, limit=10)] == [kept]
    done = open_task(store, kept)
    store.record_labeling(deciding(done, ["yes"] * 3, time.time()))
    with pytest.raises(NotReady):
        store.cancel_task(customer_id, kept, time.time())


def test_deadlines_end_the_due_tasks_soonest_first(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    [late] = submit(store, customer_id, expires_in_seconds=200)
    [soon] = submit(store, customer_id, expires_in_seconds=100)
    [never] = submit(store, customer_id)
    now = time.time()
    assert store.expire_due(now) == []
    assert open_store().expire_due(now + 300, limit=1) == [soon]
    assert store.expire_due(now + 300) == [late]
    assert store.expire_due(now + 300) == []
    expired = store.get_task(customer_id, late)
    assert expired.status is TaskStatus.EXPIRED and expired.verdict.failure_reason == "expired"
    assert [t.task_id for t in store.open_tasks(after_seq=0, limit=10)] == [never]
    assert store.get_customer(customer_id).labels_reserved == THRESHOLD


def race_cancel_and_decision(stores: list[object], customer_id: str, task_id: str) -> bool:
    """Store 0 decides the task while store 1 cancels it; True when the cancel won."""
    batch = deciding(open_task(stores[0], task_id), ["yes"] * 3, time.time())
    closed: set[str] = set()
    barrier = threading.Barrier(2)

    def decide() -> None:
        barrier.wait()
        closed.update(stores[0].record_labeling(batch))  # type: ignore[attr-defined]

    def cancel() -> None:
        barrier.wait()
        with contextlib.suppress(NotReady):
            stores[1].cancel_task(customer_id, task_id, time.time())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=decide), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return bool(closed)


def test_a_cancel_racing_a_decision_ends_the_task_one_way(open_store: OpenStore) -> None:
    customer_id = register(open_store())
    for _ in range(3):
        [task_id] = submit(open_store(), customer_id)
        stores = [open_store(), open_store()]
        cancelled = race_cancel_and_decision(stores, customer_id, task_id)
        status = stores[0].get_task(customer_id, task_id).status
        assert status is (TaskStatus.CANCELLED if cancelled else TaskStatus.VERIFIED)
        assert len(stores[1].task_labels(task_id)) == (0 if cancelled else 3)
    # Each decided task used its three labels; each cancelled one gave all three back.
    verified = open_store().list_tasks(
        customer_id, status=TaskStatus.VERIFIED, batch_id=None, limit=10, after_task_id=None
    )
    assert open_store().get_customer(customer_id).labels_reserved == THRESHOLD * len(verified.tasks)


def test_labels_bought_beyond_the_threshold_are_taken_off_the_quota(open_store: OpenStore) -> None:
    """A task reserves its threshold at submission; at its decision, the labels it bought beyond
    that (adaptive buying more, a majority tie) count in the quota like the rest: billed as
    labels. A failed task adds nothing (it is not charged)."""
    store = open_store()
    customer_id = register(store)
    more, exact, failed = submit(store, customer_id, 3)  # threshold 3 each: 9 reserved
    assert store.get_customer(customer_id).labels_reserved == 9
    now = time.time()
    store.record_labeling(deciding(open_task(store, more), ["a", "b", "a", "b", "a"], now))
    store.record_labeling(deciding(open_task(store, exact), ["a", "a", "a"], now))
    lost = open_task(store, failed)
    batch = deciding(lost, ["a", "b", "a", "b"], now)
    lost.outcome, lost.status = consensus.NoConsensus(4), TaskStatus.FAILED
    store.record_labeling(batch)

    assert open_store().get_customer(customer_id).labels_reserved == 9 + 2
