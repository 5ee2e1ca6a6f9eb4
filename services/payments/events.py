"""Payments' protos built from domain values: the Charge message and the ChargeSettled event."""

from __future__ import annotations

from services.payments.domain import Charge
from ticketing.payments.v1 import events_pb2
from ticketing.payments.v1 import payment_service_pb2 as pay
from ticketmesh.values import timestamp

# Stream PAYMENTS; orders consumes it to confirm a bank-transfer order.
CHARGE_SETTLED_SUBJECT = "ticketing.payments.charge.settled.v1"


def charge_pb(c: Charge) -> pay.Charge:
    return pay.Charge(
        id=c.id,
        key=c.key,
        order_id=c.order_id,
        amount=c.amount.to_pb(),
        # Enum fields take their value names; a VOIDED charge has no method.
        method=c.method.value if c.method is not None else "PAYMENT_METHOD_UNSPECIFIED",
        status=c.status.value,
        decline_reason=c.decline_reason,
        create_time=timestamp(c.create_time),
        update_time=timestamp(c.update_time),
    )


def settled_event_id(charge_id: str) -> str:
    """Deterministic: a charge settles once, so its event has one id whoever writes it."""
    return f"settled-{charge_id}"


def charge_settled(c: Charge) -> events_pb2.ChargeSettled:
    """The event for a charge that just settled; it happened when the charge was last updated."""
    return events_pb2.ChargeSettled(
        id=settled_event_id(c.id), occur_time=timestamp(c.update_time), charge=charge_pb(c)
    )
