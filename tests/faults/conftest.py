"""Fault-suite fixtures: a mesh of its own (faults must not disturb the e2e tests' mesh), and steps
every fault test shares: a buyer population, an event, and waiting for the mesh to come to rest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from stack import Stack
from tests.running import running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(tmp_path_factory, "faults")


@pytest_asyncio.fixture(loop_scope="session")
async def rest(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.public_url, timeout=30, trust_env=False) as client:
        yield client
