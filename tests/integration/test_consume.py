"""The durable consumer against real JetStream and real Postgres: ack after the effect, a database
outage waited out without using up deliveries, poison retried and then stored as a dead letter."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest_asyncio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from psycopg_pool import PoolTimeout

from stack import Stack
from ticketmesh import broker, db, dead_letters

# Long enough that a message the consumer holds without telling JetStream would be redelivered
# within the outage, short enough to keep the test quick; above the broker's retry cap.
ACK_WAIT = 4.0
# Longer than max_deliver deliveries' worth of time, whether JetStream redelivers on ack_wait or
# after a nak's backoff (2 s, then dead-lettered).
OUTAGE_SECONDS = 2 * ACK_WAIT + 2
MAX_DELIVER = 2


class Cable:
    """A TCP relay between a pool and Postgres that can be unplugged: unplugging cuts every
    connection through it and closes new ones on arrival, as when the server has gone away."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.plugged = True
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Cable:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unplug()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def listen_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def unplug(self) -> None:
        self.plugged = False
        for writer in list(self._links):
            writer.close()

    def plug(self) -> None:
        self.plugged = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.plugged:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._links -= {writer, up_writer}

    def url(self, database_url: str) -> str:
        """`database_url` through this cable."""
        parts = urlsplit(database_url)
        netloc = (
            f"{parts.username}@127.0.0.1:{self.listen_port}"
            if parts.username
            else f"127.0.0.1:{self.listen_port}"
        )
        return urlunsplit(parts._replace(netloc=netloc))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def cable(infra: Stack) -> AsyncIterator[Cable]:
    address = urlsplit(infra.database_url)
    assert address.hostname is not None and address.port is not None
    async with Cable(address.hostname, address.port) as relay:
        yield relay


@pytest_asyncio.fixture(loop_scope="session")
async def tables(pool: db.DeadlinePool) -> db.DeadlinePool:
    """The test's schema with the shared dead_letters table and an effect keyed on the message id."""
    async with pool.connection() as conn:
        await conn.execute(dead_letters.TABLE_DDL)
        await conn.execute("CREATE TABLE effects (message_id text PRIMARY KEY, body text NOT NULL)")
    return pool


async def _stream(js: JetStreamContext) -> tuple[str, str]:
    root = "test.consume." + uuid.uuid4().hex[:8]
    stream = "T" + uuid.uuid4().hex[:10].upper()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{root}.>"]))
    return stream, root


async def _dead_letter_rows(pool: db.DeadlinePool) -> list[tuple[str, str, str, bytes, str]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT consumer, subject, message_id, payload, error FROM dead_letters ORDER BY id"
        )
        return [(c, s, m, bytes(p), e) for c, s, m, p, e in await cursor.fetchall()]


async def _effects(pool: db.DeadlinePool) -> set[str]:
    async with pool.connection() as conn:
        return {r[0] for r in await (await conn.execute("SELECT message_id FROM effects")).fetchall()}


async def _until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Polls `check` until it is true, failing after `seconds`."""
    give_up = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < give_up, f"not within {seconds} s"
        await asyncio.sleep(0.1)


async def test_failing_message_is_retried_then_dead_lettered_and_stored(infra, tables) -> None:
    handled: list[str] = []
    attempts: dict[str, int] = {}

    async def handle(msg: Msg) -> None:
        body = msg.data.decode()
        attempts[body] = attempts.get(body, 0) + 1
        if body == "poison" or (body == "flaky" and attempts[body] == 1):
            raise ValueError(f"cannot handle {body}")
        handled.append(body)

    async def dead_letter(msg: Msg, exc: Exception) -> None:
        await dead_letters.record(tables, "t", msg, exc)

    async with AsyncExitStack() as stack:
        nc = await broker.connect(stack, infra.nats_url, "test")
        js = nc.jetstream()
        stream, root = await _stream(js)
        for body in ("ok", "flaky", "poison"):
            await js.publish(f"{root}.x", body.encode(), headers={"Nats-Msg-Id": body})
        task = asyncio.create_task(
            broker.consume(
                js,
                stream=stream,
                durable="t",
                subject=f"{root}.>",
                handle=handle,
                dead_letter=dead_letter,
                max_deliver=MAX_DELIVER,
            )
        )

        async def stored() -> bool:
            return bool(await _dead_letter_rows(tables))

        await _until(stored, 20)
        task.cancel()
    assert sorted(handled) == ["flaky", "ok"]
    assert attempts == {"ok": 1, "flaky": 2, "poison": MAX_DELIVER}
    assert await _dead_letter_rows(tables) == [
        ("t", f"{root}.x", "poison", b"poison", "ValueError: cannot handle poison")
    ]


async def test_a_database_outage_longer_than_the_deliveries_is_waited_out(
    infra, schema, tables, cable
) -> None:
    """Every message fails with what a real pool raises while its database is away, for longer than
    max_deliver deliveries would last; none is dead-lettered, none is even redelivered to the other
    consumer (the batch is kept in progress), and each one's effect is made once it is back."""
    failures: list[type[BaseException]] = []
    deliveries: list[tuple[str, int]] = []
    async with AsyncExitStack() as stack:
        away = await db.open_pool(stack, cable.url(infra.database_url), schema, size=2)
        nc = await broker.connect(stack, infra.nats_url, "test")
        js = nc.jetstream()
        stream, root = await _stream(js)

        async def handle(msg: Msg) -> None:
            deliveries.append((msg.data.decode(), msg.metadata.num_delivered))
            try:
                async with away.connection() as conn:
                    await conn.execute(
                        "INSERT INTO effects (message_id, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (msg.headers["Nats-Msg-Id"] if msg.headers else "", msg.data.decode()),
                    )
            except Exception as exc:
                failures.append(type(exc))
                raise

        async def dead_letter(msg: Msg, exc: Exception) -> None:
            await dead_letters.record(away, "t", msg, exc)

        cable.unplug()
        bodies = [f"event-{n}" for n in range(3)]
        for body in bodies:
            await js.publish(f"{root}.x", body.encode(), headers={"Nats-Msg-Id": body})
        # Two consumers on one durable, as inventory's two replicas are: a message one of them
        # holds without telling JetStream would be redelivered to the other after ack_wait.
        tasks = [
            asyncio.create_task(
                broker.consume(
                    js,
                    stream=stream,
                    durable="t",
                    subject=f"{root}.>",
                    handle=handle,
                    dead_letter=dead_letter,
                    max_deliver=MAX_DELIVER,
                    ack_wait=ACK_WAIT,
                )
            )
            for _ in range(2)
        ]
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself
        cable.plug()

        async def all_made() -> bool:
            return await _effects(tables) == set(bodies)

        await _until(all_made, 20)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # The outage was real and lasted: many attempts, each failing the way a pool whose server
    # is away fails.
    assert len(failures) >= 5, failures
    assert set(failures) <= {psycopg.OperationalError, PoolTimeout}, failures
    assert await _dead_letter_rows(tables) == []
    # One delivery each: retried in place, never redelivered.
    assert {b for b, _ in deliveries} == set(bodies)
    assert {n for _, n in deliveries} == {1}, deliveries


