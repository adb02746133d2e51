"""Payment arithmetic (docs/settlement.md, docs/billing.md) as properties: for any batch of
tasks and any wallet, each worker to pay is paid its tier's label price exactly once per task,
the outputs sum to the payouts, inputs = outputs + fee + change, the fee meets the policy, and
what billing charges a customer equals what settlement records as the tasks' cost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from asg_grpc.domain import billing
from asg_grpc.domain.settlement import (
    AgreeingLabel,
    SettleableTask,
    choose_inputs,
    fee_for,
    plan_payouts,
    tx_size,
)
from asg_grpc.domain.tiers import Tier, cost_sats, default_tiers, tier_named

TIERS = default_tiers()
WORKERS = [(f"wkr_{i}", f"1Addr{i % 7}") for i in range(12)]  # some workers share an address


def tier_of(name: str | None) -> Tier:
    return tier_named(TIERS, name)


@st.composite
def settleable_tasks(draw: st.DrawFn) -> list[SettleableTask]:
    tasks = []
    for n in range(draw(st.integers(min_value=0, max_value=30))):
        labeled = draw(st.lists(st.sampled_from(WORKERS), min_size=1, max_size=12, unique=True))
        ended = draw(st.booleans())
        # A decided task pays the majority (the first ones here); an ended one pays everybody.
        paid = labeled if ended else labeled[: len(labeled) // 2 + 1]
        tasks.append(
            SettleableTask(
                task_id=f"tsk_{n}",
                customer_id="cust_1",
                tier=draw(st.sampled_from([None, "sandbox", "pro", "gone"])),
                worker_count=len(labeled),
                agreeing=tuple(AgreeingLabel(w, a) for w, a in paid),
                ended=ended,
            )
        )
    return tasks


@given(settleable_tasks())
def test_each_worker_to_pay_is_paid_once_per_task_at_its_tier_price(tasks: list[SettleableTask]) -> None:
    plan = plan_payouts(tasks, tier_of)

    paid = Counter((p.task_id, p.worker_id) for p in plan.payouts)
    owed = Counter((t.task_id, label.worker_id) for t in tasks for label in t.agreeing)
    assert paid == owed
    for p in plan.payouts:
        task = next(t for t in tasks if t.task_id == p.task_id)
        assert p.sats == tier_of(task.tier).label_price_sats

    # One output per address, sorted, amounts summed; the vouts name them.
    addresses = [address for address, _ in plan.outputs]
    assert addresses == sorted(set(addresses))
    by_address: Counter[str] = Counter()
    for p in plan.payouts:
        by_address[p.address] += p.sats
    assert dict(plan.outputs) == dict(by_address)
    assert plan.vouts == {address: vout for vout, address in enumerate(addresses)}
    assert plan.paid == sum(p.sats for p in plan.payouts)
    assert all(sats > 0 for _, sats in plan.outputs)

    for task in tasks:
        tier = tier_of(task.tier)
        expected = (
            task.worker_count * tier.label_price_sats
            if task.ended
            else tier.task_price_sats + task.worker_count * tier.label_price_sats
        )
        assert plan.cost_by_task[task.task_id] == expected
        # The platform never pays out more than the customer is charged for the task.
        assert len(task.agreeing) * tier.label_price_sats <= expected


def test_a_three_label_sandbox_task_costs_1000_sats() -> None:
    assert cost_sats(TIERS["sandbox"], 3) == 1000


utxo_lists = st.lists(
    st.tuples(
        st.text(alphabet="0123456789abcdef", min_size=4, max_size=4),
        st.integers(min_value=0, max_value=5),
        st.integers(min_value=1, max_value=10**9),
    ),
    max_size=12,
    unique_by=lambda u: (u[0], u[1]),
)


@given(
    utxo_lists,
    st.integers(min_value=1, max_value=3 * 10**9),
    st.integers(min_value=1, max_value=2000),
    st.integers(min_value=1, max_value=1000),
)
def test_inputs_equal_outputs_plus_fee_plus_change(
    utxos: list[tuple[str, int, int]], pay: int, outputs: int, sats_per_kb: int
) -> None:
    funding = choose_inputs(utxos, pay, outputs, sats_per_kb)
    if funding is None:
        everything = sum(sats for _, _, sats in utxos)
        assert everything < pay + fee_for(tx_size(len(utxos), outputs + 1), sats_per_kb)
        return
    spent = sum(sats for _, _, sats in funding.inputs)
    assert spent == pay + funding.fee + funding.change
    assert funding.change >= 0
    assert funding.fee == fee_for(tx_size(len(funding.inputs), outputs + 1), sats_per_kb)
    assert funding.fee * 1000 >= tx_size(len(funding.inputs), outputs + 1) * sats_per_kb
    assert len(set(funding.inputs)) == len(funding.inputs)
    assert set(funding.inputs) <= set(utxos)
    # Largest first, and no more inputs than needed: without the last one it would not cover.
    assert [u[2] for u in funding.inputs] == sorted((u[2] for u in funding.inputs), reverse=True)
    short = funding.inputs[:-1]
    assert sum(s for _, _, s in short) < pay + fee_for(tx_size(len(short), outputs + 1), sats_per_kb)


@dataclass(frozen=True)
class Decided:
    task_type: str
    tier: str
    labels: int
    outcome: str  # verified, ended (cancelled or expired), failed (no consensus)


decided_tasks = st.lists(
    st.builds(
        Decided,
        st.sampled_from(["image_classification", "text_classification"]),
        st.sampled_from(["sandbox", "pro"]),
        st.integers(min_value=0, max_value=20),
        st.sampled_from(["verified", "ended", "failed"]),
    ),
    max_size=40,
)


@given(decided_tasks)
def test_the_bill_is_what_settlement_records_as_the_tasks_cost(tasks: list[Decided]) -> None:
    counts = [
        billing.UsageCounts(
            task_type=t.task_type,
            tasks_submitted=1,
            tasks_charged=int(t.outcome == "verified"),
            tasks_failed=int(t.outcome != "verified"),
            labels_collected=t.labels if t.outcome == "verified" else 0,
            labels_ended=t.labels if t.outcome == "ended" else 0,
            tier=t.tier,
        )
        for t in tasks
    ]
    usage = billing.price(counts, billing.Month(2026, 4), TIERS["sandbox"], tier_of)

    billed = [t for t in tasks if t.outcome != "failed"]
    plan = plan_payouts(
        [
            SettleableTask(f"tsk_{n}", "cust_1", t.tier, t.labels, (), ended=t.outcome == "ended")
            for n, t in enumerate(billed)
        ],
        tier_of,
    )
    assert usage.total.sats_charged == sum(plan.cost_by_task.values())
    assert usage.total.tasks_submitted == len(tasks)
    assert usage.total.tasks_charged + usage.total.tasks_failed == len(tasks)
    assert [line.task_type for line in usage.by_type] == sorted({t.task_type for t in tasks})
    assert usage.total.sats_charged == sum(line.sats_charged for line in usage.by_type)
