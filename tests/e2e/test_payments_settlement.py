"""Bank transfers settle: PENDING -> APPROVED after the mode's settle_delay_ms, with exactly one
ChargeSettled on JetStream (stream PAYMENTS) through the outbox; cards never settle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import nats
import psycopg
import pytest_asyncio
from google.type import money_pb2
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from ticketing.payments.v1 import events_pb2
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2 as method_pb2
from ticketmesh.db import conninfo

MODE = "/admin/v1/payments/mode"
SUBJECT = "ticketing.payments.charge.settled.v1"
SETTLE_DELAY_MS = 300
# Far more than the delay plus the settler's and the relay's polls; a bound, not a speed check.
WAIT_SECONDS = 10.0


@pytest_asyncio.fixture(loop_scope="session")
async def fast_settlement(stack) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with settle_delay_ms=300; back to all zeros afterwards (other tests share it)."""
    async with httpx.AsyncClient(base_url=stack.admin_api_url, timeout=30, trust_env=False) as admin:
        try:
            reply = await admin.post(MODE, json={"settleDelayMs": SETTLE_DELAY_MS})
            assert reply.status_code == 200, reply.text
            assert reply.json()["settleDelayMs"] == SETTLE_DELAY_MS
            yield admin
        finally:
            reply = await admin.post(MODE, json={})
            assert reply.status_code == 200, reply.text


@pytest_asyncio.fixture(loop_scope="session")
async def payments(stack) -> AsyncIterator[pay_grpc.PaymentServiceStub]:
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        yield pay_grpc.PaymentServiceStub(channel)


class Settlements:
    """Every ChargeSettled published from the moment it subscribed (an ordered consumer that
    delivers only new messages), by charge id."""

    def __init__(self) -> None:
        self.by_charge: dict[str, list[tuple[events_pb2.ChargeSettled, str]]] = {}
        self._arrived = asyncio.Condition()

    async def on_message(self, msg: Msg) -> None:
        event = events_pb2.ChargeSettled.FromString(msg.data)
        async with self._arrived:
            self.by_charge.setdefault(event.charge.id, []).append((event, (msg.headers or {})["Nats-Msg-Id"]))
            self._arrived.notify_all()

    async def wait_for(self, charge_id: str) -> events_pb2.ChargeSettled:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: charge_id in self.by_charge), WAIT_SECONDS)
            return self.by_charge[charge_id][0][0]


@pytest_asyncio.fixture(loop_scope="session")
async def settlements(stack) -> AsyncIterator[Settlements]:
    nc: Client = await nats.connect(stack.nats_url)
    try:
        seen = Settlements()
        sub = await nc.jetstream().subscribe(
            SUBJECT,
            stream="PAYMENTS",
            cb=seen.on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        yield seen
        await sub.unsubscribe()
    finally:
        await nc.close()


def _charge(method: int) -> pay.CreateChargeRequest:
    return pay.CreateChargeRequest(
        key=f"pay-{uuid.uuid4()}",
        order_id=f"ORD-{uuid.uuid4().hex[:12]}",
        amount=money_pb2.Money(currency_code="EUR", units=70, nanos=500_000_000),
        method=method,
    )


async def _settle_after_is_set(stack, charge_id: str) -> bool:
    async with await psycopg.AsyncConnection.connect(conninfo(stack.database_url)) as conn:
        row = await (
            await conn.execute(
                "SELECT settle_after IS NOT NULL FROM payments.charges WHERE id = %s", (charge_id,)
            )
        ).fetchone()
    assert row is not None
    return bool(row[0])


async def test_a_bank_transfer_settles_once_and_is_published(
    stack,
    fast_settlement: httpx.AsyncClient,
    settlements: Settlements,
    payments: pay_grpc.PaymentServiceStub,
) -> None:
    created = await payments.CreateCharge(_charge(method_pb2.BANK_TRANSFER))
    assert created.status == pay.Charge.PENDING
    assert await _settle_after_is_set(stack, created.id)

    event = await settlements.wait_for(created.id)
    assert event.id == f"settled-{created.id}"
    assert event.charge.status == pay.Charge.APPROVED
    assert event.charge.key == created.key
    assert event.charge.order_id == created.order_id
    assert event.charge.amount == created.amount
    assert event.occur_time == event.charge.update_time
    assert event.occur_time.ToDatetime() >= created.create_time.ToDatetime()

    settled = await payments.GetCharge(pay.GetChargeRequest(charge_id=created.id))
    assert settled.status == pay.Charge.APPROVED
    assert settled == event.charge

    # Give a second settlement every chance to show up: there must be none.
    await asyncio.sleep(1.0)
    assert [(e.id, mid) for e, mid in settlements.by_charge[created.id]] == [(event.id, event.id)]

    # Settled money can be given back like any approved charge.
    refunded = await payments.RefundCharge(pay.RefundChargeRequest(charge_id=created.id))
    assert refunded.status == pay.Charge.REFUNDED


async def test_a_card_charge_never_settles(
    stack,
    fast_settlement: httpx.AsyncClient,
    settlements: Settlements,
    payments: pay_grpc.PaymentServiceStub,
) -> None:
    card = await payments.CreateCharge(_charge(method_pb2.CARD))
    assert card.status == pay.Charge.APPROVED
    assert not await _settle_after_is_set(stack, card.id)
    # A bank transfer made after the card settles after it would have: once it is seen, the card
    # had its chance (one settler scans every due charge in the order they fell due).
    transfer = await payments.CreateCharge(_charge(method_pb2.BANK_TRANSFER))
    await settlements.wait_for(transfer.id)
    await asyncio.sleep(0.5)
    assert card.id not in settlements.by_charge
    assert await payments.GetCharge(pay.GetChargeRequest(charge_id=card.id)) == card


async def test_a_charge_due_while_payments_was_down_settles_once_after_restart(
    stack,
    fast_settlement: httpx.AsyncClient,
    settlements: Settlements,
    payments: pay_grpc.PaymentServiceStub,
) -> None:
    (replica,) = stack.replicas("payments")
    reply = await fast_settlement.post(MODE, json={"settleDelayMs": 600_000})
    assert reply.status_code == 200, reply.text
    created = await payments.CreateCharge(_charge(method_pb2.BANK_TRANSFER))
    assert created.status == pay.Charge.PENDING

    await asyncio.to_thread(stack.kill, replica)  # SIGKILL: a crash
    try:
        async with await psycopg.AsyncConnection.connect(conninfo(stack.database_url)) as conn:
            await conn.execute(
                "UPDATE payments.charges SET settle_after = now() WHERE id = %s", (created.id,)
            )
    finally:
        await asyncio.to_thread(stack.restart, replica)

    event = await settlements.wait_for(created.id)
    assert event.charge.status == pay.Charge.APPROVED
    await asyncio.sleep(1.0)
    assert len(settlements.by_charge[created.id]) == 1
    assert (
        await payments.GetCharge(pay.GetChargeRequest(charge_id=created.id))
    ).status == pay.Charge.APPROVED
