"""Runs a service process: one AsyncExitStack for every resource, a gRPC server with the shared
interceptor, health and reflection, metrics on their own port, and a graceful leave on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from loguru import logger
from psycopg_pool import AsyncConnectionPool

from ticketmesh import db, migrate
from ticketmesh.config import ServiceSettings
from ticketmesh.interceptor import ServiceInterceptor
from ticketmesh.logs import configure_logging
from ticketmesh.metrics import serve_metrics

# Reflection describes the public API (what Envoy's public listener serves), whichever process
# answers it: `grpcurl list` on the public listener must show these and nothing internal.
PUBLIC_SERVICES = (
    "ticketing.inventory.v1.InventoryService",
    "ticketing.orders.v1.UserService",
    "ticketing.orders.v1.OrderService",
    "ticketing.notify.v1.NotificationService",
)

# Registers a service's servicers on the server, opening what they need inside the stack;
# returns the full names of the services it added.
Setup = Callable[[AsyncExitStack, grpc.aio.Server], Awaitable[Sequence[str]]]
# The same, given the process's database pool (pinned to the service's schema).
SetupWithPool = Callable[[AsyncExitStack, grpc.aio.Server, AsyncConnectionPool], Awaitable[Sequence[str]]]


def _import_public_descriptors() -> None:
    """Loads the public services' descriptors into the default pool, for reflection."""
    import ticketing.inventory.v1.inventory_service_pb2
    import ticketing.notify.v1.notification_service_pb2
    import ticketing.orders.v1.order_service_pb2
    import ticketing.orders.v1.user_service_pb2  # noqa: F401


def run_forever(stack: AsyncExitStack, work: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
    """Runs `work()` in a task until the process leaves; when it crashes it is logged and started
    again after a second, so one bad moment (a database restart) does not stop it for good."""

    async def supervise() -> None:
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background task {} crashed; restarting in 1 s", name)
                await asyncio.sleep(1)

    task = asyncio.create_task(supervise(), name=name)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)


async def serve(settings: ServiceSettings, setup: Setup) -> None:
    """Serves until SIGTERM or SIGINT, then leaves without failing a call."""
    leave = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, leave.set)

    async with AsyncExitStack() as stack:
        server = grpc.aio.server(
            interceptors=[ServiceInterceptor()],
            # NOTE: without this a second server on a taken port silently shares it.
            options=[("grpc.so_reuseport", 0)],
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = await setup(stack, server)
        _import_public_descriptors()
        reflection.enable_server_reflection([*PUBLIC_SERVICES, reflection.SERVICE_NAME], server)

        port = server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
        metrics_port = serve_metrics(settings.host, settings.metrics_port)
        await server.start()
        for name in ("", *names):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving on {}:{} (metrics on {})", settings.host, port, metrics_port)

        await leave.wait()
        logger.info("leaving: NOT_SERVING for {} s, then stopping", settings.drain_seconds)
        await health_servicer.enter_graceful_shutdown()
        await asyncio.sleep(settings.drain_seconds)
        await server.stop(settings.grace_seconds)
    logger.info("stopped")


def run_service(settings: ServiceSettings, migrations: Path, setup: SetupWithPool) -> None:
    """The whole life of a service process: JSON logs, its schema (named after the service) brought
    up to date, a pool on that schema, then serving until told to leave."""
    configure_logging(settings.service, settings.replica, settings.log_level)
    migrate.upgrade(settings.database_url, settings.service, migrations)

    async def with_pool(stack: AsyncExitStack, server: grpc.aio.Server) -> Sequence[str]:
        pool = await db.open_pool(stack, settings.database_url, settings.service, size=settings.db_pool_size)
        return await setup(stack, server, pool)

    asyncio.run(serve(settings, with_pool))
