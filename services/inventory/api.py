"""Inventory's gRPC servicers: translate protos to domain calls and back; no SQL here."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from loguru import logger

from services.inventory import metrics
from services.inventory.domain import (
    Event,
    EventSpec,
    Reservation,
    Stock,
    Strategy,
    TicketTypeSpec,
    check_event,
    new_event_id,
)
from services.inventory.store import InventoryStore
from services.inventory.watch import AvailabilityHub
from ticketing.inventory.v1 import (
    inventory_service_pb2 as inv,
)
from ticketing.inventory.v1 import (
    inventory_service_pb2_grpc as inv_grpc,
)
from ticketing.inventory.v1 import (
    reservation_service_pb2 as res,
)
from ticketing.inventory.v1 import (
    reservation_service_pb2_grpc as res_grpc,
)
from ticketing.type.v1 import reservation_strategy_pb2 as strategy_pb2
from ticketmesh import context as call_context
from ticketmesh import idempotency, paging
from ticketmesh.errors import ServiceError
from ticketmesh.paging import PageTokens
from ticketmesh.values import Money, timestamp


def _event_pb(event: Event) -> inv.Event:
    return inv.Event(
        id=event.id,
        display_name=event.display_name,
        venue=event.venue,
        start_time=timestamp(event.start_time),
        ticket_types=[
            inv.TicketType(name=tt.name, price=tt.price.to_pb(), capacity=tt.capacity)
            for tt in event.ticket_types
        ],
        create_time=timestamp(event.create_time),
    )


def _availability_pb(event_id: str, stock: list[Stock], read_time: datetime) -> inv.Availability:
    return inv.Availability(
        event_id=event_id,
        ticket_types=[
            inv.TicketTypeAvailability(
                ticket_type=s.ticket_type,
                capacity=s.capacity,
                available=s.available,
                held=s.held,
                sold=s.sold,
            )
            for s in stock
        ],
        read_time=timestamp(read_time),
    )


def _reservation_pb(r: Reservation) -> res.Reservation:
    return res.Reservation(
        id=r.id,
        event_id=r.event_id,
        ticket_type=r.ticket_type,
        quantity=r.quantity,
        state=res.Reservation.State.Value(r.state.value),  # type: ignore[arg-type]
        unit_price=r.unit_price.to_pb(),
        create_time=timestamp(r.create_time),
        update_time=timestamp(r.update_time),
    )


def strategy_from_pb(value: int) -> Strategy:
    if value == strategy_pb2.RESERVATION_STRATEGY_UNSPECIFIED:
        return Strategy.COMPARE_AND_SET
    return Strategy(strategy_pb2.ReservationStrategy.Name(value))


def record_sold(r: Reservation) -> None:
    """Counts and logs a hold that just became sold (once per reservation)."""
    metrics.TICKETS_SOLD.labels(r.event_id, r.ticket_type).inc(r.quantity)
    logger.bind(event_id=r.event_id, ticket_type=r.ticket_type).info("{} ticket(s) sold", r.quantity)


def record_released(r: Reservation) -> None:
    """Counts and logs stock that just came back (once per reservation)."""
    metrics.TICKETS_RELEASED.labels(r.event_id, r.ticket_type).inc(r.quantity)
    logger.bind(event_id=r.event_id, ticket_type=r.ticket_type).info("{} ticket(s) released", r.quantity)


@dataclass(frozen=True)
class EventsAfter:
    """Where a ListEvents page ended: the last event's position in creation order."""

    seq: int


