"""Inventory's side of order events: a confirmed order's hold becomes sold (HELD -> SOLD)."""

from __future__ import annotations

from loguru import logger
from nats.aio.msg import Msg

from services.inventory.api import record_sold
from services.inventory.store import InventoryStore
from ticketing.orders.v1 import events_pb2
from ticketmesh import context, dead_letters

SUBJECT = "ticketing.orders.order.confirmed.v1"
DURABLE = "inventory"


class OrderEvents:
    """Handles order.confirmed from the durable consumer "inventory" (shared by the replicas). The
    broker waits out a database outage; what fails for a reason of its own (an event that does not
    decode, a reservation unknown or released) ends in dead_letters."""

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
        await dead_letters.record(self.store.pool, DURABLE, msg, exc)
