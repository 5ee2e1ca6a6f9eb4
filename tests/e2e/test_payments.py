"""PaymentService (mesh listener) and PaymentAdminService (admin listener) through real Envoy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import psycopg
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from google.type import money_pb2
from grpc_status import rpc_status

from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2 as method_pb2
from ticketmesh.db import conninfo
from ticketmesh.errors import error_info

MODE = "/admin/v1/payments/mode"
CARD = method_pb2.CARD
BANK_TRANSFER = method_pb2.BANK_TRANSFER


@pytest_asyncio.fixture(loop_scope="session")
async def admin(stack) -> AsyncIterator[httpx.AsyncClient]:
    """REST client on the admin listener; puts the gateway back to all zeros afterwards, since
    every other test shares it."""
    async with httpx.AsyncClient(base_url=stack.admin_api_url, timeout=30, trust_env=False) as client:
        try:
            yield client
        finally:
            reply = await client.post(MODE, json={})
            assert reply.status_code == 200, reply.text


@pytest_asyncio.fixture(loop_scope="session")
async def payments(stack) -> AsyncIterator[pay_grpc.PaymentServiceStub]:
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        yield pay_grpc.PaymentServiceStub(channel)


async def _set_mode(admin: httpx.AsyncClient, **mode: float) -> dict:
    reply = await admin.post(MODE, json=mode)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _order() -> str:
    return f"ORD-{uuid.uuid4().hex[:12]}"


def _key() -> str:
    return f"pay-{uuid.uuid4()}"


def _charge(key: str, order_id: str, units: int = 50, method: int = CARD) -> pay.CreateChargeRequest:
    return pay.CreateChargeRequest(
        key=key, order_id=order_id, amount=money_pb2.Money(currency_code="EUR", units=units), method=method
    )


def _info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = error_info(err)
    assert info is not None, f"no ErrorInfo in {err}"
    return info


def _violated_fields(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return [v.field for v in bad.field_violations]
    return []


async def _rows_with_key(stack, key: str) -> int:
    async with await psycopg.AsyncConnection.connect(conninfo(stack.database_url)) as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM payments.charges WHERE key = %s", (key,))
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_same_key_twice_is_one_charge(payments: pay_grpc.PaymentServiceStub) -> None:
    key, order_id = _key(), _order()
    first = await payments.CreateCharge(_charge(key, order_id))
    call = payments.CreateCharge(_charge(key, order_id))
    second = await call
    assert first.status == pay.Charge.APPROVED
    assert first.id.startswith("ch_")
    assert second == first
    assert ("idempotent-replayed", "true") in tuple(await call.initial_metadata())
    assert await payments.GetCharge(pay.GetChargeRequest(key=key)) == first
    assert await payments.GetCharge(pay.GetChargeRequest(charge_id=first.id)) == first


async def test_concurrent_charges_with_one_key_make_one_row(
    stack, payments: pay_grpc.PaymentServiceStub
) -> None:
    key, order_id = _key(), _order()
    charges = await asyncio.gather(*(payments.CreateCharge(_charge(key, order_id)) for _ in range(20)))
    assert len({c.id for c in charges}) == 1
    assert await _rows_with_key(stack, key) == 1


async def test_concurrent_charges_for_one_order_approve_one(payments: pay_grpc.PaymentServiceStub) -> None:
    order_id = _order()
    results = await asyncio.gather(
        *(payments.CreateCharge(_charge(_key(), order_id)) for _ in range(10)), return_exceptions=True
    )
    approved = [r for r in results if isinstance(r, pay.Charge)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(approved) == 1, results
    assert len(refused) == 9, results
    assert {_info(e).reason for e in refused} == {"ORDER_ALREADY_CHARGED"}
    assert {_info(e).metadata["charge_id"] for e in refused} == {approved[0].id}


async def test_the_same_key_for_a_different_charge_is_refused(payments: pay_grpc.PaymentServiceStub) -> None:
    key, order_id = _key(), _order()
    await payments.CreateCharge(_charge(key, order_id, units=50))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.CreateCharge(_charge(key, order_id, units=60))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _info(err.value).reason == "IDEMPOTENCY_KEY_REUSED"


async def test_an_injected_failure_leaves_no_trace_and_the_retry_succeeds(
    payments: pay_grpc.PaymentServiceStub, admin: httpx.AsyncClient
) -> None:
    key, order_id = _key(), _order()
    mode = await _set_mode(admin, failureRate=1.0)
    assert mode["failureRate"] == 1.0
    assert (await admin.get(MODE)).json()["failureRate"] == 1.0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.CreateCharge(_charge(key, order_id))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _info(err.value).reason == "PAYMENTS_UNAVAILABLE"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await payments.GetCharge(pay.GetChargeRequest(key=key))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert _info(missing.value).reason == "CHARGE_NOT_FOUND"

    await _set_mode(admin, failureRate=0)
    charge = await payments.CreateCharge(_charge(key, order_id))
    assert charge.status == pay.Charge.APPROVED


async def test_a_declined_card_does_not_block_a_new_key(
    payments: pay_grpc.PaymentServiceStub, admin: httpx.AsyncClient
) -> None:
    order_id = _order()
    await _set_mode(admin, declineRate=1.0)
    declined = await payments.CreateCharge(_charge(_key(), order_id))
    assert declined.status == pay.Charge.DECLINED
    assert declined.decline_reason

    await _set_mode(admin, declineRate=0)
    approved = await payments.CreateCharge(_charge(_key(), order_id))
    assert approved.status == pay.Charge.APPROVED
    assert approved.id != declined.id


async def test_a_second_approved_charge_for_an_order_is_refused(
    payments: pay_grpc.PaymentServiceStub,
) -> None:
    order_id = _order()
    first = await payments.CreateCharge(_charge(_key(), order_id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.CreateCharge(_charge(_key(), order_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = _info(err.value)
    assert info.reason == "ORDER_ALREADY_CHARGED"
    assert info.metadata["charge_id"] == first.id


async def test_refund_twice_refunds_once(payments: pay_grpc.PaymentServiceStub) -> None:
    charge = await payments.CreateCharge(_charge(_key(), _order()))
    first = await payments.RefundCharge(pay.RefundChargeRequest(charge_id=charge.id))
    second = await payments.RefundCharge(pay.RefundChargeRequest(charge_id=charge.id))
    assert first.status == second.status == pay.Charge.REFUNDED
    assert first.update_time == second.update_time
    # A refunded charge still holds the order: it was paid once.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.CreateCharge(_charge(_key(), charge.order_id))
    assert _info(err.value).reason == "ORDER_ALREADY_CHARGED"


async def test_a_pending_bank_transfer_is_not_refundable(payments: pay_grpc.PaymentServiceStub) -> None:
    charge = await payments.CreateCharge(_charge(_key(), _order(), method=BANK_TRANSFER))
    assert charge.status == pay.Charge.PENDING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.RefundCharge(pay.RefundChargeRequest(charge_id=charge.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _info(err.value).reason == "CHARGE_NOT_REFUNDABLE"


async def test_unknown_charges_are_not_found(payments: pay_grpc.PaymentServiceStub) -> None:
    for call in (
        payments.GetCharge(pay.GetChargeRequest(charge_id="ch_nope")),
        payments.RefundCharge(pay.RefundChargeRequest(charge_id="ch_nope")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert _info(err.value).reason == "CHARGE_NOT_FOUND"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pay.CreateChargeRequest(key="k", order_id="ORD-1", method=CARD), "amount"),
        (
            pay.CreateChargeRequest(
                key="k", order_id="ORD-1", amount=money_pb2.Money(currency_code="EUR", units=5)
            ),
            "method",
        ),
        (_charge("k", "ORD-1", units=-5), "amount"),
    ],
)
async def test_bad_charges_name_the_field(
    payments: pay_grpc.PaymentServiceStub, request_: pay.CreateChargeRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.CreateCharge(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in _violated_fields(err.value)


async def test_a_bad_mode_is_400_naming_the_field(admin: httpx.AsyncClient) -> None:
    reply = await admin.post(MODE, json={"failureRate": 2.0})
    assert reply.status_code == 400, reply.text
    assert "failure_rate" in reply.text
    assert (await admin.get(MODE)).json().get("failureRate", 0) == 0


async def test_settle_delay_zero_means_the_default(admin: httpx.AsyncClient) -> None:
    assert (await _set_mode(admin, latencyMs=0))["settleDelayMs"] == 2000
    assert (await _set_mode(admin, settleDelayMs=500))["settleDelayMs"] == 500


async def test_payments_are_counted(stack, payments: pay_grpc.PaymentServiceStub) -> None:
    (replica,) = stack.replicas("payments")
    key, order_id = _key(), _order()
    await payments.CreateCharge(_charge(key, order_id))
    await payments.CreateCharge(_charge(key, order_id))
    async with httpx.AsyncClient(trust_env=False) as client:
        text = (await client.get(stack.metrics_url(replica))).text
    assert 'payments_total{method="CARD",result="approved"}' in text
    assert 'payments_total{method="CARD",result="replayed"}' in text


async def test_payments_are_not_on_the_public_listener(stack) -> None:
    async with grpc.aio.insecure_channel(stack.public_grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pay_grpc.PaymentServiceStub(channel).GetCharge(pay.GetChargeRequest(key="k"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
