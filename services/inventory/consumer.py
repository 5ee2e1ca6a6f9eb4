"""Inventory's side of order events: a confirmed order's hold becomes sold (HELD -> SOLD)."""

from __future__ import annotations

from loguru import logger
from nats.aio.msg import Msg

from services.inventory.api import record_sold
from services.inventory.store import InventoryStore
from ticketing.orders.v1 import events_pb2
from ticketmesh import context

SUBJECT = "ticketing.orders.order.confirmed.v1"
DURABLE = "inventory"


class OrderEvents:
    def __init__(self, store: InventoryStore):
        self.store = store

    async def handle(self, msg: Msg) -> None:
        """Confirm is idempotent, so a redelivered event changes nothing."""
        event = events_pb2.OrderConfirmed.FromString(msg.data)
        context.order_id.set(event.order.id)
        reservation, sold = await self.store.confirm(event.order.id)
        if sold:
            record_sold(reservation)
        else:
            logger.info("order confirmed again: its tickets were already sold")

    async def dead_letter(self, msg: Msg, exc: Exception) -> None:
        logger.error(
            "order event {} could not be applied: {}",
            msg.headers.get("Nats-Msg-Id") if msg.headers else "?",
            exc,
        )
