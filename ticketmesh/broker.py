"""NATS JetStream helpers: a connection that reconnects by itself, and streams created idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

import nats
from loguru import logger
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError

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
