"""Starts an inventory replica: wiring only."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from psycopg_pool import AsyncConnectionPool

from services.inventory.api import InventoryApi, ReservationApi
from services.inventory.config import InventorySettings
from services.inventory.consumer import DURABLE, SUBJECT, OrderEvents
from services.inventory.store import InventoryStore
from services.inventory.watch import AvailabilityHub
from ticketing.inventory.v1 import inventory_service_pb2_grpc, reservation_service_pb2_grpc
from ticketmesh import broker
from ticketmesh.paging import PageTokens
from ticketmesh.server import run_service


def main() -> None:
    settings = InventorySettings.from_env()

    async def setup(
        stack: AsyncExitStack, server: grpc.aio.Server, pool: AsyncConnectionPool
    ) -> Sequence[str]:
        store = InventoryStore(pool)
        hub = AvailabilityHub(store.availability, settings.watch_interval_seconds)
        stack.callback(hub.close)
        inventory_service_pb2_grpc.add_InventoryServiceServicer_to_server(
            InventoryApi(store, hub, settings.base.replica, PageTokens(settings.base.page_token_key)), server
        )
        reservation_service_pb2_grpc.add_ReservationServiceServicer_to_server(ReservationApi(store), server)

        nc = await broker.connect(stack, settings.base.nats_url, settings.base.replica)
        js = nc.jetstream()
        await broker.ensure_streams(js)
        events = OrderEvents(store)

        broker.run_consumer(
            stack,
            js,
            name="order-events",
            stream="ORDERS",
            durable=DURABLE,
            subject=SUBJECT,
            handle=events.handle,
            dead_letter=events.dead_letter,
        )
        return ("ticketing.inventory.v1.InventoryService", "ticketing.inventory.v1.ReservationService")

    run_service(settings.base, Path(__file__).parent / "migrations", setup)


if __name__ == "__main__":
    main()
