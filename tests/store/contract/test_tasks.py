"""What every store does with submitted tasks: a customer's tasks newest first in pages,
idempotency keys replayed (or refused with another body), the quota, restarts, and two stores
submitting the same key at once."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

import pytest

from asg_grpc.domain.errors import IdempotencyConflict, QuotaExhausted, ValidationError
from asg_grpc.domain.tasks import TaskSpec, TaskStatus
from asg_grpc.store.open import StoreOptions
from asg_grpc.store.task_records import Submission
from tests.store.contract.conftest import OpenStore
from tests.store.contract.test_customers import register

SPEC = TaskSpec(
    task_type="image_classification",
    data_url="https://cdn.example.com/1.jpg",
    question="Cat?",
    options=("yes", "no"),
    consensus_threshold=3,
    callback_url=None,
    idempotency_key=None,
)


def spec(n: int, key: str | None = None) -> TaskSpec:
    return replace(SPEC, data_url=f"https://cdn.example.com/{n}.jpg", idempotency_key=key)


def test_tasks_page_newest_first_and_survive_a_restart(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    other = register(store, email="bob@example.com", key="key-bob")
    [batch] = store.submit([Submission(customer_id, [spec(n) for n in range(5)], "bat_1")], time.time())
    [single] = store.submit([Submission(customer_id, [spec(5)], None)], time.time())
    store.submit([Submission(other, [spec(9)], None)], time.time())
    ids = [s.task.task_id for s in batch + single]
    store = open_store()
    first = store.list_tasks(customer_id, status=None, batch_id=None, limit=4, after_task_id=None)
    assert [t.task_id for t in first.tasks] == ids[::-1][:4]
    rest = store.list_tasks(customer_id, status=None, batch_id=None, limit=4, after_task_id=first.next_after)
    assert ([t.task_id for t in rest.tasks], rest.next_after) == (ids[::-1][4:], None)
    in_batch = store.list_tasks(
        customer_id, status=TaskStatus.PENDING, batch_id="bat_1", limit=10, after_task_id=None
    )
    assert [t.task_id for t in in_batch.tasks] == ids[:5][::-1]
    task = store.get_task(customer_id, ids[0])
    assert task == batch[0].task and task.spec == spec(0) and task.status is TaskStatus.PENDING
    assert store.get_task(other, ids[0]) is None
    with pytest.raises(ValidationError):
        store.list_tasks(other, status=None, batch_id=None, limit=4, after_task_id=ids[0])
    assert store.get_customer(customer_id).labels_reserved == 6 * SPEC.consensus_threshold


def test_an_idempotency_key_replays_its_task_and_refuses_another_body(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    [[first]] = store.submit([Submission(customer_id, [spec(1, "k1")], None)], time.time())
    [[again]] = open_store().submit([Submission(customer_id, [spec(1, "k1")], None)], time.time())
    assert (again.replayed, again.task) == (True, first.task)
    [refused] = store.submit([Submission(customer_id, [spec(2, "k2"), spec(3, "k1")], "bat_x")], time.time())
    assert isinstance(refused, IdempotencyConflict)
    assert str(refused).startswith("tasks[1].idempotency_key")
    # Nothing of the refused batch was kept: its other key is still free, its labels unreserved.
    assert store.get_customer(customer_id).labels_reserved == SPEC.consensus_threshold
    [[fresh]] = store.submit([Submission(customer_id, [spec(4, "k2")], None)], time.time())
    assert not fresh.replayed


def test_the_quota_refuses_a_submission_whole(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)  # a quota of 100 labels: 33 tasks of 3
    [refused, kept] = store.submit(
        [
            Submission(customer_id, [spec(n, f"big-{n}") for n in range(34)], "bat_big"),
            Submission(customer_id, [spec(1)], None),
        ],
        time.time(),
    )
    assert isinstance(refused, QuotaExhausted) and len(kept) == 1
    # The refusal says its numbers, read as the store refused: 34 tasks of 3 against 100.
    assert (refused.limit, refused.used, refused.requested) == (100, 0, 102)
    assert f"asg customer tier {customer_id} pro" in refused.hint
    [[retried]] = store.submit([Submission(customer_id, [spec(0, "big-0")], None)], time.time())
    assert not retried.replayed  # the refused batch's keys were released
    assert store.get_customer(customer_id).labels_reserved == 2 * SPEC.consensus_threshold


def test_two_stores_submitting_one_key_make_one_task(open_store: OpenStore) -> None:
    customer_id = register(open_store())
    stores = [open_store(), open_store()]
    results: list[object] = []

    def submit(index: int) -> None:
        results.extend(stores[index].submit([Submission(customer_id, [spec(1, "same")], None)], time.time()))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tasks = {r[0].task.task_id for r in results if isinstance(r, list)}
    page = stores[0].list_tasks(customer_id, status=None, batch_id=None, limit=10, after_task_id=None)
    assert len(tasks) == 1 and [t.task_id for t in page.tasks] == list(tasks)
    assert stores[1].get_customer(customer_id).labels_reserved == SPEC.consensus_threshold


def test_an_idempotency_key_expires_after_its_ttl(open_store: OpenStore) -> None:
    """ASG_IDEMPOTENCY_TTL: within it a key replays its task, after it the key makes a new task
    (with the same body or another), and that one is what the key replays from then on."""
    store = open_store(StoreOptions(idempotency_ttl=1))
    customer_id = register(store)
    [[first]] = store.submit([Submission(customer_id, [spec(1, "k")], None)], time.time())
    [[again]] = store.submit([Submission(customer_id, [spec(1, "k")], None)], time.time())
    assert again.replayed and again.task == first.task
    [refused] = store.submit([Submission(customer_id, [spec(2, "k")], None)], time.time())
    assert isinstance(refused, IdempotencyConflict)
    time.sleep(2.1)  # Aerospike expires the claim on the server's clock
    [[after]] = store.submit([Submission(customer_id, [spec(2, "k")], None)], time.time())
    assert not after.replayed and after.task.task_id != first.task.task_id
    [[same]] = store.submit([Submission(customer_id, [spec(2, "k")], None)], time.time())
    assert same.replayed and same.task.task_id == after.task.task_id
    # Both tasks stay, each naming the key; the quota was reserved for both.
    page = store.list_tasks(customer_id, status=None, batch_id=None, limit=10, after_task_id=None)
    assert [t.spec.idempotency_key for t in page.tasks] == ["k", "k"]
    assert store.get_customer(customer_id).labels_reserved == 2 * SPEC.consensus_threshold


def test_the_default_ttl_keeps_a_key_for_a_day(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    now = time.time()
    [[first]] = store.submit([Submission(customer_id, [spec(1, "k")], None)], now)
    # A day less a minute later (SQLite compares the times given; Aerospike's record TTL is
    # a day of the server's clock, so this is inside it on both).
    [[again]] = store.submit([Submission(customer_id, [spec(1, "k")], None)], now + 86_400 - 60)
    assert again.replayed and again.task == first.task


def test_batch_progress_counts_its_tasks_for_their_owner_only(open_store: OpenStore) -> None:
    store = open_store()
    customer_id = register(store)
    other = register(store, email="bob@example.com", key="key-bob")
    batch_id = "bat_" + uuid.uuid4().hex
    before = time.time()
    store.submit([Submission(customer_id, [spec(n) for n in range(4)], batch_id)], before)
    progress = store.batch_progress(customer_id, batch_id)
    assert progress is not None
    assert (progress.total, progress.decided, progress.by_status[TaskStatus.PENDING]) == (4, 0, 4)
    assert set(progress.by_status) == set(TaskStatus) and progress.created_at == pytest.approx(before)
    assert store.batch_progress(other, batch_id) is None
    assert store.batch_progress(customer_id, "bat_unknown") is None


def test_consensus_fields_and_the_engine_snapshot_survive_a_restart(open_store: OpenStore) -> None:
    """docs/quality.md: the adaptive task fields as stored, read back, and loaded for dispatch;
    the engine's snapshot saved and replaced."""
    store = open_store()
    customer_id = register(store)
    adaptive = replace(
        spec(1), consensus_method="adaptive", target_confidence=0.9, max_labels=7, gold_label="no"
    )
    [[plain], [gold]] = store.submit(
        [Submission(customer_id, [spec(0)], None), Submission(customer_id, [adaptive], None)], time.time()
    )
    assert store.consensus_state() is None
    store.save_consensus_state(b'{"v": 1}', time.time())
    store.save_consensus_state(b'{"v": 2}', time.time())
    store = open_store()
    assert store.consensus_state() == b'{"v": 2}'
    assert store.get_task(customer_id, gold.task.task_id).spec == adaptive
    assert store.get_task(customer_id, plain.task.task_id).spec.consensus_method == "majority"
    loaded = {t.task_id: t for t in store.open_tasks(after_seq=0, limit=10)}
    task = loaded[gold.task.task_id]
    assert (task.method, task.target_confidence, task.max_labels, task.gold) == ("adaptive", 0.9, 7, "no")
    assert (loaded[plain.task.task_id].method, loaded[plain.task.task_id].gold) == ("majority", None)


