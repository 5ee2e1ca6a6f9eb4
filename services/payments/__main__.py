"""Starts a payments process: wiring only."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from psycopg_pool import AsyncConnectionPool

from services.payments.api import PaymentAdminApi, PaymentApi
from services.payments.config import PaymentsSettings
from services.payments.settler import Settler
from services.payments.store import PaymentsStore
from ticketing.payments.v1 import payment_admin_service_pb2_grpc, payment_service_pb2_grpc
from ticketmesh import broker
from ticketmesh.outbox import OutboxRelay
from ticketmesh.server import run_forever, run_service


def main() -> None:
    settings = PaymentsSettings.from_env()

    async def setup(
        stack: AsyncExitStack, server: grpc.aio.Server, pool: AsyncConnectionPool
    ) -> Sequence[str]:
        store = PaymentsStore(pool, settings.mode_cache_seconds)
        # Payments publishes ChargeSettled on its own stream, through the outbox.
        nc = await broker.connect(stack, settings.base.nats_url, settings.base.replica)
        js = nc.jetstream()
        await broker.ensure_streams(js, ["PAYMENTS"])
        relay = OutboxRelay(pool, js, name="payments")
        run_forever(stack, relay.run, "outbox-relay")
        settler = Settler(store, relay, interval_seconds=settings.settle_interval_seconds)
        run_forever(stack, settler.run, "settler")

        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentApi(store), server)
        payment_admin_service_pb2_grpc.add_PaymentAdminServiceServicer_to_server(
            PaymentAdminApi(store), server
        )
        return ("ticketing.payments.v1.PaymentService", "ticketing.payments.v1.PaymentAdminService")

    run_service(settings.base, Path(__file__).parent / "migrations", setup)


if __name__ == "__main__":
    main()
