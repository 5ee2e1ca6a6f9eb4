"""A cancelling load, beside the purchase load: buyers who create an order, pay every other one,
then cancel it, as careful clients (each mutation has a request id and a failed call is retried
with it). A purchase alone never releases stock or refunds; this one makes orders call Release and
RefundCharge, so that their lost answers can be tested under load."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.purchase_load import FINISH_SECONDS, RETRY_PAUSE, RETRY_STATUS


def _payment_under_way(reply: httpx.Response) -> bool:
    """A cancel refused while the order's payment is under way: a careful client tries again."""
    try:
        return reply.status_code == 400 and reply.json()["details"][0]["reason"] == "PAYMENT_IN_PROGRESS"
    except (ValueError, KeyError, IndexError, TypeError):
        return False


@dataclass
class Cancelled:
    requests: int = 0
    failed: int = 0
    # Order id -> whether it was paid before it was cancelled.
    orders: dict[str, bool] = field(default_factory=dict)
    unfinished: int = 0


class CancelLoad:
    def __init__(self, public_url: str, event_id: str, user_ids: list[str], buyers: int = 2):
        self.event_id, self.user_ids, self.buyers = event_id, user_ids, buyers
        self.client = httpx.AsyncClient(base_url=public_url, timeout=30, trust_env=False)
        self.tally = Cancelled()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> CancelLoad:
        self._tasks = [asyncio.create_task(self._buyer(n)) for n in range(self.buyers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> Cancelled:
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []
        await self.client.aclose()
        return self.tally

    async def _buyer(self, n: int) -> None:
        user_id = self.user_ids[n % len(self.user_ids)]
        rounds = n
        while not self._stopping.is_set():
            rounds += 1
            body = {"userId": user_id, "eventId": self.event_id, "ticketType": "GA", "quantity": 1}
            created = await self._until_answered("/v1/orders", {"requestId": uuid.uuid4().hex, **body})
            if created is None or created.status_code != 200:
                continue
            order_id = created.json()["id"]
            paid = False
            if rounds % 2 == 0:
                answer = await self._until_answered(
                    f"/v1/orders/{order_id}:pay", {"requestId": uuid.uuid4().hex, "paymentMethod": "CARD"}
                )
                paid = (
                    answer is not None
                    and answer.status_code == 200
                    and answer.json()["status"] == "CONFIRMED"
                )
            cancelled = await self._until_answered(
                f"/v1/orders/{order_id}:cancel", {"requestId": uuid.uuid4().hex}
            )
            if cancelled is not None and cancelled.status_code == 200:
                self.tally.orders[order_id] = paid
            else:
                self.tally.unfinished += 1

    async def _until_answered(self, path: str, body: dict[str, Any]) -> httpx.Response | None:
        give_up: float | None = None
        while True:
            if give_up is None and self._stopping.is_set():
                give_up = time.monotonic() + FINISH_SECONDS
            if give_up is not None and time.monotonic() > give_up:
                return None
            self.tally.requests += 1
            try:
                reply: httpx.Response | None = await self.client.post(path, json=body)
            except httpx.HTTPError:
                reply = None
            if reply is not None and reply.status_code not in RETRY_STATUS and not _payment_under_way(reply):
                return reply
            self.tally.failed += 1
            await asyncio.sleep(RETRY_PAUSE)