def test_a_group_of_submissions_stands_one_by_one_and_keeps_its_order(open_store: OpenStore) -> None:
    """A group commit hands the store many submissions at once (Aerospike reserves them per
    customer in one write): each still fits the quota or not on its own, in order, and the
    customer's tasks list in the order the group gave them."""
    store = open_store()
    ada = register(store)  # a quota of 100 labels
    bob = register(store, email="bob@example.com", key="key-bob")
    group = [
        Submission(ada, [spec(n) for n in range(20)], "bat_a"),  # 60 labels
        Submission(bob, [spec(100)], None),
        Submission(ada, [spec(20 + n) for n in range(10)], "bat_b"),  # 30: 90 in all
        Submission(ada, [spec(40 + n) for n in range(5)], "bat_c"),  # 15 more would be 105
        Submission(ada, [spec(50)], None),  # 3: 93, fits after the refusal
    ]
    first, other, second, refused, last = store.submit(group, time.time())
    assert isinstance(refused, QuotaExhausted)
    assert (refused.limit, refused.used, refused.requested) == (100, 90, 15)
    assert [len(first), len(other), len(second), len(last)] == [20, 1, 10, 1]
    ids = [s.task.task_id for s in first + second + last]
    page = open_store().list_tasks(ada, status=None, batch_id=None, limit=100, after_task_id=None)
    assert [t.task_id for t in page.tasks] == ids[::-1]
    assert store.get_customer(ada).labels_reserved == 93
    assert store.get_customer(bob).labels_reserved == 3
    assert [
        t.task_id
        for t in store.list_tasks(bob, status=None, batch_id=None, limit=5, after_task_id=None).tasks
    ] == [other[0].task.task_id]


