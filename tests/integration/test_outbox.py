"""The outbox relay against real Postgres and real JetStream: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

import nats
from nats.js.api import StreamConfig
from psycopg_pool import AsyncConnectionPool

from ticketmesh import broker, outbox


async def _stream(js, subject_root: str) -> str:
    name = "T" + uuid.uuid4().hex[:10].upper()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{subject_root}.>"], duplicate_window=3600.0))
    return name


async def _enqueue(pool: AsyncConnectionPool, subject: str, ids: list[str]) -> None:
    for mid in ids:
        async with pool.connection() as conn, conn.transaction():
            await outbox.enqueue(conn, subject, mid, mid.encode(), {"x-request-id": "r-" + mid})


async def test_relay_publishes_each_event_once_even_when_replayed(infra, pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute(outbox.TABLE_DDL)
    root = "test.outbox." + uuid.uuid4().hex[:8]
    async with AsyncExitStack() as stack:
        nc = await broker.connect(stack, infra.nats_url, "test")
        js = nc.jetstream()
        stream = await _stream(js, root)
        ids = [f"ev-{i}" for i in range(120)]
        await _enqueue(pool, f"{root}.created", ids)
        relay = outbox.OutboxRelay(pool, js, batch_size=50)

        # A relay that published but died before marking the rows sent: the same ids go out again.
        async with pool.connection() as conn:
            await conn.execute("UPDATE outbox SET sent_time = NULL")
        assert await relay.publish_batch() == 50
        async with pool.connection() as conn:
            await conn.execute("UPDATE outbox SET sent_time = NULL")

        while await relay.publish_batch():
            pass
        assert await relay.backlog() == (0, 0.0)
        info = await js.stream_info(stream)
        assert info.state.messages == 120

        sub = await js.pull_subscribe(f"{root}.>", durable="check", stream=stream)
        got = []
        while len(got) < 120:
            for msg in await sub.fetch(120, timeout=5):
                got.append(msg.headers["Nats-Msg-Id"])
                assert msg.headers["x-request-id"] == "r-" + msg.data.decode()
                await msg.ack()
        assert sorted(got) == sorted(ids)


async def test_events_wait_in_the_table_while_nats_is_unreachable(infra, pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute(outbox.TABLE_DDL)
    await _enqueue(pool, "test.nowhere.created", ["a", "b"])
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    relay = outbox.OutboxRelay(pool, js)
    # No stream listens on this subject: JetStream refuses, as it would while it is away.
    try:
        await asyncio.wait_for(relay.publish_batch(), 10)
        raise AssertionError("publish should have failed")
    except Exception as exc:
        assert not isinstance(exc, AssertionError), exc
    finally:
        await nc.close()
    count, _age = await relay.backlog()
    assert count == 2
