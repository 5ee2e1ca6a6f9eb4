"""Faults in the middle of a purchase: orders SIGKILLed while a payment is in flight (I2, I3), and
a NATS outage while orders are paid (I3 through the outbox)."""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg

from stack.invariants import violations
from tests.e2e.shop import eventually as _eventually
from tests.e2e.shop import new_event as _event
from tests.e2e.shop import new_order, payments_mode
from tests.e2e.shop import new_user as _user


async def _confirmations(rest: httpx.AsyncClient, order_id: str) -> int:
    reply = await rest.get("/v1/notifications", params={"orderId": order_id})
    assert reply.status_code == 200, reply.text
    return sum(1 for n in reply.json().get("notifications", []) if n["kind"] == "ORDER_CONFIRMED")


async def _approved_charges(database_url: str, order_id: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM payments.charges WHERE order_id = %s AND status = 'APPROVED'",
                (order_id,),
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_orders_sigkilled_while_a_payment_is_in_flight_charges_once(stack, rest) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 2)
    order_id = (await new_order(rest, user_id, event_id))["id"]
    pay_body = {"requestId": "k1", "paymentMethod": "CARD"}
    failed = 0
    async with payments_mode(stack, latencyMs=2000):
        in_flight = asyncio.create_task(rest.post(f"/v1/orders/{order_id}:pay", json=pay_body))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(stack.kill, "orders-1")
        try:
            first = await in_flight
            print(f"\nin-flight pay after SIGKILL: {first.status_code} {first.text[:200]}")
            if first.status_code != 200:
                failed += 1
        except httpx.HTTPError as exc:
            print(f"\nin-flight pay after SIGKILL: {type(exc).__name__}")
            failed += 1
        await asyncio.to_thread(stack.restart, "orders-1")

    deadline = time.monotonic() + 15
    while True:
        try:
            reply = await rest.post(f"/v1/orders/{order_id}:pay", json=pay_body)
        except httpx.HTTPError as exc:
            reply = None
            note = type(exc).__name__
        else:
            if reply.status_code == 200:
                break
            note = f"{reply.status_code} {reply.text[:200]}"
        failed += 1
        print(f"retry failed: {note}")
        assert time.monotonic() < deadline, f"pay never succeeded after the restart: {note}"
        assert reply is None or reply.status_code in (409, 503, 502, 504), note
        await asyncio.sleep(0.3)
    print(f"failed pay requests: {failed}")

    assert reply.json()["status"] == "CONFIRMED", reply.text
    assert (await rest.get(f"/v1/orders/{order_id}")).json()["status"] == "CONFIRMED"
    assert await _approved_charges(stack.database_url, order_id) == 1

    async def one_confirmation() -> bool:
        return await _confirmations(rest, order_id) == 1

    await _eventually(one_confirmation, 15)

    async def invariants_hold() -> bool:
        return await violations(stack.database_url, [event_id]) == []

    await _eventually(invariants_hold, 15)
    assert await _confirmations(rest, order_id) == 1
    assert await violations(stack.database_url, [event_id]) == []


async def test_orders_paid_during_a_nats_outage_are_each_confirmed_once(stack, rest) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 20)
    outage_started = time.monotonic()
    await asyncio.to_thread(stack.terminate, "nats")
    try:
        order_ids = []
        for n in range(20):
            order_id = (await new_order(rest, user_id, event_id))["id"]
            paid = await rest.post(
                f"/v1/orders/{order_id}:pay", json={"requestId": f"nats-{n}", "paymentMethod": "CARD"}
            )
            assert paid.status_code == 200, paid.text
            assert paid.json()["status"] == "CONFIRMED", paid.text
            order_ids.append(order_id)
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - outage_started)))
    finally:
        await asyncio.to_thread(stack.restart, "nats")
    restarted = time.monotonic()
    print(f"\nNATS down {restarted - outage_started:.1f} s; 20 orders paid meanwhile")

    async def all_confirmed_once() -> bool:
        counts = await asyncio.gather(*(_confirmations(rest, o) for o in order_ids))
        return all(c == 1 for c in counts)

    await _eventually(all_confirmed_once, 30)
    print(f"every order had its one confirmation {time.monotonic() - restarted:.1f} s after NATS returned")

    async def invariants_hold() -> bool:
        return await violations(stack.database_url, [event_id]) == []

    await _eventually(invariants_hold, 30)
    print(f"invariants held {time.monotonic() - restarted:.1f} s after NATS returned")
    counts = await asyncio.gather(*(_confirmations(rest, o) for o in order_ids))
    assert counts == [1] * 20, counts
    assert await violations(stack.database_url, [event_id]) == []
