"""Inventory's side of order events: a confirmed order's hold becomes sold (HELD -> SOLD)."""

from __future__ import annotations

from loguru import logger
from nats.aio.msg import Msg

from services.inventory.store import InventoryStore
from ticketing.orders.v1 import events_pb2

SUBJECT = "ticketing.orders.order.confirmed.v1"
DURABLE = "inventory"


class OrderEvents:
    def __init__(self, store: InventoryStore):
        self.store = store

    async def handle(self, msg: Msg) -> None:
        """Confirm is idempotent, so a redelivered event changes nothing."""
        event = events_pb2.OrderConfirmed.FromString(msg.data)
        await self.store.confirm(event.order.id)

    async def dead_letter(self, msg: Msg, exc: Exception) -> None:
        logger.error(
            "order event {} could not be applied: {}",
            msg.headers.get("Nats-Msg-Id") if msg.headers else "?",
            exc,
        )
