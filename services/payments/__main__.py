"""Starts a payments process: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc

from services.payments.api import PaymentAdminApi, PaymentApi
from services.payments.config import PaymentsSettings
from services.payments.store import PaymentsStore
from ticketing.payments.v1 import payment_admin_service_pb2_grpc, payment_service_pb2_grpc
from ticketmesh import db, migrate
from ticketmesh.logs import configure_logging
from ticketmesh.server import serve

SCHEMA = "payments"
MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    settings = PaymentsSettings.from_env()
    configure_logging(settings.base.service, settings.base.replica, settings.base.log_level)
    migrate.upgrade(settings.base.database_url, SCHEMA, MIGRATIONS)

    async def setup(stack: AsyncExitStack, server: grpc.aio.Server) -> Sequence[str]:
        pool = await db.open_pool(stack, settings.base.database_url, SCHEMA, size=settings.base.db_pool_size)
        store = PaymentsStore(pool, settings.mode_cache_seconds)
        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentApi(store), server)
        payment_admin_service_pb2_grpc.add_PaymentAdminServiceServicer_to_server(
            PaymentAdminApi(store), server
        )
        return ("ticketing.payments.v1.PaymentService", "ticketing.payments.v1.PaymentAdminService")

    asyncio.run(serve(settings.base, setup))


if __name__ == "__main__":
    main()
