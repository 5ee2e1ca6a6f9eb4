"""Notify's side of JetStream: order events in, one stored notification (the "email") out per event,
and dead letters for messages no retry can help."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from loguru import logger
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.notify import metrics
from services.notify.domain import Kind, OrderEvent, PoisonMessage, check_event, lag_seconds, render
from services.notify.store import NotifyStore
from ticketing.orders.v1 import events_pb2
from ticketmesh import broker, context, dead_letters
from ticketmesh.values import Money

STREAM = "ORDERS"
DURABLE = "notify"
SUBJECTS = "ticketing.orders.order.>"

_EventMessage = events_pb2.OrderConfirmed | events_pb2.OrderCancelled | events_pb2.OrderExpired
# Every order event notify answers, by subject; other order subjects are not its business.
_DECODERS: dict[str, tuple[Kind, type[_EventMessage]]] = {
    "ticketing.orders.order.confirmed.v1": (Kind.ORDER_CONFIRMED, events_pb2.OrderConfirmed),
    "ticketing.orders.order.cancelled.v1": (Kind.ORDER_CANCELLED, events_pb2.OrderCancelled),
    "ticketing.orders.order.expired.v1": (Kind.ORDER_EXPIRED, events_pb2.OrderExpired),
}


def decode(subject: str, payload: bytes) -> OrderEvent | None:
    """The order event in a message, None for a subject notify does not answer; PoisonMessage when
    the payload is not the event its subject names."""
    found = _DECODERS.get(subject)
    if found is None:
        return None
    kind, message_type = found
    message = message_type()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise PoisonMessage(f"{subject} payload does not decode: {exc}") from None
    order = message.order
    event = OrderEvent(
        id=message.id,
        kind=kind,
        occur_time=message.occur_time.ToDatetime(tzinfo=UTC) if message.HasField("occur_time") else None,
        order_id=order.id,
        user_id=order.user_id,
        event_id=order.event_id,
        ticket_type=order.ticket_type,
        quantity=order.quantity,
        amount=Money.from_pb(order.amount),
        user_email=message.user_email,
        user_name=message.user_name,
    )
    check_event(event)
    return event


class OrderEventConsumer:
    """Handles order events from the durable consumer "notify". A database outage is waited out by
    the broker (it is no fault of the message), so only poison ends in dead_letters."""

    def __init__(self, store: NotifyStore):
        self.store = store

    async def handle(self, msg: Msg) -> None:
        event = decode(msg.subject, msg.data)
        if event is None:
            return
        context.order_id.set(event.order_id)
        notification = render(event)
        stored = await self.store.insert_notification(notification)
        if stored is None:
            logger.bind(order_id=event.order_id).debug("order event {} already notified", event.id)
            return
        metrics.SENT.labels(event.kind.value).inc()
        lag = lag_seconds(event, datetime.now(UTC))
        if lag is not None:
            metrics.LAG_SECONDS.labels(event.kind.value).observe(lag)
        # The "email": the stored row plus this one line, written once per event (only the insert
        # that created the row gets here).
        logger.bind(
            recipient=stored.recipient, order_id=stored.order_id, notification_id=stored.id, kind=stored.kind
        ).info("email sent")

    async def dead_letter(self, msg: Msg, exc: Exception) -> None:
        await dead_letters.record(self.store.pool, DURABLE, msg, exc)

    async def run(self, js: JetStreamContext, max_deliver: int) -> None:
        """Consumes until cancelled. The streams are ensured first, so notify works whichever
        service starts first."""
        await broker.ensure_streams(js)
        await broker.consume(
            js,
            stream=STREAM,
            durable=DURABLE,
            subject=SUBJECTS,
            handle=self.handle,
            dead_letter=self.dead_letter,
            max_deliver=max_deliver,
        )
