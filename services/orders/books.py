"""Closing the books: payments' charges read against orders, in order of their last change, so that
money taken for no confirmed order is given back and a confirmed order whose charge is not
approved is flagged loudly. A safety net behind the purchase's own rules, not part of its path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loguru import logger

from services.orders import metrics
from services.orders.domain import OwedKind
from services.orders.store import OrdersStore
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc

_PAGE = 200
_MAX_PAGES_PER_PASS = 20


def _ts(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


class Books:
    """Reads every charge once, `grace_seconds` after its last change (what is still settling by
    the purchase's own rules is left to them), every `interval_seconds`."""

    def __init__(
        self,
        store: OrdersStore,
        payments: pay_grpc.PaymentServiceStub,
        interval_seconds: float,
        grace_seconds: float,
    ):
        self.store = store
        self.payments = payments
        self.interval_seconds = interval_seconds
        self.grace_seconds = grace_seconds
        self._next_pass = 0.0

    async def reconcile_if_due(self) -> int:
        now = asyncio.get_running_loop().time()
        if now < self._next_pass:
            return 0
        self._next_pass = now + self.interval_seconds
        try:
            return await self.reconcile()
        except grpc.aio.AioRpcError as err:  # payments away: the next pass starts where this stopped
            logger.warning(
                "books: payments did not answer ({}); next pass in {} s",
                err.code().name,
                self.interval_seconds,
            )
            return 0

    async def reconcile(self) -> int:
        """One pass from where the last one stopped; returns how many charges it read."""
        after_time, after_id = await self.store.books_cursor()
        before = datetime.now(UTC) - timedelta(seconds=self.grace_seconds)
        read = 0
        for _ in range(_MAX_PAGES_PER_PASS):
            page = await self.payments.ListCharges(
                pay.ListChargesRequest(
                    updated_after=_ts(after_time),
                    after_id=after_id,
                    updated_before=_ts(before),
                    page_size=_PAGE,
                )
            )
            if not page.charges:
                break
            orders = await self.store.find_orders(sorted({c.order_id for c in page.charges}))
            for charge in page.charges:
                await self._check(charge, orders.get(charge.order_id))
            last = page.charges[-1]
            after_time, after_id = last.update_time.ToDatetime(tzinfo=UTC), last.id
            await self.store.move_books_cursor(after_time, after_id)
            read += len(page.charges)
            if len(page.charges) < _PAGE:
                break
        return read

    async def _check(self, charge: pay.Charge, order: order_pb2.Order | None) -> None:
        pays_it = (
            order is not None and order.status == order_pb2.Order.CONFIRMED and order.charge_id == charge.id
        )
        if charge.status == pay.Charge.APPROVED:
            if pays_it:
                return
            async with self.store.pool.connection() as conn, conn.transaction():
                if order is not None and order.status == order_pb2.Order.PAYMENT_IN_PROGRESS:
                    # Its outcome is not applied yet (long past any call): check it now.
                    _, attempt = await self.store.lock_for_payment(conn, order.id)
                    if attempt.charge_key:
                        await self.store.owe(conn, OwedKind.CHECK_PAYMENT, order.id, attempt.charge_key)
                    if attempt.charge_key == charge.key:
                        return
                await self.store.owe(conn, OwedKind.REFUND_CHARGE, charge.order_id, charge.id)
            metrics.BOOKS_FINDINGS.labels("orphan_charge").inc()
            state = "missing" if order is None else order_pb2.Order.Status.Name(order.status)
            logger.bind(order_id=charge.order_id, charge_id=charge.id).warning(
                "books: charge {} took money for order {} which is {}: refund owed",
                charge.id,
                charge.order_id,
                state,
            )
        elif pays_it:
            metrics.BOOKS_FINDINGS.labels("unpaid_confirmed").inc()
            logger.bind(order_id=charge.order_id, charge_id=charge.id).error(
                "books: order {} is CONFIRMED but its charge {} is {}",
                charge.order_id,
                charge.id,
                pay.Charge.Status.Name(charge.status),
            )
