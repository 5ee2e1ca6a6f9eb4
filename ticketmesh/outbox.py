"""Transactional outbox: an event is written in the same transaction as the change that causes it,
and a relay publishes it to JetStream with Nats-Msg-Id = its id, so none is lost (it waits in the
table while NATS is away) and none is doubled (JetStream drops a re-publish within its window)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from loguru import logger
from nats.js import JetStreamContext
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ticketmesh import metrics

# The table every publishing service creates in its own schema (from its Alembic migration).
TABLE_DDL = """
CREATE TABLE outbox (
    id text PRIMARY KEY,
    subject text NOT NULL,
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    create_time timestamptz NOT NULL DEFAULT now(),
    sent_time timestamptz
);
CREATE INDEX outbox_unsent ON outbox (create_time) WHERE sent_time IS NULL;
"""


async def enqueue(
    conn: AsyncConnection,
    subject: str,
    message_id: str,
    payload: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    """Adds an event; call it inside the transaction that makes the change it reports."""
    await conn.execute(
        "INSERT INTO outbox (id, subject, payload, headers) VALUES (%s, %s, %s, %s)",
        (message_id, subject, payload, json.dumps(headers or {})),
    )


class OutboxRelay:
    """Publishes unsent events in order of creation. Several processes may relay one table: rows
    are claimed with SKIP LOCKED, so each batch goes out from one of them."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        js: JetStreamContext,
        *,
        name: str = "outbox",
        batch_size: int = 100,
        idle_seconds: float = 0.2,
        keep_sent_seconds: float = 24 * 3600,
        sample_seconds: float = 1.0,
    ):
        """`name` labels this outbox's metrics: the publishing service."""
        self.pool = pool
        self.js = js
        self.name = name
        self.sample_seconds = sample_seconds
        self._sampled_at = 0.0
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.keep_sent_seconds = keep_sent_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tells the relay a transaction just committed an event, so it need not wait to poll."""
        self._wake.set()

    async def run(self) -> None:
        """Relays for ever; a failed batch (NATS away) is rolled back and tried again."""
        since_cleanup = 0
        while True:
            self._wake.clear()  # before the batch: a wake during it is not lost
            try:
                sent = await self.publish_batch()
            except Exception as exc:
                logger.warning("outbox relay: batch not published, will retry: {}", exc)
                sent = 0
                await asyncio.sleep(1.0)
            await self.sample_backlog()
            since_cleanup += 1
            if since_cleanup >= 300:
                since_cleanup = 0
                await self.forget_sent()
            if sent < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_seconds)

    async def publish_batch(self) -> int:
        """Publishes one batch and marks it sent, in one transaction; returns how many went out."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (
                await conn.execute(
                    "SELECT id, subject, payload, headers FROM outbox WHERE sent_time IS NULL"
                    " ORDER BY create_time, id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (self.batch_size,),
                )
            ).fetchall()
            if not rows:
                return 0
            # Acks awaited together: a crash between publish and the UPDATE re-publishes the same
            # ids, which JetStream's duplicate window drops.
            await asyncio.gather(
                *(
                    self.js.publish(
                        subject, bytes(payload), headers={**headers, "Nats-Msg-Id": mid}, timeout=5
                    )
                    for mid, subject, payload, headers in rows
                )
            )
            await conn.execute(
                "UPDATE outbox SET sent_time = now() WHERE id = ANY(%s)", ([r[0] for r in rows],)
            )
        metrics.OUTBOX_PUBLISHED.labels(self.name).inc(len(rows))
        for mid, subject, _payload, headers in rows:
            logger.bind(request_id=headers.get("x-request-id", ""), message_id=mid).info(
                "event published on {}", subject
            )
        return len(rows)

    async def sample_backlog(self) -> None:
        """Sets the backlog gauges, at most every sample_seconds; a failed read (database away)
        leaves the last values."""
        now = time.monotonic()
        if now - self._sampled_at < self.sample_seconds:
            return
        self._sampled_at = now
        try:
            unsent, oldest_age = await self.backlog()
        except Exception as exc:
            logger.debug("outbox backlog not sampled: {}", exc)
            return
        metrics.OUTBOX_BACKLOG.labels(self.name).set(unsent)
        metrics.OUTBOX_OLDEST_AGE_SECONDS.labels(self.name).set(oldest_age)

    async def backlog(self) -> tuple[int, float]:
        """Unsent events and the age in seconds of the oldest one."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min(create_time)), 0)"
                    " FROM outbox WHERE sent_time IS NULL"
                )
            ).fetchone()
        assert row is not None
        return int(row[0]), float(row[1])

    async def forget_sent(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM outbox WHERE sent_time < now() - make_interval(secs => %s)",
                (self.keep_sent_seconds,),
            )
