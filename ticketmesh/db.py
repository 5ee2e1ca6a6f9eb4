"""PostgreSQL access: one psycopg pool per process, its connections pinned to the service's schema."""

from __future__ import annotations

from contextlib import AsyncExitStack

from psycopg_pool import AsyncConnectionPool


def conninfo(url: str) -> str:
    """psycopg takes libpq URLs; SQLAlchemy-style driver suffixes are dropped."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def open_pool(
    stack: AsyncExitStack,
    url: str,
    schema: str,
    *,
    size: int,
    statement_timeout_ms: int = 5000,
    open_timeout: float = 30.0,
) -> AsyncConnectionPool:
    """Opens a pool whose connections use `schema` and autocommit outside explicit transactions.

    statement_timeout bounds every statement, so no call waits on the database forever.
    """
    options = f"-c search_path={schema} -c statement_timeout={statement_timeout_ms}"
    pool = AsyncConnectionPool(
        conninfo(url),
        min_size=size,
        max_size=size,
        kwargs={"autocommit": True, "options": options},
        open=False,
        timeout=10.0,
        reconnect_timeout=0,  # keep trying for ever while the database is away
        name=schema,
    )
    await pool.open(wait=True, timeout=open_timeout)
    stack.push_async_callback(pool.close)
    return pool
