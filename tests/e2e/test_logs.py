"""Correlated logs: the x-request-id Envoy gives a call travels through every hop and every JetStream
message, so one grep of it in the processes' JSON logs tells that request's whole story, order id
included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.shop import eventually, new_event, new_user


def _lines(stack, request_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every JSON log line carrying `request_id`, by service (from each process's log file)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(stack.log_dir).glob("*.log")):
        for raw in path.read_text(errors="replace").splitlines():
            if request_id not in raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and line.get("request_id") == request_id:
                found.setdefault(str(line.get("service", path.stem)), []).append(line)
    return found


async def _story(
    stack, request_id: str, services: set[str], order_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Waits until each of `services` has logged a line with the request id and the order id (the
    consumers log when the message reaches them), then returns the lines."""

    async def told() -> bool:
        lines = _lines(stack, request_id)
        return all(any(line.get("order_id") == order_id for line in lines.get(s, ())) for s in services)

    await eventually(told, 20)
    return _lines(stack, request_id)


async def _order(rest: httpx.AsyncClient, user_id: str, event_id: str) -> httpx.Response:
    reply = await rest.post(
        "/v1/orders", json={"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": 1}
    )
    assert reply.status_code == 200, reply.text
    return reply


async def test_one_request_id_finds_a_card_purchase_in_every_service(stack, rest: httpx.AsyncClient) -> None:
    user_id, event_id = await new_user(rest), await new_event(rest, 5)
    created = await _order(rest, user_id, event_id)
    order_id = created.json()["id"]
    create_id = created.headers["x-request-id"]

    # The create: orders logged it, and inventory logged the hold it made for it (a mesh call).
    lines = await _story(stack, create_id, {"orders", "inventory"}, order_id)
    assert any(line["message"].startswith("order created") for line in lines["orders"])
    assert any("held" in line["message"] for line in lines["inventory"])

    paid = await rest.post(f"/v1/orders/{order_id}:pay", json={"paymentMethod": "CARD"})
    assert paid.status_code == 200, paid.text
    pay_id = paid.headers["x-request-id"]
    assert pay_id != create_id

    # The payment: orders, payments (a mesh call), then through the outbox and JetStream to
    # inventory (the hold is sold) and notify (the email).
    lines = await _story(stack, pay_id, {"orders", "payments", "inventory", "notify"}, order_id)
    messages = {service: [line["message"] for line in found] for service, found in lines.items()}
    assert "order paid and confirmed" in messages["orders"]
    assert "charge approved" in messages["payments"]
    assert "1 ticket(s) sold" in messages["inventory"]
    assert "email sent" in messages["notify"]
    # The consumers say which message they were handling.
    for service, consumer in (("inventory", "inventory"), ("notify", "notify")):
        assert any(line.get("consumer") == consumer for line in lines[service])
    # Each line also names the process it came from.
    assert all(line.get("replica") for found in lines.values() for line in found)


async def test_a_bank_transfer_settled_later_keeps_the_pay_request_id(stack, rest: httpx.AsyncClient) -> None:
    """payments' charge.settled event carries the id of the call that made the charge, so orders'
    confirmation, inventory's sale and notify's email, all after the call ended, still carry it."""
    user_id, event_id = await new_user(rest), await new_event(rest, 5)
    order_id = (await _order(rest, user_id, event_id)).json()["id"]
    paid = await rest.post(f"/v1/orders/{order_id}:pay", json={"paymentMethod": "BANK_TRANSFER"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "PAYMENT_IN_PROGRESS"
    pay_id = paid.headers["x-request-id"]

    lines = await _story(stack, pay_id, {"orders", "payments", "inventory", "notify"}, order_id)
    messages = {service: [line["message"] for line in found] for service, found in lines.items()}
    assert "bank transfer settled" in messages["payments"]
    assert "order paid by bank transfer and confirmed" in messages["orders"]
    assert any(
        line.get("subject") == "ticketing.payments.charge.settled.v1" and line.get("consumer") == "orders"
        for line in lines["orders"]
    )
    assert "email sent" in messages["notify"]
