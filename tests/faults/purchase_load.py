"""A purchase load for fault tests: buyers create and pay orders through Envoy's REST listener, as
a careful client would: every mutation carries a request id, and a failed call (5xx, a dropped
connection) is retried with the same id until it gets an answer. So a fault may cost requests but
must never cost a purchase: the tests check that what the load was told matches the database.

Numbers it keeps: requests, failed requests (by what failed), the slowest request, and when the
failures happened, to state how long a fault was visible to clients."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# Answers a careful client retries with the same request id: the mesh or a service was away or
# busy, or the same request is still under way.
RETRY_STATUS = {409, 500, 502, 503, 504}
RETRY_PAUSE = 0.1
# How long a flow keeps retrying after the load is told to stop, before it is reported unfinished.
FINISH_SECONDS = 45.0


@dataclass
class Tally:
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failure_times: list[float] = field(default_factory=list)
    answer_times: list[float] = field(default_factory=list)
    slowest: float = 0.0
    slowest_call: str = ""
    confirmed: list[str] = field(default_factory=list)
    # Orders paid by bank transfer and told PAYMENT_IN_PROGRESS: confirmed later, by settlement.
    in_progress: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    sold_out: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def summary(self, fault_at: float | None = None) -> str:
        """One line for the test's output: what the load did and what the fault cost."""
        line = (
            f"{self.requests} requests, {self.failed} failed {dict(self.failures)}, "
            f"{len(self.confirmed)} orders confirmed, slowest request {self.slowest:.2f} s ({self.slowest_call})"
        )
        if fault_at is not None and self.failure_times:
            line += f", failures seen until {max(self.failure_times) - fault_at:.1f} s after the fault"
        return line

    def first_answer_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first successful answer after it."""
        later = [t for t in self.answer_times if t >= moment]
        return min(later) - moment if later else None


class PurchaseLoad:
    """`buyers` concurrent buyers, each buying one ticket after another for `event_id` until
    stopped; each flow is create (with a request id) then pay (with another, by `payment_method`),
    retried until done."""

    def __init__(
        self,
        public_url: str,
        event_id: str,
        user_ids: list[str],
        buyers: int = 8,
        payment_method: str = "CARD",
    ):
        self.event_id, self.user_ids, self.buyers = event_id, user_ids, buyers
        self.payment_method = payment_method
        self.client = httpx.AsyncClient(
            base_url=public_url,
            timeout=30,
            trust_env=False,
            limits=httpx.Limits(max_connections=buyers, max_keepalive_connections=buyers),
        )
        self.tally = Tally()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> PurchaseLoad:
        self._tasks = [asyncio.create_task(self._buyer(n)) for n in range(self.buyers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> Tally:
        """Lets every flow under way finish (or give up after FINISH_SECONDS), then returns."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []
        await self.client.aclose()
        return self.tally

    async def _buyer(self, n: int) -> None:
        user_id = self.user_ids[n % len(self.user_ids)]
        while not self._stopping.is_set():
            created = await self._until_answered(
                "POST",
                "/v1/orders",
                {
                    "requestId": uuid.uuid4().hex,
                    "userId": user_id,
                    "eventId": self.event_id,
                    "ticketType": "GA",
                    "quantity": 1,
                },
            )
            if created is None:
                continue
            if _sold_out(created):
                self.tally.sold_out += 1
                return
            if created.status_code != 200:
                self.tally.failures[f"create answered {created.status_code} {_reason(created)}"] += 1
                await asyncio.sleep(RETRY_PAUSE)
                continue
            order_id = created.json()["id"]
            paid = await self._until_answered(
                "POST",
                f"/v1/orders/{order_id}:pay",
                {"requestId": uuid.uuid4().hex, "paymentMethod": self.payment_method},
            )
            if paid is None:
                self.tally.unfinished.append(order_id)
            elif paid.status_code == 200 and paid.json()["status"] == "CONFIRMED":
                self.tally.confirmed.append(order_id)
            elif paid.status_code == 200 and paid.json()["status"] == "PAYMENT_IN_PROGRESS":
                self.tally.in_progress.append(order_id)
            else:
                self.tally.failures[f"pay answered {paid.status_code} {_reason(paid)}"] += 1

    async def _until_answered(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response | None:
        """The first answer that is not a retryable failure; None if there was none in time."""
        give_up: float | None = None
        while True:
            if give_up is None and self._stopping.is_set():
                give_up = time.monotonic() + FINISH_SECONDS
            if give_up is not None and time.monotonic() > give_up:
                return None
            started = time.monotonic()
            try:
                reply = await self.client.request(method, path, json=body)
                what = f"{reply.status_code} {_reason(reply)}"
            except httpx.HTTPError as exc:
                reply, what = None, type(exc).__name__
            elapsed = time.monotonic() - started
            self.tally.requests += 1
            if elapsed > self.tally.slowest:
                self.tally.slowest, self.tally.slowest_call = elapsed, f"{method} {path}: {what}"
            if reply is not None and (reply.status_code not in RETRY_STATUS or _sold_out(reply)):
                if reply.status_code == 200:
                    self.tally.answer_times.append(time.monotonic())
                return reply
            self.tally.failures[what] += 1
            self.tally.failure_times.append(time.monotonic())
            await asyncio.sleep(RETRY_PAUSE)


def _reason(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["details"][0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return reply.text[:60]


def _sold_out(reply: httpx.Response) -> bool:
    return reply.status_code == 409 and _reason(reply) == "SOLD_OUT"
