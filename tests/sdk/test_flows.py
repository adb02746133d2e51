"""The flows driven step by step, answering with real httpx responses; nothing sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from asg_gateway import APIConnectionError, NoReceiptError, PollTimeoutError, ServerError
from asg_gateway._flows import Flow, Outcome, empty_flow, poll_flow, receipt_wait_flow, request_flow, settled

T = TypeVar("T")
RESULT_URL = "http://gateway.test/v1/tasks/tsk_1/result"
PENDING = {"status": "pending", "message": "Task is still being labeled."}
Answer = Callable[[httpx.Request], httpx.Response | httpx.RequestError]
READY = {"task_id": "tsk_1", "status": "settled", "consensus_label": "cat"}


class FakeClock:
    """Time that passes only when the flow asks to sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def drive(flow: Flow[T], answer: Answer, clock: FakeClock) -> T:
    """What the clients' ``_run`` does, with a fake clock instead of sleeping."""
    outcome: Outcome = None
    try:
        while True:
            step = flow.send(outcome)
            if isinstance(step, httpx.Request):
                outcome = answer(step)
            else:
                clock.sleep(step)
                outcome = None
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def answers(*replies: httpx.Response | httpx.RequestError) -> Answer:
    pending: Iterator[httpx.Response | httpx.RequestError] = iter(replies)

    def answer(request: httpx.Request) -> httpx.Response | httpx.RequestError:
        reply = next(pending)
        if isinstance(reply, httpx.Response):
            reply.request = request
        return reply

    return answer


def always_pending(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202, json=PENDING, request=request)


def poll(clock: FakeClock, timeout: float, interval: float) -> Flow[dict[str, object]]:
    return poll_flow(
        httpx.Request("GET", RESULT_URL),
        task_id="tsk_1",
        timeout=timeout,
        interval=interval,
        max_retries=2,
        clock=clock,
    )


def test_poll_waits_longer_each_round_and_never_past_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(PollTimeoutError) as caught:
        drive(poll(clock, timeout=60, interval=5), always_pending, clock)
    assert clock.sleeps == [5, 7.5, 11.25, 16.875, 19.375]
    assert sum(clock.sleeps) == 60
    assert caught.value.last_status == "pending"


def test_poll_interval_stops_growing_at_60_seconds() -> None:
    clock = FakeClock()
    with pytest.raises(PollTimeoutError):
        drive(poll(clock, timeout=1000, interval=30), always_pending, clock)
    assert clock.sleeps[:5] == [30, 45, 60, 60, 60]
    assert max(clock.sleeps) == 60
    assert sum(clock.sleeps) == 1000


def test_poll_returns_the_result_once_ready() -> None:
    clock = FakeClock()
    replies = answers(
        httpx.Response(202, json=PENDING),
        httpx.Response(202, json={"status": "in_progress", "message": "..."}),
        httpx.Response(200, json=READY),
    )
    assert drive(poll(clock, timeout=300, interval=5), replies, clock) == READY
    assert clock.sleeps == [5, 7.5]


def test_poll_timeout_names_the_last_status_seen() -> None:
    clock = FakeClock()
    replies = answers(
        httpx.Response(202, json=PENDING),
        httpx.Response(202, json={"status": "in_progress", "message": "..."}),
    )
    with pytest.raises(PollTimeoutError) as caught:
        drive(poll(clock, timeout=4, interval=5), replies, clock)
    assert caught.value.last_status == "in_progress"
    assert clock.sleeps == [4]


def test_poll_with_zero_timeout_fetches_once() -> None:
    clock = FakeClock()
    with pytest.raises(PollTimeoutError):
        drive(poll(clock, timeout=0, interval=5), always_pending, clock)
    assert clock.sleeps == []


def test_poll_retries_a_transient_failure_inside_one_round() -> None:
    clock = FakeClock()
    replies = answers(
        httpx.Response(503, json={"error": "core unavailable"}), httpx.Response(200, json=READY)
    )
    assert drive(poll(clock, timeout=300, interval=5), replies, clock) == READY
    assert len(clock.sleeps) == 1
    assert 0.25 <= clock.sleeps[0] <= 0.5


def test_request_flow_backs_off_between_retries() -> None:
    clock = FakeClock()
    replies = answers(httpx.Response(503), httpx.Response(502), httpx.Response(202, json={}))
    response = drive(request_flow(httpx.Request("GET", RESULT_URL), max_retries=2), replies, clock)
    assert response.status_code == 202
    first, second = clock.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


def test_request_flow_raises_the_last_error_when_retries_run_out() -> None:
    clock = FakeClock()
    replies = answers(*(httpx.Response(503, json={"error": "core unavailable"}) for _ in range(3)))
    with pytest.raises(ServerError) as caught:
        drive(request_flow(httpx.Request("GET", RESULT_URL), max_retries=2), replies, clock)
    assert caught.value.message == "core unavailable"
    assert len(clock.sleeps) == 2


