"""NotificationService and notify's consumer through the real mesh: order events published straight
to JetStream become exactly one notification each, poison becomes a dead letter, and the public
listener lists them by user or order."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
import httpx
import nats
import psycopg
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2
from nats.js import JetStreamContext

from ticketing.notify.v1 import notification_service_pb2 as pb
from ticketing.notify.v1 import notification_service_pb2_grpc as pb_grpc
from ticketing.orders.v1 import events_pb2
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketmesh import broker
from ticketmesh.db import conninfo

CONFIRMED = "ticketing.orders.order.confirmed.v1"
EXPIRED = "ticketing.orders.order.expired.v1"
# Bounds every wait below; the consumer normally answers within a second.
WAIT_SECONDS = 15.0


@pytest_asyncio.fixture(loop_scope="session")
async def js(stack) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        await broker.ensure_streams(js)  # whether or not notify got there first
        yield js
    finally:
        await nc.close()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _event(message_type: Any, order_id: str, user_id: str, kind: str) -> Any:
    occur = Timestamp()
    occur.GetCurrentTime()
    order = order_pb2.Order(
        id=order_id,
        user_id=user_id,
        event_id="EVNT-ROCK-2025",
        ticket_type="GA",
        quantity=2,
        amount=money_pb2.Money(currency_code="EUR", units=99, nanos=500_000_000),
    )
    return message_type(
        id=f"{order_id}.{kind}", occur_time=occur, order=order, user_email="ada@example.com", user_name="Ada"
    )


async def _publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str | None = None) -> None:
    await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id or _unique("msg")})


async def _confirm(js: JetStreamContext, user_id: str | None = None) -> tuple[str, str]:
    """Publishes an OrderConfirmed for a new order; returns (order id, event id)."""
    order_id = _unique("ORD")
    event = _event(events_pb2.OrderConfirmed, order_id, user_id or _unique("USR"), "confirmed")
    await _publish(js, CONFIRMED, event.SerializeToString(), event.id)
    return order_id, event.id


async def _notifications(rest: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    reply = await rest.get("/v1/notifications", params=filters)
    assert reply.status_code == 200, reply.text
    return list(reply.json().get("notifications", []))


async def _wait_for(rest: httpx.AsyncClient, count: int = 1, **filters: str) -> list[dict[str, Any]]:
    """Polls until at least `count` notifications match, within WAIT_SECONDS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        found = await _notifications(rest, **filters)
        if len(found) >= count or loop.time() > deadline:
            return found
        await asyncio.sleep(0.1)


def _emails_sent(stack, order_id: str) -> int:
    """ "email sent" log lines for one order, over every notify replica."""
    sent = 0
    for replica in stack.replicas("notify"):
        for line in stack.process(replica).log_path.read_text().splitlines():
            if order_id in line and line.startswith("{"):
                record = json.loads(line)
                sent += record["message"] == "email sent" and record.get("order_id") == order_id
    return sent


async def test_a_confirmed_order_gets_its_confirmation(stack, rest: httpx.AsyncClient, js) -> None:
    user_id = _unique("USR")
    order_id, event_id = await _confirm(js, user_id)
    [n] = await _wait_for(rest, orderId=order_id)
    assert n["id"] == event_id
    assert n["kind"] == "ORDER_CONFIRMED"
    assert (n["userId"], n["orderId"], n["recipient"]) == (user_id, order_id, "ada@example.com")
    assert n["subject"] == "Your tickets for EVNT-ROCK-2025 are confirmed"
    for part in (order_id, "2 x GA tickets", "99.50 EUR"):
        assert part in n["body"]
    assert n["createTime"]
    async with grpc.aio.insecure_channel(stack.public_grpc) as channel:
        reply = await pb_grpc.NotificationServiceStub(channel).ListNotifications(
            pb.ListNotificationsRequest(user_id=user_id), timeout=10
        )
    assert [x.id for x in reply.notifications] == [event_id]
    assert _emails_sent(stack, order_id) == 1


