"""NATS JetStream helpers: a connection that reconnects by itself, streams created idempotently, and a
durable consumer that handles each message under the request id it carries, waits out outages
without using up a message's deliveries, and dead-letters only poison, with metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack

import grpc
import nats
import psycopg
from loguru import logger
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError
from psycopg_pool import PoolTimeout

from ticketmesh import context, metrics
from ticketmesh.errors import ServiceError
from ticketmesh.server import run_forever

# The header that carries the request id of the call that caused a message (outbox rows set it).
REQUEST_ID_HEADER = "x-request-id"
# One stream per publishing service (DESIGN.md).
STREAMS = {
    "ORDERS": ["ticketing.orders.>"],
    "PAYMENTS": ["ticketing.payments.>"],
}


async def connect(stack: AsyncExitStack, url: str, name: str) -> Client:
    """Connects, retrying for ever while NATS is away; drains on leave so nothing in flight is lost."""

    async def on_disconnect() -> None:
        logger.warning("nats disconnected")

    async def on_reconnect() -> None:
        logger.info("nats reconnected")

    async def on_error(exc: Exception) -> None:
        logger.warning("nats error: {}", exc)

    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        allow_reconnect=True,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        drain_timeout=5,
    )

    async def close() -> None:
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()

    stack.push_async_callback(close)
    return nc


async def ensure_streams(js: JetStreamContext, names: Sequence[str] = tuple(STREAMS)) -> None:
    """Creates the streams if missing, or updates them to our config; safe from many processes."""
    for name in names:
        config = StreamConfig(name=name, subjects=STREAMS[name], duplicate_window=24 * 3600.0)
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


# Handles one message; raising means "not done". A transient failure (is_transient) is retried in
# place until it passes; any other is redelivered, up to max_deliver times, then dead-lettered.
Handler = Callable[[Msg], Awaitable[None]]
# Records a message that kept failing, so it is kept for people to look at and no longer retried.
# It may fail transiently too (the database away): it is retried in place like a handler.
DeadLetter = Callable[[Msg, Exception], Awaitable[None]]

# A service we called that is away, slow or shedding load, or a call cut short: none of these says
# anything about the message.
_TRANSIENT_RPC_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
})  # fmt: skip
# Our own typed errors that mean the same (db.py's DATABASE_UNAVAILABLE, a deadline that passed).
_TRANSIENT_SERVICE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Waiting out a transient failure: the first retry soon, then backing off to this cap. Well under
# ack_wait, since JetStream is told the message is in progress once per retry.
TRANSIENT_RETRY_FIRST_SECONDS = 0.25
TRANSIENT_RETRY_MAX_SECONDS = 2.0


def is_transient(exc: BaseException) -> bool:
    """Whether a handler's failure is no fault of the message, so that retrying the same message
    later will succeed: the database is away (psycopg.OperationalError, the pool's PoolTimeout, a
    ServiceError of code UNAVAILABLE or DEADLINE_EXCEEDED such as DATABASE_UNAVAILABLE), or a mesh
    call found its peer away or busy (an AioRpcError of UNAVAILABLE, DEADLINE_EXCEEDED,
    RESOURCE_EXHAUSTED or CANCELLED). Such a failure is waited out in place and never uses up the
    message's deliveries: an outage must not dead-letter a valid event (I3). Anything else is taken
    to be the message's own fault (poison): it counts toward max_deliver and ends as a dead letter."""
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):
        return True
    if isinstance(exc, ServiceError):
        return exc.code in _TRANSIENT_SERVICE_CODES
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in _TRANSIENT_RPC_CODES
    return False


def run_consumer(
    stack: AsyncExitStack,
    js: JetStreamContext,
    *,
    name: str,
    stream: str,
    durable: str,
    subject: str,
    handle: Handler,
    dead_letter: DeadLetter,
    max_deliver: int = 5,
) -> None:
    """Runs `consume` for the life of the process, restarted if it crashes. Call it after connect(),
    so on leave the consumer stops before the connection drains."""

    async def work() -> None:
        await consume(
            js,
            stream=stream,
            durable=durable,
            subject=subject,
            handle=handle,
            dead_letter=dead_letter,
            max_deliver=max_deliver,
        )

    run_forever(stack, work, name)


