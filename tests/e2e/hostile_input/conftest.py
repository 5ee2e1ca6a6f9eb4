"""Fixtures the hostile-input suites share: a ledger of what each suite created and how many cases
it ran (reported at the end under the module's SUITE name), and real ids to draw requests from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack import Stack
from tests.e2e import hostile


@pytest.fixture(scope="module")
def ledger(request: pytest.FixtureRequest) -> Iterator[hostile.Ledger]:
    ledger = hostile.Ledger()
    yield ledger
    ledger.report(request.config, request.module.SUITE)


@pytest.fixture(scope="module")
def known(stack: Stack, ledger: hostile.Ledger) -> hostile.Known:
    ids = hostile.seed(stack)
    ledger.events.update(ids["event"])
    ledger.orders.update(ids["order"])
    return ids