async def test_a_dead_letter_is_stored_across_a_database_outage(infra, schema, tables, cable) -> None:
    """The database goes away just as a poison message is given up on: the dead letter waits for
    it and is stored once, and the message is not delivered again."""
    attempts: list[int] = []
    failures: list[type[BaseException]] = []
    async with AsyncExitStack() as stack:
        away = await db.open_pool(stack, cable.url(infra.database_url), schema, size=2)
        nc = await broker.connect(stack, infra.nats_url, "test")
        js = nc.jetstream()
        stream, root = await _stream(js)

        async def handle(msg: Msg) -> None:
            attempts.append(msg.metadata.num_delivered)
            if msg.metadata.num_delivered == MAX_DELIVER:
                cable.unplug()
                asyncio.get_running_loop().call_later(ACK_WAIT + 2, cable.plug)
            raise ValueError("not an event")

        async def dead_letter(msg: Msg, exc: Exception) -> None:
            try:
                await dead_letters.record(away, "t", msg, exc)
            except Exception as failure:
                failures.append(type(failure))
                raise

        await js.publish(f"{root}.x", b"\xff poison", headers={"Nats-Msg-Id": "poison"})
        task = asyncio.create_task(
            broker.consume(
                js,
                stream=stream,
                durable="t",
                subject=f"{root}.>",
                handle=handle,
                dead_letter=dead_letter,
                max_deliver=MAX_DELIVER,
                ack_wait=ACK_WAIT,
            )
        )

        async def stored() -> bool:
            return bool(await _dead_letter_rows(tables))

        await _until(stored, 30)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert attempts == [1, MAX_DELIVER]
    assert failures and set(failures) <= {psycopg.OperationalError, PoolTimeout}, failures
    assert await _dead_letter_rows(tables) == [
        ("t", f"{root}.x", "poison", b"\xff poison", "ValueError: not an event")
    ]


async def test_a_consumer_that_leaves_hands_its_batch_back_at_once(infra) -> None:
    """A replica stopped mid-batch: what it fetched and had not finished goes to the other consumer
    now, not after ack_wait (30 s here, longer than the test allows)."""
    first_started = asyncio.Event()
    by_second: list[str] = []

    async def stuck(msg: Msg) -> None:
        first_started.set()
        await asyncio.Event().wait()  # handling never ends: the process leaves meanwhile

    async def handle(msg: Msg) -> None:
        by_second.append(msg.data.decode())

    async def dead_letter(msg: Msg, exc: Exception) -> None:
        raise AssertionError("nothing here is poison")

    async with AsyncExitStack() as stack:
        nc = await broker.connect(stack, infra.nats_url, "test")
        js = nc.jetstream()
        stream, root = await _stream(js)
        bodies = [f"m{n}" for n in range(5)]
        for body in bodies:
            await js.publish(f"{root}.x", body.encode(), headers={"Nats-Msg-Id": body})

        def consumer(handler: broker.Handler) -> asyncio.Task[None]:
            return asyncio.create_task(
                broker.consume(
                    js,
                    stream=stream,
                    durable="t",
                    subject=f"{root}.>",
                    handle=handler,
                    dead_letter=dead_letter,
                    ack_wait=30.0,
                )
            )

        leaving = consumer(stuck)
        await asyncio.wait_for(first_started.wait(), 10)
        leaving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leaving
        staying = consumer(handle)

        async def all_taken() -> bool:
            return sorted(set(by_second)) == bodies

        try:
            await _until(all_taken, 10)
        finally:
            staying.cancel()
