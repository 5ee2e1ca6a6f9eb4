"""NATS JetStream helpers: a connection that reconnects by itself, streams created idempotently, and a
durable consumer that handles each message under the request id it carries, with metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack

import nats
from loguru import logger
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError

from ticketmesh import context, metrics
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


# Handles one message; raising means "not done": it is redelivered, up to max_deliver times.
Handler = Callable[[Msg], Awaitable[None]]
# Records a message that kept failing, so it is kept for people to look at and no longer retried.
DeadLetter = Callable[[Msg, Exception], Awaitable[None]]


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
) -> None:
    """Consumes with a durable pull consumer: ack after `handle` commits its effect, so a crash
    before the ack redelivers. Handlers must be idempotent (keyed on the message's event id);
    that makes delivery at-least-once and the effect exactly once."""
    sub = await js.pull_subscribe(
        subject,
        durable=durable,
        stream=stream,
        config=ConsumerConfig(ack_wait=30, max_deliver=max_deliver + 1, ack_policy=AckPolicy.EXPLICIT),
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
        for msg in messages:
            with _message_context(msg, consumer):
                await _handle_one(msg, consumer, handle, dead_letter, max_deliver)


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
    msg: Msg, consumer: str, handle: Handler, dead_letter: DeadLetter, max_deliver: int
) -> None:
    delivered = msg.metadata.num_delivered
    if delivered > 1:
        metrics.JETSTREAM_REDELIVERIES.labels(consumer).inc()
    try:
        await handle(msg)
    except Exception as exc:
        if delivered >= max_deliver:
            logger.opt(exception=exc).error("dead letter after {} deliveries", max_deliver)
            await dead_letter(msg, exc)
            metrics.JETSTREAM_DEAD_LETTERS.labels(consumer).inc()
            await msg.term()
        else:
            logger.warning("handler failed (delivery {}), will retry: {}", delivered, exc)
            await msg.nak(delay=min(2.0**delivered, 30.0))
        return
    await msg.ack()