def test_request_flow_without_retries_does_not_wait() -> None:
    clock = FakeClock()
    with pytest.raises(ServerError):
        drive(
            request_flow(httpx.Request("POST", RESULT_URL), max_retries=0),
            answers(httpx.Response(503)),
            clock,
        )
    assert clock.sleeps == []


def test_request_flow_wraps_the_transport_error_it_gives_up_on() -> None:
    clock = FakeClock()
    refused = httpx.ConnectError("connection refused")
    with pytest.raises(APIConnectionError) as caught:
        drive(
            request_flow(httpx.Request("GET", RESULT_URL), max_retries=1),
            answers(httpx.ConnectError("first"), refused),
            clock,
        )
    assert caught.value.__cause__ is refused
    assert str(caught.value) == f"GET {RESULT_URL} failed: connection refused"


def test_empty_flow_returns_none_for_a_204_without_reading_a_body() -> None:
    clock = FakeClock()
    request = httpx.Request("DELETE", "http://gateway.test/v1/webhooks/whk_1")
    assert drive(empty_flow(request, max_retries=0), answers(httpx.Response(204)), clock) is None


def test_empty_flow_without_retries_gives_up_on_the_first_connection_error() -> None:
    clock = FakeClock()
    request = httpx.Request("DELETE", "http://gateway.test/v1/webhooks/whk_1")
    with pytest.raises(APIConnectionError):
        drive(empty_flow(request, max_retries=0), answers(httpx.ConnectError("reset")), clock)
    assert clock.sleeps == []


VERIFIED = {"task_id": "tsk_1", "status": "verified", "worker_count": 3, "settlement": None}
SETTLED = {**VERIFIED, "status": "settled", "settlement": {"bsv_txid": "ab" * 32}}
RECEIPT_URL = "http://gateway.test/v1/tasks/tsk_1/receipt"


def test_waiting_until_settled_goes_on_past_a_verified_result() -> None:
    clock = FakeClock()
    flow = poll_flow(
        httpx.Request("GET", RESULT_URL),
        task_id="tsk_1",
        timeout=60,
        interval=1,
        max_retries=0,
        ready=settled,
        clock=clock,
    )

    body = drive(flow, answers(httpx.Response(200, json=VERIFIED), httpx.Response(200, json=SETTLED)), clock)

    assert body["status"] == "settled"
    assert clock.sleeps == [1]


def test_a_task_that_can_never_be_paid_counts_as_settled() -> None:
    ok = httpx.Response(200)
    for body in ({**VERIFIED, "status": "failed"}, {**VERIFIED, "status": "cancelled", "worker_count": 0}):
        assert settled(ok, body)
    assert not settled(ok, {**VERIFIED, "status": "cancelled", "worker_count": 2})  # its labels get paid


def test_a_retry_after_on_a_pending_result_is_waited_out() -> None:
    clock = FakeClock()
    pending = httpx.Response(202, json=PENDING, headers={"Retry-After": "7"})

    drive(poll(clock, timeout=60, interval=1), answers(pending, httpx.Response(200, json=READY)), clock)

    assert clock.sleeps == [7]


def receipt_wait(clock: FakeClock, timeout: float = 60) -> Flow[dict[str, object]]:
    return receipt_wait_flow(
        httpx.Request("GET", RESULT_URL),
        httpx.Request("GET", RECEIPT_URL),
        task_id="tsk_1",
        timeout=timeout,
        interval=1,
        max_retries=0,
        clock=clock,
    )


def test_the_receipt_is_fetched_again_until_the_payout_is_mined() -> None:
    clock = FakeClock()
    not_mined = {"error": "payout not mined yet"}
    replies = answers(
        httpx.Response(200, json=SETTLED),
        httpx.Response(409, json=not_mined),
        httpx.Response(409, json=not_mined),
        httpx.Response(200, json={"txid": "ab" * 32}),
    )

    receipt = drive(receipt_wait(clock), replies, clock)

    assert receipt == {"txid": "ab" * 32}
    assert clock.sleeps == [1, 1.5]


def test_a_payout_never_mined_times_out_saying_so() -> None:
    clock = FakeClock()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/result"):
            return httpx.Response(200, json=SETTLED, request=request)
        return httpx.Response(409, json={"error": "payout not mined yet"}, request=request)

    with pytest.raises(PollTimeoutError, match="not mined"):
        drive(receipt_wait(clock, timeout=5), answer, clock)
    assert sum(clock.sleeps) == pytest.approx(5)


def test_a_failed_task_has_no_receipt_and_none_is_asked_for() -> None:
    clock = FakeClock()
    failed = httpx.Response(200, json={**VERIFIED, "status": "failed", "worker_count": 6})

    with pytest.raises(NoReceiptError, match="failed"):
        drive(receipt_wait(clock), answers(failed), clock)  # a second request would exhaust answers
