"""Notify's rules, free of I/O: what an order event says, and the message it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from ticketmesh.values import Money


class Kind(StrEnum):
    ORDER_CONFIRMED = "ORDER_CONFIRMED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_EXPIRED = "ORDER_EXPIRED"


class PoisonMessage(Exception):
    """A message no retry can help: it does not decode, or lacks what a notification needs."""


@dataclass(frozen=True)
class OrderEvent:
    """One order event, as much of it as a notification needs."""

    id: str
    kind: Kind
    # None when the publisher left it out: the event still gets its notification, just no lag.
    occur_time: datetime | None
    order_id: str
    user_id: str
    event_id: str
    ticket_type: str
    quantity: int
    amount: Money
    user_email: str
    user_name: str


@dataclass(frozen=True)
class Notification:
    id: str
    kind: Kind
    user_id: str
    order_id: str
    recipient: str
    subject: str
    body: str
    # Set by the store when the row is written.
    create_time: datetime | None = None


def check_event(event: OrderEvent) -> None:
    """Raises PoisonMessage unless the event has what a notification is keyed on and sent to."""
    missing = [
        name
        for name, value in (
            ("id", event.id),
            ("order.id", event.order_id),
            ("order.user_id", event.user_id),
            ("user_email", event.user_email),
        )
        if not value
    ]
    if missing:
        raise PoisonMessage(f"{event.kind.value} event lacks {', '.join(missing)}")


def format_money(amount: Money) -> str:
    """google.type.Money as people read it: "150.00 EUR", "0.005 USD", "-2.50 EUR"."""
    value = Decimal(amount.units) + Decimal(amount.nanos).scaleb(-9)
    cents = value.quantize(Decimal("0.01"))
    text = f"{cents:.2f}" if cents == value else format(value.normalize(), "f")
    return f"{text} {amount.currency}".strip()


def _tickets(event: OrderEvent) -> str:
    noun = "ticket" if event.quantity == 1 else "tickets"
    return f"{event.quantity} x {event.ticket_type} {noun} for {event.event_id}"


def render(event: OrderEvent) -> Notification:
    """The message for an order event; its id is the event's, so one event makes one message."""
    greeting = f"Hello {event.user_name}," if event.user_name else "Hello,"
    tickets = _tickets(event)
    amount = format_money(event.amount)
    if event.kind is Kind.ORDER_CONFIRMED:
        subject = f"Your tickets for {event.event_id} are confirmed"
        text = f"your order {event.order_id} is paid: {tickets}, {amount}. Enjoy the show!"
    elif event.kind is Kind.ORDER_CANCELLED:
        subject = f"Your order for {event.event_id} is cancelled"
        text = (
            f"your order {event.order_id} ({tickets}, {amount}) is cancelled and the tickets are"
            " released. Any payment taken is refunded."
        )
    else:
        subject = f"Your hold on tickets for {event.event_id} has expired"
        text = (
            f"your order {event.order_id} ({tickets}, {amount}) was not paid in time, so the tickets"
            " were released. You are welcome to order again."
        )
    return Notification(
        id=event.id,
        kind=event.kind,
        user_id=event.user_id,
        order_id=event.order_id,
        recipient=event.user_email,
        subject=subject,
        body=f"{greeting}\n\n{text}\n",
    )


def lag_seconds(event: OrderEvent, now: datetime) -> float | None:
    """How long after the event its notification went out (never negative across clock skew)."""
    if event.occur_time is None:
        return None
    return max(0.0, (now - event.occur_time).total_seconds())
