"""Orders' side of payment events: a settled bank transfer confirms its order, once."""

from __future__ import annotations

from loguru import logger
from nats.aio.msg import Msg

from services.orders.purchase import Purchase
from ticketing.payments.v1 import events_pb2
from ticketmesh import context, dead_letters
from ticketmesh.errors import NotFound

SUBJECT = "ticketing.payments.charge.settled.v1"
DURABLE = "orders"


class Settlements:
    """Handles charge.settled from the durable consumer "orders". Errors from the database or the
    mesh are left to propagate: the broker waits out the transient ones (an outage), and only
    poison ends in dead_letters."""

    def __init__(self, purchase: Purchase):
        self.purchase = purchase

    async def handle(self, msg: Msg) -> None:
        """apply_charge() is idempotent: a redelivered event finds the order CONFIRMED and changes
        nothing. An order that ended meanwhile (cancelled, or past its payment term) records a
        refund as owed instead (not an error to retry)."""
        event = events_pb2.ChargeSettled.FromString(msg.data)
        context.order_id.set(event.charge.order_id)
        try:
            applied = await self.purchase.apply_charge(event.charge.order_id, event.charge)
        except NotFound:
            logger.warning("settlement {} names unknown order {}: ignored", event.id, event.charge.order_id)
            return
        if applied.refusal is not None:
            logger.info("bank transfer settled, order not confirmed: {}", applied.refusal.message)
            return
        logger.info("order paid by bank transfer and confirmed")

    async def dead_letter(self, msg: Msg, exc: Exception) -> None:
        await dead_letters.record(self.purchase.store.pool, DURABLE, msg, exc)
