"""Small REST steps the purchase tests share: a buyer, an event, its stock, and waiting for a state."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

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
