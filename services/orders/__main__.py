"""Starts an orders process: wiring only."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from psycopg_pool import AsyncConnectionPool

from services.orders.api import OrderApi, UserApi
from services.orders.books import Books
from services.orders.config import OrdersSettings
from services.orders.purchase import Purchase
from services.orders.settlements import DURABLE, SUBJECT, Settlements
from services.orders.store import OrdersStore
from services.orders.sweeper import OwedPolicy, Sweeper
from ticketing.inventory.v1 import reservation_service_pb2_grpc
from ticketing.orders.v1 import order_service_pb2_grpc, user_service_pb2_grpc
from ticketing.payments.v1 import payment_service_pb2_grpc
from ticketmesh import broker, mesh
from ticketmesh.outbox import OutboxRelay
from ticketmesh.paging import PageTokens
from ticketmesh.server import run_forever, run_service


def main() -> None:
    settings = OrdersSettings.from_env()

    async def setup(
        stack: AsyncExitStack, server: grpc.aio.Server, pool: AsyncConnectionPool
    ) -> Sequence[str]:
        nc = await broker.connect(stack, settings.base.nats_url, settings.base.replica)
        js = nc.jetstream()
        await broker.ensure_streams(js)
        relay = OutboxRelay(pool, js, name="orders")
        channel = await mesh.open_channel(stack, settings.mesh_address)
        store = OrdersStore(pool)
        payments = payment_service_pb2_grpc.PaymentServiceStub(channel)
        purchase = Purchase(
            store,
            reservation_service_pb2_grpc.ReservationServiceStub(channel),
            payments,
            settings.hold_seconds,
            settings.max_quantity,
            settings.payment_term_seconds,
            relay.wake,
        )
        books = Books(store, payments, settings.books_interval_seconds, settings.books_grace_seconds)
        sweeper = Sweeper(
            store,
            purchase,
            books,
            settings.sweep_seconds,
            settings.keep_keys_seconds,
            OwedPolicy(settings.owed_retry_seconds, settings.owed_max_attempts),
        )
        run_forever(stack, relay.run, "outbox-relay")
        run_forever(stack, sweeper.run, "sweeper")
        settlements = Settlements(purchase)

        broker.run_consumer(
            stack,
            js,
            name="settlements",
            stream="PAYMENTS",
            durable=DURABLE,
            subject=SUBJECT,
            handle=settlements.handle,
            dead_letter=settlements.dead_letter,
        )
        user_service_pb2_grpc.add_UserServiceServicer_to_server(UserApi(store), server)
        page_tokens = PageTokens(settings.base.page_token_key)
        order_service_pb2_grpc.add_OrderServiceServicer_to_server(
            OrderApi(store, purchase, page_tokens), server
        )
        return ("ticketing.orders.v1.UserService", "ticketing.orders.v1.OrderService")

    run_service(settings.base, Path(__file__).parent / "migrations", setup)


if __name__ == "__main__":
    main()