async def test_an_expired_order_gets_its_notice(rest: httpx.AsyncClient, js) -> None:
    order_id = _unique("ORD")
    event = _event(events_pb2.OrderExpired, order_id, _unique("USR"), "expired")
    await _publish(js, EXPIRED, event.SerializeToString())
    [n] = await _wait_for(rest, orderId=order_id)
    assert n["kind"] == "ORDER_EXPIRED"
    assert "expired" in n["subject"]


async def test_an_event_delivered_again_makes_one_notification(stack, rest: httpx.AsyncClient, js) -> None:
    user_id = _unique("USR")
    order_id = _unique("ORD")
    payload = _event(events_pb2.OrderConfirmed, order_id, user_id, "confirmed").SerializeToString()
    # The same event three times: twice under new message ids (JetStream's dedup cannot see
    # those), once under a repeated one (it drops that one).
    for msg_id in (f"{order_id}.a", f"{order_id}.b", f"{order_id}.b"):
        await _publish(js, CONFIRMED, payload, msg_id)
    # The consumer takes the stream in order: once a later event is in, the copies were handled.
    marker, _ = await _confirm(js, user_id)
    await _wait_for(rest, orderId=marker)
    assert len(await _notifications(rest, orderId=order_id)) == 1
    assert _emails_sent(stack, order_id) == 1


async def test_poison_becomes_a_dead_letter_and_the_consumer_goes_on(
    stack, rest: httpx.AsyncClient, js
) -> None:
    poison_id = _unique("poison")
    await _publish(js, CONFIRMED, b"\xff\xff\xff\xff not an order event", poison_id)
    loop = asyncio.get_running_loop()
    # Bounded redelivery with backoff (2 s, then 4 s) comes first, so this wait is longer.
    deadline = loop.time() + 45
    row = None
    async with await psycopg.AsyncConnection.connect(conninfo(stack.database_url), autocommit=True) as conn:
        while row is None and loop.time() < deadline:
            cursor = await conn.execute(
                "SELECT subject, payload, error FROM notify.dead_letters WHERE message_id = %s", (poison_id,)
            )
            row = await cursor.fetchone()
            if row is None:
                await asyncio.sleep(0.25)
    assert row is not None, "no dead letter within 45 s"
    subject, payload, error = row
    assert subject == CONFIRMED
    assert bytes(payload) == b"\xff\xff\xff\xff not an order event"
    assert "PoisonMessage" in error
    order_id, _ = await _confirm(js)
    assert len(await _wait_for(rest, orderId=order_id)) == 1


async def test_listing_without_a_filter_is_refused(rest: httpx.AsyncClient) -> None:
    reply = await rest.get("/v1/notifications")
    assert reply.status_code == 400
    assert "user_id or order_id is required" in reply.json()["message"]


async def test_paging_walks_a_users_notifications_once_newest_first(rest: httpx.AsyncClient, js) -> None:
    user_id = _unique("USR")
    made = [(await _confirm(js, user_id))[1] for _ in range(5)]
    assert len(await _wait_for(rest, count=5, userId=user_id)) == 5
    seen: list[dict[str, Any]] = []
    token = ""
    while True:
        reply = await rest.get(
            "/v1/notifications", params={"userId": user_id, "pageSize": 2, "pageToken": token}
        )
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert len(page["notifications"]) <= 2
        seen += page["notifications"]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert sorted(n["id"] for n in seen) == sorted(made)
    times = [datetime.fromisoformat(n["createTime"]) for n in seen]
    assert times == sorted(times, reverse=True)
    # A token only continues the query it came from.
    first = (await rest.get("/v1/notifications", params={"userId": user_id, "pageSize": 2})).json()
    other = await rest.get(
        "/v1/notifications", params={"userId": _unique("USR"), "pageToken": first["nextPageToken"]}
    )
    assert other.status_code == 400
    assert "page_token" in other.text
