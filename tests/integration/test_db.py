"""The pool against real Postgres: a call's deadline bounds its statements, and only its own."""

from __future__ import annotations

import time

import psycopg
import pytest

from ticketmesh import context
from ticketmesh.db import DeadlinePool
from ticketmesh.errors import DeadlineExceeded


async def _statement_timeout(pool: DeadlinePool) -> str:
    async with pool.connection() as conn:
        row = await (await conn.execute("SHOW statement_timeout")).fetchone()
    assert row is not None
    return str(row[0])


async def test_a_statement_stops_when_its_callers_deadline_does(pool: DeadlinePool) -> None:
    token = context.deadline.set(time.monotonic() + 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            async with pool.connection() as conn:
                await conn.execute("SELECT pg_sleep(3)")
        assert time.monotonic() - started < 1.0
    finally:
        context.deadline.reset(token)
    # Every connection goes back with the pool's own statement timeout.
    for _ in range(pool.max_size * 2):
        assert await _statement_timeout(pool) == "5s"


async def test_a_call_past_its_deadline_never_reaches_the_database(pool: DeadlinePool) -> None:
    token = context.deadline.set(time.monotonic() - 0.01)
    try:
        with pytest.raises(DeadlineExceeded):
            async with pool.connection():
                pass
    finally:
        context.deadline.reset(token)


async def test_without_a_deadline_the_pools_timeout_applies(pool: DeadlinePool) -> None:
    assert context.deadline.get() is None
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_sleep(0.1)")
    assert await _statement_timeout(pool) == "5s"
