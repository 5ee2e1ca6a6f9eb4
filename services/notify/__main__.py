"""Starts a notify process: wiring only."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from psycopg_pool import AsyncConnectionPool

from services.notify.api import NotificationApi
from services.notify.config import NotifySettings
from services.notify.consumer import OrderEventConsumer
from services.notify.store import NotifyStore
from ticketing.notify.v1 import notification_service_pb2_grpc
from ticketmesh import broker
from ticketmesh.paging import PageTokens
from ticketmesh.server import run_forever, run_service


def main() -> None:
    settings = NotifySettings.from_env()

    async def setup(
        stack: AsyncExitStack, server: grpc.aio.Server, pool: AsyncConnectionPool
    ) -> Sequence[str]:
        store = NotifyStore(pool)
        nc = await broker.connect(stack, settings.base.nats_url, f"notify-{settings.base.replica}")
        consumer = OrderEventConsumer(store)
        # Registered after the connection, so on leave the consumer stops before NATS drains.
        run_forever(stack, lambda: consumer.run(nc.jetstream(), settings.max_deliver), "order-events")
        notification_service_pb2_grpc.add_NotificationServiceServicer_to_server(
            NotificationApi(store, PageTokens(settings.base.page_token_key)), server
        )
        return ("ticketing.notify.v1.NotificationService",)

    run_service(settings.base, Path(__file__).parent / "migrations", setup)


if __name__ == "__main__":
    main()
