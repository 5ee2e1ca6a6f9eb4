"""End-to-end fixtures: the whole mesh (Postgres, NATS, every service, Envoy), started once per
session on free ports in a temp dir, and stopped at the end with nothing left running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from stack import Stack
from tests.running import running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running stack: .public_url, .public_grpc, .mesh_grpc, .admin_api_url, .envoy_admin_url,
    .database_url, .nats_url, .replicas(service), .metrics_url(replica), .processes[name]; and
    .kill/.terminate/.restart(name), blocking: call them through asyncio.to_thread in async tests."""
    yield from running_stack(tmp_path_factory, "stack")


@pytest_asyncio.fixture(loop_scope="session")
async def rest(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """REST client on Envoy's public listener."""
    async with httpx.AsyncClient(base_url=stack.public_url, timeout=30, trust_env=False) as client:
        yield client
