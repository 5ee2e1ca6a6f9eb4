"""The purchase over REST through Envoy: reserve, pay, cancel; idempotency; holds and stock."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from stack.invariants import violations
from tests.e2e.shop import eventually as _eventually
from tests.e2e.shop import new_event as _event
from tests.e2e.shop import new_order as _order
from tests.e2e.shop import new_user as _user
from tests.e2e.shop import payments_mode
from tests.e2e.shop import stock as _stock


async def test_buy_pay_and_the_stock_is_sold(rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 5)
    order = await _order(rest, user_id, event_id, 2)
    assert order["status"] == "PENDING_PAYMENT"
    assert order["amount"] == {"currencyCode": "EUR", "units": "101", "nanos": 0}
    assert await _stock(rest, event_id) == (3, 2, 0)

    paid = await rest.post(
        f"/v1/orders/{order['id']}:pay", json={"requestId": "pay-1", "paymentMethod": "CARD"}
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "CONFIRMED"

    async def sold() -> bool:
        return await _stock(rest, event_id) == (3, 0, 2)

    await _eventually(sold)  # inventory hears order.confirmed through JetStream

    again = await rest.post(
        f"/v1/orders/{order['id']}:pay", json={"requestId": "pay-1", "paymentMethod": "CARD"}
    )
    assert again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true"
    other = await rest.post(
        f"/v1/orders/{order['id']}:pay", json={"requestId": "pay-2", "paymentMethod": "CARD"}
    )
    assert other.status_code == 400
    assert other.json()["details"][0]["reason"] == "ORDER_NOT_PAYABLE"


async def test_one_request_id_makes_one_order(rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 10)
    body = {
        "requestId": uuid.uuid4().hex,
        "userId": user_id,
        "eventId": event_id,
        "ticketType": "GA",
        "quantity": 1,
    }
    replies = await asyncio.gather(*(rest.post("/v1/orders", json=body) for _ in range(50)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["id"] for r in replies}) == 1
    assert await _stock(rest, event_id) == (9, 1, 0)
    later = await rest.post("/v1/orders", json=body)
    assert later.headers.get("idempotent-replayed") == "true"
    reused = await rest.post("/v1/orders", json={**body, "quantity": 2})
    assert reused.status_code == 400
    assert reused.json()["details"][0]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    listed = (await rest.get("/v1/orders", params={"userId": user_id})).json()["orders"]
    assert [o["id"] for o in listed] == [replies[0].json()["id"]]


async def test_sold_out_is_409_and_nothing_oversold(rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 3)
    replies = await asyncio.gather(
        *(
            rest.post(
                "/v1/orders", json={"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": 1}
            )
            for _ in range(10)
        )
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [200] * 3 + [409] * 7
    assert {r.json()["details"][0]["reason"] for r in replies if r.status_code == 409} == {"SOLD_OUT"}
    assert await _stock(rest, event_id) == (0, 3, 0)


async def test_cancel_of_a_paid_order_refunds_and_returns_the_stock(rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 4)
    order = await _order(rest, user_id, event_id, 4)
    await rest.post(f"/v1/orders/{order['id']}:pay", json={"paymentMethod": "CARD"})
    cancelled = await rest.post(f"/v1/orders/{order['id']}:cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["refunded"] is True

    async def back() -> bool:
        return await _stock(rest, event_id) == (4, 0, 0)

    await _eventually(back)


async def test_a_declined_card_leaves_the_order_payable(stack, rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 2)
    order = await _order(rest, user_id, event_id, 1)
    async with payments_mode(stack, declineRate=1.0):
        declined = await rest.post(
            f"/v1/orders/{order['id']}:pay", json={"requestId": "d1", "paymentMethod": "CARD"}
        )
    assert declined.status_code == 400
    assert declined.json()["details"][0]["reason"] == "PAYMENT_DECLINED"
    assert (await rest.get(f"/v1/orders/{order['id']}")).json()["status"] == "PENDING_PAYMENT"
    assert await _stock(rest, event_id) == (1, 1, 0)
    paid = await rest.post(f"/v1/orders/{order['id']}:pay", json={"requestId": "d2", "paymentMethod": "CARD"})
    assert paid.json()["status"] == "CONFIRMED"


async def test_bad_order_input_is_400(rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 2)
    for quantity in (0, 11, 5000):
        reply = await rest.post(
            "/v1/orders",
            json={"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": quantity},
        )
        assert reply.status_code == 400, reply.text
    unknown = await rest.post(
        "/v1/orders", json={"userId": "usr_nope", "eventId": event_id, "ticketType": "GA", "quantity": 1}
    )
    assert unknown.status_code == 404
    assert (await rest.post("/v1/users", json={"email": "not-an-email", "name": "x"})).status_code == 400


async def test_bank_transfer_confirms_the_order_once_it_settles(stack, rest: httpx.AsyncClient) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 2)
    order = await _order(rest, user_id, event_id, 1)
    async with payments_mode(stack, settleDelayMs=300):
        paying = await rest.post(
            f"/v1/orders/{order['id']}:pay", json={"requestId": "bt", "paymentMethod": "BANK_TRANSFER"}
        )
    assert paying.status_code == 200, paying.text
    assert paying.json()["status"] == "PAYMENT_IN_PROGRESS"

    async def confirmed() -> bool:
        return (await rest.get(f"/v1/orders/{order['id']}")).json()["status"] == "CONFIRMED"

    await _eventually(confirmed)

    async def sold() -> bool:
        return await _stock(rest, event_id) == (1, 0, 1)

    await _eventually(sold)

    async def confirmed_once() -> bool:  # I2/I3: one charge, one confirmation
        return await violations(stack.database_url, [event_id]) == []

    await _eventually(confirmed_once)


async def test_invariants_hold_after_a_rush_paying_half(stack, rest: httpx.AsyncClient) -> None:
    """300 buyers for 100 seats: exactly 100 orders; half are paid, the rest expire; I1-I5 hold."""
    event_id = await _event(rest, 100)
    users = [await _user(rest) for _ in range(10)]
    replies = await asyncio.gather(
        *(
            rest.post(
                "/v1/orders",
                json={"userId": users[i % 10], "eventId": event_id, "ticketType": "GA", "quantity": 1},
            )
            for i in range(300)
        )
    )
    orders = [r.json() for r in replies if r.status_code == 200]
    assert len(orders) == 100
    assert sum(r.status_code == 409 for r in replies) == 200
    for order in orders[::2]:
        reply = await rest.post(f"/v1/orders/{order['id']}:pay", json={"paymentMethod": "CARD"})
        assert reply.status_code == 200, reply.text

    async def at_rest() -> bool:  # the unpaid half expires (HOLD_TTL_SECONDS=20 here)
        return await _stock(rest, event_id) == (50, 0, 50)

    await _eventually(at_rest, 45)

    async def all_hold() -> bool:  # I3 needs the confirmations to reach notify through JetStream
        return await violations(stack.database_url, [event_id]) == []

    await _eventually(all_hold, 20)


async def test_an_unpaid_order_expires_its_stock_returns_and_the_buyer_is_told(
    stack, rest: httpx.AsyncClient
) -> None:
    user_id, event_id = await _user(rest), await _event(rest, 3)
    order = await _order(rest, user_id, event_id, 3)
    assert await _stock(rest, event_id) == (0, 3, 0)

    async def expired() -> bool:
        return (await rest.get(f"/v1/orders/{order['id']}")).json()["status"] == "EXPIRED"

    await _eventually(expired, 40)  # HOLD_TTL_SECONDS=20 in the e2e stack

    async def returned_and_told() -> bool:
        notes = (await rest.get("/v1/notifications", params={"orderId": order["id"]})).json()["notifications"]
        return await _stock(rest, event_id) == (3, 0, 0) and [n["kind"] for n in notes] == ["ORDER_EXPIRED"]

    await _eventually(returned_and_told)
    late = await rest.post(f"/v1/orders/{order['id']}:pay", json={"paymentMethod": "CARD"})
    assert late.status_code == 400
    assert late.json()["details"][0]["reason"] == "ORDER_NOT_PAYABLE"
    assert await violations(stack.database_url, [event_id]) == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/users", b'{"email": '),
        ("POST", "/v1/users", b'{"email": 42, "name": ["x"]}'),
        ("POST", "/v1/users", b'{"email": "' + b"a" * 10_000 + b'@example.com", "name": "x"}'),
        ("POST", "/v1/orders", b'{"userId": "u", "eventId": "e", "ticketType": "GA", "quantity": "many"}'),
        (
            "POST",
            "/v1/orders",
            b'{"userId": "u", "eventId": "e", "ticketType": "GA", "quantity": 99999999999}',
        ),
        (
            "POST",
            "/v1/orders",
            b'{"userId": "u", "eventId": "e", "ticketType": "GA", "quantity": 1, "strategy": "FAST"}',
        ),
        (
            "POST",
            "/v1/orders",
            rb'{"userId": "\u0000\ud83c\udfab", "eventId": "", "ticketType": "GA", "quantity": 1}',
        ),
        ("POST", "/v1/orders/ord_nope:pay", b'{"paymentMethod": "CASH"}'),
        ("POST", "/v1/orders/ord_nope:pay", b'{"paymentMethod": "CARD"}'),
        ("POST", "/v1/orders/ord_nope:cancel", b"[]"),
        ("GET", "/v1/orders?pageToken=garbage", None),
        ("GET", "/v1/orders?pageSize=abc", None),
        ("GET", "/v1/users/usr_nope", None),
        ("GET", "/v1/notifications", None),
        ("GET", "/v1/notifications?orderId=x&pageToken=%%%", None),
    ],
)
async def test_hostile_input_on_the_purchase_api_is_4xx(
    rest: httpx.AsyncClient, method: str, path: str, body
) -> None:
    reply = await rest.request(method, path, content=body, headers={"content-type": "application/json"})
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
