"""Metrics that really move: a purchase, a replay, a sold-out answer, an expired hold and a poison
message, each read as a delta of the business counters on every process's /metrics (summed over
inventory replicas, filtered by this test's event id where the metric has one). And `make up`'s
table lists every process's metrics endpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import httpx
import nats
from rich.console import Console

from stack.console import endpoints_table, metrics_endpoints
from tests.e2e.readings import metric_total, samples
from tests.e2e.shop import eventually, new_event, new_user

ORDER_SERVICE = "ticketing.orders.v1.OrderService"


class _Deltas:
    """Reads a set of counters now, and later says how far each moved."""

    def __init__(self, stack, wanted: Mapping[str, tuple[str, str, dict[str, str]]]):
        self.stack = stack
        self.wanted = wanted
        self.before: dict[str, float] = {}

    async def read(self) -> dict[str, float]:
        return {
            key: await metric_total(self.stack, service, name, **labels)
            for key, (service, name, labels) in self.wanted.items()
        }

    async def start(self) -> None:
        self.before = await self.read()

    async def moved(self) -> dict[str, float]:
        now = await self.read()
        return {key: now[key] - self.before[key] for key in self.wanted}


async def test_a_purchase_a_replay_and_a_sold_out_answer_move_the_business_counters(
    stack, rest: httpx.AsyncClient
) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 3)
    ev = {"event_id": event_id, "ticket_type": "GA"}
    deltas = _Deltas(
        stack,
        {
            "reserved": ("inventory", "tickets_reserved_total", ev),
            "sold": ("inventory", "tickets_sold_total", ev),
            "sold_out": ("inventory", "reservation_conflicts_total", {**ev, "kind": "sold_out"}),
            "replays": (
                "orders",
                "idempotent_replays_total",
                {"grpc_service": ORDER_SERVICE, "grpc_method": "CreateOrder"},
            ),
            "approved": ("payments", "payments_total", {"method": "CARD", "result": "approved"}),
            "created_ok": (
                "orders",
                "grpc_server_handled_total",
                {"grpc_method": "CreateOrder", "grpc_code": "OK"},
            ),
            "published": ("orders", "outbox_published_total", {"outbox": "orders"}),
            "notified": ("notify", "notifications_sent_total", {"kind": "ORDER_CONFIRMED"}),
            "lag_observed": ("notify", "notification_lag_seconds_count", {"kind": "ORDER_CONFIRMED"}),
        },
    )
    await deltas.start()

    body = {"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": 2}
    key = {"Idempotency-Key": f"metrics-{uuid.uuid4().hex}"}
    first = await rest.post("/v1/orders", json=body, headers=key)
    assert first.status_code == 200, first.text
    again = await rest.post("/v1/orders", json=body, headers=key)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    sold_out = await rest.post("/v1/orders", json=body)  # 2 wanted, 1 left
    assert sold_out.status_code == 409, sold_out.text
    order_id = first.json()["id"]
    paid = await rest.post(f"/v1/orders/{order_id}:pay", json={"paymentMethod": "CARD"})
    assert paid.status_code == 200, paid.text

    async def notified() -> bool:
        notes = (await rest.get("/v1/notifications", params={"orderId": order_id})).json()
        return len(notes.get("notifications", [])) == 1

    await eventually(notified, 20)

    async def sold() -> bool:  # inventory sells the hold when order.confirmed reaches it
        return (await deltas.moved())["sold"] == 2

    await eventually(sold, 20)
    moved = await deltas.moved()
    # Exact where the event id labels the series; at least where other tests may add to it.
    assert moved["reserved"] == 2
    assert moved["sold"] == 2
    assert moved["sold_out"] == 1
    assert moved["replays"] >= 1
    assert moved["approved"] >= 1
    assert moved["created_ok"] >= 2  # the first answer and its replay
    assert moved["published"] >= 1
    assert moved["notified"] >= 1
    assert moved["lag_observed"] >= 1


async def test_an_expired_hold_counts_an_expiry_and_its_released_tickets(
    stack, rest: httpx.AsyncClient
) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 2)
    ev = {"event_id": event_id, "ticket_type": "GA"}
    deltas = _Deltas(
        stack,
        {
            "expired": ("orders", "orders_expired_total", ev),
            "released": ("inventory", "tickets_released_total", ev),
            "told": ("notify", "notifications_sent_total", {"kind": "ORDER_EXPIRED"}),
        },
    )
    await deltas.start()
    reply = await rest.post(
        "/v1/orders", json={"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": 2}
    )
    assert reply.status_code == 200, reply.text

    async def expired_and_released() -> bool:
        moved = await deltas.moved()
        return moved["expired"] == 1 and moved["released"] == 2 and moved["told"] >= 1

    await eventually(expired_and_released, 45)  # HOLD_TTL_SECONDS=20 in the e2e stack


async def test_a_poison_message_is_redelivered_then_counted_as_a_dead_letter(stack) -> None:
    """notify retries a message it cannot read (NOTIFY_MAX_DELIVER=3), then keeps it as a dead
    letter: both show on its /metrics, labelled by consumer."""
    deltas = _Deltas(
        stack,
        {
            "redelivered": ("notify", "jetstream_redeliveries_total", {"consumer": "notify"}),
            "dead": ("notify", "jetstream_dead_letters_total", {"consumer": "notify"}),
        },
    )
    await deltas.start()
    nc = await nats.connect(stack.nats_url)
    try:
        # order.cancelled: notify reads it, inventory does not subscribe to it.
        await nc.jetstream().publish(
            "ticketing.orders.order.cancelled.v1",
            b"\xff\xff not an order event",
            headers={"Nats-Msg-Id": f"poison-{uuid.uuid4().hex}"},
        )
    finally:
        await nc.close()

    async def dead_lettered() -> bool:
        moved = await deltas.moved()
        return moved["dead"] >= 1 and moved["redelivered"] >= 2

    await eventually(dead_lettered, 45)


async def test_every_process_metrics_endpoint_is_listed_and_answers(stack) -> None:
    endpoints = metrics_endpoints(stack)
    assert set(endpoints) == {*stack.replicas(), "envoy"}
    console = Console(record=True, width=400)
    console.print(endpoints_table(stack))
    table = console.export_text()
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        replies = await asyncio.gather(*(http.get(url) for url in endpoints.values()))
    for (name, url), reply in zip(endpoints.items(), replies, strict=True):
        assert url in table, f"{name}'s metrics endpoint is not in the `make up` table"
        assert reply.status_code == 200, (name, url)
        assert "# TYPE" in reply.text, (name, url)
    assert f"{stack.envoy_admin_url}/stats/prometheus" in table


async def test_latency_buckets_resolve_milliseconds(stack) -> None:
    """p95/p99 of calls that take a few ms need buckets below and around them."""
    buckets = {
        float(labels["le"])
        for name, labels, _ in await samples(stack, "orders")
        if name == "grpc_server_handling_seconds_bucket"
    }
    assert {0.001, 0.005, 0.01, 0.05, 0.1} <= buckets
