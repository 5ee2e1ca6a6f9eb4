"""Readiness checks, polled until they pass: a real connection or request each, never a sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack.processes import POLL_SECONDS, ManagedProcess, StackError


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    what: str,
    seconds: float,
    process: ManagedProcess | None = None,
) -> None:
    """Polls `check` until it returns True, for at most `seconds`; fails fast if `process` exits."""
    deadline = time.monotonic() + seconds
    last_error: BaseException | None = None
    while True:
        if process is not None and not process.running:
            raise process.exited_error(what)
        try:
            if await check():
                return
        except (OSError, httpx.HTTPError, psycopg.Error, grpc.RpcError) as exc:
            last_error = exc  # not up yet
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            tail = f"\nlast lines of {process.log_path}:\n{process.log_tail()}" if process else ""
            raise StackError(f"timed out after {seconds:.0f}s waiting for {what}{detail}{tail}")
        await asyncio.sleep(POLL_SECONDS)


async def postgres_accepts(url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
        await conn.execute("SELECT 1")
    return True


async def http_ok(client: httpx.AsyncClient, url: str) -> bool:
    return (await client.get(url, timeout=2.0)).status_code == 200


async def wait_grpc_serving(address: str, *, seconds: float, process: ManagedProcess | None = None) -> None:
    """Polls grpc.health.v1 Check (service "") until SERVING. Uses the sync API in a worker thread:
    grpc.aio is best kept to one event loop per process, and the caller's tests own that one."""
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")

    async def serving() -> bool:
        reply = await asyncio.to_thread(stub.Check, request, timeout=1.0)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    try:
        await wait_until(serving, what=f"gRPC health SERVING on {address}", seconds=seconds, process=process)
    finally:
        channel.close()


async def envoy_hosts(client: httpx.AsyncClient, admin_url: str) -> dict[str, dict[str, str]]:
    """Cluster -> {"host:port": health flags} from Envoy's admin /clusters ("healthy" when healthy)."""
    text = (await client.get(f"{admin_url}/clusters", timeout=2.0)).text
    hosts: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        # Lines look like "inventory::127.0.0.1:7001::health_flags::healthy".
        parts = line.split("::")
        if len(parts) == 4 and parts[2] == "health_flags":
            hosts.setdefault(parts[0], {})[parts[1]] = parts[3]
    return hosts
