"""PostgreSQL access: one psycopg pool per process, its connections pinned to the service's schema,
every checkout bounded by the current call's deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from loguru import logger
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from ticketmesh import context
from ticketmesh.errors import DeadlineExceeded

# While the database is known to be away, a call waits at most this long for a connection before
# it fails with UNAVAILABLE: fail fast instead of queueing behind a dead server.
UNREACHABLE_WAIT_SECONDS = 0.5


def conninfo(url: str) -> str:
    """psycopg takes libpq URLs; SQLAlchemy-style driver suffixes are dropped."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class DeadlinePool(AsyncConnectionPool):
    """A pool whose `connection()` respects the deadline of the call being served: it waits for a
    connection no longer than the call has left, and lowers the statement timeout to what is left,
    so no statement outlives its caller. It also notices a lost server (a broken connection) and
    then checks every idle connection at once, so the pool heals within one round of reconnects
    instead of failing one call per stale connection."""

    def __init__(self, *args: Any, statement_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.statement_timeout = statement_timeout
        self.unreachable = False
        self._checking: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def connection(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 (the overridden method's signature)
    ) -> AsyncIterator[AsyncConnection[Any]]:
        left = context.time_left(self.statement_timeout)
        if left <= 0:
            raise DeadlineExceeded("the deadline passed before the database was asked")
        wait = min(self.timeout if timeout is None else timeout, left)
        if self.unreachable:
            wait = min(wait, UNREACHABLE_WAIT_SECONDS)
        async with super().connection(timeout=wait) as conn:
            shortened = left < self.statement_timeout
            if shortened:
                await conn.execute(
                    "SELECT set_config('statement_timeout', %s, false)", (f"{max(1, int(left * 1000))}ms",)
                )
            try:
                yield conn
            finally:
                await self._after_use(conn, shortened)

    async def _after_use(self, conn: AsyncConnection[Any], shortened: bool) -> None:
        if conn.broken:
            if not self.unreachable:
                logger.warning("lost the database connection; checking the pool's idle connections")
            self.unreachable = True
            if self._checking is None or self._checking.done():
                self._checking = asyncio.create_task(self.check())
            return
        self.unreachable = False
        if not shortened:
            return
        if conn.info.transaction_status == TransactionStatus.IDLE:
            await conn.execute("RESET statement_timeout")
        else:
            # Cannot reset outside a clean state: drop it rather than lend a short timeout on.
            await conn.close()


async def open_pool(
    stack: AsyncExitStack,
    url: str,
    schema: str,
    *,
    size: int,
    statement_timeout_ms: int = 5000,
    open_timeout: float = 30.0,
) -> DeadlinePool:
    """Opens a pool whose connections use `schema` and autocommit outside explicit transactions.

    statement_timeout bounds every statement, so no call waits on the database forever; a call with
    less time left lowers it for its own statements.
    """
    options = f"-c search_path={schema} -c statement_timeout={statement_timeout_ms}"
    pool = DeadlinePool(
        conninfo(url),
        min_size=size,
        max_size=size,
        kwargs={"autocommit": True, "options": options},
        open=False,
        timeout=10.0,
        reconnect_timeout=0,  # keep trying for ever while the database is away
        name=schema,
        statement_timeout=statement_timeout_ms / 1000,
    )
    await pool.open(wait=True, timeout=open_timeout)
    stack.push_async_callback(pool.close)
    return pool