class InventoryApi(inv_grpc.InventoryServiceServicer):
    """The public InventoryService."""

    def __init__(self, store: InventoryStore, hub: AvailabilityHub, replica: str, page_tokens: PageTokens):
        self.store = store
        self.hub = hub
        self.page_tokens = page_tokens
        self.whoami = inv.WhoAmIResponse(
            service="inventory", replica=replica, host=socket.gethostname(), pid=os.getpid()
        )

    async def WhoAmI(
        self, request: inv.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> inv.WhoAmIResponse:
        return self.whoami

    async def CreateEvent(
        self, request: inv.CreateEventRequest, context: grpc.aio.ServicerContext
    ) -> inv.Event:
        key = idempotency.request_key(request.request_id, context)
        e = request.event
        spec = EventSpec(
            id=e.id or new_event_id(),
            display_name=e.display_name,
            venue=e.venue,
            start_time=e.start_time.ToDatetime(tzinfo=UTC) if e.HasField("start_time") else None,
            ticket_types=tuple(
                TicketTypeSpec(tt.name, Money.from_pb(tt.price), tt.capacity) for tt in e.ticket_types
            ),
        )
        check_event(spec)
        event, replayed = await self.store.create_event(spec, key, idempotency.fingerprint(request))
        if replayed:
            await idempotency.mark_replayed(context)
        logger.bind(event_id=event.id).info("event {}", "given again" if replayed else "created")
        return _event_pb(event)

    async def GetEvent(self, request: inv.GetEventRequest, context: grpc.aio.ServicerContext) -> inv.Event:
        return _event_pb(await self.store.get_event(request.event_id))

    async def ListEvents(
        self, request: inv.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> inv.ListEventsResponse:
        size = paging.page_size(request.page_size)
        after = self.page_tokens.decode(request.page_token, EventsAfter, filters={})
        rows = await self.store.list_events(after.seq if after else 0, size + 1)
        page, more = rows[:size], len(rows) > size
        return inv.ListEventsResponse(
            events=[_event_pb(event) for _, event in page],
            next_page_token=self.page_tokens.encode(EventsAfter(page[-1][0]), filters={}) if more else "",
        )

    async def GetAvailability(
        self, request: inv.GetAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> inv.Availability:
        stock, read_time = await self.store.availability(request.event_id)
        return _availability_pb(request.event_id, stock, read_time)

    async def WatchAvailability(
        self, request: inv.WatchAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inv.Availability]:
        async for stock, read_time in self.hub.watch(request.event_id):
            yield _availability_pb(request.event_id, stock, read_time)


class ReservationApi(res_grpc.ReservationServiceServicer):
    """The mesh-only ReservationService: idempotent by reservation id."""

    def __init__(self, store: InventoryStore):
        self.store = store

    async def Reserve(
        self, request: res.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> res.Reservation:
        strategy = strategy_from_pb(request.strategy)
        call_context.order_id.set(request.reservation_id)  # a reservation's id is its order's id
        labels = (request.event_id, request.ticket_type)
        log = logger.bind(event_id=request.event_id, ticket_type=request.ticket_type, strategy=strategy.value)
        try:
            reservation, conflicts = await self.store.reserve(
                request.reservation_id, request.event_id, request.ticket_type, request.quantity, strategy
            )
        except ServiceError as err:
            if err.reason == "SOLD_OUT":
                metrics.RESERVATION_CONFLICTS.labels(*labels, "sold_out").inc()
                log.info("sold out: {} ticket(s) wanted", request.quantity)
            raise
        if conflicts:
            metrics.RESERVATION_CONFLICTS.labels(*labels, "version_conflict").inc(conflicts)
        metrics.TICKETS_RESERVED.labels(*labels, strategy.value).inc(request.quantity)
        log.info("{} ticket(s) held ({} version conflicts)", request.quantity, conflicts)
        return _reservation_pb(reservation)

    async def Release(
        self, request: res.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> res.Reservation:
        call_context.order_id.set(request.reservation_id)
        reservation, released = await self.store.release(request.reservation_id)
        if released:
            record_released(reservation)
        return _reservation_pb(reservation)

    async def Confirm(
        self, request: res.ConfirmRequest, context: grpc.aio.ServicerContext
    ) -> res.Reservation:
        call_context.order_id.set(request.reservation_id)
        reservation, sold = await self.store.confirm(request.reservation_id)
        if sold:
            record_sold(reservation)
        return _reservation_pb(reservation)

    async def GetReservation(
        self, request: res.GetReservationRequest, context: grpc.aio.ServicerContext
    ) -> res.Reservation:
        return _reservation_pb(await self.store.get_reservation(request.reservation_id))
