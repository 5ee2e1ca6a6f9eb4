"""The whole mesh for a test session: Postgres, NATS, every service and Envoy, on free ports in a
temp dir, stopped at the end with nothing left running. Shared by the e2e and fault suites, which
each get their own, so that faults cannot disturb the e2e tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

import pytest

from stack import Stack, StackSettings

# Orders' slow clocks, sped up so tests can watch them: a bank transfer's payment term (3 days in
# production), owed work's retries and parking (1 s doubling, 12 attempts) and the books'
# reconciliation (every 10 s, 30 s after a charge's last change).
_FAST_ORDERS = {
    "PAYMENT_TERM_SECONDS": "12",
    "OWED_RETRY_SECONDS": "0.2",
    "OWED_MAX_ATTEMPTS": "5",
    "BOOKS_INTERVAL_SECONDS": "1",
    "BOOKS_GRACE_SECONDS": "3",
}


def running_stack(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    envoy_upstreams: Callable[[StackSettings], Mapping[str, int]] | None = None,
) -> Iterator[Stack]:
    """`envoy_upstreams`, if given, is called with the settings once their ports are chosen and
    returns, per replica name, the port Envoy must reach that replica on (a proxy in front of it)."""
    # Holds end in 20 s here (10 min in production), so tests can watch orders expire. Given to
    # orders only, rather than set in this process's environment for everyone.
    hold_ttl = os.environ.get("HOLD_TTL_SECONDS", "20")
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp(name),
        service_env={"orders": {"HOLD_TTL_SECONDS": hold_ttl, **_FAST_ORDERS}},
    ).with_free_ports()
    if envoy_upstreams is not None:
        settings = replace(settings, envoy_upstream_ports=envoy_upstreams(settings))
    with Stack(settings) as running:
        yield running
