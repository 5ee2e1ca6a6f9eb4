"""Money is real money, through real Envoy: prices and charges are in ISO 4217 currencies, no finer
than the currency's minor unit, and a ticket may be free."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from google.type import money_pb2
from grpc_status import rpc_status

from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketing.payments.v1 import payment_service_pb2_grpc as pay_grpc
from ticketing.type.v1 import payment_method_pb2 as method_pb2


def _event(*prices: dict[str, Any]) -> dict[str, Any]:
    return {
        "displayName": "Money test",
        "ticketTypes": [{"name": f"T{i}", "price": price, "capacity": 10} for i, price in enumerate(prices)],
    }


def _field_violations(reply: httpx.Response) -> dict[str, str]:
    details = reply.json()["details"]
    bad = next(d for d in details if d["@type"].endswith("google.rpc.BadRequest"))
    return {v["field"]: v["description"] for v in bad["fieldViolations"]}


def _amount(price: dict[str, Any]) -> tuple[str, int, int]:
    """A price from JSON as (currency, units, nanos); proto3 JSON leaves zero fields out."""
    return price["currencyCode"], int(price.get("units", "0")), int(price.get("nanos", 0))


@pytest.mark.parametrize(
    ("price", "field", "says"),
    [
        ({"currencyCode": "ZZZ", "units": "10"}, "currency_code", "ISO 4217"),
        ({"currencyCode": "eur", "units": "10"}, "currency_code", "ISO 4217"),
        ({"currencyCode": "XXX", "units": "10"}, "currency_code", "XXX"),
        ({"currencyCode": "XTS", "units": "10"}, "currency_code", "XTS"),
        ({"currencyCode": "EUR", "nanos": 1_000_000}, "nanos", "cents for EUR"),  # 0.001 EUR
        ({"currencyCode": "EUR", "nanos": 1}, "nanos", "cents for EUR"),  # 0.000000001 EUR
        ({"currencyCode": "JPY", "units": "1000", "nanos": 500_000_000}, "nanos", "JPY"),
        ({"currencyCode": "BHD", "units": "1", "nanos": 1_500_000}, "nanos", "BHD"),
    ],
)
async def test_a_price_that_is_not_real_money_is_400_naming_the_field(
    rest: httpx.AsyncClient, price: dict[str, Any], field: str, says: str
) -> None:
    reply = await rest.post("/v1/events", json=_event(price))
    assert reply.status_code == 400, reply.text
    violations = _field_violations(reply)
    where = f"event.ticket_types[0].price.{field}"
    assert where in violations, violations
    assert says in violations[where]


@pytest.mark.parametrize(
    "price",
    [
        {"currencyCode": "EUR", "units": "19", "nanos": 990_000_000},
        {"currencyCode": "JPY", "units": "1500"},
        {"currencyCode": "BHD", "units": "2", "nanos": 125_000_000},  # 2.125 BHD
        {"currencyCode": "KWD", "nanos": 5_000_000},  # 0.005 KWD
    ],
)
async def test_a_price_in_its_currency_minor_unit_is_kept_exactly(
    rest: httpx.AsyncClient, price: dict[str, Any]
) -> None:
    created = await rest.post("/v1/events", json=_event(price))
    assert created.status_code == 200, created.text
    got = await rest.get(f"/v1/events/{created.json()['id']}")
    assert got.status_code == 200, got.text
    assert _amount(got.json()["ticketTypes"][0]["price"]) == _amount(price)


async def test_a_free_ticket_type_is_accepted_and_shown(rest: httpx.AsyncClient) -> None:
    free = {"currencyCode": "EUR", "units": "0", "nanos": 0}
    paid = {"currencyCode": "EUR", "units": "25"}
    created = await rest.post("/v1/events", json=_event(free, paid))
    assert created.status_code == 200, created.text
    got = await rest.get(f"/v1/events/{created.json()['id']}")
    assert got.status_code == 200, got.text
    prices = {tt["name"]: _amount(tt["price"]) for tt in got.json()["ticketTypes"]}
    assert prices == {"T0": ("EUR", 0, 0), "T1": ("EUR", 25, 0)}
    availability = await rest.get(f"/v1/events/{created.json()['id']}/availability")
    assert availability.json()["ticketTypes"][0]["available"] == 10


@pytest.mark.parametrize(
    ("amount", "field"),
    [
        (money_pb2.Money(currency_code="ZZZ", units=5), "amount.currency_code"),
        (money_pb2.Money(currency_code="EUR", nanos=1), "amount.nanos"),
        (money_pb2.Money(currency_code="EUR", units=0), "amount"),
    ],
)
async def test_a_charge_that_is_not_real_money_is_refused(
    stack: Any, amount: money_pb2.Money, field: str
) -> None:
    """The gateway's own check: nothing but real money is ever charged, whoever asks."""
    request = pay.CreateChargeRequest(
        key=f"money-{uuid.uuid4()}",
        order_id=f"ORD-{uuid.uuid4().hex[:12]}",
        amount=amount,
        method=method_pb2.CARD,
    )
    async with grpc.aio.insecure_channel(stack.mesh_grpc) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pay_grpc.PaymentServiceStub(channel).CreateCharge(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    assert field in fields
