"""The durable consumer against real JetStream: ack after the effect, retry, then dead-letter."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from ticketmesh import broker


async def test_failing_message_is_retried_then_dead_lettered(infra) -> None:
    root = "test.consume." + uuid.uuid4().hex[:8]
    stream = "T" + uuid.uuid4().hex[:10].upper()
    handled: list[str] = []
    attempts: dict[str, int] = {}
    dead: list[str] = []
    done = asyncio.Event()

    async def handle(msg: Msg) -> None:
        body = msg.data.decode()
        attempts[body] = attempts.get(body, 0) + 1
        if body == "poison" or (body == "flaky" and attempts[body] == 1):
            raise ValueError(f"cannot handle {body}")
        handled.append(body)

    async def dead_letter(msg: Msg, exc: Exception) -> None:
        dead.append(msg.data.decode())
        done.set()

    async with AsyncExitStack() as stack:
        nc = await broker.connect(stack, infra.nats_url, "test")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{root}.>"]))
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
                max_deliver=2,
            )
        )
        await asyncio.wait_for(done.wait(), 20)
        task.cancel()
    assert sorted(handled) == ["flaky", "ok"]
    assert attempts == {"ok": 1, "flaky": 2, "poison": 2}
    assert dead == ["poison"]
