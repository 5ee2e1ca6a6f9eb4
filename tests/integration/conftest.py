"""Integration fixtures: real PostgreSQL and a real nats-server with JetStream (no services, no
Envoy backends), started once per session on free ports, plus a fresh schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import psycopg
import pytest
import pytest_asyncio

from stack import Stack, StackSettings
from ticketmesh import db


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = StackSettings(state_dir=tmp_path_factory.mktemp("infra"), services=()).with_free_ports()
    with Stack(settings) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def schema(infra: Stack) -> AsyncIterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest_asyncio.fixture(loop_scope="session")
async def pool(infra: Stack, schema: str) -> AsyncIterator[db.DeadlinePool]:
    async with AsyncExitStack() as stack:
        yield await db.open_pool(stack, infra.database_url, schema, size=4)