async def consume(
    js: JetStreamContext,
    *,
    stream: str,
    durable: str,
    subject: str,
    handle: Handler,
    dead_letter: DeadLetter,
    max_deliver: int = 5,
    batch: int = 32,
    ack_wait: float = 30.0,
) -> None:
    """Consumes with a durable pull consumer: ack after `handle` commits its effect, so a crash
    before the ack redelivers. Handlers must be idempotent (keyed on the message's event id);
    that makes delivery at-least-once and the effect exactly once.

    A transient failure (is_transient: the database or a peer away) is retried in place, with a
    backoff, for as long as it lasts; meanwhile JetStream is told the message (and the rest of its
    batch) is in progress, so it neither redelivers it nor counts a delivery. Other failures are
    redelivered with a backoff, and after `max_deliver` deliveries go to `dead_letter`, then are
    terminated. Messages are handled one at a time in stream order, so an outage holds up the
    messages behind it rather than skipping them."""
    sub = await js.pull_subscribe(
        subject,
        durable=durable,
        stream=stream,
        # One delivery more than we use, so a dead_letter that crashed the process gets another go.
        config=ConsumerConfig(ack_wait=ack_wait, max_deliver=max_deliver + 1, ack_policy=AckPolicy.EXPLICIT),
    )
    try:
        await _consume_loop(sub, durable, handle, dead_letter, max_deliver, batch)
    finally:
        # A pull subscription left open holds up the connection's drain at shutdown.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _consume_loop(
    sub: JetStreamContext.PullSubscription,
    consumer: str,
    handle: Handler,
    dead_letter: DeadLetter,
    max_deliver: int,
    batch: int,
) -> None:
    while True:
        try:
            messages = await sub.fetch(batch, timeout=1)
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either
            continue
        done = 0
        try:
            for index, msg in enumerate(messages):
                with _message_context(msg, consumer):
                    await _handle_one(msg, messages[index + 1 :], consumer, handle, dead_letter, max_deliver)
                done = index + 1
        except asyncio.CancelledError:
            await _hand_back(messages[done:])
            raise


async def _hand_back(messages: Sequence[Msg]) -> None:
    """The process is leaving (SIGTERM) with part of a batch not done: each message is handed back
    (nak, no delay), so another consumer takes it now rather than after ack_wait. One being handled
    may have made its effect already; its handler is idempotent, so a redelivery changes nothing."""
    for msg in messages:
        with contextlib.suppress(Exception):
            await msg.nak()


@contextlib.contextmanager
def _message_context(msg: Msg, consumer: str) -> Iterator[None]:
    """While one message is handled: its request id (the x-request-id header the publisher's call
    carried) in context.request_id, for logs and for mesh calls the handler makes, and in the log
    context with the consumer and subject. The order id is left for the handler to set."""
    headers = msg.headers or {}
    rid = headers.get(REQUEST_ID_HEADER, "")
    rid_token = context.request_id.set(rid)
    order_token = context.order_id.set("")
    try:
        with logger.contextualize(
            request_id=rid, consumer=consumer, subject=msg.subject, message_id=headers.get("Nats-Msg-Id", "")
        ):
            yield
    finally:
        context.order_id.reset(order_token)
        context.request_id.reset(rid_token)


async def _handle_one(
    msg: Msg,
    queued: Sequence[Msg],
    consumer: str,
    handle: Handler,
    dead_letter: DeadLetter,
    max_deliver: int,
) -> None:
    """One message: handled (outages waited out), then acked; or, when it fails for a reason of its
    own, redelivered later or, on its last delivery, dead-lettered. `queued` are the messages of
    its batch still to come, kept from redelivery while this one waits out an outage."""
    delivered = msg.metadata.num_delivered
    if delivered > 1:
        metrics.JETSTREAM_REDELIVERIES.labels(consumer).inc()
    waiting = (msg, *queued)
    try:
        await _waiting_out_transient(lambda: handle(msg), waiting)
    except Exception as exc:
        if delivered >= max_deliver:
            logger.opt(exception=exc).error("dead letter after {} deliveries", max_deliver)
            await _waiting_out_transient(functools.partial(dead_letter, msg, exc), waiting)
            metrics.JETSTREAM_DEAD_LETTERS.labels(consumer).inc()
            await msg.term()
        else:
            logger.warning("handler failed (delivery {}), will retry: {}", delivered, exc)
            await msg.nak(delay=min(2.0**delivered, 30.0))
        return
    await msg.ack()


async def _waiting_out_transient(work: Callable[[], Awaitable[None]], waiting: Sequence[Msg]) -> None:
    """Runs `work` until it succeeds or fails for a reason that is not transient (raised)."""
    delay = TRANSIENT_RETRY_FIRST_SECONDS
    while True:
        try:
            await work()
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            logger.warning("transient failure, retrying in place in {} s: {}", delay, exc)
        for msg in waiting:
            # Restarts each message's ack_wait. If NATS is away too this fails; a redelivery later
            # is harmless (handlers are idempotent) and is the only way a delivery gets used.
            with contextlib.suppress(Exception):
                await msg.in_progress()
        await asyncio.sleep(delay)
        delay = min(delay * 2, TRANSIENT_RETRY_MAX_SECONDS)
