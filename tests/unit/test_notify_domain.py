"""Notify's pure rules: how an order event reads as a message, and how a payload decodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from services.notify.consumer import decode
from services.notify.domain import (
    Kind,
    OrderEvent,
    PoisonMessage,
    check_event,
    format_money,
    lag_seconds,
    render,
)
from ticketing.orders.v1 import events_pb2
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketmesh.values import Money

WHEN = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _event(kind: Kind = Kind.ORDER_CONFIRMED, **changes: object) -> OrderEvent:
    fields: dict[str, object] = {
        "id": "ORD-1.confirmed",
        "kind": kind,
        "occur_time": WHEN,
        "order_id": "ORD-1",
        "user_id": "USR-1",
        "event_id": "EVNT-ROCK-2025",
        "ticket_type": "GA",
        "quantity": 3,
        "amount": Money("EUR", 150, 0),
        "user_email": "ada@example.com",
        "user_name": "Ada",
    }
    fields.update(changes)
    return OrderEvent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Money("EUR", 150, 0), "150.00 EUR"),
        (Money("EUR", 49, 990_000_000), "49.99 EUR"),
        (Money("USD", 0, 5_000_000), "0.005 USD"),
        (Money("EUR", -2, -500_000_000), "-2.50 EUR"),
        (Money("JPY", 1200, 0), "1200.00 JPY"),
    ],
)
def test_money_reads_as_people_write_it(amount: Money, text: str) -> None:
    assert format_money(amount) == text


def test_confirmed_order_reads_as_a_confirmation() -> None:
    n = render(_event())
    assert (n.id, n.kind, n.user_id, n.order_id, n.recipient) == (
        "ORD-1.confirmed",
        Kind.ORDER_CONFIRMED,
        "USR-1",
        "ORD-1",
        "ada@example.com",
    )
    assert n.subject == "Your tickets for EVNT-ROCK-2025 are confirmed"
    assert n.body.startswith("Hello Ada,")
    for part in ("ORD-1", "3 x GA tickets for EVNT-ROCK-2025", "150.00 EUR"):
        assert part in n.body


@pytest.mark.parametrize(
    ("kind", "subject", "says"),
    [
        (Kind.ORDER_CANCELLED, "Your order for EVNT-ROCK-2025 is cancelled", "refunded"),
        (Kind.ORDER_EXPIRED, "Your hold on tickets for EVNT-ROCK-2025 has expired", "not paid in time"),
    ],
)
def test_cancelled_and_expired_orders_say_what_happened(kind: Kind, subject: str, says: str) -> None:
    n = render(_event(kind, quantity=1))
    assert n.kind is kind
    assert n.subject == subject
    assert says in n.body
    assert "1 x GA ticket for" in n.body


def test_a_buyer_without_a_name_is_still_greeted() -> None:
    assert render(_event(user_name="")).body.startswith("Hello,\n")


def test_the_same_event_renders_the_same_message() -> None:
    assert render(_event()) == render(_event())


@pytest.mark.parametrize("missing", ["id", "order_id", "user_id", "user_email"])
def test_an_event_without_its_keys_or_recipient_is_poison(missing: str) -> None:
    with pytest.raises(PoisonMessage):
        check_event(_event(**{missing: ""}))


def test_lag_counts_from_the_event_and_never_goes_negative() -> None:
    assert lag_seconds(_event(), WHEN + timedelta(seconds=2)) == 2.0
    assert lag_seconds(_event(), WHEN - timedelta(seconds=2)) == 0.0
    assert lag_seconds(_event(occur_time=None), WHEN) is None


def _payload(message_type: type, event_id: str = "ORD-9.expired") -> bytes:
    occur = Timestamp()
    occur.FromDatetime(WHEN)
    order = order_pb2.Order(
        id="ORD-9",
        user_id="USR-9",
        event_id="EVNT-JAZZ",
        ticket_type="VIP",
        quantity=2,
        amount=money_pb2.Money(currency_code="EUR", units=99, nanos=500_000_000),
    )
    message = message_type(id=event_id, occur_time=occur, order=order, user_email="b@example.com")
    return bytes(message.SerializeToString())


def test_decode_reads_the_event_its_subject_names() -> None:
    event = decode("ticketing.orders.order.expired.v1", _payload(events_pb2.OrderExpired))
    assert event is not None
    assert (event.id, event.kind, event.order_id, event.user_id, event.occur_time) == (
        "ORD-9.expired",
        Kind.ORDER_EXPIRED,
        "ORD-9",
        "USR-9",
        WHEN,
    )
    assert event.amount == Money("EUR", 99, 500_000_000)


def test_decode_skips_order_subjects_notify_does_not_answer() -> None:
    assert decode("ticketing.orders.order.created.v1", b"anything") is None


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff not a protobuf", b""])
def test_garbage_is_poison(payload: bytes) -> None:
    with pytest.raises(PoisonMessage):
        decode("ticketing.orders.order.confirmed.v1", payload)
