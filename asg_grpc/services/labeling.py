"""LabelingService: worker registration (operator only) and the Work stream.

Two limits of docs/api.md's table live here, per core process (the one that dispatches): Work
streams open at once per worker (`max_streams_per_worker`: one more is refused with
RESOURCE_EXHAUSTED before its welcome) and labels per second per worker (a token bucket over
all its streams, `worker_label_rate` / `worker_label_burst`: the Labels message that finds the
bucket short is not taken; what came before it is committed and acked, then the stream ends
RESOURCE_EXHAUSTED with `retry-after`, and its tasks go back to be offered again)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc

from asg_grpc.dispatch.dispatcher import Dispatcher, Session
from asg_grpc.dispatch.outbox import Outgoing
from asg_grpc.dispatch.payments import MAX_TASK_IDS, WorkerPayment
from asg_grpc.domain.customers import hash_token
from asg_grpc.domain.dawid_skene import WorkerReport
from asg_grpc.domain.errors import LimitReached, RateLimited, Unauthenticated, Unavailable, ValidationError
from asg_grpc.domain.labeling import REFUSAL_MESSAGES
from asg_grpc.domain.ratelimit import RateLimiter
from asg_grpc.domain.tiers import RateLimit
from asg_grpc.domain.workers import Worker, new_worker_token, validate_worker
from asg_grpc.services.callers import Callers
from asg_grpc.services.errors import abort, abort_for, status_code_for
from asg_grpc.settings import Settings
from asg_grpc.store.areas import Workers
from asg_grpc.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc
from asg_grpc.wire import convert

log = logging.getLogger("asg.labeling")

# The first message must arrive within this, or the stream is closed.
HELLO_TIMEOUT = 10.0
# Payments per Payments message: with MAX_TASK_IDS each, a message stays well under gRPC's
# default 4 MiB receive limit.
PAYMENTS_PER_MESSAGE = 64


class LabelingService(labeling_pb2_grpc.LabelingServiceServicer):
    def __init__(self, store: Workers, dispatcher: Dispatcher, callers: Callers, settings: Settings) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._callers = callers
        self._max_streams = settings.max_streams_per_worker
        self._streams: Counter[str] = Counter()
        self._label_limit = RateLimit(settings.worker_label_rate, settings.worker_label_burst)
        self._label_buckets = RateLimiter()

    async def RegisterWorker(
        self, request: labeling_pb2.RegisterWorkerRequest, context: grpc.aio.ServicerContext
    ) -> labeling_pb2.RegisterWorkerResponse:
        self._callers.operator(context)
        registration = validate_worker(
            request.name, request.payout_address, list(request.task_types), request.challenge_gateway
        )
        token = new_worker_token()
        worker = self._store.create_worker(registration, token_hash=hash_token(token), now=time.time())
        return labeling_pb2.RegisterWorkerResponse(worker_id=worker.worker_id, token=token)

    async def ListWorkerQuality(
        self, request: labeling_pb2.ListWorkerQualityRequest, context: grpc.aio.ServicerContext
    ) -> labeling_pb2.ListWorkerQualityResponse:
        self._callers.operator(context)
        return _qualities(self._dispatcher.quality.report(request.worker_id or None))

    async def ReinstateWorker(
        self, request: labeling_pb2.ReinstateWorkerRequest, context: grpc.aio.ServicerContext
    ) -> labeling_pb2.ListWorkerQualityResponse:
        self._callers.operator(context)
        if not request.worker_id:
            raise ValidationError("worker_id", "is required")
        options = tuple(request.family_options) or None
        return _qualities(self._dispatcher.reinstate(request.worker_id, options))

    async def Work(
        self,
        request_iterator: AsyncIterator[labeling_pb2.WorkerMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[labeling_pb2.ServerMessage]:
        worker = await self._worker(context)
        worker_id = worker.worker_id
        if self._streams[worker_id] >= self._max_streams:
            await abort_for(
                context, LimitReached(f"a worker may have at most {self._max_streams} Work streams open")
            )
        self._streams[worker_id] += 1
        try:
            async for message in self._serve(worker, request_iterator, context):
                yield message
        finally:
            self._streams[worker_id] -= 1
            if self._streams[worker_id] <= 0:
                del self._streams[worker_id]

    async def _serve(
        self,
        worker: Worker,
        request_iterator: AsyncIterator[labeling_pb2.WorkerMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[labeling_pb2.ServerMessage]:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT)
        except StopAsyncIteration:
            return
        except TimeoutError:
            await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"no hello within {HELLO_TIMEOUT:.0f}s")
        if first.WhichOneof("kind") != "hello":
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, "the first message must be hello")
        hello = first.hello
        try:
            session = self._dispatcher.connect(
                worker, list(hello.task_types), hello.max_in_flight, hello.opted_in_only
            )
        except (ValidationError, Unavailable) as exc:
            await abort(context, status_code_for(exc), exc.message)
        reader = asyncio.get_running_loop().create_task(self._read(session, request_iterator))
        try:
            yield labeling_pb2.ServerMessage(
                welcome=labeling_pb2.Welcome(
                    worker_id=worker.worker_id,
                    max_in_flight=session.max_in_flight,
                    lease_seconds=math.ceil(self._dispatcher.settings.lease_seconds),
                )
            )
            while (out := await session.outbox.take()) is not None:
                for message in _encode(out):
                    yield message
            limited = reader.result() if reader.done() and not reader.cancelled() else None
            if limited is not None:
                await abort_for(context, limited)
        finally:
            reader.cancel()
            self._dispatcher.disconnect(session)

    async def _worker(self, context: grpc.aio.ServicerContext) -> Worker:
        try:
            return self._callers.worker(context).worker
        except Unauthenticated as exc:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, exc.message)

    async def _read(
        self, session: Session, requests: AsyncIterator[labeling_pb2.WorkerMessage]
    ) -> LimitReached | None:
        """Feeds the dispatcher until the agent closes its side; returns the limit that ended
        the stream instead, if one did."""
        dispatcher = self._dispatcher
        try:
            async for message in requests:
                dispatcher.seen(session)
                kind = message.WhichOneof("kind")
                if kind == "labels":
                    if (limited := self._over_label_rate(session, len(message.labels.items))) is not None:
                        return limited
                    for item in message.labels.items:
                        dispatcher.label(session, item.task_id, item.option)
                elif kind == "skip":
                    dispatcher.skip(session, message.skip.task_id, message.skip.reason)
                elif kind == "drain":
                    dispatcher.drain(session)
        except Exception:
            log.exception("work stream failed", extra={"worker_id": session.worker_id})
        finally:
            # The agent closed its side: commit and ack what it sent, then end the stream.
            try:
                dispatcher.flush()
            except Exception:
                log.exception("label commit failed; the writer retries it")
            finally:
                session.outbox.close()
        return None

    def _over_label_rate(self, session: Session, count: int) -> LimitReached | None:
        try:
            self._label_buckets.take(session.worker_id, self._label_limit, time.monotonic(), count)
        except RateLimited as exc:
            limit = self._label_limit
            return LimitReached(
                f"a worker may send at most {limit.per_second:g} labels per second"
                f" (burst {limit.burst}); retry after {exc.retry_after} s",
                exc.retry_after,
            )
        return None


def _encode(out: Outgoing) -> list[labeling_pb2.ServerMessage]:
    messages: list[labeling_pb2.ServerMessage] = []
    if out.errors:
        messages.extend(
            labeling_pb2.ServerMessage(
                error=labeling_pb2.WorkError(
                    task_id=task_id, code=refusal.value, message=REFUSAL_MESSAGES[refusal]
                )
            )
            for task_id, refusal in out.errors
        )
    messages.extend(
        labeling_pb2.ServerMessage(
            notice=labeling_pb2.WorkNotice(code=n.code, message=n.message, family_options=n.family)
        )
        for n in out.notices
    )
    if out.acks:
        messages.append(
            labeling_pb2.ServerMessage(
                acks=labeling_pb2.Acks(items=[labeling_pb2.Ack(task_id=t) for t in out.acks])
            )
        )
    for start in range(0, len(out.payments), PAYMENTS_PER_MESSAGE):
        chunk = out.payments[start : start + PAYMENTS_PER_MESSAGE]
        messages.append(
            labeling_pb2.ServerMessage(payments=labeling_pb2.Payments(items=map(_payment, chunk)))
        )
    if out.assignments:
        messages.append(
            labeling_pb2.ServerMessage(
                assignments=labeling_pb2.Assignments(
                    items=[
                        labeling_pb2.Assignment(
                            task_id=task.task_id,
                            task_type=task.task_type,
                            data_url=task.data_url,
                            label_spec=common_pb2.LabelSpec(question=task.question, options=task.options),
                            lease_deadline=convert.timestamp(deadline),
                        )
                        for task, deadline in out.assignments
                    ]
                )
            )
        )
    return messages


def _qualities(reports: list[WorkerReport]) -> labeling_pb2.ListWorkerQualityResponse:
    return labeling_pb2.ListWorkerQualityResponse(
        workers=[
            labeling_pb2.WorkerQuality(
                worker_id=r.worker,
                family_options=r.options,
                banned=r.banned,
                reinstated=r.reinstated,
                labels=r.labels,
                gold_labels=r.gold_labels,
                gold_correct=r.gold_correct,
                estimated_accuracy=r.estimated_accuracy,
            )
            for r in reports
        ]
    )


def _payment(payment: WorkerPayment) -> labeling_pb2.Payment:
    return labeling_pb2.Payment(
        txid=payment.txid,
        vout=payment.vout,
        sats=payment.sats,
        task_ids=payment.task_ids[:MAX_TASK_IDS],
        task_count=len(payment.task_ids),
        settled_at=convert.timestamp(payment.settled_at),
    )
