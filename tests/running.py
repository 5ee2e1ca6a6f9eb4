"""The whole mesh for a test session: Postgres, NATS, every service and Envoy, on free ports in a
temp dir, stopped at the end with nothing left running. Shared by the e2e and fault suites, which
each get their own, so that faults cannot disturb the e2e tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stack import Stack, StackSettings


def running_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Stack]:
    # Holds end in 20 s here (10 min in production), so tests can watch orders expire. Given to
    # orders only, rather than set in this process's environment for everyone.
    hold_ttl = os.environ.get("HOLD_TTL_SECONDS", "20")
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp(name),
        service_env={"orders": {"HOLD_TTL_SECONDS": hold_ttl}},
    ).with_free_ports()
    with Stack(settings) as running:
        yield running
