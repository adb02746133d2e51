"""Money with `adaptive` (issue 13, "Money"; docs/billing.md): the labels a task buys beyond its
minimum are billed as labels, on the usage, on the month's invoice and in the quota, and the
result keeps its published fields. Real core, real Work streams (the crowd of test_adaptive_dispatch.py)."""

from __future__ import annotations

import pytest

from asg_grpc.v1 import billing_pb2, billing_pb2_grpc
from tests.core.labeling.test_adaptive_dispatch import Crowd, always_first, crowd, honest

pytestmark = pytest.mark.asyncio
__all__ = ["crowd"]  # the fixture, used by name

LABEL_PRICE, TASK_PRICE = 300, 100  # the sandbox tier (docs/billing.md)


async def test_labels_bought_beyond_the_minimum_are_billed_as_labels(crowd: Crowd) -> None:
    for policy in (honest, always_first, honest, always_first):  # two camps: never sure
        await crowd.join(policy, max_in_flight=1)
    task_id = await crowd.submit("dog", threshold=2, max_labels=4)

    [result] = await crowd.decided([task_id])

    assert result.worker_count == 4  # twice its minimum of 2, all bought one at a time
    assert result.agreement_count == 2 and result.consensus_label in ("cat", "dog")
    billing = billing_pb2_grpc.BillingServiceStub(crowd.harness.channel)
    usage = await billing.GetUsage(billing_pb2.GetUsageRequest(), metadata=crowd.harness.auth)
    assert (usage.total.tasks_charged, usage.total.labels_collected) == (1, 4)
    assert usage.total.sats_charged == TASK_PRICE + 4 * LABEL_PRICE
    invoices = await billing.ListInvoices(billing_pb2.ListInvoicesRequest(), metadata=crowd.harness.auth)
    draft = invoices.invoices[0]
    assert draft.status == "draft"
    assert (draft.usage.total.labels_collected, draft.usage.total.sats_charged) == (4, 1300)
    # The quota: 2 reserved at submission, the 2 bought beyond them taken at the decision.
    me = await billing.GetCustomer(billing_pb2.GetCustomerRequest(), metadata=crowd.harness.auth)
    assert me.labels_reserved == 4
