"""Orders' side of payment events: a settled bank transfer confirms its order, once."""

from __future__ import annotations

from loguru import logger
from nats.aio.msg import Msg

from services.orders.purchase import Purchase
from ticketing.payments.v1 import events_pb2
from ticketmesh import context
from ticketmesh.errors import FailedPrecondition, NotFound

SUBJECT = "ticketing.payments.charge.settled.v1"
DURABLE = "orders"


class Settlements:
    def __init__(self, purchase: Purchase):
        self.purchase = purchase

    async def handle(self, msg: Msg) -> None:
        """settle() is idempotent: a redelivered event finds the order CONFIRMED and changes nothing.
        An order that ended meanwhile records a refund as owed instead (not an error to retry)."""
        event = events_pb2.ChargeSettled.FromString(msg.data)
        context.order_id.set(event.charge.order_id)
        try:
            await self.purchase.settle(event.charge.order_id, event.charge)
        except FailedPrecondition as err:
            logger.info("bank transfer settled, order not confirmed: {}", err.message)
            return
        except NotFound:
            logger.warning("settlement {} names unknown order {}: ignored", event.id, event.charge.order_id)
            return
        logger.info("order paid by bank transfer and confirmed")

    async def dead_letter(self, msg: Msg, exc: Exception) -> None:
        logger.error(
            "settlement {} could not be applied: {}",
            msg.headers.get("Nats-Msg-Id") if msg.headers else "?",
            exc,
        )
