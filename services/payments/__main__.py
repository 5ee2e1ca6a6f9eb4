"""Starts a payments process: wiring only."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from psycopg_pool import AsyncConnectionPool

from services.payments.api import PaymentAdminApi, PaymentApi
from services.payments.config import PaymentsSettings
from services.payments.store import PaymentsStore
from ticketing.payments.v1 import payment_admin_service_pb2_grpc, payment_service_pb2_grpc
from ticketmesh.server import run_service


def main() -> None:
    settings = PaymentsSettings.from_env()

    async def setup(
        stack: AsyncExitStack, server: grpc.aio.Server, pool: AsyncConnectionPool
    ) -> Sequence[str]:
        store = PaymentsStore(pool, settings.mode_cache_seconds)
        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentApi(store), server)
        payment_admin_service_pb2_grpc.add_PaymentAdminServiceServicer_to_server(
            PaymentAdminApi(store), server
        )
        return ("ticketing.payments.v1.PaymentService", "ticketing.payments.v1.PaymentAdminService")

    run_service(settings.base, Path(__file__).parent / "migrations", setup)


if __name__ == "__main__":
    main()
