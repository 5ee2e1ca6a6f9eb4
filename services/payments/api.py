"""Payments' gRPC servicers: translate protos to domain calls and back; no SQL here."""

from __future__ import annotations

import asyncio
import random

import grpc
from loguru import logger

from services.payments import metrics
from services.payments.domain import (
    ChargeRequest,
    Method,
    Mode,
    RandomSource,
    Status,
    charge_page,
    check_amount,
    choose_outcome,
    gateway_fails,
    gateway_unavailable,
    new_charge_id,
    settle_delay_ms,
)
from services.payments.events import charge_pb
from services.payments.store import PaymentsStore
from ticketing.payments.v1 import payment_admin_service_pb2 as admin
from ticketing.payments.v1 import payment_admin_service_pb2_grpc as admin_grpc
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2
from ticketmesh import context as call_context
from ticketmesh import idempotency
from ticketmesh.errors import ServiceError
from ticketmesh.idempotency import reused
from ticketmesh.values import Money


def _mode_pb(mode: Mode) -> admin.Mode:
    return admin.Mode(
        failure_rate=mode.failure_rate,
        decline_rate=mode.decline_rate,
        latency_ms=mode.latency_ms,
        settle_delay_ms=mode.settle_delay_ms,
    )


def charge_request_from_pb(request: pay.CreateChargeRequest) -> ChargeRequest:
    a = request.amount
    return ChargeRequest(
        key=request.key,
        order_id=request.order_id,
        amount=Money.from_pb(a),
        method=Method(payment_method_pb2.PaymentMethod.Name(request.method)),
    )


class PaymentApi(pay_grpc.PaymentServiceServicer):
    """The mesh-only PaymentService: a simulated gateway, idempotent by charge key."""

    def __init__(self, store: PaymentsStore, rng: RandomSource | None = None):
        self.store = store
        self.rng: RandomSource = rng or random.Random()

    async def CreateCharge(
        self, request: pay.CreateChargeRequest, context: grpc.aio.ServicerContext
    ) -> pay.Charge:
        ask = charge_request_from_pb(request)
        call_context.order_id.set(ask.order_id)
        check_amount(ask.amount)
        method = ask.method.value
        existing = await self.store.find_by_key(ask.key)
        if existing is not None:
            if not existing.answers(ask):
                raise reused(ask.key)
            metrics.PAYMENTS.labels(method, _replay_result(existing.status)).inc()
            await idempotency.mark_replayed(context)
            logger.info("charge {} given again ({})", existing.id, existing.status.value)
            return charge_pb(existing)

        mode = await self.store.mode()
        if mode.latency_ms:
            await asyncio.sleep(mode.latency_ms / 1000)
        # Before anything is written: a failed call leaves no trace, so a retry with its key is safe.
        if gateway_fails(mode, self.rng):
            metrics.PAYMENTS.labels(method, "unavailable").inc()
            logger.info("charge failed: the gateway is unavailable (injected)")
            raise gateway_unavailable()
        outcome = choose_outcome(ask.method, mode, self.rng)
        # A BANK_TRANSFER charge stays PENDING until the settler approves it, settle_delay_ms from
        # now, and publishes ticketing.payments.charge.settled.v1 through the outbox.
        try:
            charge, replayed = await self.store.insert_charge(
                new_charge_id(),
                ask,
                outcome,
                settle_delay_ms(ask.method, mode),
                call_context.request_id.get(),
            )
        except ServiceError as err:
            if err.reason == "ORDER_ALREADY_CHARGED":
                metrics.PAYMENTS.labels(method, "already_charged").inc()
            raise
        if replayed:
            metrics.PAYMENTS.labels(method, _replay_result(charge.status)).inc()
            await idempotency.mark_replayed(context)
        else:
            metrics.PAYMENTS.labels(method, charge.status.value.lower()).inc()
        logger.bind(charge_id=charge.id, payment_method=method).info(
            "charge {}{}", charge.status.value.lower(), " (given again)" if replayed else ""
        )
        return charge_pb(charge)

    async def RefundCharge(
        self, request: pay.RefundChargeRequest, context: grpc.aio.ServicerContext
    ) -> pay.Charge:
        refunded = await self.store.refund(request.charge_id)
        call_context.order_id.set(refunded.order_id)
        logger.bind(charge_id=refunded.id).info("charge refunded")
        return charge_pb(refunded)

    async def GetCharge(self, request: pay.GetChargeRequest, context: grpc.aio.ServicerContext) -> pay.Charge:
        if request.WhichOneof("lookup") == "key":
            return charge_pb(await self.store.get_by_key(request.key))
        return charge_pb(await self.store.get(request.charge_id))

    async def VoidCharge(
        self, request: pay.VoidChargeRequest, context: grpc.aio.ServicerContext
    ) -> pay.Charge:
        call_context.order_id.set(request.order_id)
        charge, voided = await self.store.void(
            new_charge_id(), request.key, request.order_id, call_context.request_id.get()
        )
        metrics.VOIDS.labels("voided" if voided else "found").inc()
        logger.bind(charge_id=charge.id).info(
            "charge key given up: {}", "voided" if voided else f"found {charge.status.value}"
        )
        return charge_pb(charge)

    async def ListCharges(
        self, request: pay.ListChargesRequest, context: grpc.aio.ServicerContext
    ) -> pay.ListChargesResponse:
        after = request.updated_after
        page = charge_page(
            (after.seconds, after.nanos) if request.HasField("updated_after") else None,
            request.after_id,
            (request.updated_before.seconds, request.updated_before.nanos),
            request.page_size,
        )
        return pay.ListChargesResponse(charges=[charge_pb(c) for c in await self.store.list_changed(page)])


def _replay_result(status: Status) -> str:
    """payments_total's result for a CreateCharge answered by a stored charge: `voided` when its
    key had been given up (nothing taken), else `replayed`."""
    return "voided" if status is Status.VOIDED else "replayed"


class PaymentAdminApi(admin_grpc.PaymentAdminServiceServicer):
    """PaymentAdminService (admin listener only): failure injection for the simulated gateway."""

    def __init__(self, store: PaymentsStore):
        self.store = store

    async def SetMode(self, request: admin.SetModeRequest, context: grpc.aio.ServicerContext) -> admin.Mode:
        wanted = Mode(request.failure_rate, request.decline_rate, request.latency_ms, request.settle_delay_ms)
        return _mode_pb(await self.store.set_mode(wanted.with_defaults()))

    async def GetMode(self, request: admin.GetModeRequest, context: grpc.aio.ServicerContext) -> admin.Mode:
        return _mode_pb(await self.store.mode())
