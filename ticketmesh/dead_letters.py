"""Dead letters: the messages a consumer gave up on, stored in the consuming service's own schema in
one table of the same shape everywhere, so people (and the invariant checker) can find them."""

from __future__ import annotations

from nats.aio.msg import Msg
from psycopg_pool import AsyncConnectionPool

# The table every consuming service creates in its own schema (from its Alembic migration).
TABLE_DDL = """
-- Messages a consumer gave up on (poison: they failed every delivery): kept for people to look
-- at, no longer retried. `consumer` is the durable consumer's name, `message_id` the Nats-Msg-Id.
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    consumer text NOT NULL,
    subject text NOT NULL,
    message_id text NOT NULL DEFAULT '',
    payload bytea NOT NULL,
    error text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);
"""


def describe(exc: BaseException) -> str:
    """The error as stored and logged: its type, then its message."""
    return f"{type(exc).__name__}: {exc}"


async def record(pool: AsyncConnectionPool, consumer: str, msg: Msg, exc: BaseException) -> None:
    """Stores one dead letter: the consumer that gave up, the message as it came (subject,
    Nats-Msg-Id, payload) and the error of its last delivery. A database error propagates: the
    broker waits out an outage around the dead_letter callback, so none is lost to one."""
    message_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO dead_letters (consumer, subject, message_id, payload, error)"
            " VALUES (%s, %s, %s, %s, %s)",
            (consumer, msg.subject, message_id, msg.data, describe(exc)),
        )
