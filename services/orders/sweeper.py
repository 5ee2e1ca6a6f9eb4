"""Holds that end: expires unpaid orders (orders is the authority on expiry), and finishes work a
failure or a crash left owed: stock to release, refunds to make, payments stuck mid-way."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from loguru import logger

from services.orders import keys, metrics
from services.orders.purchase import Purchase
from services.orders.store import OrdersStore
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketmesh import context
from ticketmesh.errors import ServiceError

_BATCH = 100
# A payment is "stuck" when still under way this long after its hold ended: its process died.
_STUCK_GRACE_SECONDS = 30.0


class Sweeper:
    def __init__(self, store: OrdersStore, purchase: Purchase, interval: float, keep_keys_seconds: float):
        self.store = store
        self.purchase = purchase
        self.interval = interval
        self.keep_keys_seconds = keep_keys_seconds

    async def run(self) -> None:
        rounds = 0
        while True:
            await self.sweep_once()
            rounds += 1
            if rounds % 600 == 0:
                await self.store.forget_keys(self.keep_keys_seconds)
            await asyncio.sleep(self.interval)

    async def sweep_once(self) -> None:
        await self.expire_unpaid()
        await self.settle_owed()
        await self.reconcile_stuck_payments()
        await self.undo_abandoned_creates()

    async def expire_unpaid(self) -> int:
        async with self.store.pool.connection() as conn, conn.transaction():
            expired = await self.store.expire_due(conn, _BATCH)
            for order in expired:
                await self.store.announce(conn, order, "")
        for order in expired:
            metrics.ORDERS_EXPIRED.labels(order.event_id, order.ticket_type).inc()
            logger.bind(order_id=order.id, event_id=order.event_id, ticket_type=order.ticket_type).info(
                "order expired unpaid: its hold ended"
            )
        if expired:
            self.purchase.wake_relay()
        return len(expired)

    async def settle_owed(self) -> None:
        for order_id, release, refund, charge_id in await self.store.owed(_BATCH):
            token = context.order_id.set(order_id)  # its log lines and those of the calls it makes
            try:
                await self.purchase.finish_owed(order_id, release=release, refund=refund, charge_id=charge_id)
            except (grpc.aio.AioRpcError, ServiceError) as err:
                logger.warning("order {}: owed work not done yet, will retry: {}", order_id, err)
            finally:
                context.order_id.reset(token)

    async def reconcile_stuck_payments(self) -> None:
        """An order left PAYMENT_IN_PROGRESS by a dead process: ask payments what became of it."""
        for order_id, pay_key in await self.store.stuck_payments(_STUCK_GRACE_SECONDS, _BATCH):
            try:
                charge = await self.purchase.payments.GetCharge(
                    pay.GetChargeRequest(key=f"{order_id}:{pay_key}")
                )
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND:
                    continue
                await self.store.back_to_payable(order_id, pay_key)  # never charged: it may expire now
                continue
            with contextlib.suppress(ServiceError):  # declined (payable again) or refund owed: both recorded
                await self.purchase.settle(order_id, charge)

    async def undo_abandoned_creates(self) -> None:
        """A CreateOrder whose process died after reserving, and that nobody retried: let go of
        its stock (a release tombstone also stops a late retry from holding it again)."""
        for method, key, order_id in await self.store.stale_claims(keys.CLAIM_SECONDS * 4, _BATCH):
            try:
                await self.purchase.store.get_order(order_id)
                continue  # the order exists; only the answer was not stored
            except ServiceError:
                pass
            try:
                await self.purchase.reservations.Release(res.ReleaseRequest(reservation_id=order_id))
            except grpc.aio.AioRpcError:
                continue
            err = ServiceError("the request was abandoned before it finished; send a new request id")
            await keys.finish_with_error(self.store.pool, method, key, err)
