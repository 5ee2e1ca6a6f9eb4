"""Starts an inventory replica: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc

from services.inventory.api import InventoryApi, ReservationApi
from services.inventory.config import InventorySettings
from services.inventory.store import InventoryStore
from services.inventory.watch import AvailabilityHub
from ticketing.inventory.v1 import inventory_service_pb2_grpc, reservation_service_pb2_grpc
from ticketmesh import db, migrate
from ticketmesh.logs import configure_logging
from ticketmesh.server import serve

SCHEMA = "inventory"
MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    settings = InventorySettings.from_env()
    configure_logging(settings.base.service, settings.base.replica, settings.base.log_level)
    migrate.upgrade(settings.base.database_url, SCHEMA, MIGRATIONS)

    async def setup(stack: AsyncExitStack, server: grpc.aio.Server) -> Sequence[str]:
        pool = await db.open_pool(stack, settings.base.database_url, SCHEMA, size=settings.base.db_pool_size)
        store = InventoryStore(pool)
        hub = AvailabilityHub(store.availability, settings.watch_interval_seconds)
        stack.callback(hub.close)
        inventory_service_pb2_grpc.add_InventoryServiceServicer_to_server(
            InventoryApi(store, hub, settings.base.replica), server
        )
        reservation_service_pb2_grpc.add_ReservationServiceServicer_to_server(ReservationApi(store), server)
        return ("ticketing.inventory.v1.InventoryService", "ticketing.inventory.v1.ReservationService")

    asyncio.run(serve(settings.base, setup))


if __name__ == "__main__":
    main()
