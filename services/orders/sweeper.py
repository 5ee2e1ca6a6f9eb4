"""Holds that end: expires unpaid orders (orders is the authority on expiry), and finishes work a
failure, a crash or a lost reply left owed: stock to release, refunds to make, payments whose
outcome is unknown, creates abandoned mid-way."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from loguru import logger

from services.orders import keys, metrics
from services.orders.books import Books
from services.orders.domain import CREATE_ORDER, CREATE_ORDER_UNKEYED, OwedKind, owed_retry_delay
from services.orders.purchase import Purchase
from services.orders.store import OrdersStore, OwedWork
from ticketmesh import context
from ticketmesh.errors import ServiceError

_BATCH = 100
# A round of owed work stops taking batches after this long, so expiry is never starved.
_OWED_ROUND_SECONDS = 2.0
# How long a taken row of owed work is this process's (a mesh call is bounded well within it).
_OWED_LEASE_SECONDS = 30.0
# A card payment still under way with no outcome this long after it began: its process died
# mid-call (any call to the gateway has ended by then: Envoy's routes end calls after 15 s).
_UNRESOLVED_PAYMENT_SECONDS = keys.CLAIM_SECONDS + 5
# Rounds between the reaper's passes over old idempotency keys.
_FORGET_KEYS_EVERY = 600


@dataclass(frozen=True)
class OwedPolicy:
    """How owed work is retried: a doubling delay from `retry_seconds`, parked after `max_attempts`."""

    retry_seconds: float
    max_attempts: int


class Sweeper:
    def __init__(
        self,
        store: OrdersStore,
        purchase: Purchase,
        books: Books,
        interval: float,
        keep_keys_seconds: float,
        owed: OwedPolicy,
    ):
        self.store = store
        self.purchase = purchase
        self.books = books
        self.interval = interval
        self.keep_keys_seconds = keep_keys_seconds
        self.owed = owed

    async def run(self) -> None:
        rounds = 0
        while True:
            await self.sweep_once()
            rounds += 1
            if rounds % _FORGET_KEYS_EVERY == 0:
                await self.store.forget_keys(self.keep_keys_seconds)
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> None:
        await self.expire_unpaid()
        await self.undo_abandoned_creates()
        await self.store.check_unresolved_payments(_UNRESOLVED_PAYMENT_SECONDS)
        await self.finish_owed()
        await self.books.reconcile_if_due()

    async def expire_unpaid(self) -> int:
        async with self.store.pool.connection() as conn, conn.transaction():
            expired = await self.store.expire_due(conn, _BATCH)
            for order in expired:
                await self.store.announce(conn, order, "")
                await self.store.owe(conn, OwedKind.RELEASE_STOCK, order.id)
        for order in expired:
            metrics.ORDERS_EXPIRED.labels(order.event_id, order.ticket_type).inc()
            logger.bind(order_id=order.id, event_id=order.event_id, ticket_type=order.ticket_type).info(
                "order expired unpaid: its hold ended"
            )
        if expired:
            self.purchase.wake_relay()
        return len(expired)

    async def finish_owed(self) -> int:
        """Owed work that is due, oldest first, batch after batch for at most a round's time. A row
        that fails waits longer each time and is parked after its attempts, so rows that cannot be
        finished never stand in front of rows that can."""
        loop = asyncio.get_running_loop()
        stop_at, done = loop.time() + _OWED_ROUND_SECONDS, 0
        while loop.time() < stop_at:
            batch = await self.store.take_owed(_BATCH, _OWED_LEASE_SECONDS)
            for work in batch:
                await self._attempt(work)
            done += len(batch)
            if len(batch) < _BATCH:
                break
        return done

    async def _attempt(self, work: OwedWork) -> None:
        token = context.order_id.set(work.order_id)  # its log lines and those of the calls it makes
        try:
            await self.purchase.finish(work.kind, work.order_id, work.charge_ref)
        except (grpc.aio.AioRpcError, ServiceError) as err:
            attempts = work.attempts + 1
            park = attempts >= self.owed.max_attempts
            why = f"{err.code().name}: {err.details()}" if isinstance(err, grpc.aio.AioRpcError) else str(err)
            await self.store.owed_failed(
                work.id, why, owed_retry_delay(attempts, self.owed.retry_seconds), park
            )
            if park:
                metrics.OWED_PARKED.labels(work.kind.value).inc()
                logger.error(
                    "{} for order {} parked after {} attempts: {}", work.kind, work.order_id, attempts, why
                )
            else:
                logger.warning(
                    "{} for order {} not done yet (attempt {}): {}", work.kind, work.order_id, attempts, why
                )
        finally:
            context.order_id.reset(token)

    async def undo_abandoned_creates(self) -> None:
        """A CreateOrder that never finished (its process died, or its answer was lost) and that
        nobody retried: the claim is taken over, so a late retry waits for this, and the order is
        either recorded as the claim's answer (only the answer was not stored) or its hold is owed
        back. A claim without a client key is undone once its call is surely over; a client's key
        is left longer for the client's retry, which finishes the same order."""
        for methods, age in (
            ((CREATE_ORDER_UNKEYED,), keys.CLAIM_SECONDS),
            ((CREATE_ORDER,), keys.CLAIM_SECONDS * 4),
        ):
            for method, key, order_id in await self.store.stale_claims(methods, age, _BATCH):
                async with self.store.pool.connection() as conn, conn.transaction():
                    if not await keys.take_over(conn, method, key):
                        continue
                    found = await self.store.find_orders([order_id], conn)
                    if order_id in found:
                        await keys.finish(conn, method, key, found[order_id].SerializeToString())
                        continue
                    await self.store.owe(conn, OwedKind.RELEASE_STOCK, order_id)
                    err = ServiceError("the request was abandoned before it finished; send a new request id")
                    await keys.finish_with_error(conn, method, key, err)
                logger.bind(order_id=order_id).info("abandoned create undone: its hold is given back")
