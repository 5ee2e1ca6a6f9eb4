"""Small REST steps the purchase tests share: a buyer, an event, an order, its stock, the payment
gateway's mode, and waiting for a state."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx


async def new_user(rest: httpx.AsyncClient) -> str:
    reply = await rest.post(
        "/v1/users", json={"email": f"fan-{uuid.uuid4().hex[:8]}@example.com", "name": "Fan"}
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


async def new_event(rest: httpx.AsyncClient, capacity: int) -> str:
    """An event with one ticket type, GA, at EUR 50.50."""
    reply = await rest.post(
        "/v1/events",
        json={
            "displayName": "Purchase test",
            "ticketTypes": [
                {
                    "name": "GA",
                    "price": {"currencyCode": "EUR", "units": "50", "nanos": 500000000},
                    "capacity": capacity,
                }
            ],
        },
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


async def new_order(
    rest: httpx.AsyncClient, user_id: str, event_id: str, quantity: int = 1
) -> dict[str, Any]:
    """A GA order, as the API answers it."""
    reply = await rest.post(
        "/v1/orders", json={"userId": user_id, "eventId": event_id, "ticketType": "GA", "quantity": quantity}
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@asynccontextmanager
async def payments_mode(stack: Any, **mode: float) -> AsyncIterator[None]:
    """The payment gateway misbehaves as `mode` says inside the block, and is normal again after,
    whatever happens. Payments caches its mode for up to 0.5 s, so each change is waited out."""
    async with httpx.AsyncClient(base_url=stack.admin_api_url, trust_env=False) as admin:
        reply = await admin.post("/admin/v1/payments/mode", json=mode)
        assert reply.status_code == 200, reply.text
        await asyncio.sleep(0.6)
        try:
            yield
        finally:
            await admin.post("/admin/v1/payments/mode", json={})
            await asyncio.sleep(0.6)


async def stock(rest: httpx.AsyncClient, event_id: str) -> tuple[int, int, int]:
    """(available, held, sold) of the event's GA tickets."""
    [s] = (await rest.get(f"/v1/events/{event_id}/availability")).json()["ticketTypes"]
    return s["available"], s["held"], s["sold"]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Polls until `check` holds, for at most `seconds`; then asserts it once more."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    assert await check()
