"""The purchase: create (reserve), pay (charge), cancel (release, refund). Each step is safe to
repeat, each leaves in the tables what a restarted process needs to finish or undo it, and a mesh
call whose answer did not come back is an unknown outcome, never taken for a failure: it is
settled by the key the call was made with."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from loguru import logger

from services.orders import keys
from services.orders.domain import (
    CREATE_ORDER,
    CREATE_ORDER_UNKEYED,
    OwedKind,
    Status,
    charge_key,
    check_quantity,
    is_free,
    new_order_id,
    not_payable,
)
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

# Envoy's answer when the payments breaker is open (the gateway is ejected, panic threshold 0), and
# how long it stays open (the cluster's base_ejection_time in envoy/envoy.yaml.j2).
BREAKER_OPEN = "no healthy upstream"
BREAKER_OPEN_SECONDS = 5
# Final answers are stored with the key and given again; anything else lets a retry redo the work.
_FINAL_CODES = {grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}
# The gateway's own word that it failed before writing anything (payments' injected outage).
_GATEWAY_WROTE_NOTHING = ("PAYMENTS_UNAVAILABLE",)


@dataclass(frozen=True)
class Outcome:
    """An order, and whether it is a stored answer given again."""

    order: order_pb2.Order
    replayed: bool = False


@dataclass(frozen=True)
class Applied:
    """A charge's answer applied to its order: the order, and the buyer's error when the charge did
    not pay it (declined, voided, or the order ended first)."""

    order: order_pb2.Order
    refusal: ServiceError | None = None

    def outcome(self) -> Outcome:
        if self.refusal is not None:
            raise self.refusal
        return Outcome(self.order)


def outcome_unknown(order_id: str) -> Unavailable:
    return Unavailable(
        f"the payment of order {order_id} has an unknown outcome and is being checked with the gateway;"
        " retry with the same request id, or read the order",
        reason="PAYMENT_OUTCOME_UNKNOWN",
        retry_after=1,
    )


class Purchase:
    def __init__(
        self,
        store: OrdersStore,
        reservations: res_grpc.ReservationServiceStub,
        payments: pay_grpc.PaymentServiceStub,
        hold_seconds: float,
        max_quantity: int,
        payment_term_seconds: float,
        wake_relay: Callable[[], None],
    ):
        self.store = store
        self.reservations = reservations
        self.payments = payments
        self.hold_seconds = hold_seconds
        self.max_quantity = max_quantity
        self.payment_term_seconds = payment_term_seconds
        self.wake_relay = wake_relay

    # -- create -----------------------------------------------------------------------------------

    async def create(self, request: order_pb2.CreateOrderRequest, key: str, fingerprint: str) -> Outcome:
        """Claims the request's key (or, without one, a key of the server's own) before Reserve, so
        a hold whose answer was lost always has a trace: a retry finishes it, or it is undone."""
        check_quantity(request.quantity, self.max_quantity)
        method, order_id = (CREATE_ORDER if key else CREATE_ORDER_UNKEYED), new_order_id()
        key = key or order_id
        claim = await keys.claim(self.store.pool, method, key, fingerprint, order_id)
        if claim.error is not None:
            raise keys.StoredError(claim.error)
        if claim.replay is not None:
            return Outcome(order_pb2.Order.FromString(claim.replay), replayed=True)
        order_id = claim.resource_id
        try:
            order = await self._hold(request, order_id)
            if method == CREATE_ORDER_UNKEYED:
                return Outcome(
                    await self.store.insert_order_closing_claim(order, self.hold_seconds, method, key)
                )
            async with self.store.pool.connection() as conn, conn.transaction():
                made = await self.store.insert_order(conn, order, self.hold_seconds)
                await keys.finish(conn, method, key, made.SerializeToString())
            return Outcome(made)
        except ServiceError as err:
            if err.code in _FINAL_CODES:
                async with self.store.pool.connection() as conn:
                    await keys.finish_with_error(conn, method, key, err)
            elif method == CREATE_ORDER_UNKEYED:
                await self._give_up(method, key, order_id, err)  # nobody will retry it
            else:
                await keys.let_go(self.store.pool, method, key)  # the client's retry finishes it
            raise
        except BaseException as exc:
            # The database went away, or the call was cancelled: a retry must not wait for this claim.
            if method == CREATE_ORDER_UNKEYED:
                failure = ServiceError(f"the request failed: {type(exc).__name__}")
                keys.in_background(lambda: self._give_up(method, key, order_id, failure), "undo a hold")
            else:
                keys.let_go_after(self.store.pool, method, key)
            raise

    async def _hold(self, request: order_pb2.CreateOrderRequest, order_id: str) -> order_pb2.Order:
        """Reserves the tickets (the reservation id is the order id) and returns the order to insert."""
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
        return order_pb2.Order(
            id=order_id,
            user_id=request.user_id,
            event_id=request.event_id,
            ticket_type=request.ticket_type,
            quantity=request.quantity,
            strategy=request.strategy or reservation_strategy_pb2.COMPARE_AND_SET,
            amount=Money.from_pb(held.unit_price).times(request.quantity).to_pb(),
        )

    async def _give_up(self, method: str, key: str, order_id: str, err: ServiceError) -> None:
        """Ends a create that will not be finished: its claim answers the error from now on, and a
        release is owed (a hold that may have been made is given back; a Reserve still in flight
        finds the release's tombstone and takes nothing)."""
        async with self.store.pool.connection() as conn, conn.transaction():
            await self.store.owe(conn, OwedKind.RELEASE_STOCK, order_id)
            await keys.finish_with_error(conn, method, key, err)

    # -- pay --------------------------------------------------------------------------------------

    async def pay(self, request: order_pb2.PayOrderRequest, key: str) -> Outcome:
        pay_key = key or new_order_id()  # without a key each call is its own attempt
        method_name = payment_method_pb2.PaymentMethod.Name(request.payment_method)
        async with self.store.pool.connection() as conn, conn.transaction():
            order, attempt = await self.store.lock_for_payment(conn, request.order_id)
            status = Status(order_pb2.Order.Status.Name(order.status))
            if status is Status.CONFIRMED:
                if key and attempt.pay_key == key:
                    return Outcome(order, replayed=True)
                raise not_payable(order.id, status, "it is already paid")
            if status is Status.PAYMENT_IN_PROGRESS and attempt.pay_key != pay_key:
                raise Aborted("a payment for this order is under way", reason="PAYMENT_IN_PROGRESS")
            if status in (Status.CANCELLED, Status.EXPIRED):
                raise not_payable(order.id, status, f"it is {status.value.lower()}")
            if status is Status.PAYMENT_IN_PROGRESS:
                ckey = attempt.charge_key  # the same attempt again: the gateway answers it again
            else:
                if order.expire_time.ToSeconds() <= time.time():
                    raise not_payable(order.id, status, "its hold expired")
                if is_free(order.amount.units, order.amount.nanos):
                    confirmed = await self.store.set_status(
                        conn, order.id, Status.CONFIRMED, pay_key=pay_key, payment_method=method_name
                    )
                    await self.store.announce(conn, confirmed, context.request_id.get())
                    ckey = ""
                else:
                    ckey = charge_key(order.id, pay_key, attempt.attempts)
                    order = await self.store.set_status(
                        conn,
                        order.id,
                        Status.PAYMENT_IN_PROGRESS,
                        pay_key=pay_key,
                        charge_key=ckey,
                        payment_method=method_name,
                    )
        if not ckey:
            logger.info("free order confirmed without a charge")
            self.wake_relay()
            return Outcome(confirmed)
        try:
            charge = await self.payments.CreateCharge(
                pay.CreateChargeRequest(
                    key=ckey, order_id=order.id, amount=order.amount, method=request.payment_method
                )
            )
        except grpc.aio.AioRpcError as err:
            return await self._charge_failed(order.id, ckey, err)
        PAYMENT_CALLS.labels(pay.Charge.Status.Name(charge.status).lower()).inc()
        return (await self.apply_charge(order.id, charge)).outcome()

    async def _charge_failed(self, order_id: str, ckey: str, err: grpc.aio.AioRpcError) -> Outcome:
        """A definite failure makes the order payable again; any other is an unknown outcome: the
        order stays PAYMENT_IN_PROGRESS and is checked with the gateway by its charge key."""
        failure = mesh.service_error(err)
        if mesh.surely_not_done(err, not_done_reasons=_GATEWAY_WROTE_NOTHING):
            if failure.reason != "IDEMPOTENCY_KEY_REUSED":
                await self.store.back_to_payable(order_id, ckey)
            if failure.code == grpc.StatusCode.UNAVAILABLE:
                breaker_open = err.details() == BREAKER_OPEN
                PAYMENT_CALLS.labels("breaker_open" if breaker_open else "unavailable").inc()
                raise Unavailable(
                    "the payment gateway is unavailable; the order stays payable, retry shortly",
                    reason="PAYMENTS_UNAVAILABLE",
                    retry_after=BREAKER_OPEN_SECONDS if breaker_open else 1,
                ) from None
            PAYMENT_CALLS.labels("error").inc()
            raise failure from None
        PAYMENT_CALLS.labels("unknown").inc()
        logger.warning(
            "the charge's outcome is unknown ({}: {}); checking it", err.code().name, err.details()
        )
        async with self.store.pool.connection() as conn:
            await self.store.owe(conn, OwedKind.CHECK_PAYMENT, order_id, ckey)
        try:
            applied = await self.check_payment(order_id, ckey)
        except (grpc.aio.AioRpcError, ServiceError):
            raise outcome_unknown(order_id) from None  # the sweeper checks it again, within seconds
        return applied.outcome()

    async def check_payment(self, order_id: str, ckey: str) -> Applied:
        """Learns what became of the charge asked under `ckey`, and applies it. VoidCharge answers
        the charge if one was made, or voids the key so that none ever can be: after it the answer
        is definite either way, even if the first call is still in flight."""
        charge = await self.payments.VoidCharge(pay.VoidChargeRequest(key=ckey, order_id=order_id))
        applied = await self.apply_charge(order_id, charge)
        async with self.store.pool.connection() as conn:
            await self.store.owed_finished(conn, OwedKind.CHECK_PAYMENT, order_id, ckey)
        return applied

    async def apply_charge(self, order_id: str, charge: Any) -> Applied:
        """Applies a charge's answer to its order; also used when a bank transfer settles and when a
        payment is checked. Only the charge of the attempt under way pays the order: money taken
        otherwise (the order ended, or was paid another way) is owed back."""
        if charge.status == pay.Charge.PENDING:
            async with self.store.pool.connection() as conn, conn.transaction():
                order = await self.store.get_order(order_id, conn, lock=True)
                if order.status == order_pb2.Order.PAYMENT_IN_PROGRESS and not order.charge_id:
                    order = await self.store.await_transfer(
                        conn, order_id, charge.id, self.payment_term_seconds
                    )
            return Applied(order)
        if charge.status != pay.Charge.APPROVED:
            voided = charge.status != pay.Charge.DECLINED  # VOIDED, or taken and given back: spent
            await self.store.back_to_payable(order_id, charge.key, voided=voided)
            order = await self.store.get_order(order_id)
            if not voided:
                refusal: ServiceError = FailedPrecondition(
                    "the card was declined; the order stays payable until it expires",
                    reason="PAYMENT_DECLINED",
                    metadata={"decline_reason": charge.decline_reason},
                )
            else:
                refusal = Unavailable(
                    "the payment did not go through; the order stays payable, pay again",
                    reason="PAYMENTS_UNAVAILABLE",
                    retry_after=1,
                )
            return Applied(order, refusal)
        async with self.store.pool.connection() as conn, conn.transaction():
            order, attempt = await self.store.lock_for_payment(conn, order_id)
            if order.status == order_pb2.Order.CONFIRMED and order.charge_id == charge.id:
                return Applied(order)
            status = Status(order_pb2.Order.Status.Name(order.status))
            if status is Status.PAYMENT_IN_PROGRESS and attempt.charge_key == charge.key:
                confirmed = await self.store.set_status(conn, order_id, Status.CONFIRMED, charge_id=charge.id)
                await self.store.announce(conn, confirmed, context.request_id.get())
            else:
                await self.store.owe(conn, OwedKind.REFUND_CHARGE, order_id, charge.id)
                fields = (
                    {"refund_due": True} if order.charge_id else {"refund_due": True, "charge_id": charge.id}
                )
                await self.store.mark(conn, order_id, **fields)
        if status is not Status.PAYMENT_IN_PROGRESS or attempt.charge_key != charge.key:
            logger.warning(
                "charge {} does not pay order {} ({}): it is refunded", charge.id, order_id, status
            )
            return Applied(
                order, not_payable(order_id, status, "its hold ended before the payment was approved")
            )
        self.wake_relay()
        return Applied(confirmed)

    # -- cancel -----------------------------------------------------------------------------------

    async def cancel(self, order_id: str) -> Outcome:
        async with self.store.pool.connection() as conn, conn.transaction():
            order = await self.store.get_order(order_id, conn, lock=True)
            if order.status == order_pb2.Order.CANCELLED:
                return Outcome(order, replayed=True)
            if order.status == order_pb2.Order.EXPIRED:
                raise FailedPrecondition(f"order {order_id} already expired", reason="ORDER_NOT_CANCELLABLE")
            waiting_for_transfer = (
                bool(order.charge_id) and order.payment_method == payment_method_pb2.BANK_TRANSFER
            )
            if order.status == order_pb2.Order.PAYMENT_IN_PROGRESS and not waiting_for_transfer:
                raise FailedPrecondition(
                    f"order {order_id} has a payment under way; cancel after it ends",
                    reason="PAYMENT_IN_PROGRESS",
                )
            paid = order.status == order_pb2.Order.CONFIRMED and bool(order.charge_id)
            cancelled = await self.store.set_status(conn, order_id, Status.CANCELLED, refund_due=paid)
            await self.store.announce(conn, cancelled, context.request_id.get())
            await self.store.owe(conn, OwedKind.RELEASE_STOCK, order_id)
            if paid:
                await self.store.owe(conn, OwedKind.REFUND_CHARGE, order_id, order.charge_id)
        self.wake_relay()
        try:
            await self.finish(OwedKind.RELEASE_STOCK, order_id)
            if paid:
                await self.finish(OwedKind.REFUND_CHARGE, order_id, order.charge_id)
        except (grpc.aio.AioRpcError, ServiceError) as err:
            logger.warning("order cancelled; what it owes is finished later: {}", err)
        return Outcome(await self.store.get_order(order_id))

    # -- owed work --------------------------------------------------------------------------------

    async def finish(self, kind: OwedKind, order_id: str, charge_ref: str = "") -> None:
        """Does one piece of owed work and records it done; raises if it could not be done (the
        call's outcome is then unknown or refused, and the row stays owed)."""
        if kind is OwedKind.CHECK_PAYMENT:
            await self.check_payment(order_id, charge_ref)
            return
        if kind is OwedKind.RELEASE_STOCK:
            await self.reservations.Release(res.ReleaseRequest(reservation_id=order_id))
        else:
            await self.payments.RefundCharge(pay.RefundChargeRequest(charge_id=charge_ref))
        async with self.store.pool.connection() as conn, conn.transaction():
            if kind is OwedKind.RELEASE_STOCK:
                await self.store.mark(conn, order_id, stock_released=True)
            else:
                await self.store.mark_refunded(conn, order_id, charge_ref)
            await self.store.owed_finished(conn, kind, order_id, charge_ref)
