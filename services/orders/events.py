"""The events orders publishes, built from an order in its new status. An event's id is derived from
the order and the status (an order enters each status once), so it can never be sent as two."""

from __future__ import annotations

from ticketing.orders.v1 import events_pb2
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketmesh.values import now_timestamp

_KINDS = {
    order_pb2.Order.CONFIRMED: ("confirmed", events_pb2.OrderConfirmed),
    order_pb2.Order.CANCELLED: ("cancelled", events_pb2.OrderCancelled),
    order_pb2.Order.EXPIRED: ("expired", events_pb2.OrderExpired),
}


def for_order(order: order_pb2.Order, user_email: str, user_name: str) -> tuple[str, str, bytes]:
    """(subject, event id, payload) announcing the order's current status."""
    kind, message = _KINDS[order.status]
    event_id = f"{order.id}.{kind}"
    payload = message(
        id=event_id, occur_time=now_timestamp(), order=order, user_email=user_email, user_name=user_name
    )
    return f"ticketing.orders.order.{kind}.v1", event_id, payload.SerializeToString()
