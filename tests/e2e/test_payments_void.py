"""VoidCharge (a key given up after a lost reply) and ListCharges (the books, in order of last
change) on the real gateway, over Envoy's mesh listener."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from google.type import money_pb2
from grpc_status import rpc_status

from tests.e2e.readings import metric_total
from tests.e2e.shop import payments_mode
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2 as method_pb2
from ticketmesh.db import conninfo

CARD = method_pb2.CARD
# What an in-flight CreateCharge spends "at the bank" in the race tests: far longer than a void
# takes, so a void sent once the charge has started always lands first.
SLOW_BANK_MS = 1500


@pytest_asyncio.fixture(loop_scope="session")
async def payments(stack) -> AsyncIterator[pay_grpc.PaymentServiceStub]:
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        yield pay_grpc.PaymentServiceStub(channel)


def _order() -> str:
    return f"ORD-{uuid.uuid4().hex[:12]}"


def _key() -> str:
    return f"pay-{uuid.uuid4()}"


def _charge(key: str, order_id: str, units: int = 50) -> pay.CreateChargeRequest:
    return pay.CreateChargeRequest(
        key=key, order_id=order_id, amount=money_pb2.Money(currency_code="EUR", units=units), method=CARD
    )


def _void(key: str, order_id: str) -> pay.VoidChargeRequest:
    return pay.VoidChargeRequest(key=key, order_id=order_id)


def _took_money(charge: pay.Charge) -> bool:
    return charge.status in (pay.Charge.APPROVED, pay.Charge.PENDING, pay.Charge.REFUNDED)


async def _rows(stack, order_id: str) -> list[tuple[str, str, str]]:
    """(key, status, method) of every charge row for the order, straight from the database."""
    async with await psycopg.AsyncConnection.connect(conninfo(stack.database_url)) as conn:
        rows = await (
            await conn.execute(
                "SELECT key, status, coalesce(method, '') FROM payments.charges WHERE order_id = %s"
                " ORDER BY create_time",
                (order_id,),
            )
        ).fetchall()
    return [(str(k), str(s), str(m)) for k, s, m in rows]


def _violated_fields(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return [v.field for v in bad.field_violations]
    return []


def _at(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _time(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


MICRO = timedelta(microseconds=1)


# -- VoidCharge ------------------------------------------------------------------------------


async def test_a_voided_key_never_takes_money(stack, payments: pay_grpc.PaymentServiceStub) -> None:
    key, order_id = _key(), _order()
    voided = await payments.VoidCharge(_void(key, order_id))
    assert voided.status == pay.Charge.VOIDED
    assert (voided.key, voided.order_id) == (key, order_id)
    assert voided.id.startswith("ch_")
    assert voided.method == method_pb2.PAYMENT_METHOD_UNSPECIFIED
    assert (voided.amount.units, voided.amount.nanos) == (0, 0)
    assert voided.create_time == voided.update_time
    assert await payments.VoidCharge(_void(key, order_id)) == voided

    # The lost CreateCharge, arriving (or retried) after the void, is answered with the void.
    call = payments.CreateCharge(_charge(key, order_id))
    assert await call == voided
    assert ("idempotent-replayed", "true") in tuple(await call.initial_metadata())
    assert await payments.GetCharge(pay.GetChargeRequest(key=key)) == voided
    assert await _rows(stack, order_id) == [(key, "VOIDED", "")]

    # A void does not hold its order: the buyer can pay again under a new key.
    paid = await payments.CreateCharge(_charge(_key(), order_id))
    assert paid.status == pay.Charge.APPROVED
    assert [status for _, status, _ in await _rows(stack, order_id)] == ["VOIDED", "APPROVED"]


async def test_voiding_a_charged_key_answers_the_charge_as_it_is(
    stack, payments: pay_grpc.PaymentServiceStub
) -> None:
    key, order_id = _key(), _order()
    approved = await payments.CreateCharge(_charge(key, order_id))
    assert approved.status == pay.Charge.APPROVED
    assert await payments.VoidCharge(_void(key, order_id)) == approved
    refunded = await payments.RefundCharge(pay.RefundChargeRequest(charge_id=approved.id))
    assert await payments.VoidCharge(_void(key, order_id)) == refunded
    assert await _rows(stack, order_id) == [(key, "REFUNDED", "CARD")]


async def test_a_declined_key_is_answered_declined(stack, payments: pay_grpc.PaymentServiceStub) -> None:
    key, order_id = _key(), _order()
    async with payments_mode(stack, declineRate=1.0):
        declined = await payments.CreateCharge(_charge(key, order_id))
    assert declined.status == pay.Charge.DECLINED
    assert await payments.VoidCharge(_void(key, order_id)) == declined


async def test_a_void_that_lands_while_the_charge_is_at_the_bank_wins(
    stack, payments: pay_grpc.PaymentServiceStub
) -> None:
    key, order_id = _key(), _order()
    async with payments_mode(stack, latencyMs=SLOW_BANK_MS):
        started = await metric_total(
            stack, "payments", "grpc_server_started_total", grpc_method="CreateCharge"
        )
        began = time.monotonic()
        charging = asyncio.ensure_future(payments.CreateCharge(_charge(key, order_id)))
        # Void only once the charge is in flight (it has looked its key up and is at the bank).
        while (
            await metric_total(stack, "payments", "grpc_server_started_total", grpc_method="CreateCharge")
            <= started
        ):
            assert not charging.done(), charging
            await asyncio.sleep(0.01)
        voided = await payments.VoidCharge(_void(key, order_id))
        charged = await charging
        elapsed = time.monotonic() - began
    assert voided.status == pay.Charge.VOIDED
    # The charge came back from the bank, lost the key to the void, and answered it.
    assert charged == voided
    assert elapsed >= SLOW_BANK_MS / 1000
    assert await _rows(stack, order_id) == [(key, "VOIDED", "")]


async def test_voids_racing_charges_agree_whichever_wins(
    stack, payments: pay_grpc.PaymentServiceStub
) -> None:
    pairs = [(_key(), _order()) for _ in range(20)]
    before = {
        result: await metric_total(stack, "payments", "payments_voids_total", result=result)
        for result in ("voided", "found")
    }
    answers = await asyncio.gather(
        *(
            asyncio.gather(
                payments.CreateCharge(_charge(key, order_id)), payments.VoidCharge(_void(key, order_id))
            )
            for key, order_id in pairs
        )
    )
    for (key, order_id), (charged, voided) in zip(pairs, answers, strict=True):
        assert charged == voided, (charged, voided)
        assert charged.status in (pay.Charge.APPROVED, pay.Charge.VOIDED)
        assert charged.key == key
        [(_, status, _)] = await _rows(stack, order_id)
        assert status == pay.Charge.Status.Name(charged.status)
    took = sum(_took_money(charged) for charged, _ in answers)
    after = {
        result: await metric_total(stack, "payments", "payments_voids_total", result=result)
        for result in ("voided", "found")
    }
    assert after["voided"] - before["voided"] == len(pairs) - took
    assert after["found"] - before["found"] == took


# -- ListCharges -----------------------------------------------------------------------------


async def _all_pages(
    payments: pay_grpc.PaymentServiceStub, after: Timestamp, before: Timestamp, page_size: int
) -> list[pay.Charge]:
    """Every charge in (after, before), page by page, each page starting after the last."""
    seen: list[pay.Charge] = []
    request = pay.ListChargesRequest(updated_after=after, updated_before=before, page_size=page_size)
    while True:
        page = list((await payments.ListCharges(request)).charges)
        assert len(page) <= page_size
        seen.extend(page)
        if len(page) < page_size:
            return seen
        request = pay.ListChargesRequest(
            updated_after=page[-1].update_time,
            after_id=page[-1].id,
            updated_before=before,
            page_size=page_size,
        )


def _order_key(charge: pay.Charge) -> tuple[datetime, str]:
    return _time(charge.update_time), charge.id


async def test_charges_are_listed_in_order_of_last_change(payments: pay_grpc.PaymentServiceStub) -> None:
    first = await payments.CreateCharge(_charge(_key(), _order()))
    second = await payments.CreateCharge(_charge(_key(), _order()))
    voided = await payments.VoidCharge(_void(_key(), _order()))
    refunded = await payments.RefundCharge(pay.RefundChargeRequest(charge_id=first.id))
    assert _time(refunded.update_time) > _time(voided.update_time)
    after = _at(_time(first.create_time) - MICRO)
    mine = {first.id, second.id, voided.id}

    # updated_before is exclusive: the refund's own time leaves the refunded charge out.
    until_refund = await _all_pages(payments, after, refunded.update_time, page_size=1)
    assert [c.id for c in until_refund if c.id in mine] == [second.id, voided.id]
    assert all(_time(c.update_time) < _time(refunded.update_time) for c in until_refund)

    until_after = _at(_time(refunded.update_time) + MICRO)
    one_by_one = await _all_pages(payments, after, until_after, page_size=1)
    in_pairs = await _all_pages(payments, after, until_after, page_size=2)
    at_once = list(
        (
            await payments.ListCharges(
                pay.ListChargesRequest(updated_after=after, updated_before=until_after, page_size=1000)
            )
        ).charges
    )
    assert one_by_one == in_pairs == at_once
    assert [_order_key(c) for c in at_once] == sorted(_order_key(c) for c in at_once)
    assert len({c.id for c in at_once}) == len(at_once)
    ours = [c for c in at_once if c.id in mine]
    assert ours == [second, voided, refunded]


async def test_listing_from_the_beginning(payments: pay_grpc.PaymentServiceStub) -> None:
    charge = await payments.CreateCharge(_charge(_key(), _order()))
    page = list(
        (
            await payments.ListCharges(
                pay.ListChargesRequest(updated_before=_at(_time(charge.update_time) + MICRO), page_size=5)
            )
        ).charges
    )
    assert 1 <= len(page) <= 5
    assert [_order_key(c) for c in page] == sorted(_order_key(c) for c in page)
    assert all(_time(c.update_time) <= _time(charge.update_time) for c in page)
    # The default page size is 100: an unset page_size never answers more.
    default = await payments.ListCharges(pay.ListChargesRequest(updated_before=charge.update_time))
    assert len(default.charges) <= 100


# -- bad requests ----------------------------------------------------------------------------

NOW = _at(datetime.now(UTC))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pay.VoidChargeRequest(order_id="ORD-1"), "key"),
        (pay.VoidChargeRequest(key="k" * 201, order_id="ORD-1"), "key"),
        (pay.VoidChargeRequest(key="k"), "order_id"),
        (pay.VoidChargeRequest(key="k", order_id="O" * 65), "order_id"),
    ],
)
async def test_bad_voids_name_the_field(
    payments: pay_grpc.PaymentServiceStub, request_: pay.VoidChargeRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.VoidCharge(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in _violated_fields(err.value)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pay.ListChargesRequest(), "updated_before"),
        (pay.ListChargesRequest(updated_before=NOW, page_size=-1), "page_size"),
        (pay.ListChargesRequest(updated_before=NOW, page_size=1001), "page_size"),
        (pay.ListChargesRequest(updated_after=NOW, after_id="c" * 65, updated_before=NOW), "after_id"),
        (pay.ListChargesRequest(after_id="ch_1", updated_before=NOW), "after_id"),
        (pay.ListChargesRequest(updated_before=Timestamp(seconds=-62_135_596_801)), "updated_before"),
    ],
)
async def test_bad_listings_name_the_field(
    payments: pay_grpc.PaymentServiceStub, request_: pay.ListChargesRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.ListCharges(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in _violated_fields(err.value)


async def test_the_new_rpcs_are_not_on_the_public_listener(stack) -> None:
    async with grpc.aio.insecure_channel(stack.public_grpc) as channel:
        stub = pay_grpc.PaymentServiceStub(channel)
        for call in (
            stub.VoidCharge(_void("k", "ORD-1")),
            stub.ListCharges(pay.ListChargesRequest(updated_before=NOW)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