def test_a_group_mixing_replays_refusals_and_new_tasks_answers_each(open_store: OpenStore) -> None:
    store = open_store()
    ada = register(store)
    [[kept]] = store.submit([Submission(ada, [spec(1, "k1")], None)], time.time())
    replay, conflict, fresh = open_store().submit(
        [
            Submission(ada, [spec(1, "k1")], None),
            Submission(ada, [spec(2, "k1")], None),
            Submission(ada, [spec(3, "k3")], None),
        ],
        time.time(),
    )
    assert isinstance(replay, list) and (replay[0].replayed, replay[0].task) == (True, kept.task)
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(fresh, list) and not fresh[0].replayed
    assert store.get_customer(ada).labels_reserved == 2 * SPEC.consensus_threshold
    # The new task is open for dispatch: the group's numbers were released.
    assert fresh[0].task.task_id in {t.task_id for t in store.open_tasks(after_seq=0, limit=10)}


def test_a_tasks_labor_survives_a_restart_and_reaches_dispatch(open_store: OpenStore) -> None:
    """docs/challenge.md: `labor` as stored, read back and loaded for dispatch; absent is "any"."""
    store = open_store()
    customer_id = register(store)
    opted = replace(spec(1), labor="challenge")
    [[plain], [challenge]] = store.submit(
        [Submission(customer_id, [spec(0)], None), Submission(customer_id, [opted], None)], time.time()
    )
    store = open_store()
    assert store.get_task(customer_id, challenge.task.task_id).spec == opted
    assert store.get_task(customer_id, plain.task.task_id).spec.labor == "any"
    loaded = {t.task_id: t.labor for t in store.open_tasks(after_seq=0, limit=10)}
    assert loaded == {plain.task.task_id: "any", challenge.task.task_id: "challenge"}
