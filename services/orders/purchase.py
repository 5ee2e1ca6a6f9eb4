"""The purchase: create (reserve), pay (charge), cancel (release, refund). Each step is safe to
repeat, and each leaves in the tables what a restarted process needs to finish or undo it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from services.orders import keys
from services.orders.domain import Status, charge_key, check_quantity, new_order_id, not_payable
from services.orders.metrics import PAYMENT_CALLS
from services.orders.store import OrdersStore
from ticketing.inventory.v1 import reservation_service_pb2 as res
from ticketing.inventory.v1 import reservation_service_pb2_grpc as res_grpc
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2, reservation_strategy_pb2
from ticketmesh import context, mesh
from ticketmesh.errors import Aborted, FailedPrecondition, ServiceError, Unavailable
from ticketmesh.values import Money

# Final answers are stored with the key and given again; anything else lets a retry redo the work.
# Envoy's answer when the payments breaker is open (the gateway is ejected, panic threshold 0), and
# how long it stays open (the cluster's base_ejection_time in envoy/envoy.yaml.j2).
BREAKER_OPEN = "no healthy upstream"
BREAKER_OPEN_SECONDS = 5
_FINAL_CODES = {grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}


@dataclass(frozen=True)
class Outcome:
    """An order, and whether it is a stored answer given again."""

    order: order_pb2.Order
    replayed: bool = False


class Purchase:
    def __init__(
        self,
        store: OrdersStore,
        reservations: res_grpc.ReservationServiceStub,
        payments: pay_grpc.PaymentServiceStub,
        hold_seconds: float,
        max_quantity: int,
        wake_relay: Callable[[], None],
    ):
        self.store = store
        self.reservations = reservations
        self.payments = payments
        self.hold_seconds = hold_seconds
        self.max_quantity = max_quantity
        self.wake_relay = wake_relay

    async def create(self, request: order_pb2.CreateOrderRequest, key: str, fingerprint: str) -> Outcome:
        check_quantity(request.quantity, self.max_quantity)
        order_id = new_order_id()
        if key:
            claim = await keys.claim(self.store.pool, "CreateOrder", key, fingerprint, order_id)
            if claim.error is not None:
                raise keys.StoredError(claim.error)
            if claim.replay is not None:
                return Outcome(order_pb2.Order.FromString(claim.replay), replayed=True)
            order_id = claim.resource_id
        try:
            await self.store.get_user(request.user_id)
            try:
                held = await self.reservations.Reserve(
                    res.ReserveRequest(
                        reservation_id=order_id,
                        event_id=request.event_id,
                        ticket_type=request.ticket_type,
                        quantity=request.quantity,
                        strategy=request.strategy,
                    )
                )
            except grpc.aio.AioRpcError as err:
                raise mesh.service_error(err) from None
            if held.state != res.Reservation.HELD:
                raise Aborted("this request's hold already ended; send a new request id", reason="HOLD_ENDED")
            order = order_pb2.Order(
                id=order_id,
                user_id=request.user_id,
                event_id=request.event_id,
                ticket_type=request.ticket_type,
                quantity=request.quantity,
                strategy=request.strategy or reservation_strategy_pb2.COMPARE_AND_SET,
                amount=Money.from_pb(held.unit_price).times(request.quantity).to_pb(),
            )
            async with self.store.pool.connection() as conn, conn.transaction():
                made = await self.store.insert_order(conn, order, self.hold_seconds)
                if key:
                    await keys.finish(conn, "CreateOrder", key, made.SerializeToString())
            return Outcome(made)
        except ServiceError as err:
            if key:
                if err.code in _FINAL_CODES:
                    await keys.finish_with_error(self.store.pool, "CreateOrder", key, err)
                else:
                    await keys.let_go(self.store.pool, "CreateOrder", key)
            raise
        except BaseException:
            # The database went away, or the call was cancelled: a retry must not wait for this claim.
            if key:
                keys.let_go_after(self.store.pool, "CreateOrder", key)
            raise

    async def pay(self, request: order_pb2.PayOrderRequest, key: str) -> Outcome:
        pay_key = key or new_order_id()  # without a key each call is its own attempt
        async with self.store.pool.connection() as conn, conn.transaction():
            order = await self.store.get_order(request.order_id, conn, lock=True)
            status = Status(order_pb2.Order.Status.Name(order.status))
            current_key = await self.store.pay_key(order.id, conn)
            if status is Status.CONFIRMED:
                if key and current_key == key:
                    return Outcome(order, replayed=True)
                raise not_payable(order.id, status, "it is already paid")
            if status is Status.PAYMENT_IN_PROGRESS and current_key != pay_key:
                raise Aborted("a payment for this order is under way", reason="PAYMENT_IN_PROGRESS")
            if status in (Status.CANCELLED, Status.EXPIRED):
                raise not_payable(order.id, status, f"it is {status.value.lower()}")
            if status is Status.PENDING_PAYMENT:
                if order.expire_time.ToSeconds() <= time.time():
                    raise not_payable(order.id, status, "its hold expired")
                order = await self.store.set_status(
                    conn,
                    order.id,
                    Status.PAYMENT_IN_PROGRESS,
                    pay_key=pay_key,
                    payment_method=payment_method_pb2.PaymentMethod.Name(request.payment_method),
                )
        try:
            charge = await self.payments.CreateCharge(
                pay.CreateChargeRequest(
                    key=charge_key(order.id, pay_key),
                    order_id=order.id,
                    amount=order.amount,
                    method=request.payment_method,
                )
            )
        except grpc.aio.AioRpcError as err:
            await self._back_to_payable(order.id, pay_key)
            failure = mesh.service_error(err)
            if failure.code == grpc.StatusCode.UNAVAILABLE or err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                breaker_open = err.details() == BREAKER_OPEN
                PAYMENT_CALLS.labels("breaker_open" if breaker_open else "unavailable").inc()
                raise Unavailable(
                    "the payment gateway is unavailable; the order stays payable, retry shortly",
                    reason="PAYMENTS_UNAVAILABLE",
                    retry_after=BREAKER_OPEN_SECONDS if breaker_open else 1,
                ) from None
            PAYMENT_CALLS.labels("error").inc()
            raise failure from None
        PAYMENT_CALLS.labels(pay.Charge.Status.Name(charge.status).lower()).inc()
        return Outcome(await self.settle(order.id, charge))

    async def settle(self, order_id: str, charge: Any) -> order_pb2.Order:
        """Applies a charge's answer to its order; also used when a bank transfer settles."""
        if charge.status == pay.Charge.PENDING:
            async with self.store.pool.connection() as conn:
                return await self.store.set_status(
                    conn, order_id, Status.PAYMENT_IN_PROGRESS, charge_id=charge.id
                )
        if charge.status == pay.Charge.DECLINED:
            await self._back_to_payable(order_id, charge.key.split(":", 1)[1])
            raise FailedPrecondition(
                "the card was declined; the order stays payable until it expires",
                reason="PAYMENT_DECLINED",
                metadata={"decline_reason": charge.decline_reason},
            )
        async with self.store.pool.connection() as conn, conn.transaction():
            order = await self.store.get_order(order_id, conn, lock=True)
            if order.status == order_pb2.Order.CONFIRMED:
                return order
            status = Status(order_pb2.Order.Status.Name(order.status))
            if status is not Status.PAYMENT_IN_PROGRESS:
                # Expired or cancelled meanwhile: the money goes back (the sweeper refunds it).
                await self.store.set_status(conn, order_id, status, charge_id=charge.id, refund_due=True)
            else:
                confirmed = await self.store.set_status(conn, order_id, Status.CONFIRMED, charge_id=charge.id)
                await self.store.announce(conn, confirmed, context.request_id.get())
        if status is not Status.PAYMENT_IN_PROGRESS:
            raise not_payable(order_id, status, "its hold ended before the payment was approved")
        self.wake_relay()
        return confirmed

    async def cancel(self, order_id: str) -> Outcome:
        async with self.store.pool.connection() as conn, conn.transaction():
            order = await self.store.get_order(order_id, conn, lock=True)
            if order.status == order_pb2.Order.CANCELLED:
                return Outcome(order, replayed=True)
            if order.status == order_pb2.Order.EXPIRED:
                raise FailedPrecondition(f"order {order_id} already expired", reason="ORDER_NOT_CANCELLABLE")
            if order.status == order_pb2.Order.PAYMENT_IN_PROGRESS:
                raise FailedPrecondition(
                    f"order {order_id} has a payment under way; cancel after it ends",
                    reason="PAYMENT_IN_PROGRESS",
                )
            paid = order.status == order_pb2.Order.CONFIRMED
            cancelled = await self.store.set_status(conn, order_id, Status.CANCELLED, refund_due=paid)
            await self.store.announce(conn, cancelled, context.request_id.get())
        self.wake_relay()
        await self.finish_owed(order_id, release=True, refund=paid, charge_id=order.charge_id)
        return Outcome(await self.store.get_order(order_id))

    async def finish_owed(self, order_id: str, *, release: bool, refund: bool, charge_id: str) -> None:
        """Releases stock and refunds as owed; each done step is marked, so a failure is retried."""
        if release:
            await self.reservations.Release(res.ReleaseRequest(reservation_id=order_id))
            await self.store.mark(order_id, stock_released=True)
        if refund and charge_id:
            await self.payments.RefundCharge(pay.RefundChargeRequest(charge_id=charge_id))
            await self.store.mark(order_id, refund_due=False, refunded=True)

    async def _back_to_payable(self, order_id: str, pay_key: str) -> None:
        await self.store.back_to_payable(order_id, pay_key)
